"""Precision: fp32 master weights with bf16 autocast by default, and `llm config` shows both dtypes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.llm.conftest import require_llm_packages, tiny_config

pytestmark = pytest.mark.llm
require_llm_packages()

from conceptweb.interfaces.cli import app  # noqa: E402
from conceptweb.llm.models import (  # noqa: E402
    build_scratch_model,
    build_wordlevel_tokenizer,
    precision,
    trainer_precision_flags,
    weights_dtype,
)

ROOT = Path(__file__).resolve().parents[2]


def moved_fraction(master_dtype: object, steps: int = 10, lr: float = 1e-6) -> float:
    """Fraction of weights that 10 AdamW steps at lr 1e-6 change, bf16 autocast on CPU."""
    import torch

    torch.manual_seed(0)
    cfg = tiny_config().model
    tok = build_wordlevel_tokenizer([f"{a} + {b} = {a + b}" for a in range(10) for b in range(10)])
    model = build_scratch_model(cfg.scratch, tok, seed=0).to(master_dtype)
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    ids = torch.randint(0, len(tok), (8, 12))
    for _ in range(steps):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    changed = sum(
        int((p.detach() != b).sum()) for p, b in zip(model.parameters(), before, strict=True)
    )
    return changed / sum(b.numel() for b in before)


def test_default_precision_keeps_fp32_master_weights_that_small_updates_move() -> None:
    import torch

    cfg = tiny_config().model
    assert weights_dtype(cfg) == torch.float32  # default: fp32 master weights
    bf16 = cfg.model_copy(update={"compute_dtype": "bfloat16"})
    assert trainer_precision_flags(bf16) == {"bf16": True, "fp16": False}  # autocast
    assert precision(bf16)["mode"] == "float32 master weights, bfloat16 autocast"
    assert moved_fraction(weights_dtype(cfg)) > 0.9
    # pure bf16 weights (what the deepscaler config did before): updates round away
    assert moved_fraction(torch.bfloat16) < 0.1


def test_llm_config_prints_both_dtypes() -> None:
    out = CliRunner().invoke(
        app, ["llm", "config", "--config", str(ROOT / "configs" / "deepscaler-1.5b.yaml")]
    )
    assert out.exit_code == 0, out.output
    assert "dtype: float32" in out.output and "compute_dtype: bfloat16" in out.output
    assert "weights float32, compute bfloat16 (float32 master weights, bfloat16 autocast)" in (
        out.output
    )
    bad = CliRunner().invoke(app, ["llm", "config", "--config", "nope.yaml"])
    assert bad.exit_code == 2 and bad.output.startswith("error: ")
