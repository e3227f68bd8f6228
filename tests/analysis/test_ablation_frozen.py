"""The ablation's OPERATOR@frozen arms: heating at the step after the paired plain run froze."""

from __future__ import annotations

import json

from conceptweb.config import config_to_dict
from conceptweb.experiments.ablation import (
    AblationConfig,
    _job,
    after_freezing,
    arm_config,
    parse_arm,
)
from conceptweb.rundir import RunDir

SMALL = ["steps=100", "model.N=60", "model.K=4", "model.L=30", "problems.Q=12"]
SMALL += ["problems.held_out=6", "grpo.G=8", "eval.G=16", "eval.final_G=32"]


def test_after_freezing_is_a_checkpoint_past_most_freezing(base_run):
    step = after_freezing(base_run)
    assert step is not None and step in base_run.checkpoint_steps()


def test_sft_at_frozen_arm_heats_where_its_probe_froze(tmp_path):
    assert parse_arm("sft@frozen") == ("sft", "frozen")
    abl = AblationConfig(preset=None, sets=SMALL, seeds=2, arms=["plain", "sft@frozen"])
    probe_cfg = arm_config(abl, abl.base_config(), "sft@frozen", 3)
    assert probe_cfg.anneal.mode == "off" and probe_cfg.checkpoint.every == 10
    out = tmp_path / "sft_at_frozen" / "seed3"
    got = _job((config_to_dict(probe_cfg), str(out), 8, (abl, "sft@frozen", 3)))
    probe = RunDir.open(tmp_path / "sft_at_frozen" / "seed3-probe")
    expected = after_freezing(probe)
    assert expected is not None and expected < 100  # 90 at this size and seed
    assert got["frozen_step"] == expected
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["anneal"]["mode"] == "at" and cfg["anneal"]["at_step"] == expected
    assert got["pass_at_32"] >= got["pass_at_1"]
