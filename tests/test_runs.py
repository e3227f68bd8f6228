"""Run lifecycle: Ctrl-C marks a run interrupted, resume skips damaged checkpoints, one writer
at a time, and --resume accepts the options the run was made with."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from typer.testing import CliRunner

from conceptweb.errors import ConceptwebError
from conceptweb.experiments.runs import train_run
from conceptweb.interfaces.cli import app
from conceptweb.rundir import RunDir
from tests.conftest import restore_sigint, small_config

SMALL = ["-p", "tiny", "-s", "model.N=60", "-s", "problems.Q=8", "-s", "problems.held_out=4"]


def _cli(*args: str):
    return CliRunner().invoke(app, list(args))


def _same_records(a: RunDir, b: RunDir) -> None:
    pd.testing.assert_frame_equal(
        a.read_metrics().drop(columns="time_s"), b.read_metrics().drop(columns="time_s")
    )
    pd.testing.assert_frame_equal(a.read_problems(), b.read_problems())


def test_sigint_marks_the_run_interrupted_and_names_the_resume_command(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "conceptweb", "train", *SMALL, "--steps", "100000", "--out"]
    proc = subprocess.Popen(
        [*cmd, str(out), "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=restore_sigint,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "checkpoints" / "step_000020.npz").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert f"conceptweb train --out {out} --resume" in err
    assert "Traceback" not in err
    run = RunDir.open(out)
    assert run.read_meta()["status"] == "interrupted"
    res = _cli("train", "--out", str(out), "--resume", "--steps", "40", "-q")
    assert res.exit_code == 0, res.output
    assert run.read_meta()["status"] == "finished"


def test_resume_falls_back_to_the_newest_readable_checkpoint(tmp_path):
    cfg = small_config(steps=40)
    run = train_run(cfg, tmp_path / "r")
    damaged = run.checkpoint_path(40)
    damaged.write_bytes(damaged.read_bytes()[:200])  # a torn write, or a bad disk
    res = _cli("train", "--out", str(run.path), "--resume", "--steps", "50", "-q")
    assert res.exit_code == 0, res.output
    assert "step_000040.npz" in res.output and "checkpoint at step 30" in res.output
    longer = train_run(small_config(steps=50), tmp_path / "longer")
    _same_records(longer, run)  # steps 31..50 retrained exactly


def test_a_run_directory_has_one_writer(tmp_path):
    run = train_run(small_config(steps=10), tmp_path / "r")
    with run.writing(command="a test"):
        with pytest.raises(ConceptwebError, match=f"being written by process {os.getpid()}"):
            train_run(None, run.path, resume=True, steps=20)
        res = _cli("train", "--out", str(run.path), "--resume", "--steps", "20", "-q")
        assert res.exit_code == 2 and "a test" in res.output
    train_run(None, run.path, resume=True, steps=20)  # released: it goes on
    assert run.read_meta()["last_step"] == 20


def test_resume_accepts_the_same_options_and_names_real_changes(tmp_path):
    out = str(tmp_path / "r")
    assert _cli("train", *SMALL, "--seed", "3", "--steps", "10", "--out", out, "-q").exit_code == 0
    same = _cli("train", *SMALL, "--seed", "3", "--steps", "20", "--out", out, "--resume", "-q")
    assert same.exit_code == 0, same.output
    assert RunDir.open(out).read_meta()["last_step"] == 20
    changed = _cli(
        "train", *SMALL, "--seed", "4", "--anneal", "auto", "--out", out, "--resume", "-q"
    )
    assert changed.exit_code == 2
    assert "seed (3 -> 4)" in changed.output and "anneal.mode ('off' -> 'auto')" in changed.output
    assert RunDir.open(out).read_meta()["last_step"] == 20  # nothing was trained
