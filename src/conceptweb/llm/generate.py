"""Sampling k completions per prompt with transformers' generate (for probes and evaluation)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Sample:
    """One sampled completion: its text and its token count (up to and including EOS)."""

    text: str
    n_tokens: int


def render_prompt(prompt: str | list[dict[str, str]], tokenizer: Any) -> str:
    """A prompt as text: chat prompts go through the tokenizer's chat template."""
    if isinstance(prompt, str):
        return prompt
    return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)


def sample(
    model: Any,
    tokenizer: Any,
    prompts: list[str | list[dict[str, str]]],
    k: int,
    *,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    batch_size: int = 16,
    seed: int = 0,
) -> list[list[Sample]]:
    """k sampled completions for each prompt (left-padded batches of `batch_size` prompts)."""
    import torch

    torch.manual_seed(seed)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    eos = tokenizer.eos_token_id
    out: list[list[Sample]] = []
    try:
        for start in range(0, len(prompts), batch_size):
            texts = [render_prompt(p, tokenizer) for p in prompts[start : start + batch_size]]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k_: v.to(device) for k_, v in enc.items()}
            with torch.no_grad():
                gen = model.generate(
                    **enc,
                    do_sample=True,
                    temperature=temperature,
                    top_p=top_p,
                    max_new_tokens=max_new_tokens,
                    num_return_sequences=k,
                    pad_token_id=tokenizer.pad_token_id,
                )
            new = gen[:, enc["input_ids"].shape[1] :].tolist()
            for i in range(len(texts)):
                group = []
                for ids in new[i * k : (i + 1) * k]:
                    n = ids.index(eos) + 1 if eos in ids else len(ids)
                    ids = ids[:n]
                    group.append(Sample(tokenizer.decode(ids, skip_special_tokens=True), n))
                out.append(group)
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return out


@dataclass(frozen=True)
class ScoredSample:
    """A sampled completion as the task scores it; length in the task's units (tokens by default)."""

    text: str
    reward: float
    correct: bool
    length: int
    key: str


def sample_scored(
    model: Any,
    tokenizer: Any,
    problems: list[Any],
    task: Any,
    data_cfg: Any,
    k: int,
    *,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    batch_size: int,
    seed: int,
) -> list[list[ScoredSample]]:
    """k completions of each problem's prompt (formatted as in training), each scored by `task`."""
    from conceptweb.llm.data import format_prompt

    d = data_cfg
    prompts = [
        format_prompt(p.question, d.prompt_template, d.chat, d.system_prompt) for p in problems
    ]
    groups = sample(
        model,
        tokenizer,
        prompts,
        k,
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        seed=seed,
    )
    out = []
    for p, group in zip(problems, groups, strict=True):
        row = {"answer": p.answer, **p.extra}
        scored = []
        for s in group:
            score = task.score(s.text, row)
            length = score.length if score.length is not None else s.n_tokens
            key = score.key if score.key is not None else " ".join(s.text.split())
            scored.append(ScoredSample(s.text, score.reward, score.correct, length, key))
        out.append(scored)
    return out
