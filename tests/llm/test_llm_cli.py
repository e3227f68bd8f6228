"""The `conceptweb llm` commands: help, missing extra, one-line errors, a tiny run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conceptweb.interfaces.cli import app

pytestmark = pytest.mark.llm
runner = CliRunner()
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_core_does_not_import_the_llm_stack() -> None:
    code = (
        "import sys, conceptweb, conceptweb.interfaces.cli; "
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'datasets') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_help_lists_the_commands() -> None:
    res = runner.invoke(app, ["llm", "--help"])
    assert res.exit_code == 0
    for cmd in ("train", "eval", "datasets", "conet-demo"):
        assert cmd in res.output
    assert "conceptweb[llm]" in res.output


def test_missing_extra_is_a_one_line_error(monkeypatch) -> None:
    import conceptweb.llm as llm

    monkeypatch.setattr(llm, "missing_packages", lambda: ["trl"])
    res = runner.invoke(app, ["llm", "train", "--config", "x.yaml", "--out", "o"])
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "pip install torch==2.13.0 'conceptweb[llm]'" in lines[0] and "trl" in lines[0]


def test_datasets_table() -> None:
    res = runner.invoke(app, ["llm", "datasets"])
    assert res.exit_code == 0
    assert "agentica-org/DeepScaleR-Preview-Dataset" in res.output
    assert "HuggingFaceH4/MATH-500" in res.output


def test_train_and_eval_from_the_command_line(tmp_path: Path) -> None:
    pytest.importorskip("trl")
    out = tmp_path / "tiny"
    args = [
        "llm",
        "train",
        "--config",
        str(CONFIGS / "tiny-cpu.yaml"),
        "--out",
        str(out),
        "-q",
        "--steps",
        "6",
        "--anneal",
        "at:3",
        "--set",
        "anneal.heat.steps=2",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "100 problems from 100 rows" in res.output
    assert "heating at step 3" in res.output
    res = runner.invoke(
        app, ["llm", "train", "--config", str(CONFIGS / "tiny-cpu.yaml"), "--out", str(out)]
    )
    assert res.exit_code == 2 and "already exists" in res.output
    res = runner.invoke(
        app,
        [
            "llm",
            "eval",
            "--model",
            str(out / "final"),
            "--run",
            str(out),
            "--datasets",
            "train",
            "--k",
            "2",
            "--id-problems",
            "4",
            "--out",
            str(tmp_path / "ev"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "| train | id | 4 | 2 |" in res.output
    assert (tmp_path / "ev.json").is_file()


def test_bad_config_from_the_command_line(tmp_path: Path) -> None:
    pytest.importorskip("trl")
    res = runner.invoke(
        app,
        [
            "llm",
            "train",
            "--config",
            str(CONFIGS / "tiny-cpu.yaml"),
            "--out",
            str(tmp_path / "o"),
            "--set",
            "data.train=nope",
        ],
    )
    assert res.exit_code == 2
    assert res.output.strip().splitlines()[-1].startswith("error: unknown dataset 'nope'")
    assert not (tmp_path / "o").exists()


def test_init_from_chains_stages_and_keeps_the_reference(tmp_path: Path) -> None:
    """Stage 2 starts from stage 1's final model; its KL reference stays stage 1's base."""
    import json

    import yaml

    from tests.llm.conftest import require_llm_packages, tiny_config_dict

    require_llm_packages()
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config_dict(steps=2, save_steps=2)))
    one, two = tmp_path / "stage1", tmp_path / "stage2"
    res = runner.invoke(app, ["llm", "train", "--config", str(cfg), "--out", str(one), "-q"])
    assert res.exit_code == 0, res.output
    args = ["llm", "train", "--config", str(cfg), "--init-from", str(one), "--out", str(two), "-q"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    c2 = json.loads((two / "config.json").read_text())
    assert c2["model"]["name_or_path"] == str(one / "final") and c2["model"]["scratch"] is None
    assert c2["grpo"]["reference_model"] == str(one / "init") and c2["init_from"] == str(one)
    bad = runner.invoke(
        app, ["llm", "train", "--config", str(cfg), "--init-from", str(two / "final"), "--out", "x"]
    )
    assert bad.exit_code == 2 and bad.output.startswith("error: ") and not Path("x").exists()
