"""Trackers: `--log tensorboard|trackio|...` log the same numbers as metrics.parquet, no network."""

from __future__ import annotations

import math
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


def test_trackio_local_store_holds_the_metrics(tmp_path, monkeypatch):
    # trackio reads TRACKIO_DIR when first imported (transformers may have imported it already)
    if "trackio" in sys.modules:
        pytest.skip("trackio was imported before TRACKIO_DIR could be set in this process")
    monkeypatch.setenv("TRACKIO_DIR", str(tmp_path / "trackio"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pytest.importorskip("trackio")
    name = f"{tmp_path.name}-trackio"
    res = _train(tmp_path / name, "trackio")
    assert res.exit_code == 0, res.output
    from trackio.sqlite_storage import SQLiteStorage

    logs = SQLiteStorage.get_logs("conceptweb", name)
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
