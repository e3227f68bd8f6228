"""LLM runs: TRL's report_to passed through, with the monitor's quantities in the same log."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.llm.conftest import require_llm_packages, tiny_config

pytestmark = pytest.mark.llm
require_llm_packages()

from conceptweb.llm.train import train_llm  # noqa: E402
from conceptweb.rundir import RunDir  # noqa: E402


def test_tensorboard_gets_trl_and_monitor_quantities(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("tensorboard")
    acc = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    out = tmp_path / "run"
    cfg = tiny_config(steps=3, save_steps=3, report_to=["tensorboard"])
    train_llm(cfg, out, echo=lambda msg: None)
    metrics = RunDir.open(out).read_metrics()
    ea = acc.EventAccumulator(str(out / "tensorboard"))
    ea.Reload()
    tags = set(ea.Tags()["scalars"])
    assert "train/reward" in tags  # TRL's own quantity
    ours = ea.Scalars("train/conceptweb/reward_mean")  # the monitor's, in the same log
    assert [e.step for e in ours] == metrics["step"].tolist()
    assert [e.value for e in ours] == pytest.approx(metrics["reward_mean"].tolist(), abs=1e-6)
    assert {"train/conceptweb/signal/F", "train/conceptweb/signal/F_peak"} <= tags
