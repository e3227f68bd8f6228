"""Evaluation: ID best@k and mean@k on training problems, OOD benchmarks; table and JSON."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from conceptweb.jsonable import to_jsonable
from conceptweb.llm.config import LLMRunConfig
from conceptweb.llm.data import LoadedProblems, Problem, load_problems
from conceptweb.llm.generate import Generator, sample_scored
from conceptweb.llm.models import load_pretrained
from conceptweb.llm.rewards import Task
from conceptweb.rundir import atomic_write_json, atomic_write_text

ID_NAME = "train"


@dataclass
class EvalResult:
    """One benchmark: mean@k (mean accuracy over the k samples) and best@k (any of k correct)."""

    dataset: str
    split: str
    n_problems: int
    k: int
    mean_at_k: float
    best_at_k: float
    len_mean: float
    len_correct_mean: float
    seconds: float
    per_problem: list[dict[str, Any]] = field(default_factory=list)


def id_sample(data: LoadedProblems, n: int, seed: int) -> list[Problem]:
    """A fixed random sample of n training problems (the same for every model of a run)."""
    problems = data.problems
    if n >= len(problems):
        return list(problems)
    pick = np.sort(np.random.default_rng([seed, 11]).choice(len(problems), n, replace=False))
    return [problems[i] for i in pick]


def score_problems(
    generator: Generator,
    problems: list[Problem],
    task: Task,
    cfg: LLMRunConfig,
    k: int,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n_correct, mean length, mean length of correct samples) per problem, k samples each.

    Every process must call: each generates its shard of the problems, all get every result.
    """
    e = cfg.eval
    groups = sample_scored(
        generator,
        problems,
        task,
        cfg.data,
        k,
        temperature=e.temperature,
        top_p=e.top_p,
        max_new_tokens=e.max_new_tokens,
        seed=seed,
    )
    n_ok = np.zeros(len(problems))
    length = np.zeros(len(problems))
    length_ok = np.full(len(problems), np.nan)
    for i, group in enumerate(groups):
        lens_ok = [s.length for s in group if s.correct]
        n_ok[i] = len(lens_ok)
        length[i] = np.mean([s.length for s in group])
        if lens_ok:
            length_ok[i] = np.mean(lens_ok)
    return n_ok, length, length_ok


def eval_generator(
    model_path: str | Path, cfg: LLMRunConfig, echo: Callable[[str], None] = print
) -> Generator:
    """The generator evaluation samples with: vLLM when installed on a GPU (eval.backend auto),
    else transformers' generate on this process's device with memory-aware batches."""
    import torch

    from conceptweb.llm.generate import (
        HFGenerator,
        make_generator,
        select_backend,
        vllm_installed,
    )
    from conceptweb.llm.models import compute_dtype

    gpu = torch.cuda.is_available()
    backend = select_backend(cfg.eval.backend, vllm_available=vllm_installed(), gpu=gpu)
    model, tokenizer = load_pretrained(cfg.model, str(model_path))
    if backend == "vllm":
        echo("evaluating with vLLM")
        return make_generator("vllm", None, tokenizer, model_path=str(model_path))
    from conceptweb.llm.runtime import distributed_state

    device = distributed_state().device
    model.to(device)
    autocast = compute_dtype(cfg.model) if device.type == "cuda" else None
    return HFGenerator(model, tokenizer, batch_size=cfg.eval.batch_size, autocast=autocast)


def evaluate_model(
    model_path: str | Path,
    cfg: LLMRunConfig,
    train_data: LoadedProblems | None,
    task: Task,
    *,
    datasets: list[str] | None = None,
    k: int | None = None,
    echo: Callable[[str], None] = print,
) -> list[EvalResult]:
    """Evaluate the model at `model_path` on 'train' (ID sample) and named OOD datasets."""
    from conceptweb.llm.runtime import quiet_libraries

    quiet_libraries(cfg.torch_threads)
    generator = eval_generator(model_path, cfg, echo)
    k = k or cfg.eval.k
    names = datasets if datasets is not None else [ID_NAME, *cfg.eval.datasets]
    results = []
    for name in names:
        if name == ID_NAME:
            if train_data is None or cfg.eval.id_problems == 0:
                continue
            problems, split = id_sample(train_data, cfg.eval.id_problems, cfg.seed), "id"
        else:
            loaded = load_problems(
                name, check_answer=task.check_answer, required_fields=task.required_fields
            )
            if loaded.n_skipped:
                echo(loaded.report())
            problems, split = loaded.problems, "ood"
        t0 = time.perf_counter()
        n_ok, length, length_ok = score_problems(generator, problems, task, cfg, k, cfg.seed)
        results.append(
            EvalResult(
                dataset=name,
                split=split,
                n_problems=len(problems),
                k=k,
                mean_at_k=float(np.mean(n_ok / k)),
                best_at_k=float(np.mean(n_ok > 0)),
                len_mean=float(np.mean(length)),
                len_correct_mean=float(np.nanmean(length_ok))
                if np.isfinite(length_ok).any()
                else float("nan"),
                seconds=time.perf_counter() - t0,
                per_problem=[
                    {"problem": p.id, "source_index": p.source_index, "n_correct": int(c)}
                    for p, c in zip(problems, n_ok, strict=True)
                ],
            )
        )
        r = results[-1]
        echo(
            f"{name}: mean@{k} {r.mean_at_k:.3f}  best@{k} {r.best_at_k:.3f}  ({len(problems)} problems)"
        )
    return results


def results_table(results: list[EvalResult]) -> str:
    """A markdown table of the results."""
    lines = [
        "| dataset | split | problems | k | mean@k | best@k | mean length | length (correct) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.dataset} | {r.split} | {r.n_problems} | {r.k} | {r.mean_at_k:.3f} | "
            f"{r.best_at_k:.3f} | {r.len_mean:.1f} | {r.len_correct_mean:.1f} |"
        )
    return "\n".join(lines) + "\n"


def write_results(results: list[EvalResult], prefix: str | Path) -> tuple[Path, Path]:
    """PREFIX.json (everything, per problem too) and PREFIX.md (the table)."""
    prefix = Path(prefix)
    js, md = prefix.with_suffix(".json"), prefix.with_suffix(".md")
    atomic_write_json(js, {"results": [to_jsonable(asdict(r)) for r in results]})
    atomic_write_text(md, results_table(results))
    return js, md


def load_results(path: str | Path) -> list[dict[str, Any]]:
    return json.loads(Path(path).read_text())["results"]
