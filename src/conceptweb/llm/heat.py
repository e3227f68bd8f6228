"""Heating: SFT (TRL's SFTTrainer) on the hard problems, and the checkpoint GRPO resumes from."""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conceptweb.llm.config import LLMRunConfig
from conceptweb.llm.data import Problem, format_prompt
from conceptweb.llm.generate import Generator, grpo_prompt_ids, sample_scored
from conceptweb.llm.monitor import Completion, RecordBook
from conceptweb.llm.rewards import Task
from conceptweb.llm.runtime import device_flags, quiet_trainer

try:
    from transformers import TrainerCallback
except ImportError:  # pragma: no cover
    TrainerCallback = object  # type: ignore[assignment,misc]

WEIGHT_PREFIXES = ("model.", "model-", "pytorch_model", "adapter_")
MODEL_CONFIGS = ("config.json", "generation_config.json")


def sft_target(p: Problem, thinking: bool) -> str:
    """The SFT target of a problem: its reference solution; for a thinking model (a GRPO
    prompt that opens <think>) the solution closes the thinking and boxes the answer after it,
    the form DeepScaleR's reward credits."""
    assert p.solution is not None
    if thinking:
        return f"{p.solution.strip()}\n</think>\n\n\\boxed{{{p.answer}}}"
    return p.solution if p.solution[:1].isspace() else " " + p.solution


def sft_rows(
    problems: list[Problem],
    cfg: LLMRunConfig,
    thinking: bool = False,
    own: dict[int, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Prompt-target rows: the GRPO prompt (a string, or chat messages) and the SFT target.

    The target follows `anneal.heat.targets`: the reference solution (sft_target), or the
    model's own latest correct completion from `own` (problem -> {text, step}) exactly as it
    was generated after that prompt; `source` says which, `own_step` when it was sampled.
    """
    d, targets = cfg.data, cfg.anneal.heat.targets
    own = own or {}
    rows = []
    for p in problems:
        row: dict[str, Any] = {
            "problem": p.id,
            "prompt": format_prompt(p.question, d.prompt_template, d.chat, d.system_prompt),
        }
        if targets != "reference" and p.id in own:
            row.update(completion=own[p.id]["text"], source="own", own_step=own[p.id]["step"])
        elif targets != "own" and p.solution is not None:
            row.update(completion=sft_target(p, thinking), source="reference")
        else:
            continue  # no target of the configured kind (selection excludes these)
        rows.append(row)
    return rows


def latest_own_completions(run: Any, problems: list[int], up_to: int) -> dict[int, dict[str, Any]]:
    """problem -> {text, step} of its latest correct completion recorded up to step `up_to`."""
    from conceptweb.llm.monitor import OWN_TABLE

    frame = run.read_table(OWN_TABLE, required=False)
    if not len(frame):
        return {}
    frame = frame[(frame["step"] <= up_to) & frame["problem"].isin(problems)]
    latest = frame.sort_values("step", kind="stable").groupby("problem").tail(1)
    return {
        int(q): {"text": str(t), "step": int(st)}
        for q, t, st in latest[["problem", "text", "step"]].itertuples(index=False)
    }


def sft_examples(rows: list[dict[str, Any]], tokenizer: Any) -> list[dict[str, Any]]:
    """Tokenized SFT examples that begin with exactly the GRPO prompt's tokens.

    TRL's SFTTrainer renders a chat prompt-completion pair through the chat template, which
    for R1-style templates drops the generation prompt (`<think>\\n`) GRPO prompts end with;
    here the prompt is tokenized as GRPO does and the target appended (loss on the target and
    EOS only), so heating trains in the context GRPO samples in.
    """
    out = []
    for r in rows:
        prompt = grpo_prompt_ids(r["prompt"], tokenizer)
        target = tokenizer(text=r["completion"], add_special_tokens=False)["input_ids"]
        target = list(target) + [tokenizer.eos_token_id]
        out.append(
            {"input_ids": prompt + target, "completion_mask": [0] * len(prompt) + [1] * len(target)}
        )
    return out


class SFTRecorder(TrainerCallback):  # type: ignore[misc,valid-type]
    """Writes one 'sft' metrics row per heating step."""

    def __init__(self, book: RecordBook, first_step: int, n_problems: int) -> None:
        self.book = book
        self.first_step = first_step
        self.n_problems = n_problems

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any
    ) -> None:
        if not logs or "loss" not in logs or "train_runtime" in logs:
            return
        self.book.add_sft_step(
            self.first_step + int(state.global_step) - 1,
            self.n_problems,
            loss=float(logs["loss"]),
            grad_norm=float(logs.get("grad_norm", math.nan)),
            learning_rate=float(logs.get("learning_rate", math.nan)),
            sft_token_accuracy=float(logs.get("mean_token_accuracy", math.nan)),
        )


def run_sft(
    model: Any,
    tokenizer: Any,
    rows: list[dict[str, Any]],
    *,
    steps: int,
    learning_rate: float,
    batch_size: int,
    max_length: int | None,
    output_dir: Path,
    seed: int,
    bf16: bool,
    callbacks: list[Any] | None = None,
    gradient_checkpointing: bool = False,
    lr_scheduler_type: str = "constant",
) -> Any:
    """SFT with TRL's SFTTrainer on prompt-target rows, tokenized in GRPO's prompt context
    (sft_examples; loss on the target only)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        output_dir=str(output_dir),
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        lr_scheduler_type=lr_scheduler_type,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=seed,
        bf16=bf16,
        gradient_checkpointing=gradient_checkpointing,
        max_length=max_length,
        completion_only_loss=True,
        disable_tqdm=True,
        **device_flags(),
    )
    trainer = quiet_trainer(
        SFTTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(sft_examples(rows, tokenizer)),
            processing_class=tokenizer,
            callbacks=callbacks or [],
        )
    )
    trainer.train()
    return trainer


def probe(
    generator: Generator,
    problems: list[Problem],
    task: Task,
    cfg: LLMRunConfig,
    seed: int,
) -> list[Completion]:
    """num_generations samples of each problem with the GRPO sampling settings, scored.

    `generator` is the one GRPO's phase samples with (sentinel.training_generator: TRL's vLLM
    engine or HF generate). Every process must call: each samples its shard of the problems,
    and all get every result.
    """
    g = cfg.grpo
    groups = sample_scored(
        generator,
        problems,
        task,
        cfg.data,
        g.num_generations,
        temperature=g.temperature,
        top_p=g.top_p,
        max_new_tokens=g.max_completion_length,
        seed=seed,
    )
    return [
        Completion(p.id, s.reward, s.correct, s.length, s.key, s.truncated)
        for p, group in zip(problems, groups, strict=True)
        for s in group
    ]


def probe_batch_size(cfg: LLMRunConfig) -> int:
    """Prompts per HF generate() call of the probe (at most; fewer when memory is short)."""
    return max(1, cfg.grpo.per_device_batch_size // cfg.grpo.num_generations)


class AtTrainBegin(TrainerCallback):  # type: ignore[misc,valid-type]
    """Calls `fn` once when training begins: after TRL has loaded the checkpoint it resumes
    from and built its vLLM engine, before the first update."""

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.fn()


def heated_checkpoint(model: Any, tokenizer: Any, source: Path, dest: Path) -> Path:
    """TRL checkpoint `source` with its weights replaced by `model`'s (optimizer etc. kept).

    GRPO stops at the heating step and TRL saves checkpoint-g (weights, optimizer, scheduler, RNG,
    trainer state). Heating loads those weights and runs SFT with a fresh AdamW (its own learning
    rate, constant schedule), as CoNet's heating does. The heated weights are then written next to
    copies of checkpoint-g's optimizer, scheduler, RNG and trainer state; GRPO resumes from that
    directory through TRL's own resume_from_checkpoint, so it continues at TRL step g with the
    heated weights, the Adam moments and learning-rate schedule it had before heating, and the same
    data order. (The Adam moments describe the pre-heating weights; SFT moves them little in a few
    steps. Set `anneal.heat` options or resume without optimizer state if that matters to you.)
    """
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for f in source.iterdir():
        if f.is_file() and f.name not in MODEL_CONFIGS and not f.name.startswith(WEIGHT_PREFIXES):
            shutil.copy2(f, dest / f.name)
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest
