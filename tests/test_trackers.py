"""Trackers: `--log tensorboard|trackio|...` log the same numbers as metrics.parquet, no network."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from conceptweb.errors import ConceptwebError
from conceptweb.interfaces.cli import app
from conceptweb.rundir import RunDir
from conceptweb.trackers import check_trackers, numeric_values

SMALL = ["model.N=40", "model.K=4", "model.L=20", "problems.Q=6", "problems.held_out=2"]
SMALL += ["grpo.G=4", "eval.G=8", "eval.every=5", "checkpoint.every=5"]


def _train(out, *log: str):
    args = ["train", "--preset", "tiny", "--steps", "12", "-q", "--out", str(out)]
    for item in SMALL:
        args += ["--set", item]
    for name in log:
        args += ["--log", name]
    return CliRunner().invoke(app, args)


def test_tensorboard_events_hold_the_metrics(tmp_path):
    pytest.importorskip("tensorboardX")
    acc = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    res = _train(tmp_path / "run", "tensorboard")
    assert res.exit_code == 0, res.output
    metrics = RunDir.open(tmp_path / "run").read_metrics()
    ea = acc.EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    ea.Reload()
    for key in ("reward_mean", "len_mean", "n_solved", "entropy_mean"):
        events = ea.Scalars(key)
        assert [e.step for e in events] == metrics["step"].tolist()
        assert [e.value for e in events] == pytest.approx(metrics[key].tolist(), rel=1e-6)
    tags = set(ea.Tags()["scalars"])
    assert "phase" not in tags  # strings are not numbers
    assert {"signal/F", "signal/F_peak"} <= tags  # the detector's signals, past-only, each step
    assert len(ea.Scalars("signal/F")) == len(metrics)


def test_trackio_local_store_holds_the_metrics(tmp_path):
    # trackio reads TRACKIO_DIR when first imported, and transformers may already have imported
    # it in this process: train and read back in fresh interpreters with the directory set
    pytest.importorskip("trackio")
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio"), "HF_HUB_OFFLINE": "1"}
    name = f"{tmp_path.name}-trackio"
    args = [sys.executable, "-m", "conceptweb", "train", "--preset", "tiny", "--steps", "12"]
    args += ["-q", "--out", str(tmp_path / name), "--log", "trackio"]
    for item in SMALL:
        args += ["--set", item]
    res = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    read = (
        "import json, sys; from trackio.sqlite_storage import SQLiteStorage; "
        "print(json.dumps(SQLiteStorage.get_logs('conceptweb', sys.argv[1])))"
    )
    out = subprocess.run(
        [sys.executable, "-c", read, name], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    logs = json.loads(out.stdout.strip().splitlines()[-1])
    metrics = RunDir.open(tmp_path / name).read_metrics()
    assert [r["step"] for r in logs] == metrics["step"].tolist()
    assert [r["reward_mean"] for r in logs] == pytest.approx(metrics["reward_mean"].tolist())


def test_unknown_tracker_is_a_user_error_before_anything_is_written(tmp_path):
    res = _train(tmp_path / "run", "tensorbored")
    assert res.exit_code == 2 and "unknown tracker 'tensorbored'" in res.output
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConceptwebError, match="known: mlflow, tensorboard, trackio, wandb"):
        check_trackers(["nope"])


def test_numeric_values_keeps_finite_numbers_only():
    row = {"step": 3, "phase": "rl", "a": 1, "b": float("nan"), "c": True, "d": None, "e": 0.5}
    assert numeric_values(row) == {"a": 1.0, "c": 1.0, "e": 0.5}
    assert not any(math.isnan(v) for v in numeric_values(row).values())
