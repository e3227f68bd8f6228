"""Training runs: determinism, exact resume after a kill, the run-directory contract, SFT runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from conceptweb.algorithms.trainer import Trainer
from conceptweb.config import config_to_dict
from conceptweb.experiments.runs import train_run
from conceptweb.rundir import RunDir
from tests.conftest import small_config


def _train(cfg, path):
    return train_run(cfg, path)


def test_same_config_and_seed_give_identical_records(tmp_path, engine):
    small_cfg = small_config(**{"model.engine": engine.name})
    a = _train(small_cfg, tmp_path / "a")
    b = _train(small_cfg, tmp_path / "b")
    ma, mb = a.read_metrics().drop(columns="time_s"), b.read_metrics().drop(columns="time_s")
    pd.testing.assert_frame_equal(ma, mb)
    pd.testing.assert_frame_equal(a.read_problems(), b.read_problems())
    pd.testing.assert_frame_equal(a.read_eval(), b.read_eval())
    np.testing.assert_array_equal(a.load_checkpoint().logits, b.load_checkpoint().logits)
    c = _train(small_config(seed=1, **{"model.engine": engine.name}), tmp_path / "c")
    assert not np.array_equal(a.load_checkpoint().logits, c.load_checkpoint().logits)


def test_run_directory_contract(tmp_path, small_cfg):
    run = _train(small_cfg, tmp_path / "r")
    saved = json.loads((run.path / "config.json").read_text())
    assert saved == config_to_dict(small_cfg)  # every default written out
    assert saved["grpo"]["G"] == 8 and "kl_coef" in saved["grpo"]
    m = run.read_metrics()
    for col in (
        "step",
        "phase",
        "reward_mean",
        "len_correct_mean",
        "len_mean",
        "entropy_mean",
        "n_solved",
    ):
        assert col in m.columns
    assert m["step"].tolist() == list(range(1, 41))
    assert set(m["phase"]) == {"rl"}
    p = run.read_problems()
    assert {"step", "problem", "accuracy", "len_correct_mean"} <= set(p.columns)
    assert len(p) == 40 * 12
    e = run.read_eval()
    assert set(e["split"]) == {"train", "heldout"}
    assert sorted(e["step"].unique()) == [0, 10, 20, 30, 40]
    assert run.checkpoint_steps() == [0, 10, 20, 30, 40]
    ck = run.load_checkpoint(20)
    assert ck.step == 20 and (ck.N, ck.K, ck.L) == (60, 4, 30)
    assert ck.logits.shape == (60, 4) and ck.neighbors.shape == (60, 4)
    assert ck.trainer is not None and ck.trainer.rl_adam.m.shape == (60, 4)
    with np.load(run.checkpoint_path(20)) as raw:  # sizes are stored, not inferred
        assert int(raw["L"]) == 30 and int(raw["schema_version"]) == 2
    assert run.read_meta()["status"] == "finished"
    assert not [f for f in run.path.rglob("*.tmp")]  # no temp files left behind


def test_learning_happens(tmp_path):
    run = _train(small_config(steps=80), tmp_path / "r")
    m = run.read_metrics()
    assert m["reward_mean"].iloc[-10:].mean() > m["reward_mean"].iloc[:5].mean() + 0.3


def test_resume_after_interruption_is_bit_for_bit(tmp_path, engine):
    small_cfg = small_config(**{"model.engine": engine.name})
    full = _train(small_cfg, tmp_path / "full")
    # the same run interrupted after 23 steps (between checkpoints 20 and 30), then resumed
    run = RunDir.create(tmp_path / "cut", config_to_dict(small_cfg))
    t = Trainer(small_cfg, run)
    t.start()
    t.run(stop_after=23)
    t.flush()  # records beyond the last checkpoint exist on disk and must be discarded
    resumed = train_run(None, tmp_path / "cut", resume=True)
    np.testing.assert_array_equal(full.load_checkpoint().logits, resumed.load_checkpoint().logits)
    pd.testing.assert_frame_equal(
        full.read_metrics().drop(columns="time_s"), resumed.read_metrics().drop(columns="time_s")
    )
    pd.testing.assert_frame_equal(full.read_problems(), resumed.read_problems())
    pd.testing.assert_frame_equal(full.read_eval(), resumed.read_eval())


def test_resume_after_sigkill(tmp_path):
    cfg = small_config(steps=400, **{"checkpoint.every": 7})
    full = _train(cfg, tmp_path / "full")
    out = tmp_path / "killed"
    code = (
        "import sys; from conceptweb.experiments.runs import train_run; "
        "from conceptweb.config import validate_config; import json; "
        f"train_run(validate_config(json.load(open({str(tmp_path / 'cfg.json')!r}))), {str(out)!r})"
    )
    (tmp_path / "cfg.json").write_text(json.dumps(config_to_dict(cfg)))
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": os.getcwd()}
    )
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until it is mid-run
        steps = RunDir(out).checkpoint_steps() if (out / "checkpoints").is_dir() else []
        if steps and steps[-1] >= 60:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = RunDir(out).checkpoint_steps()[-1]
    assert killed_at < 400, "the run finished before it could be killed"
    resumed = train_run(None, out, resume=True)
    np.testing.assert_array_equal(full.load_checkpoint().logits, resumed.load_checkpoint().logits)
    pd.testing.assert_frame_equal(
        full.read_metrics().drop(columns="time_s"), resumed.read_metrics().drop(columns="time_s")
    )


def test_resume_can_extend_a_finished_run(tmp_path, small_cfg):
    longer = _train(small_config(steps=60), tmp_path / "long")
    _train(small_cfg, tmp_path / "short")
    extended = train_run(None, tmp_path / "short", resume=True, steps=60)
    np.testing.assert_array_equal(
        longer.load_checkpoint().logits, extended.load_checkpoint().logits
    )


def test_sft_on_new_problems_records_old_and_new(tmp_path):
    base = _train(small_config(steps=60), tmp_path / "base")
    cfg = small_config(
        steps=30,
        **{"sft.steps": 20, "sft.problems": "new:4", "init_from": str(base.path)},
    )
    run = _train(cfg, tmp_path / "sft")
    m = run.read_metrics()
    assert (m["phase"] == "sft").sum() == 20 and (m["phase"] == "rl").sum() == 10
    p = run.read_problems()
    assert set(p["split"]) == {"train", "new"}
    new = p[p["split"] == "new"].pivot(index="step", columns="problem", values="accuracy")
    assert new.iloc[-1].mean() > new.iloc[0].mean()  # SFT taught the new problems
    ck = run.load_checkpoint(0)
    np.testing.assert_array_equal(ck.logits, base.load_checkpoint().logits)
    np.testing.assert_array_equal(ck.sources, base.load_checkpoint().sources)
    assert len(ck.new_sources) == 4


@pytest.mark.slow
def test_sparse_preset_learns(tmp_path):
    from conceptweb.config import resolve_config

    run = _train(resolve_config("sparse"), tmp_path / "sparse")
    m = run.read_metrics()
    assert m["reward_mean"].iloc[:5].mean() < 0.2
    assert m["reward_mean"].iloc[-20:].mean() > 0.85
