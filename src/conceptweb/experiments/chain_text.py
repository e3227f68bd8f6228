"""A text task whose step concepts are known: chained arithmetic written as sentences.

A small model built locally (word-level tokenizer, Llama) learns `synthetic-chain` by SFT on
worked solutions, then by GRPO with a verifiable reward, recording its completions; `llm graph`
then extracts the concepts of its sentences from hidden states, and they are compared with the
operation each sentence performs (known by construction, never shown to the extractor).
An experiment: it needs conceptweb[llm]; torch and TRL are imported inside the functions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from conceptweb.llm.data import CHAIN_CONCEPTS, synthetic_chain
from conceptweb.rundir import atomic_write_json, atomic_write_text


class ChainConfig(BaseModel):
    """Sizes of the chained-arithmetic demonstration (defaults: minutes on 2 cores)."""

    model_config = ConfigDict(extra="forbid")

    problems: int = Field(48, ge=1, description="GRPO problems")
    sft_examples: int = Field(3000, ge=1, description="SFT examples (other problems)")
    sft_steps: int = Field(300, ge=1)
    sft_lr: float = Field(3e-3, gt=0)
    sft_batch: int = Field(64, ge=1)
    steps: int = Field(30, ge=1, description="GRPO steps")
    prompts: int = Field(8, ge=1, description="prompts per GRPO step")
    G: int = Field(8, ge=2, description="completions per prompt")
    rl_lr: float = Field(3e-4, gt=0)
    hidden: int = Field(128, ge=8)
    layers: int = Field(2, ge=1)
    heads: int = Field(4, ge=1)
    checkpoints: int = Field(3, ge=1, description="saved checkpoints besides the start")
    record: int = Field(64, ge=1, description="completions recorded per step")
    max_length: int = Field(40, ge=8, description="completion tokens")
    tau: float = Field(0.5, gt=0, le=1)
    threads: int = Field(1, ge=1)


def sft_rows(cfg: ChainConfig, seed: int, exclude: set[str]) -> list[dict[str, str]]:
    """Worked solutions of problems not used by GRPO, as prompt-completion pairs."""
    rows = synthetic_chain(cfg.sft_examples + len(exclude), seed=seed + 1000)
    rows = [r for r in rows if r["problem"] not in exclude][: cfg.sft_examples]
    return [{"prompt": r["problem"], "completion": " " + r["solution"]} for r in rows]


def pretrain(cfg: ChainConfig, rows: list[dict[str, str]], seed: int, out: Path) -> dict[str, Any]:
    """Tokenizer and model built locally, SFT on the worked solutions; saved to `out`."""
    from conceptweb.experiments.conet_demo import sft_from_scratch, small_llama
    from conceptweb.llm.models import build_wordlevel_tokenizer

    if (out / "pretrain.json").is_file():
        return json.loads((out / "pretrain.json").read_text())
    tokenizer = build_wordlevel_tokenizer([r["prompt"] + r["completion"] for r in rows])
    scratch = small_llama(cfg.hidden, cfg.layers, cfg.heads, cfg.max_length)
    info = {"steps": cfg.sft_steps, "examples": len(rows)}
    info.update(
        sft_from_scratch(
            scratch,
            tokenizer,
            rows,
            cfg.sft_steps,
            cfg.sft_lr,
            cfg.sft_batch,
            cfg.max_length + 24,
            out,
            seed,
        )
    )
    atomic_write_json(out / "pretrain.json", info)
    return info


def grpo_config(cfg: ChainConfig, seed: int, train: Path, model_dir: Path) -> Any:
    """The `llm train` config of the GRPO stage (records completions, keeps every checkpoint)."""
    from conceptweb.llm.config import validate_llm_config

    return validate_llm_config(
        {
            "seed": seed,
            "steps": cfg.steps,
            "save_steps": max(cfg.steps // cfg.checkpoints, 1),
            "save_total_limit": None,
            "record_completions": cfg.record,
            "flush_every": 10,
            "torch_threads": cfg.threads,
            "model": {"name_or_path": str(model_dir), "dtype": "float32"},
            "data": {"train": str(train)},
            "task": {"kind": "math", "reward": "loose"},
            "grpo": {
                "learning_rate": cfg.rl_lr,
                "num_generations": cfg.G,
                "prompts_per_step": cfg.prompts,
                "per_device_batch_size": cfg.prompts * cfg.G,
                "max_completion_length": cfg.max_length,
                "temperature": 1.0,
                "loss_type": "grpo",
            },
            "eval": {"k": 4, "id_problems": cfg.problems, "datasets": [], "batch_size": 64},
        }
    )


def run_chain(
    cfg: ChainConfig, out: str | Path, seed: int = 0, echo: Callable[[str], None] = print
) -> pd.DataFrame:
    """Data, SFT, GRPO (recording), `llm graph` (sentences, hidden states, --layer auto) and the
    comparison with the known operations; one row per checkpoint. Finished stages are kept."""
    from conceptweb.analysis.reasoning import load_graph
    from conceptweb.llm.graph import GraphSettings, build_graph
    from conceptweb.llm.runtime import quiet_libraries
    from conceptweb.llm.train import train_llm
    from conceptweb.llm.truth import chain_concepts, score_token_graph
    from conceptweb.rundir import RunDir

    quiet_libraries(cfg.threads)  # SFT too runs on cfg.threads (torch's default oversubscribes)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    problems = synthetic_chain(cfg.problems, seed=seed)
    train = out / "train.jsonl"
    atomic_write_text(train, "".join(json.dumps(r) + "\n" for r in problems))
    echo(f"seed {seed}: SFT of a model built locally on worked solutions")
    info = pretrain(cfg, sft_rows(cfg, seed, {r["problem"] for r in problems}), seed, out / "sft")
    run = out / "run"
    meta = run / "run.json"
    if not (meta.is_file() and json.loads(meta.read_text()).get("status") == "finished"):
        if run.exists():
            import shutil

            shutil.rmtree(run)
        echo(f"seed {seed}: GRPO, recording completions")
        train_llm(grpo_config(cfg, seed, train, out / "sft"), run, echo=lambda m: None)
    echo(f"seed {seed}: concept graph of every checkpoint")
    n = len(CHAIN_CONCEPTS)
    build_graph(
        run,
        GraphSettings(segment="sentence", include="all", n_concepts=n, layer="auto", seed=seed),
    )
    steps, edges, gmeta = load_graph(RunDir.open(run))
    frame = score_token_graph(steps, edges, cfg.tau, labeler=chain_concepts)
    frame["purity_digit"] = digit_purity(steps)
    metrics = RunDir.open(run).read_table("metrics")
    frame["reward"] = window_reward(metrics, frame["step"].tolist())
    frame.insert(0, "seed", seed)
    frame["layer"] = gmeta["layer"]
    frame["sft_loss_last"] = info["loss_last"]
    return frame


def sentence_digits(texts: pd.Series) -> np.ndarray:
    """The last number of each sentence (its result: `add 4 gives 7 .` -> 7; none -> -1)."""
    nums = [[w for w in str(t).split() if w.isdigit()] for t in texts]
    return np.array([int(n[-1]) if n else -1 for n in nums], dtype=np.int64)


def digit_purity(steps: pd.DataFrame) -> list[float]:
    """Per checkpoint, the purity of the concepts against the sentences' numbers instead of their
    operations: near 1 where the representation is dominated by the digits."""
    from conceptweb.llm.truth import purity

    return [
        purity(g["concept"].to_numpy(), sentence_digits(g["text"]))[0]
        for _, g in steps.groupby("step", sort=True)
    ]


def window_reward(metrics: pd.DataFrame, ck_steps: list[int]) -> list[float]:
    """Per checkpoint, the mean GRPO reward of the steps whose completions its graph is built
    from (`llm graph`'s windows: sampled by the policies since the previous checkpoint)."""
    from conceptweb.llm.graph import assign_windows

    owner = assign_windows(metrics["step"].to_numpy(), sorted(ck_steps), None)
    means = metrics.groupby(owner)["reward_mean"].mean()
    return [float(means.get(c, np.nan)) for c in ck_steps]
