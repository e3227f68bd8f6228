"""Models and tokenizers: load by hub name or local path, or build a tiny one locally (no download)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from conceptweb.errors import ConceptwebError
from conceptweb.llm.config import LLMModelConfig, ScratchModelConfig

SPECIAL_TOKENS = {"pad": "<pad>", "bos": "<s>", "eos": "</s>", "unk": "<unk>"}


def build_wordlevel_tokenizer(texts: Iterable[str], extra_tokens: Iterable[str] = ()) -> Any:
    """A whitespace word-level tokenizer over the words of `texts` (decodes with single spaces)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words: dict[str, None] = dict.fromkeys(SPECIAL_TOKENS.values())
    for w in extra_tokens:
        words.setdefault(w, None)
    for text in texts:
        for w in text.split():
            words.setdefault(w, None)
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=SPECIAL_TOKENS["unk"]))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=SPECIAL_TOKENS["pad"],
        bos_token=SPECIAL_TOKENS["bos"],
        eos_token=SPECIAL_TOKENS["eos"],
        unk_token=SPECIAL_TOKENS["unk"],
    )


def build_scratch_model(cfg: ScratchModelConfig, tokenizer: Any, seed: int = 0) -> Any:
    """A randomly initialised causal LM sized by `cfg`, its vocabulary that of `tokenizer`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    kwargs = {
        "vocab_size": len(tokenizer),
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_heads,
        "max_position_embeddings": cfg.max_position_embeddings,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "tie_word_embeddings": True,
    }
    torch.manual_seed(seed)
    if cfg.arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**kwargs))
    else:
        model = Qwen2ForCausalLM(Qwen2Config(**kwargs))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def looks_like_path(name: str) -> bool:
    """A local path rather than a hub id ('org/name')."""
    return (
        name.startswith((".", "/", "~", os.sep))
        or name.count("/") > 1
        or Path(name).expanduser().exists()
    )


def check_model_source(name: str) -> None:
    """Fail before training on a local model path that does not exist or holds no model."""
    path = Path(name).expanduser()
    if looks_like_path(name):
        if not path.is_dir():
            raise ConceptwebError(f"model path not found: {name}")
        if not (path / "config.json").is_file():
            raise ConceptwebError(f"{name} is not a model directory (no config.json)")
        return
    try:
        from transformers import AutoConfig

        AutoConfig.from_pretrained(name)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConceptwebError(
            f"cannot find model {name!r} locally or on the hub: {first.rstrip('.')}. "
            "Give a local directory, or download the model first"
        ) from None


def resolve_dtype(name: str) -> Any:
    """The torch dtype a config asks for; 'auto' is bfloat16 on a capable GPU, else float32."""
    import torch

    if name == "auto":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return getattr(torch, name)


def weights_dtype(cfg: LLMModelConfig) -> Any:
    """dtype of the trained (master) weights: float32 unless the config names another."""
    import torch

    return torch.float32 if cfg.dtype == "auto" else getattr(torch, cfg.dtype)


def compute_dtype(cfg: LLMModelConfig) -> Any:
    """Autocast dtype of forward and backward: bfloat16 on a capable GPU unless configured."""
    return resolve_dtype(cfg.compute_dtype)


def precision(cfg: LLMModelConfig) -> dict[str, str]:
    """Both dtypes as TRL/transformers will use them here, and what that amounts to."""
    w, c = weights_dtype(cfg), compute_dtype(cfg)
    name = {str(w): str(w).removeprefix("torch."), str(c): str(c).removeprefix("torch.")}
    if w == c:
        mode = f"pure {name[str(w)]}" + (
            " (no fp32 master copy)" if str(w) != "torch.float32" else ""
        )
    else:
        mode = f"{name[str(w)]} master weights, {name[str(c)]} autocast"
    return {"weights_dtype": name[str(w)], "compute_dtype": name[str(c)], "mode": mode}


def trainer_precision_flags(cfg: LLMModelConfig) -> dict[str, bool]:
    """transformers' bf16/fp16 flags: autocast in the compute dtype (master weights untouched)."""
    c = str(compute_dtype(cfg))
    return {"bf16": c == "torch.bfloat16", "fp16": c == "torch.float16"}


def load_pretrained(cfg: LLMModelConfig, path: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) from cfg.name_or_path (or `path`, e.g. a checkpoint)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = path or cfg.name_or_path
    assert source is not None
    check_model_source(source)
    kwargs: dict[str, Any] = {"dtype": weights_dtype(cfg)}
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as exc:
        raise ConceptwebError(f"cannot load model {source!r}: {exc}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def save_model(model: Any, tokenizer: Any, path: str | Path) -> Path:
    """Save model and tokenizer in the transformers format (loadable by `load_pretrained`)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
