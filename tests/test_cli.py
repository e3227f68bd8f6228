"""The command line: commands work, and user mistakes give one line, exit 2 and no damage."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from conceptweb.interfaces.cli import app
from conceptweb.rundir import RunDir
from tests.conftest import modules_loaded_by

runner = CliRunner()
SMALL = [
    "-p",
    "tiny",
    "-s",
    "steps=20",
    "-s",
    "model.N=60",
    "-s",
    "problems.Q=8",
    "-s",
    "problems.held_out=4",
    "-q",
]


def _cli(*args: str):
    return runner.invoke(app, list(args))


def test_train_and_resume(tmp_path):
    out = tmp_path / "r"
    res = _cli("train", *SMALL, "--out", str(out))
    assert res.exit_code == 0, res.output
    assert RunDir.open(out).read_meta()["status"] == "finished"
    res = _cli("train", "--out", str(out), "--resume", "--steps", "30", "-q")
    assert res.exit_code == 0, res.output
    assert RunDir.open(out).read_metrics()["step"].max() == 30


def test_sft_command(tmp_path):
    base = tmp_path / "base"
    assert _cli("train", *SMALL, "--out", str(base)).exit_code == 0
    out = tmp_path / "sft"
    res = _cli(
        "sft",
        "--from",
        str(base),
        "--problems",
        "new:3",
        "--steps",
        "5",
        "--then-rl",
        "4",
        "--out",
        str(out),
        "-q",
    )
    assert res.exit_code == 0, res.output
    m = RunDir.open(out).read_metrics()
    assert m["phase"].tolist() == ["sft"] * 5 + ["rl"] * 4


def test_presets_table_is_aligned_and_fits_80_columns():
    from conceptweb.config import PRESETS, resolve_config

    res = _cli("presets")
    assert res.exit_code == 0
    lines = res.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    header = next(line for line in lines if line.lstrip().startswith("preset"))
    # every value ends where its (right-aligned) header ends, on the first line of each row
    ends = {col: header.index(f" {col} ") + len(col) + 1 for col in ("N", "K", "Q", "steps")}
    for name in PRESETS:
        row = next(line for line in lines if line.startswith(name + " "))
        cfg = resolve_config(name)
        values = {"N": cfg.model.N, "K": cfg.model.K, "Q": cfg.problems.Q, "steps": cfg.steps}
        for col, end in ends.items():
            assert row[:end].split()[-1] == str(values[col]), (name, col, row)


def test_config_listing():
    res = _cli("config", "-p", "sparse", "-s", "model.K=16")
    assert res.exit_code == 0 and "K: 16" in res.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "-p", "nope", "--out", "{tmp}/x"], "unknown preset"),
        (["train", "-p", "tiny", "-s", "model.N=-4", "--out", "{tmp}/x"], "model.N"),
        (["train", "-c", "{tmp}/bad.yaml", "--out", "{tmp}/x"], "cannot parse"),
        (["train", "--resume", "--out", "{tmp}/notarun"], "not a conceptweb run"),
        (["train", "--resume", "--out", "{tmp}/missing"], "not a directory"),
        (["train", "-p", "tiny", "--anneal", "sometimes", "--out", "{tmp}/x"], "--anneal"),
        (["sft", "--from", "{tmp}/notarun", "--out", "{tmp}/x"], "not a conceptweb run"),
    ],
)
def test_user_errors_are_one_line(tmp_path, args, message):
    (tmp_path / "bad.yaml").write_text("model: [1,\n")
    (tmp_path / "notarun").mkdir()
    (tmp_path / "notarun" / "keep.txt").write_text("mine")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    res = _cli(*args)
    assert res.exit_code == 2
    assert message in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "x").exists()
    assert (tmp_path / "notarun" / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "name, text, where",
    [
        ("bad.yaml", "model:\n  N: 10\n  K: [1,\n", "line 4, column 1"),
        ("bad.json", '{"model": {"N": 10,}}', "line 1, column 20"),
        ("bad.toml", "[model]\nN = = 3\n", "line 2, column 5"),
    ],
)
def test_config_parse_errors_say_where(tmp_path, name, text, where):
    (tmp_path / name).write_text(text)
    res = _cli("config", "-c", str(tmp_path / name))
    assert res.exit_code == 2 and where in res.output, res.output


def _command_paths() -> list[list[str]]:
    import typer

    root = typer.main.get_command(app)
    paths = []
    for name, command in root.commands.items():
        paths.append([name])
        paths += [[name, sub] for sub in getattr(command, "commands", {})]
    return paths


@pytest.mark.parametrize("path", _command_paths(), ids=" ".join)
def test_the_script_builds_only_the_command_it_runs(path):
    """`main` runs a command from a root holding that command alone: the same help and errors."""
    from conceptweb.interfaces.cli import app_for

    assert app_for(path) is not app
    for args in ([*path, "--help"], [*path, "--no-such-option"]):
        alone, full = runner.invoke(app_for(args), args), runner.invoke(app, args)
        assert (alone.exit_code, alone.output) == (full.exit_code, full.output)


def test_the_script_builds_every_command_without_one():
    from conceptweb.interfaces.cli import app_for

    assert app_for([]) is app and app_for(["--help"]) is app and app_for(["trian"]) is app


def test_importing_the_cli_loads_no_numpy_pydantic_yaml_or_rich():
    """`conceptweb --help` starts without them: each command imports what it needs as it runs."""
    code = "from conceptweb.interfaces.cli import app"
    assert modules_loaded_by(code, {"numpy", "pydantic", "yaml", "rich"}) == []


def test_a_quiet_train_imports_neither_yaml_nor_rich(tmp_path):
    """Start-up cost: a quiet `train` with --set values needs no yaml, and rich only to print."""
    code = (
        "import sys; from conceptweb.interfaces.cli import main; "
        f"sys.argv = ['conceptweb', 'train', *{SMALL!r}, '--out', {str(tmp_path / 'r')!r}]; "
        "main()"
    )
    assert modules_loaded_by(code, {"yaml", "rich", "tomllib"}) == []
    assert RunDir.open(tmp_path / "r").read_meta()["status"] == "finished"


def test_resume_is_a_flag_in_help():
    res = _cli("train", "--help")
    assert res.exit_code == 0
    line = next(x for x in res.output.splitlines() if "--resume" in x)
    assert "<bool>" not in line and "continue the run" in line


def test_existing_run_is_never_overwritten(tmp_path):
    out = tmp_path / "r"
    assert _cli("train", *SMALL, "--out", str(out)).exit_code == 0
    before = (out / "metrics.parquet").read_bytes()
    res = _cli("train", *SMALL, "--out", str(out))
    assert res.exit_code == 2 and "already exists" in res.output
    assert (out / "metrics.parquet").read_bytes() == before


def test_installed_script_prints_one_line_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "conceptweb", "train", "-p", "nope", "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "unknown preset" in proc.stderr
