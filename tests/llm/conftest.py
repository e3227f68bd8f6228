"""Shared fixtures of the LLM tests: offline, one thread, a tiny model built locally."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

LLM_PACKAGES = ("torch", "transformers", "trl", "datasets", "math_verify")


def require_llm_packages() -> None:
    """Skip the calling test module when the [llm] extra is not installed."""
    for name in LLM_PACKAGES:
        pytest.importorskip(name)


def tiny_config_dict(**over: Any) -> dict[str, Any]:
    """A run that trains in seconds: 1-layer model, 100 additions, 8 prompts x 4 completions."""
    from conceptweb.config import deep_merge

    base = {
        "seed": 0,
        "steps": 8,
        "save_steps": 4,
        "torch_threads": 1,
        "model": {
            "scratch": {
                "hidden_size": 32,
                "num_layers": 1,
                "num_heads": 2,
                "intermediate_size": 64,
                "max_position_embeddings": 32,
            }
        },
        "data": {"train": "synthetic-arith"},
        "grpo": {
            "learning_rate": 3e-3,
            "num_generations": 4,
            "prompts_per_step": 8,
            "per_device_batch_size": 16,
            "max_completion_length": 2,
        },
        "eval": {"k": 4, "id_problems": 10, "datasets": [], "max_new_tokens": 2, "batch_size": 10},
    }
    return deep_merge(base, over)


def tiny_config(**over: Any) -> Any:
    from conceptweb.llm.config import validate_llm_config

    return validate_llm_config(tiny_config_dict(**over))


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


GLOO_PROBE = """
import sys
import torch.distributed as dist
dist.init_process_group("gloo")
out = [None, None]
dist.all_gather_object(out, {"rank": dist.get_rank()})
assert [o["rank"] for o in out] == [0, 1], out
dist.destroy_process_group()
"""


def two_process_env() -> dict[str, str]:
    """Environment for 2 CPU processes under torchrun: one thread each, gloo on loopback (a
    machine whose hostname resolves to an address gloo cannot reach aborts otherwise)."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}


def torchrun_two(args: list[str], timeout: float = 300) -> Any:
    """`python -m torch.distributed.run --standalone --nproc_per_node 2 ARGS`, output captured."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    return subprocess.run(
        [*cmd, *args], env=two_process_env(), capture_output=True, text=True, timeout=timeout
    )


_gloo_verdict: list[str | None] = []


def require_two_gloo_processes(tmp_path: Path) -> None:
    """Skip (saying why) where this machine cannot run two plain gloo processes at all, so a
    failure of the test that follows is a failure of conceptweb's code, not of the machine."""
    if not _gloo_verdict:
        script = tmp_path / "gloo_probe.py"
        script.write_text(GLOO_PROBE)
        res = torchrun_two([str(script)], timeout=180)
        _gloo_verdict.append(None if res.returncode == 0 else res.stderr[-1500:])
    if _gloo_verdict[0] is not None:
        pytest.skip(f"two plain gloo processes fail on this machine:\n{_gloo_verdict[0]}")


def launch_failure(res: Any) -> str:
    """What a failed 2-process launch printed: the start (the failing rank's own error is
    usually there) and the end (torchrun's summary)."""
    err = res.stderr
    return err if len(err) < 6000 else f"{err[:3000]}\n[...]\n{err[-3000:]}"
