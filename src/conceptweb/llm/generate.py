"""Sampling k completions per prompt: one interface over transformers' generate and vLLM.

`Generator.generate(prompts, k, ...)` returns k `Sample`s per prompt whichever backend runs it:
`HFGenerator` (transformers' generate, batches sized from a KV-cache estimate against the
memory available) or `VLLMGenerator` (a vLLM engine: the one TRL colocates with training, or
one loaded for evaluation). `select_backend` picks one; `sample_sharded` splits the prompts
across processes, each generates its shard, and the results are gathered in prompt order.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from conceptweb.errors import ConceptwebError

BACKENDS = ("auto", "hf", "vllm")
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
MEMORY_FRACTION = 0.5  # of the free memory, for the KV cache of one generate() call


@dataclass(frozen=True)
class Sample:
    """One sampled completion: its text, its token count (up to and including EOS), and
    whether it was cut at the token limit (no end-of-sequence token)."""

    text: str
    n_tokens: int
    truncated: bool = False


class Generator(Protocol):
    """What the evaluation, the heating probe and the sentinel set sample with."""

    def generate(
        self,
        prompts: list[str | list[dict[str, str]]],
        k: int,
        *,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        seed: int = 0,
    ) -> list[list[Sample]]: ...


def render_prompt(prompt: str | list[dict[str, str]], tokenizer: Any) -> str:
    """A prompt as text: chat prompts go through the tokenizer's chat template."""
    if isinstance(prompt, str):
        return prompt
    return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)


def grpo_prompt_ids(prompt: Any, tokenizer: Any) -> list[int]:
    """The prompt's token ids exactly as TRL's GRPOTrainer tokenizes it for generation."""
    if isinstance(prompt, list):  # chat: the template with the generation prompt
        out = tokenizer.apply_chat_template(
            conversation=[prompt], add_generation_prompt=True, tokenize=True, return_dict=True
        )
        return list(out["input_ids"][0])
    return list(tokenizer(text=[prompt])["input_ids"][0])


# -- memory-aware batching ----------------------------------------------------------------------
def kv_bytes_per_token(model_config: Any, dtype_bytes: int = 2) -> int:
    """Bytes of KV cache one token takes: 2 (K and V) x layers x KV heads x head_dim x dtype.

    KV heads are the config's `num_key_value_heads` (grouped-query attention) where it has them.
    """
    c = model_config
    layers = int(c.num_hidden_layers)
    heads = int(c.num_attention_heads)
    kv_heads = int(getattr(c, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(c, "head_dim", None) or c.hidden_size // heads)
    return 2 * layers * kv_heads * head_dim * int(dtype_bytes)


def memory_batch_size(
    bytes_per_token: int,
    tokens_per_sequence: int,
    k: int,
    available_bytes: float,
    max_prompts: int,
    fraction: float = MEMORY_FRACTION,
) -> int:
    """Prompts per generate() call whose k sequences' KV cache fits `fraction` of the memory.

    Between 1 and `max_prompts`: a prompt's k sequences of `tokens_per_sequence` tokens need
    k x tokens x bytes_per_token bytes.
    """
    per_prompt = max(1, k * tokens_per_sequence * bytes_per_token)
    fits = int(available_bytes * fraction // per_prompt)
    return max(1, min(int(max_prompts), fits))


def available_memory(device: Any) -> float:
    """Free bytes where the model runs: the GPU's free memory, else the host's available RAM."""
    import torch

    if getattr(device, "type", str(device)) == "cuda" and torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info(device)
        return float(free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


class HFGenerator:
    """transformers' generate in left-padded batches, sized so that the KV cache fits.

    `batch_size` is an upper bound on prompts per call; the batch shrinks when k sequences of
    (prompt + max_new_tokens) tokens per prompt would not fit in `MEMORY_FRACTION` of the free
    memory (`memory`: bytes, measured on the model's device when None).
    """

    backend = "hf"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        batch_size: int = 16,
        memory: float | None = None,
        autocast: Any = None,
    ) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.memory = batch_size, memory
        self.autocast = autocast  # a torch dtype to generate under autocast (GPU), or None
        self.last_batch_size = batch_size

    def batch_for(self, prompt_tokens: int, k: int, max_new_tokens: int) -> int:
        """Prompts per generate() call for prompts of `prompt_tokens` tokens."""
        p = next(self.model.parameters())
        per_token = kv_bytes_per_token(self.model.config, p.element_size())
        memory = self.memory if self.memory is not None else available_memory(p.device)
        return memory_batch_size(
            per_token, prompt_tokens + max_new_tokens, k, memory, self.batch_size
        )

    def generate(
        self,
        prompts: list[str | list[dict[str, str]]],
        k: int,
        *,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        seed: int = 0,
    ) -> list[list[Sample]]:
        """k samples per prompt; the caller's torch RNG state is left as it was."""
        import torch

        model, tokenizer = self.model, self.tokenizer
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        side = tokenizer.padding_side
        tokenizer.padding_side = "left"
        texts = [render_prompt(p, tokenizer) for p in prompts]
        longest = max(
            (len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts), default=1
        )
        step = self.last_batch_size = self.batch_for(longest, k, max_new_tokens)
        out: list[list[Sample]] = []
        cuda = [device] if device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=cuda), torch.no_grad():
                torch.manual_seed(seed)
                for start in range(0, len(texts), step):
                    enc = tokenizer(
                        texts[start : start + step],
                        return_tensors="pt",
                        padding=True,
                        add_special_tokens=False,
                    )
                    enc = {k_: v.to(device) for k_, v in enc.items()}
                    with torch.autocast(
                        device.type, dtype=self.autocast, enabled=self.autocast is not None
                    ):
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
                    out.extend(_groups(new, k, tokenizer))
        finally:
            tokenizer.padding_side = side
            model.train(was_training)
        return out


def _groups(new: list[list[int]], k: int, tokenizer: Any) -> list[list[Sample]]:
    eos = tokenizer.eos_token_id
    out = []
    for i in range(len(new) // k):
        group = []
        for ids in new[i * k : (i + 1) * k]:
            ended = eos in ids
            n = ids.index(eos) + 1 if ended else len(ids)
            text = tokenizer.decode(ids[:n], skip_special_tokens=True)
            group.append(Sample(text, n, truncated=not ended))
        out.append(group)
    return out


class VLLMGenerator:
    """A vLLM engine: `vllm.LLM` loaded for evaluation, or the engine TRL colocates in training.

    `engine` is a `vllm.LLM`; `sync` (optional) is called before each generation to load the
    training weights into it (TRL's `vllm_generation.sync_weights`).
    """

    backend = "vllm"

    def __init__(self, engine: Any, tokenizer: Any, sync: Callable[[], None] | None = None):
        self.engine, self.tokenizer, self.sync = engine, tokenizer, sync

    def generate(
        self,
        prompts: list[str | list[dict[str, str]]],
        k: int,
        *,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        seed: int = 0,
    ) -> list[list[Sample]]:
        from vllm import SamplingParams

        if self.sync is not None:
            self.sync()
        params = SamplingParams(
            n=k, temperature=temperature, top_p=top_p, max_tokens=max_new_tokens, seed=seed
        )
        texts = [render_prompt(p, self.tokenizer) for p in prompts]
        outputs = self.engine.generate(texts, params, use_tqdm=False)
        return [
            [
                Sample(o.text, len(o.token_ids), truncated=o.finish_reason == "length")
                for o in out.outputs
            ]
            for out in outputs
        ]


class TRLVLLMGenerator:
    """The vLLM engine GRPOTrainer generates with (colocated or a server), during training.

    Samples with the trainer's own settings (temperature, top_p, max_completion_length: the
    arguments of `generate` other than k are ignored) after loading the current weights;
    every process must call it with the same number of prompts (sample_sharded pads shards).
    """

    backend = "vllm"

    def __init__(self, vllm_generation: Any, tokenizer: Any) -> None:
        self.vg, self.tokenizer = vllm_generation, tokenizer

    def generate(
        self,
        prompts: list[str | list[dict[str, str]]],
        k: int,
        *,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 0,
        seed: int = 0,
    ) -> list[list[Sample]]:
        self.vg.sync_weights()
        ids = [grpo_prompt_ids(p, self.tokenizer) for p in prompts for _ in range(k)]
        _, completion_ids, _, _ = self.vg.generate(prompts=ids, images=None, num_generations=k)
        end = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id} - {None}
        samples = [
            Sample(
                self.tokenizer.decode(c, skip_special_tokens=True),
                len(c),
                truncated=not c or int(c[-1]) not in end,
            )
            for c in completion_ids
        ]
        return [samples[i * k : (i + 1) * k] for i in range(len(prompts))]


def vllm_installed() -> bool:
    """Whether vLLM can be imported (checked without importing it)."""
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def select_backend(requested: str, *, vllm_available: bool, gpu: bool) -> str:
    """'hf' or 'vllm': auto takes vLLM when it is installed and a GPU is there."""
    if requested not in BACKENDS:
        raise ConceptwebError(f"unknown generation backend {requested!r} (one of {BACKENDS})")
    if requested == "vllm":
        if not vllm_available:
            raise ConceptwebError("generation backend vllm: vLLM is not installed")
        if not gpu:
            raise ConceptwebError("generation backend vllm needs a GPU")
        return "vllm"
    if requested == "auto" and vllm_available and gpu:
        return "vllm"
    return "hf"


def make_generator(
    backend: str,
    model: Any,
    tokenizer: Any,
    *,
    batch_size: int = 16,
    model_path: str | None = None,
    max_model_len: int | None = None,
) -> Generator:
    """A generator for `backend` (after select_backend): HF on `model`, or vLLM on `model_path`."""
    if backend == "vllm":
        from vllm import LLM

        engine = LLM(model=model_path or model.config._name_or_path, max_model_len=max_model_len)
        return VLLMGenerator(engine, tokenizer)
    return HFGenerator(model, tokenizer, batch_size=batch_size)


# -- work split across processes ------------------------------------------------------------------
def shard_indices(n: int, rank: int, world: int) -> list[int]:
    """The items process `rank` of `world` handles: rank, rank + world, ... (balanced)."""
    return list(range(rank, n, world))


def padded_shard(n: int, rank: int, world: int) -> tuple[list[int], int]:
    """(indices to generate, how many of them are real): every process gets ceil(n / world)
    items, the short shards padded with repeats of their first item (or item 0), because
    collective generators need the same count on every process."""
    mine = shard_indices(n, rank, world)
    size = -(-n // world) if n else 0
    real = len(mine)
    filler = mine[0] if mine else 0
    return mine + [filler] * (size - real), real


def sample_sharded(
    generator: Generator, prompts: list[Any], k: int, **kwargs: Any
) -> list[list[Sample]]:
    """k samples per prompt, each process generating its shard; every process gets them all.

    The seed is offset by the rank (shards sample independently); on one process this is
    `generator.generate` itself.
    """
    rank, world = _rank_world()
    if world <= 1:
        return generator.generate(prompts, k, **kwargs)
    if not prompts:
        return []
    mine, real = padded_shard(len(prompts), rank, world)
    seed = int(kwargs.pop("seed", 0)) + 1000003 * rank
    groups = generator.generate([prompts[i] for i in mine], k, seed=seed, **kwargs)
    from accelerate.utils import gather_object

    pairs = gather_object(list(zip(mine[:real], groups[:real], strict=True)))
    out: list[list[Sample]] = [[] for _ in prompts]
    for i, group in pairs:
        out[i] = group
    return out


def _rank_world() -> tuple[int, int]:
    try:
        from conceptweb.llm.runtime import distributed_state
    except ImportError:  # pragma: no cover
        return 0, 1
    state = distributed_state()
    return int(state.process_index), int(state.num_processes)


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
    """k sampled completions for each prompt with transformers' generate (HFGenerator)."""
    return HFGenerator(model, tokenizer, batch_size).generate(
        prompts, k, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed
    )


@dataclass(frozen=True)
class ScoredSample:
    """A sampled completion as the task scores it; length in the task's units (tokens by default)."""

    text: str
    reward: float
    correct: bool
    length: int
    key: str
    truncated: bool = False


def score_samples(
    problems: list[Any], groups: list[list[Sample]], task: Any
) -> list[list[ScoredSample]]:
    """Each problem's samples scored by `task` against its answer."""
    out = []
    for p, group in zip(problems, groups, strict=True):
        row = {"answer": p.answer, **p.extra}
        scored = []
        for s in group:
            score = task.score(s.text, row)
            length = score.length if score.length is not None else s.n_tokens
            key = score.key if score.key is not None else " ".join(s.text.split())
            scored.append(
                ScoredSample(s.text, score.reward, score.correct, length, key, s.truncated)
            )
        out.append(scored)
    return out


def sample_scored(
    generator: Generator,
    problems: list[Any],
    task: Any,
    data_cfg: Any,
    k: int,
    *,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    seed: int,
    sharded: bool = True,
) -> list[list[ScoredSample]]:
    """k completions of each problem's prompt (formatted as in training), each scored by `task`.

    With `sharded`, the problems are split across processes and the results gathered
    (every process must call); otherwise this process generates them all.
    """
    from conceptweb.llm.data import format_prompt

    d = data_cfg
    prompts = [
        format_prompt(p.question, d.prompt_template, d.chat, d.system_prompt) for p in problems
    ]
    run = sample_sharded if sharded else _generate_all
    groups = run(
        generator,
        prompts,
        k,
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        seed=seed,
    )
    return score_samples(problems, groups, task)


def _generate_all(
    generator: Generator, prompts: list[Any], k: int, **kw: Any
) -> list[list[Sample]]:
    return generator.generate(prompts, k, **kw)
