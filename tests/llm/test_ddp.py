"""Two CPU processes (torchrun, gloo): DDP training, heating, and resuming a heated checkpoint."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.llm.conftest import require_llm_packages, tiny_config_dict, two_process_env

pytestmark = pytest.mark.llm
require_llm_packages()

from conceptweb.rundir import RunDir  # noqa: E402


def torchrun(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    return subprocess.run(
        [*cmd, "-m", "conceptweb", "llm", "train", "-q", *args],
        env=two_process_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow  # two 2-process launches: about 2 minutes of CPU
def test_heated_checkpoint_resumes_under_ddp(tmp_path: Path) -> None:
    """GRPO on 2 processes heats after step 2; a crash after the heat (only the pre-heat
    checkpoint and the heated one remain) resumes under DDP from the heated weights: the
    steps after it and the final weights equal the uninterrupted run's."""
    from safetensors.torch import load_file

    heat = {"steps": 2, "threshold": 0.5, "probe": True, "batch_size": 4, "max_length": 16}
    cfg = tiny_config_dict(steps=6, save_steps=3, anneal={"mode": "at", "at_step": 2, "heat": heat})
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    out = tmp_path / "run"
    first = torchrun("--config", str(tmp_path / "c.json"), "--out", str(out))
    assert first.returncode == 0, first.stderr[-3000:]
    run = RunDir.open(out)
    before = run.read_metrics()
    assert before["n_completions"].dropna().tolist() == [32.0] * 4  # 8 prompts x 4, gathered
    p = run.read_problems()
    assert len(p[p["phase"] == "sft"]) == len(
        json.loads((out / "heat" / "heat-1" / "sft_data.json").read_text())["problems"]
    )
    heated = out / "heat" / "heat-1" / "checkpoint-2"
    assert {"rng_state_0.pth", "rng_state_1.pth", "optimizer.pt"} <= {
        f.name for f in heated.iterdir()
    }
    w_pre = load_file(out / "checkpoints" / "checkpoint-2" / "model.safetensors")
    w_heat = load_file(heated / "model.safetensors")
    assert any(not (w_pre[k] == w_heat[k]).all() for k in w_pre)  # heating moved the weights
    final = load_file(out / "final" / "model.safetensors")
    # the crash: GRPO's checkpoints after the heat and the final model are gone
    for trl_step in (3, 4):
        shutil.rmtree(out / "checkpoints" / f"checkpoint-{trl_step}")
    shutil.rmtree(out / "final")
    run.update_meta(status="running")
    state = json.loads((out / "llm_state.json").read_text())
    (out / "llm_state.json").write_text(json.dumps({**state, "phase": "rl"}))
    again = torchrun("--out", str(out), "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    after = run.read_metrics()
    assert after["step"].tolist() == list(range(1, 7))
    for col in ("reward_mean", "entropy_mean", "loss"):
        assert after[col].tolist() == pytest.approx(before[col].tolist(), nan_ok=True, rel=1e-5)
    resumed = load_file(out / "final" / "model.safetensors")
    assert all((resumed[k] - final[k]).abs().max() < 1e-5 for k in final)
    p = run.read_problems()
    assert not p.duplicated(["step", "problem", "phase"]).any()


@pytest.mark.parametrize(
    ("env", "extra", "name"),
    [
        ({"ACCELERATE_USE_FSDP": "true"}, {}, "FSDP"),
        ({"ACCELERATE_USE_DEEPSPEED": "true"}, {}, "DeepSpeed"),
        ({}, {"deepspeed": "ds_zero3.json"}, "DeepSpeed"),
        ({}, {"fsdp": "full_shard"}, "FSDP"),
    ],
)
def test_heating_under_deepspeed_or_fsdp_is_refused_before_training(
    tmp_path: Path, monkeypatch, env, extra, name
) -> None:
    from typer.testing import CliRunner

    from conceptweb.interfaces.cli import app

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    cfg = tiny_config_dict(anneal={"mode": "at", "at_step": 2}, grpo={"extra": extra})
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg))
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["llm", "train", "--config", str(path), "--out", str(out)])
    assert res.exit_code == 2 and not out.exists()
    lines = [x for x in res.output.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and f"under {name}" in lines[0] and "anneal.mode off" in lines[0]
    sentinel = tiny_config_dict(sentinel={"problems": 4}, grpo={"extra": extra})
    path.write_text(json.dumps(sentinel))
    res = CliRunner().invoke(app, ["llm", "train", "--config", str(path), "--out", str(out)])
    assert res.exit_code == 2 and "grpo.use_vllm" in res.output and not out.exists()


def test_plain_runs_pass_the_parallel_check() -> None:
    from conceptweb.llm.config import validate_llm_config
    from conceptweb.llm.train import check_parallel_setup, sharded_training

    cfg = validate_llm_config(tiny_config_dict(anneal={"mode": "at", "at_step": 2}))
    assert sharded_training(cfg) is None
    check_parallel_setup(cfg)  # DDP or one process: heating is allowed
