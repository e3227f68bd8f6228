"""A transformer on CoNet: pre-trained on random walks, then GRPO beside tabular CoNet.

An experiment (it needs conceptweb[llm]; torch and TRL are imported inside the functions that
use them). Its report and figures are drawn by `interfaces.conet_demo_report`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from conceptweb.config import (
    DetectorConfig,
    RunConfig,
    deep_merge,
    format_validation_error,
    parse_set,
    resolve_config,
)
from conceptweb.errors import ConceptwebError
from conceptweb.jsonable import to_jsonable
from conceptweb.rundir import atomic_write_json, atomic_write_text

QUESTION = "from {s} to {t} :"
RUN_KINDS = ("conet", "conet-annealed", "transformer", "transformer-annealed")
Results = dict[int, dict[str, dict[str, Any]]]


class DemoConfig(BaseModel):
    """Sizes of the demonstration (defaults: the full run; `quick`: minutes on 2 cores)."""

    model_config = ConfigDict(extra="forbid")

    N: int = Field(100, ge=8, description="graph nodes")
    K: int = Field(4, ge=2, description="neighbours per node")
    Q: int = Field(48, ge=2, description="training problems")
    held_out: int = Field(32, ge=0, description="held-out problems (never trained on)")
    L: int = Field(20, ge=2, description="walk-length limit")
    G: int = Field(8, ge=2, description="rollouts per problem per step")
    steps: int = Field(300, ge=10, description="RL steps (heating counted in)")
    seeds: int = Field(4, ge=1)
    first_seed: int = Field(0, ge=0)
    conet_lr: float = Field(0.1, gt=0, description="Adam lr of tabular CoNet")
    hidden: int = Field(128, ge=16)
    layers: int = Field(2, ge=1)
    heads: int = Field(4, ge=1)
    pretrain_walks: int = Field(8000, ge=100, description="random walks in the pretraining corpus")
    pretrain_epochs: int = Field(3, ge=1)
    pretrain_lr: float = Field(1e-3, gt=0)
    pretrain_batch: int = Field(64, ge=1)
    rl_lr: float = Field(3e-4, gt=0, description="Adam lr of the transformer's GRPO")
    anneal: bool = Field(True, description="also run Annealed-RLVR (auto detector) on both")
    detector: DetectorConfig = Field(
        default_factory=lambda: DetectorConfig(min_forgetting=0.2),
        description="when to heat (both sides); forgetting is sparse in small graphs",
    )
    heat_steps: int = Field(20, ge=1)
    heat_threshold: float = Field(0.1, gt=0, le=1)
    heat_lr: float = Field(1e-3, gt=0, description="SFT lr of the transformer's heating")
    eval_k: int = Field(32, ge=1, description="samples per problem at the final evaluation")
    threads: int = Field(1, ge=1, description="torch CPU threads")
    record: int = Field(64, ge=0, description="completions recorded per step (for `llm graph`)")
    checkpoints: int = Field(5, ge=1, description="transformer checkpoints kept over training")
    record_initial: int | None = Field(
        None,
        ge=0,
        description="completions of the pre-trained model recorded before GRPO (None: as many as "
        "make checkpoint 0's window as large as a later checkpoint's)",
    )

    @classmethod
    def preset(
        cls,
        quick: bool = False,
        seeds: int | None = None,
        steps: int | None = None,
        sets: list[str] | None = None,
    ) -> DemoConfig:
        data: dict[str, Any] = {}
        if quick:
            data = {
                "N": 40,
                "K": 4,
                "Q": 12,
                "held_out": 8,
                "L": 12,
                "steps": 80,
                "seeds": 1,
                "hidden": 64,
                "pretrain_walks": 4000,
                "pretrain_epochs": 3,
                "pretrain_lr": 3e-3,
                "rl_lr": 1e-3,
                "heat_steps": 5,
                "eval_k": 16,
                "detector": {"min_steps": 15, "window": 5, "patience": 5, "min_forgetting": 0.2},
            }
        if seeds is not None:
            data["seeds"] = seeds
        if steps is not None:
            data["steps"] = steps
        for item in sets or []:
            data = deep_merge(data, parse_set(item))
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConceptwebError(f"invalid demo config: {format_validation_error(exc)}") from None


def node(i: int) -> str:
    return f"n{int(i)}"


def conet_config(dc: DemoConfig, seed: int, anneal: bool) -> RunConfig:
    """The tabular CoNet run (its graph and problems are the world of this seed)."""
    sets = [
        f"seed={seed}",
        f"steps={dc.steps}",
        f"model.N={dc.N}",
        f"model.K={dc.K}",
        f"model.L={dc.L}",
        f"problems.Q={dc.Q}",
        f"problems.held_out={dc.held_out}",
        f"grpo.G={dc.G}",
        f"grpo.lr={dc.conet_lr}",
        f"eval.every={max(dc.steps // 10, 1)}",
        f"eval.G={dc.eval_k}",
        f"checkpoint.every={max(dc.steps // 10, 1)}",
    ]
    extra: dict[str, Any] = {}
    if anneal:
        extra = {
            "anneal": {
                "mode": "auto",
                "detector": dc.detector.model_dump(),
                "heat": {"operator": "sft", "steps": dc.heat_steps, "threshold": dc.heat_threshold},
            }
        }
    return resolve_config(None, None, sets, extra)


def walk_rows(world: Any, which: str) -> list[dict[str, Any]]:
    """Problems as text rows: question, answer (target token), source, shortest-path solution."""
    problems = getattr(world, which)
    paths = world.graph.shortest_paths(problems.sources, problems.targets)
    rows = []
    for s, t, path in zip(problems.sources, problems.targets, paths, strict=True):
        rows.append(
            {
                "problem": QUESTION.format(s=node(s), t=node(t)),
                "answer": node(t),
                "source": int(s),
                "solution": " ".join(node(x) for x in path[1:]),
                "distance": len(path) - 1,
            }
        )
    return rows


def pretraining_rows(
    neighbors: np.ndarray, n_walks: int, L: int, rng: np.random.Generator
) -> list[dict[str, str]]:
    """Uniform random walks from s that stop on reaching t (t independent of the walk)."""
    N, K = neighbors.shape
    rows = []
    for _ in range(n_walks):
        s, t = rng.choice(N, 2, replace=False)
        pos, walk = int(s), []
        for _ in range(L):
            pos = int(neighbors[pos, rng.integers(K)])
            walk.append(node(pos))
            if pos == t:
                break
        rows.append(
            {"prompt": QUESTION.format(s=node(s), t=node(t)), "completion": " " + " ".join(walk)}
        )
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
    return path


def small_llama(hidden: int, layers: int, heads: int, max_length: int) -> Any:
    """The shape of the demos' locally built models: MLP 4x hidden, room for prompt + answer."""
    from conceptweb.llm.config import ScratchModelConfig

    return ScratchModelConfig(
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        intermediate_size=4 * hidden,
        max_position_embeddings=2 * max_length + 16,
    )


def pretrain(dc: DemoConfig, neighbors: np.ndarray, seed: int, out: Path) -> dict[str, Any]:
    """Build a transformer and a tokenizer locally and pre-train it on random walks (SFT)."""
    from conceptweb.llm.models import build_wordlevel_tokenizer

    if (out / "config.json").is_file():
        return json.loads((out / "pretrain.json").read_text())
    N = neighbors.shape[0]
    tokenizer = build_wordlevel_tokenizer([], ["from", "to", ":", *(node(i) for i in range(N))])
    scratch = small_llama(dc.hidden, dc.layers, dc.heads, dc.L)
    rows = pretraining_rows(neighbors, dc.pretrain_walks, dc.L, np.random.default_rng([seed, 21]))
    steps = max(1, dc.pretrain_epochs * dc.pretrain_walks // dc.pretrain_batch)
    info = {
        "steps": steps,
        "walks": dc.pretrain_walks,
        "hit_fraction": float(
            np.mean([r["completion"].split()[-1] == r["prompt"].split()[3] for r in rows])
        ),
    }
    info.update(
        sft_from_scratch(
            scratch, tokenizer, rows, steps, dc.pretrain_lr, dc.pretrain_batch, dc.L + 16, out, seed
        )
    )
    atomic_write_json(out / "pretrain.json", info)
    return info


def sft_from_scratch(
    scratch: Any,
    tokenizer: Any,
    rows: list[dict[str, str]],
    steps: int,
    lr: float,
    batch: int,
    max_length: int,
    out: Path,
    seed: int,
) -> dict[str, Any]:
    """A model built locally (ScratchModelConfig), SFT on prompt-completion rows (cosine
    schedule), saved with its tokenizer to `out`; returns losses, seconds and size."""
    from conceptweb.llm.heat import run_sft
    from conceptweb.llm.models import build_scratch_model, save_model

    model = build_scratch_model(scratch, tokenizer, seed=seed)
    t0 = time.perf_counter()
    trainer = run_sft(
        model,
        tokenizer,
        rows,
        steps=steps,
        learning_rate=lr,
        batch_size=batch,
        max_length=max_length,
        output_dir=out / "sft",
        seed=seed,
        bf16=False,
        lr_scheduler_type="cosine",
    )
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    save_model(model, tokenizer, out)
    return {
        "loss_first": float(losses[0]) if losses else math.nan,
        "loss_last": float(np.mean(losses[-10:])) if losses else math.nan,
        "seconds": time.perf_counter() - t0,
        "n_params": int(sum(p.numel() for p in model.parameters())),
    }


def walk_quality(
    model_dir: Path, rows: list[dict[str, Any]], neighbors: np.ndarray, dc: DemoConfig, seed: int
) -> dict[str, float]:
    """How the pretrained model walks: edge validity, stopping at the target, success rate."""
    from conceptweb.llm.config import LLMModelConfig
    from conceptweb.llm.generate import sample
    from conceptweb.llm.models import load_pretrained

    model, tok = load_pretrained(LLMModelConfig(name_or_path=str(model_dir)))
    groups = sample(
        model,
        tok,
        [r["problem"] for r in rows],
        16,
        temperature=1.0,
        top_p=1.0,
        max_new_tokens=dc.L + 1,
        batch_size=32,
        seed=seed,
    )
    adj = [set(map(int, r)) for r in neighbors]
    valid = steps = reached = stopped = 0
    for r, group in zip(rows, groups, strict=True):
        t = int(r["answer"][1:])
        for s in group:
            pos = r["source"]
            toks = s.text.split()
            for i, tok_ in enumerate(toks):
                steps += 1
                nxt = int(tok_[1:]) if tok_[:1] == "n" and tok_[1:].isdigit() else -1
                if nxt not in adj[pos]:
                    break
                valid += 1
                pos = nxt
                if pos == t:
                    reached += 1
                    stopped += int(i == len(toks) - 1)
                    break
    n = sum(len(g) for g in groups)
    return {
        "edge_validity": valid / max(steps, 1),
        "success": reached / max(n, 1),
        "stops_at_target": stopped / max(reached, 1),
    }


def transformer_config(
    dc: DemoConfig, seed: int, world_dir: Path, model_dir: Path, anneal: bool
) -> Any:
    from conceptweb.llm.config import validate_llm_config

    data = {
        "seed": seed,
        "steps": dc.steps,
        "save_steps": checkpoint_gap(dc),
        "save_total_limit": None,
        "record_completions": dc.record,
        "record_initial": initial_record(dc),
        "flush_every": 10,
        "torch_threads": dc.threads,
        "model": {"name_or_path": str(model_dir), "dtype": "float32"},
        "data": {"train": str(world_dir / "train.jsonl")},
        "task": {"kind": "conet_walk", "graph": str(world_dir / "graph.npz"), "max_walk": dc.L},
        "grpo": {
            "learning_rate": dc.rl_lr,
            "num_generations": dc.G,
            "prompts_per_step": dc.Q,
            "per_device_batch_size": dc.Q * dc.G,
            "max_completion_length": dc.L + 1,
            "temperature": 1.0,
            "loss_type": "grpo",
        },
        "anneal": {
            "mode": "auto" if anneal else "off",
            "detector": dc.detector.model_dump(),
            "heat": {
                "steps": dc.heat_steps,
                "threshold": dc.heat_threshold,
                "learning_rate": dc.heat_lr,
                "batch_size": 16,
                "max_length": dc.L + 16,
                "recent": 5,
            },
        },
        "eval": {
            "k": dc.eval_k,
            "id_problems": dc.Q,
            "datasets": [str(world_dir / "heldout.jsonl")] if dc.held_out else [],
            "temperature": 1.0,
            "top_p": 1.0,
            "max_new_tokens": dc.L + 1,
            "batch_size": 64,
            "at_end": True,
        },
    }
    return validate_llm_config(data)


def initial_record(dc: DemoConfig) -> int:
    """Completions of the pre-trained model recorded at step 0: with GRPO's first step, checkpoint
    0's window then holds as many as each later checkpoint's (those kept per step x the gap)."""
    if dc.record_initial is not None:
        return dc.record_initial
    return min(dc.record, dc.Q * dc.G) * (checkpoint_gap(dc) - 1)


def checkpoint_gap(dc: DemoConfig) -> int:
    """GRPO steps between the transformer's checkpoints."""
    return max(dc.steps // dc.checkpoints, 1)


def run_seed(dc: DemoConfig, seed: int, out: Path, echo: Callable[[str], None]) -> dict[str, Any]:
    """The world of one seed, its pretrained transformer, and the four runs on it."""
    from conceptweb.algorithms.trainer import build_world
    from conceptweb.experiments.runs import train_run
    from conceptweb.llm.train import train_llm

    sdir = out / f"seed{seed}"
    world, _, _ = build_world(conet_config(dc, seed, anneal=False))
    wdir = ensure_dir(sdir / "world")
    np.savez(wdir / "graph.npz", neighbors=world.graph.neighbors)
    train_rows = walk_rows(world, "train")
    write_jsonl(wdir / "train.jsonl", train_rows)
    if dc.held_out:
        write_jsonl(wdir / "heldout.jsonl", walk_rows(world, "heldout"))
    saved = sdir / "seed.json"  # kept across invocations: timings of runs done earlier
    info: dict[str, Any] = json.loads(saved.read_text()) if saved.is_file() else {"seed": seed}
    echo(f"seed {seed}: pretraining the transformer on random walks")
    info["pretrain"] = pretrain(dc, world.graph.neighbors, seed, sdir / "pretrained")
    info["pretrained_walks"] = walk_quality(
        sdir / "pretrained", train_rows, world.graph.neighbors, dc, seed
    )
    kinds = RUN_KINDS if dc.anneal else RUN_KINDS[::2]
    for kind in kinds:
        rdir = sdir / kind
        if (rdir / "run.json").is_file() and json.loads((rdir / "run.json").read_text()).get(
            "status"
        ) == "finished":
            continue
        if rdir.exists():
            import shutil

            shutil.rmtree(rdir)
        t0 = time.perf_counter()
        annealed = kind.endswith("annealed")
        echo(f"seed {seed}: {kind}")
        if kind.startswith("conet"):
            train_run(conet_config(dc, seed, annealed), rdir)
            _check_same_world(rdir, world)
        else:
            cfg = transformer_config(dc, seed, wdir, sdir / "pretrained", annealed)
            train_llm(cfg, rdir, echo=lambda m: None)
        info[f"{kind}_seconds"] = time.perf_counter() - t0
    atomic_write_json(saved, info)
    return info


def _check_same_world(run_dir: Path, world: Any) -> None:
    """The tabular run trained on exactly the graph and problems given to the transformer."""
    from conceptweb.rundir import RunDir

    ck = RunDir.open(run_dir).load_checkpoint(0)
    same = {
        "neighbors": (ck.neighbors, world.graph.neighbors),
        "sources": (ck.sources, world.train.sources),
        "targets": (ck.targets, world.train.targets),
        "heldout_sources": (ck.heldout_sources, world.heldout.sources),
        "heldout_targets": (ck.heldout_targets, world.heldout.targets),
    }
    for key, (have, want) in same.items():
        if not np.array_equal(have, want):
            raise ConceptwebError(f"{run_dir}: CoNet's {key} differ from the transformer's")


def ensure_dir(p: Path) -> Path:
    """Make the directory (and its parents) if needed; return it."""
    p.mkdir(parents=True, exist_ok=True)
    return p


@dataclass(frozen=True)
class DemoResult:
    """What a demonstration measured: per seed, per run kind, the shared diagnostics."""

    config: DemoConfig
    results: Results
    seeds_info: dict[int, dict[str, Any]]
    out: Path
    seconds: float


def run_demo(dc: DemoConfig, out: str | Path, echo: Callable[[str], None] = print) -> DemoResult:
    """Run (or continue) the whole demonstration into `out`; results.json holds its numbers.

    Tabular CoNet's policy pi(j | i) is Markov: every problem that passes through node i shares
    its outgoing distribution, which is where frustration comes from. A language model sees the
    question in its context. Here a small transformer, built and tokenised locally, is first
    pre-trained (SFT, TRL's SFTTrainer) on uniform random walks of a CoNet graph written as
    tokens ("from n3 to n17 : n8 n41 ... n17"; the walk is independent of the target and stops
    when it reaches it), so that it starts where tabular CoNet starts: a uniform walk that stops
    at the answer. It is then trained with GRPO (TRL's GRPOTrainer, through conceptweb.llm's
    monitor and Annealed-RLVR) on the same problems that tabular CoNet trains on (same graph, same
    pairs, same G and walk limit L), over several seeds, with and without heating. Both sides are
    measured by the same diagnostics (conceptweb.analysis); the report compares them.
    """
    from conceptweb.llm.runtime import quiet_libraries

    quiet_libraries(dc.threads)
    out = Path(out)
    ensure_dir(out)
    saved = out / "demo.json"
    if saved.is_file() and json.loads(saved.read_text()) != dc.model_dump(mode="json"):
        raise ConceptwebError(f"{out} holds a demo with another config; choose another --out")
    atomic_write_json(saved, dc.model_dump(mode="json"))
    t0 = time.perf_counter()
    seeds_info, results = {}, {}
    for seed in range(dc.first_seed, dc.first_seed + dc.seeds):
        seeds_info[seed] = run_seed(dc, seed, out, echo)
        kinds = RUN_KINDS if dc.anneal else RUN_KINDS[::2]
        results[seed] = {k: measure(out / f"seed{seed}" / k) for k in kinds}
    write_results(dc, seeds_info, results, out)
    return DemoResult(dc, results, seeds_info, out, time.perf_counter() - t0)


# -- measurement ---------------------------------------------------------------------------------
def measure(run_dir: Path) -> dict[str, Any]:
    """The shared diagnostics of one run, and its final ID/OOD accuracy."""
    from conceptweb.analysis.summary import analyze
    from conceptweb.rundir import RunDir

    run = RunDir.open(run_dir)
    a = analyze(run, with_topology=False)
    s = a.summary
    m = a.metrics
    rl = m[m["phase"] == "rl"] if "phase" in m.columns else m
    tail = max(1, len(rl) // 10)
    out: dict[str, Any] = {
        "reward_start": float(rl["reward_mean"].iloc[:5].mean()),
        "reward_end": float(rl["reward_mean"].iloc[-tail:].mean()),
        "two_stage": s["two_stage"],
        "v_shape": s["v_shape"],
        "frustration": s["frustration"],
        "collapse": s["collapse"],
        "candidates": s["frustration_candidates"],
        "steps": m["step"].to_numpy().tolist(),
        "reward": m["reward_mean"].to_numpy().tolist(),
        "len_correct": m["len_correct_mean"].to_numpy().tolist(),
        "F": a.frustration.F.tolist() if a.frustration else [],
        "F_steps": a.accuracy.index.to_numpy().tolist(),
        "n_problems": int(a.accuracy.shape[1]),
    }
    meta = run.read_meta()
    heats = meta.get("heats")  # LLM runs record their heats; CoNet runs the detector's verdicts
    if heats is None and "det_fire" in m.columns:
        fired = m[m["det_fire"].fillna(False).astype(bool)]
        heats = [{"step": int(fired["step"].iloc[0])}] if len(fired) else []
    out["heat_step"] = int(heats[0]["step"]) if heats else None
    out.update(final_accuracy(run))
    return out


def final_accuracy(run: Any) -> dict[str, float]:
    """ID and held-out accuracy (mean@k and best@k) of the final policy."""
    from conceptweb.llm.evaluate import load_results

    results = run.path / "eval_llm.json"
    if results.is_file():
        out = {}
        for r in load_results(results):
            key = "id" if r["split"] == "id" else "heldout"
            out[f"{key}_mean"] = r["mean_at_k"]
            out[f"{key}_best"] = r["best_at_k"]
        return out
    ev = run.read_eval()
    if not len(ev):
        return {}
    last = ev[ev["step"] == ev["step"].max()]
    out = {}
    for split, key in (("train", "id"), ("heldout", "heldout")):
        part = last[last["split"] == split]
        if len(part):
            out[f"{key}_mean"] = float(part["accuracy"].mean())
            out[f"{key}_best"] = float((part["n_correct"] > 0).mean())
    return out


def summary_rows(results: Results) -> list[dict[str, Any]]:
    """Per run kind, across seeds: how often each phenomenon appears, and mean numbers."""
    from conceptweb.analysis.stats import seed_interval

    unit, count = (0.0, 1.0), (0.0, math.inf)
    rows = []
    kinds = sorted({k for runs in results.values() for k in runs}, key=RUN_KINDS.index)
    for kind in kinds:
        rs = [runs[kind] for runs in results.values() if kind in runs]
        n = len(rs)

        def col(f: Callable[[dict[str, Any]], Any], rs: list[dict[str, Any]] = rs) -> np.ndarray:
            return np.array([as_float(f(r)) for r in rs], dtype=np.float64)

        forget_rate = col(
            lambda r: (
                (r["frustration"] or {}).get("n_forgetting_events", math.nan)
                / max(r["n_problems"], 1)
            )
        )
        rows.append(
            {
                "run": kind,
                "seeds": n,
                "two_stage": sum(bool((r["two_stage"] or {}).get("is_two_stage")) for r in rs),
                "v_shape": sum(bool((r["v_shape"] or {}).get("is_v")) for r in rs),
                "forgetting_any": sum(
                    ((r["frustration"] or {}).get("n_forgetting_events") or 0) > 0 for r in rs
                ),
                "reward_end": seed_interval(col(lambda r: r["reward_end"]), unit),
                "id_mean": seed_interval(col(lambda r: r.get("id_mean")), unit),
                "heldout_mean": seed_interval(col(lambda r: r.get("heldout_mean")), unit),
                "forget_per_problem": seed_interval(forget_rate, count),
                "v_drop": seed_interval(col(lambda r: (r["v_shape"] or {}).get("drop_frac")), unit),
                "v_rise": seed_interval(col(lambda r: (r["v_shape"] or {}).get("rise_frac"))),
                "slope_ratio": seed_interval(
                    col(lambda r: (r["two_stage"] or {}).get("slope_ratio")), count
                ),
            }
        )
    return rows


def as_float(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def compute_minutes(seeds_info: dict[int, dict[str, Any]]) -> float:
    """Minutes spent pretraining and training, summed over seeds (recorded as runs finish)."""
    total = 0.0
    for info in seeds_info.values():
        total += float(info.get("pretrain", {}).get("seconds", 0.0))
        total += sum(float(v) for k, v in info.items() if k.endswith("_seconds"))
    return total / 60


def write_results(
    dc: DemoConfig,
    seeds_info: dict[int, dict[str, Any]],
    results: Results,
    out: Path,
) -> Path:
    """results.json: the config, per-seed pretraining info, and every run's measurements."""
    curves = ("steps", "reward", "len_correct", "F", "F_steps")
    runs = {
        str(seed): {k: {kk: v for kk, v in r.items() if kk not in curves} for k, r in rs.items()}
        for seed, rs in results.items()
    }
    data = {"config": dc.model_dump(mode="json"), "seeds": seeds_info, "runs": runs}
    path = out / "results.json"
    atomic_write_json(path, to_jsonable(data))
    return path
