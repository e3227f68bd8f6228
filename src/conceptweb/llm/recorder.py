"""A bounded, seeded sample of each GRPO step's completions, kept in completions.parquet.

Later analysis (`conceptweb llm graph`) reads what the model wrote from this file. Each step keeps
at most `per_step` completions, drawn by reservoir sampling with a generator seeded by
(seed, step), so memory is bounded whatever the batch size and the sample is reproducible.
Step 0 holds an optional extra sample of the initial model (`record_initial`), drawn before
the first update.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from conceptweb.llm.monitor import _gather, completion_text
from conceptweb.llm.rewards import Task
from conceptweb.rundir import RunDir

try:  # the callback base class; the record-keeping below works without it
    from transformers import TrainerCallback
except ImportError:  # pragma: no cover - conceptweb.llm is only imported with the extra
    TrainerCallback = object  # type: ignore[assignment,misc]

COMPLETIONS_TABLE = "completions"
COMPLETION_COLUMNS = [
    "step",
    "problem",
    "sample",
    "prompt",
    "text",
    "n_tokens",
    "correct",
    "truncated",
]
HOW_TO_RECORD = (
    "record completions with `record_completions: N` in the LLM config "
    "(`conceptweb llm train --set record_completions=16`)"
)


class Reservoir:
    """Keeps a uniform sample of at most k items of a stream (algorithm R), seeded."""

    def __init__(self, k: int, rng: np.random.Generator) -> None:
        self.k, self.rng, self.seen = k, rng, 0
        self.items: list[dict[str, Any]] = []

    def offer(self, item: dict[str, Any]) -> None:
        if len(self.items) < self.k:
            self.items.append(item)
        else:
            j = int(self.rng.integers(0, self.seen + 1))
            if j < self.k:
                self.items[j] = item
        self.seen += 1


class CompletionRecorder(TrainerCallback):  # type: ignore[misc,valid-type]
    """Wraps the reward function to see every completion; keeps a sample per step (a callback).

    Use `reward_funcs=recorder.wrap(monitor.correctness)` and add the recorder to the callbacks;
    rows accumulate in `rows` (kept across GRPO phases when the same recorder list is passed on)
    and the new ones are appended to the completions table (completions.parts/) at each flush.
    """

    def __init__(
        self,
        task: Task,
        per_step: int,
        *,
        seed: int = 0,
        run: RunDir | None = None,
        step_offset: int = 0,
        end_ids: tuple[int, ...] = (),
        rows: list[dict[str, Any]] | None = None,
        flush_every: int = 1,
    ) -> None:
        self.task, self.per_step, self.seed = task, per_step, seed
        self.run, self.step_offset, self.flush_every = run, step_offset, flush_every
        self.end_ids = set(end_ids)
        self.rows: list[dict[str, Any]] = [] if rows is None else rows
        self._written = len(self.rows)  # rows passed in are on disk already
        self._reservoir: Reservoir | None = None
        self._samples: dict[int, int] = {}
        self._step = step_offset + 1

    def wrap(self, reward_fn: Callable[..., list[float]]) -> Callable[..., list[float]]:
        """The reward function, unchanged, that also offers each completion to the sample."""

        @functools.wraps(reward_fn)
        def wrapped(prompts: list[Any], completions: list[Any], **kw: Any) -> list[float]:
            rewards = reward_fn(prompts, completions, **kw)
            self.see(prompts, completions, **kw)
            return rewards

        return wrapped

    def see(
        self,
        prompts: list[Any],
        completions: list[Any],
        completion_ids: list[list[int]] | None = None,
        problem_id: list[int] | None = None,
        **columns: Any,
    ) -> None:
        """Offer one reward call's completions to this step's sample."""
        if self.per_step <= 0 or problem_id is None:
            return
        if self._reservoir is None:
            self._reservoir = Reservoir(
                self.per_step, np.random.default_rng([self.seed, self._step])
            )
        keys = [k for k in columns if k not in ("trainer_state", "log_extra", "log_metric")]
        for i, completion in enumerate(completions):
            q = int(problem_id[i])
            ids = completion_ids[i] if completion_ids is not None else None
            text = completion_text(completion)
            self._reservoir.offer(
                {
                    "problem": q,
                    "sample": self._samples.get(q, 0),
                    "prompt": completion_text(prompts[i]),
                    "text": text,
                    "n_tokens": len(ids) if ids is not None else len(text.split()),
                    "truncated": bool(ids) and int(ids[-1]) not in self.end_ids,
                    "row": {k: columns[k][i] for k in keys},
                }
            )
            self._samples[q] = self._samples.get(q, 0) + 1

    def close_step(self, step: int) -> list[dict[str, Any]]:
        """Score this step's sample and append it to `rows` (the rows added are returned)."""
        kept = self._reservoir.items if self._reservoir is not None else []
        kept = _gather(kept)
        if len(kept) > self.per_step:  # several processes: subsample their samples, seeded
            rng = np.random.default_rng([self.seed, step, 1])
            kept = [kept[i] for i in sorted(rng.choice(len(kept), self.per_step, replace=False))]
        added = []
        for item in sorted(kept, key=lambda r: (r["problem"], r["sample"])):
            row = {k: v for k, v in item.items() if k != "row"}
            row["step"] = step
            row["correct"] = bool(self.task.score(item["text"], item["row"]).correct)
            added.append(row)
        self.rows.extend(added)
        self._reservoir, self._samples, self._step = None, {}, step + 1
        return added

    def frame(self) -> pd.DataFrame:
        return completions_frame(self.rows)

    def write(self) -> None:
        """Append the rows since the last write as a new part of completions (atomic)."""
        if self.run is not None and len(self.rows) > self._written:
            self.run.append_table(COMPLETIONS_TABLE, completions_frame(self.rows[self._written :]))
        self._written = len(self.rows)

    # -- callback hooks ---------------------------------------------------------------------
    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._step = int(state.global_step) + 1 + self.step_offset

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._reservoir is None:  # a step that reused an earlier generation
            return
        step = int(state.global_step) + self.step_offset
        self.close_step(step)
        if state.is_world_process_zero and (
            step % self.flush_every == 0 or control.should_save or control.should_training_stop
        ):
            self.write()

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.write()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.write()


def initial_rows(
    generator: Any, problems: list[Any], task: Task, cfg: Any, n: int
) -> list[dict[str, Any]]:
    """n completions of the initial model, as completions rows recorded at step 0.

    Spread over the training problems: ceil(n / k) of them in a seeded order, k = ceil(n / Q)
    samples each with GRPO's sampling settings (the last group cut so that n are kept). Every
    process must call (the problems are sharded across processes).
    """
    from conceptweb.llm.data import format_prompt
    from conceptweb.llm.generate import sample_sharded

    if n <= 0 or not problems:
        return []
    k = math.ceil(n / len(problems))
    order = np.random.default_rng([cfg.seed, 0, 2]).permutation(len(problems))
    chosen = [problems[i] for i in sorted(order[: math.ceil(n / k)].tolist())]
    d, g = cfg.data, cfg.grpo
    prompts = [
        format_prompt(p.question, d.prompt_template, d.chat, d.system_prompt) for p in chosen
    ]
    groups = sample_sharded(
        generator,
        prompts,
        k,
        temperature=g.temperature,
        top_p=g.top_p,
        max_new_tokens=g.max_completion_length,
        seed=cfg.seed,
    )
    rows = []
    for p, prompt, group in zip(chosen, prompts, groups, strict=True):
        for j, s in enumerate(group):
            rows.append(
                {
                    "step": 0,
                    "problem": int(p.id),
                    "sample": j,
                    "prompt": completion_text(prompt),
                    "text": s.text,
                    "n_tokens": int(s.n_tokens),
                    "correct": bool(task.score(s.text, {"answer": p.answer, **p.extra}).correct),
                    "truncated": bool(s.truncated),
                }
            )
    return rows[:n]


def completions_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The completions table with its column types (empty rows: an empty table)."""
    frame = pd.DataFrame(rows, columns=COMPLETION_COLUMNS)
    for c in ("step", "problem", "sample", "n_tokens"):
        frame[c] = frame[c].astype(np.int64)
    for c in ("correct", "truncated"):
        frame[c] = frame[c].astype(bool)
    return frame


def recorded_rows(run: RunDir, up_to: int) -> list[dict[str, Any]]:
    """The recorded completions of `run` up to step `up_to` (for a resumed run)."""
    frame = run.read_table(COMPLETIONS_TABLE, required=False)
    if not len(frame):
        return []
    return frame[frame["step"] <= up_to].to_dict("records")


def read_completions(run: RunDir) -> pd.DataFrame:
    """The run's recorded completions; empty (never an error) for runs made without recording."""
    frame = run.read_table(COMPLETIONS_TABLE, required=False)
    return frame if len(frame) else completions_frame([])
