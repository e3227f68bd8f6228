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
