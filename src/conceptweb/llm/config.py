"""The LLM run config: pydantic models, YAML loading, --set overrides (no torch needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from conceptweb.config import (
    DetectorConfig,
    deep_merge,
    format_validation_error,
    load_config_file,
    parse_set,
)
from conceptweb.errors import ConceptwebError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ScratchModelConfig(_Strict):
    """A small causal LM built locally from this config (random init), with a word-level tokenizer."""

    arch: Literal["llama", "qwen2"] = Field("llama", description="transformers architecture")
    hidden_size: int = Field(64, ge=8)
    num_layers: int = Field(2, ge=1)
    num_heads: int = Field(4, ge=1)
    intermediate_size: int = Field(256, ge=8)
    max_position_embeddings: int = Field(256, ge=16)
    vocab_from: Literal["data"] = Field(
        "data",
        description="the word-level vocabulary: whitespace tokens of the training data's prompts, "
        "answers and solutions, plus special tokens",
    )

    @model_validator(mode="after")
    def _heads_divide(self) -> ScratchModelConfig:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} must be divisible by num_heads {self.num_heads}"
            )
        return self


class LLMModelConfig(_Strict):
    """Which model: a hub name or local path (name_or_path), or a tiny one built locally (scratch)."""

    name_or_path: str | None = Field(None, description="hub model name or local directory")
    scratch: ScratchModelConfig | None = Field(None, description="build a small model locally")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="dtype of the trained (master) weights; auto: float32. bfloat16 here is "
        "pure-bf16 training: Adam updates at lr 1e-6 mostly round away (see docs/llm.md)",
    )
    compute_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="autocast dtype of forward and backward passes; auto: bfloat16 on a GPU "
        "that supports it, float32 otherwise",
    )
    attn_implementation: str | None = Field(None, description="e.g. flash_attention_2, sdpa")
    gradient_checkpointing: bool = Field(False, description="trade compute for memory")

    @model_validator(mode="after")
    def _exactly_one(self) -> LLMModelConfig:
        if (self.name_or_path is None) == (self.scratch is None):
            raise ValueError("set exactly one of model.name_or_path and model.scratch")
        return self


class DataConfig(_Strict):
    """Training problems and how they are posed."""

    train: str = Field(
        "deepscaler",
        description="a dataset name (deepscaler, math500, minerva, aime24, aime25, "
        "synthetic-arith, synthetic-chain) or a local .jsonl file with the fields "
        "question/answer/solution",
    )
    question_field: str | None = Field(None, description="override the question field's name")
    answer_field: str | None = Field(None, description="override the answer field's name")
    solution_field: str | None = Field(None, description="override the solution field's name")
    max_problems: int | None = Field(
        None, ge=1, description="keep a fixed random sample of this many training problems"
    )
    prompt_template: str = Field(
        "{question}", description="how a question becomes a prompt; {question} is replaced"
    )
    chat: bool = Field(False, description="send the prompt as a chat message (chat template)")
    system_prompt: str | None = Field(None, description="system message when chat is true")


class TaskConfig(_Strict):
    """How a completion is scored."""

    kind: Literal["math", "conet_walk"] = Field(
        "math",
        description="math: math-verify of the final answer against the answer field; "
        "conet_walk: a walk on a CoNet graph that must reach the target node",
    )
    graph: str | None = Field(
        None, description="conet_walk: .npz file with the graph's neighbour table"
    )
    max_walk: int = Field(30, ge=1, description="conet_walk: walk-length limit L")
    reward: Literal["auto", "deepscaler", "loose"] = Field(
        "auto",
        description="math: deepscaler (thinking closed by </think>, a boxed answer after it; "
        "truncation scores 0), loose (math-verify over the whole completion), or auto "
        "(deepscaler when the chat template opens <think>, else loose)",
    )

    @model_validator(mode="after")
    def _walk_needs_graph(self) -> TaskConfig:
        if self.kind == "conet_walk" and self.graph is None:
            raise ValueError("task.kind conet_walk needs task.graph")
        return self


class LLMGRPOConfig(_Strict):
    """GRPO on TRL's GRPOTrainer (names follow trl.GRPOConfig where they exist)."""

    learning_rate: float = Field(1e-6, gt=0)
    lr_scheduler_type: str = Field("constant", description="transformers scheduler name")
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    num_generations: int = Field(8, ge=2, description="completions per prompt (the group, G)")
    prompts_per_step: int = Field(16, ge=1, description="distinct prompts per optimizer step")
    per_device_batch_size: int = Field(
        8, ge=1, description="completions per device per micro-batch (sets gradient accumulation)"
    )
    max_completion_length: int = Field(512, ge=1)
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    beta: float = Field(0.0, ge=0, description="KL coefficient (0: no reference model)")
    reference_model: str | None = Field(
        None,
        description="KL reference (hub name or local directory); default: the base model "
        "(model.name_or_path, or the scratch model as built at step 0), after heating and "
        "resume too",
    )
    epsilon: float = Field(0.2, gt=0, description="PPO clip range")
    num_iterations: int = Field(1, ge=1, description="updates per generation batch (mu)")
    loss_type: str = Field("dapo", description="trl loss_type: grpo, dr_grpo, dapo, bnpo, ...")
    scale_rewards: Literal["group", "batch", "none"] = Field("group")
    mask_truncated_completions: bool = Field(False)
    use_vllm: bool = Field(False, description="generate with vLLM (GPU only)")
    vllm_mode: Literal["colocate", "server"] = Field("colocate")
    extra: dict[str, Any] = Field(
        default_factory=dict, description="passed verbatim to trl.GRPOConfig (escape hatch)"
    )


class LLMHeatConfig(_Strict):
    """Heating: SFT (TRL's SFTTrainer) on the hard problems' reference solutions or the
    model's own earlier correct completions."""

    steps: int = Field(20, ge=1, description="SFT steps (counted in the run's step budget)")
    threshold: float = Field(0.1, gt=0, le=1, description="heat problems with accuracy below this")
    recent: int = Field(
        3, ge=1, description="a problem's accuracy = mean of its last this-many observations"
    )
    learning_rate: float = Field(1e-5, gt=0)
    batch_size: int = Field(8, ge=1, description="SFT examples per step (per device)")
    max_length: int | None = Field(
        2048, ge=8, description="truncate prompt+solution to this many tokens"
    )
    targets: Literal["reference", "own", "own_or_reference"] = Field(
        "reference",
        description="SFT targets: reference solutions; own, the model's own latest correct "
        "completion of each problem (problems it never solved are not heated; CoNet's "
        "sft_own); own_or_reference, own where there is one, else the reference",
    )
    probe: bool = Field(
        True,
        description="after heating, sample num_generations completions of every heated problem and "
        "record them (shows in problems.parquet what heating did)",
    )
    probe_max: int = Field(256, ge=1, description="probe at most this many heated problems")
    probe_backend: Literal["auto", "hf", "vllm"] = Field(
        "auto",
        description="the probe's sampler, when GRPO resumes from the heated weights: auto, "
        "TRL's vLLM engine when grpo.use_vllm, else hf generate",
    )


class LLMAnnealConfig(_Strict):
    """Annealed-RLVR: when to heat (mode) and how (heat)."""

    mode: Literal["off", "auto", "at"] = Field(
        "off", description="off, auto (frustration detector) or at a fixed step"
    )
    at_step: int | None = Field(None, ge=1, description="heating step for mode 'at'")
    max_heats: int = Field(1, ge=1)
    heat: LLMHeatConfig = Field(default_factory=LLMHeatConfig)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)

    @field_validator("mode", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        """YAML reads a bare `off` as false."""
        return "off" if value is False else value

    @model_validator(mode="after")
    def _at_needs_step(self) -> LLMAnnealConfig:
        if self.mode == "at" and self.at_step is None:
            raise ValueError("anneal.mode 'at' needs anneal.at_step")
        return self


class LLMEvalConfig(_Strict):
    """Evaluation: k samples per problem; ID on a fixed sample of training problems, OOD benchmarks."""

    k: int = Field(16, ge=1, description="samples per problem (best@k, mean@k)")
    id_problems: int = Field(512, ge=0, description="fixed sample of training problems (ID)")
    datasets: list[str] = Field(
        default_factory=lambda: ["math500", "minerva", "aime24", "aime25"],
        description="OOD benchmarks by name (or local .jsonl)",
    )
    temperature: float = Field(0.6, gt=0)
    top_p: float = Field(0.95, gt=0, le=1)
    max_new_tokens: int = Field(8192, ge=1)
    batch_size: int = Field(
        32,
        ge=1,
        description="at most this many prompts per generate() call (fewer when their KV cache "
        "would not fit in memory)",
    )
    backend: Literal["auto", "hf", "vllm"] = Field(
        "auto", description="generation: vllm when installed and on a GPU (auto), or hf generate"
    )
    at_end: bool = Field(False, description="evaluate the final model at the end of training")


class SentinelConfig(_Strict):
    """A fixed set of training problems re-evaluated every few GRPO steps (dense observations)."""

    problems: int = Field(
        0, ge=0, description="size of the set: a fixed random sample of training problems (0: off)"
    )
    every: int = Field(10, ge=1, description="evaluate the set every this many GRPO steps")
    k: int | None = Field(
        None, ge=1, description="samples per problem (default grpo.num_generations)"
    )
    max_new_tokens: int | None = Field(
        None, ge=1, description="token limit (default grpo.max_completion_length)"
    )
    temperature: float | None = Field(None, gt=0, description="default grpo.temperature")
    backend: Literal["auto", "hf", "vllm"] = Field(
        "auto",
        description="auto: TRL's colocated vLLM engine when grpo.use_vllm, else hf generate",
    )
    batch_size: int = Field(64, ge=1, description="at most this many prompts per generate() call")


class LLMRunConfig(_Strict):
    """Everything an LLM RLVR run needs; written out in full to config.json."""

    seed: int = Field(0, ge=0)
    init_from: str | None = Field(
        None, description="the earlier run this one continues from (set by --init-from)"
    )
    steps: int = Field(1000, ge=1, description="total optimizer steps (GRPO and heating SFT)")
    save_steps: int = Field(50, ge=1, description="TRL checkpoint every this many steps")
    save_total_limit: int | None = Field(3, ge=1, description="keep this many TRL checkpoints")
    flush_every: int = Field(1, ge=1, description="rewrite the record tables every N steps")
    report_to: list[Literal["tensorboard", "wandb", "trackio", "mlflow"]] = Field(
        default_factory=list,
        description="TRL's report_to for the GRPO phases; the monitor's quantities are added",
    )
    torch_threads: int | None = Field(
        None, ge=1, description="CPU threads for torch (1 is fastest for tiny models)"
    )
    record_completions: int = Field(
        16,
        ge=0,
        description="completions kept per GRPO step in completions.parquet (a seeded sample; "
        "0: none); `conceptweb llm graph` builds the concept web from them",
    )
    record_initial: int = Field(
        0,
        ge=0,
        description="completions of the initial model sampled before the first update (GRPO's "
        "sampling settings, spread over the problems) and recorded at step 0, so that `llm "
        "graph` estimates checkpoint 0's web from as many completions as a later checkpoint's",
    )
    model: LLMModelConfig
    data: DataConfig = Field(default_factory=DataConfig)
    task: TaskConfig = Field(default_factory=TaskConfig)
    grpo: LLMGRPOConfig = Field(default_factory=LLMGRPOConfig)
    anneal: LLMAnnealConfig = Field(default_factory=LLMAnnealConfig)
    eval: LLMEvalConfig = Field(default_factory=LLMEvalConfig)
    sentinel: SentinelConfig = Field(default_factory=SentinelConfig)

    @model_validator(mode="after")
    def _heat_fits(self) -> LLMRunConfig:
        if self.anneal.mode == "at" and (self.anneal.at_step or 0) >= self.steps:
            raise ValueError(f"anneal.at_step must be before steps={self.steps}")
        return self


def validate_llm_config(data: dict[str, Any]) -> LLMRunConfig:
    """Validate a config dict, turning pydantic errors into a ConceptwebError."""
    try:
        return LLMRunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConceptwebError(f"invalid LLM config: {format_validation_error(exc)}") from None


def resolve_llm_config(
    config_file: str | Path | None = None,
    sets: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> LLMRunConfig:
    """Config file <- `extra` <- --set overrides, then validate.

    Relative paths in the file (model, data, graph) are taken relative to the current directory.
    """
    data = load_config_file(config_file) if config_file is not None else {}
    if extra:
        data = deep_merge(data, extra)
    for item in sets or []:
        data = deep_merge(data, parse_set(item))
    return validate_llm_config(data)


def llm_config_to_dict(config: LLMRunConfig) -> dict[str, Any]:
    """The fully resolved config as plain JSON-able data."""
    return config.model_dump(mode="json")
