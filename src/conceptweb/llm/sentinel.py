"""The sentinel set: a fixed sample of training problems re-evaluated every few GRPO steps.

GRPO on a large dataset sees each problem a few times in a run, so forgetting is found late
and thinly. The sentinel set is observed densely: every `sentinel.every` GRPO steps each of
its problems gets k fresh samples from the current weights, recorded in problems.parquet
with phase `sentinel` at the step after whose update they were drawn; the event tracker,
the online detector and `conceptweb detect` count them as observations like training ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from conceptweb.llm.config import LLMRunConfig
from conceptweb.llm.data import LoadedProblems, Problem
from conceptweb.llm.generate import Generator, sample_scored
from conceptweb.llm.monitor import Completion
from conceptweb.llm.rewards import Task


def sentinel_problems(data: LoadedProblems, n: int, seed: int) -> list[Problem]:
    """A fixed random sample of n training problems (the same on every process and resume)."""
    problems = data.problems
    if n >= len(problems):
        return list(problems)
    pick = np.sort(np.random.default_rng([seed, 13]).choice(len(problems), n, replace=False))
    return [problems[i] for i in pick]


class Sentinel:
    """Evaluates the sentinel set with a generator when a multiple of `every` is crossed."""

    def __init__(
        self, problems: list[Problem], cfg: LLMRunConfig, task: Task, generator: Generator
    ) -> None:
        s, g = cfg.sentinel, cfg.grpo
        self.problems, self.task, self.generator = problems, task, generator
        self.data_cfg, self.seed, self.every = cfg.data, cfg.seed, s.every
        self.k = s.k or g.num_generations
        self.max_new_tokens = s.max_new_tokens or g.max_completion_length
        self.temperature = s.temperature or g.temperature
        self.top_p = g.top_p

    def due(self, previous: int, now: int) -> bool:
        """Whether a multiple of `every` lies in (previous, now] (GRPO steps)."""
        return now // self.every > previous // self.every

    def evaluate(self, trl_step: int) -> list[Completion]:
        """k scored samples of every sentinel problem (each process samples its shard)."""
        groups = sample_scored(
            self.generator,
            self.problems,
            self.task,
            self.data_cfg,
            self.k,
            temperature=self.temperature,
            top_p=self.top_p,
            max_new_tokens=self.max_new_tokens,
            seed=self.seed * 1_000_003 + trl_step,
        )
        return [
            Completion(p.id, s.reward, s.correct, s.length, s.key, s.truncated)
            for p, group in zip(self.problems, groups, strict=True)
            for s in group
        ]


def training_generator(
    cfg: LLMRunConfig,
    model: Any,
    tokenizer: Any,
    trainer: Any,
    backend: str,
    batch_size: int,
    what: str = "sentinel.backend",
) -> Generator:
    """What to sample with inside a GRPO phase (the sentinel set, the heating probe).

    TRL's vLLM engine, the one GRPO generates with (colocated or a server), loaded with the
    policy's current weights before each use, when GRPO generates with vLLM and `backend` is
    auto or vllm; else HF generate on the policy in memory-aware batches of at most
    `batch_size` prompts (bf16 autocast on a GPU as configured). `what` names the setting in
    the error for vllm without TRL's engine.
    """
    from conceptweb.errors import ConceptwebError
    from conceptweb.llm.generate import HFGenerator, TRLVLLMGenerator

    engine = getattr(trainer, "vllm_generation", None) if trainer is not None else None
    if backend == "vllm" and engine is None:
        raise ConceptwebError(f"{what} vllm needs grpo.use_vllm (TRL's vLLM engine)")
    if engine is not None and backend != "hf":
        return TRLVLLMGenerator(engine, tokenizer)
    import torch

    from conceptweb.llm.models import compute_dtype

    autocast = compute_dtype(cfg.model) if torch.cuda.is_available() else None
    return HFGenerator(model, tokenizer, batch_size=batch_size, autocast=autocast)


def make_sentinel(
    cfg: LLMRunConfig,
    data: LoadedProblems,
    task: Task,
    model: Any,
    tokenizer: Any,
    trainer: Any = None,
) -> Sentinel | None:
    """The run's sentinel set (None when sentinel.problems is 0), with its generator
    (training_generator: TRL's vLLM engine when GRPO generates with vLLM, else HF generate)."""
    s = cfg.sentinel
    if s.problems == 0:
        return None
    generator = training_generator(cfg, model, tokenizer, trainer, s.backend, s.batch_size)
    return Sentinel(sentinel_problems(data, s.problems, cfg.seed), cfg, task, generator)
