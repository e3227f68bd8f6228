"""Validated run configuration: pydantic models, presets, YAML/TOML loading and --set overrides."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from conceptweb.algorithms.estimators import ESTIMATORS
from conceptweb.algorithms.heating import HEATING_OPERATORS, PAPER_HEATING, heating_help
from conceptweb.errors import ConceptwebError
from conceptweb.model.engines import AUTO, engine_names
from conceptweb.registry import Registry


def _registered(registry: Registry[Any], value: str) -> str:
    """A config choice that must be a registry's key (the registry is the list of choices)."""
    if value not in registry:
        raise ValueError(f"unknown {registry.what} {value!r}; known: {', '.join(registry)}")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Strict):
    """The concept graph and the tabular walk policy on it."""

    graph: Literal[
        "random_regular", "erdos_renyi", "barabasi_albert", "watts_strogatz", "community"
    ] = Field(
        "random_regular",
        description="graph family: random_regular (every node K neighbours), erdos_renyi, "
        "barabasi_albert (scale-free), watts_strogatz (small world), community (planted blocks); "
        "K is the mean degree where degrees vary",
    )
    directed: bool = Field(
        False,
        description="directed variant: every node has K out-neighbours, in-degrees follow the "
        "family (not for random_regular)",
    )
    rewire_p: float = Field(0.1, ge=0, le=1, description="watts_strogatz rewiring probability")
    communities: int = Field(8, ge=1, description="number of blocks of the community graph")
    community_in: float = Field(
        0.9, ge=0, le=1, description="community graph: fraction of a node's degree inside its block"
    )
    N: int = Field(800, ge=2, description="number of concept nodes")
    K: int = Field(8, ge=1, description="neighbours per node (out-degree of the walk)")
    L: int = Field(
        100,
        ge=1,
        description="maximum walk length; a walk that has not reached its target by then fails",
    )
    init: Literal["zero", "prior"] = Field(
        "zero", description="initial logits: zero (uniform walk) or drawn from N(0, prior_std^2)"
    )
    prior_std: float = Field(2.0, ge=0, description="std of the 'pretrained' prior logits")
    temperature: float = Field(1.0, gt=0, description="pi(.|i) = softmax(theta[i] / temperature)")
    graph_seed: int | None = Field(
        None, description="seed of the graph and problems; None: derived from the run seed"
    )
    engine: str = Field(
        AUTO,
        description="rollout engine: "
        + ", ".join(engine_names())
        + " (numba compiled, numpy the reference; auto: numba when installed)",
    )

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        if value not in engine_names():
            raise ValueError(
                f"unknown rollout engine {value!r}; known: {', '.join(engine_names())}"
            )
        return value

    @model_validator(mode="after")
    def _graph_is_possible(self) -> ModelConfig:
        from conceptweb.model.families import check_graph_params

        try:
            check_graph_params(
                self.graph, self.N, self.K, self.directed, self.communities, self.community_in
            )
        except ConceptwebError as exc:
            raise ValueError(str(exc)) from None
        return self


class ProblemsConfig(_Strict):
    """Question-answer pairs (s, t): training problems and held-out problems."""

    Q: int = Field(128, ge=1, description="number of training problems")
    held_out: int = Field(64, ge=0, description="number of held-out problems (never trained on)")
    n_starts: int | None = Field(
        None, ge=1, description="if set, training problems share this many start nodes"
    )
    n_answers: int | None = Field(
        None,
        ge=1,
        description="if set, training problems share this many answer nodes (held-out problems "
        "ask for the same answers from other starts)",
    )
    distinct: bool = Field(
        False,
        description="every training problem has its own start and its own answer, and no node "
        "is both a start and an answer",
    )
    min_dist: int = Field(1, ge=1, description="minimum shortest-path distance from s to t")

    @model_validator(mode="after")
    def _structure_is_consistent(self) -> ProblemsConfig:
        if self.distinct and (self.n_starts is not None or self.n_answers is not None):
            raise ValueError("problems.distinct excludes n_starts and n_answers")
        return self


class GRPOConfig(_Strict):
    """Group relative policy optimisation on the walk policy."""

    G: int = Field(16, ge=2, description="rollouts per problem (group size)")
    lr: float = Field(0.1, gt=0, description="Adam learning rate")
    epochs: int = Field(1, ge=1, description="inner epochs per batch (PPO clipping when > 1)")
    clip_eps: float = Field(0.2, gt=0, description="PPO clip range")
    clip_eps_high: float = Field(
        0.28, gt=0, description="upper clip range of the 'dapo' estimator (clip-higher)"
    )
    resample_rounds: int = Field(
        3,
        ge=0,
        description="'dapo' dynamic sampling: rounds of resampling the groups whose rewards "
        "are all right or all wrong (0: only drop them from the loss)",
    )
    kl_coef: float = Field(
        0.0, ge=0, description="weight of KL(pi || pi_ref), pi_ref = initial policy"
    )
    adv_eps: float = Field(1e-4, gt=0, description="advantage = (r - mean) / (std + adv_eps)")
    length_norm: bool = Field(
        True, description="divide each trajectory's log-prob sum by its length"
    )
    entropy_coef: float = Field(0.0, ge=0, description="entropy bonus on visited nodes")
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    adam_eps: float = Field(1e-8, gt=0)
    estimator: str = Field(
        "grpo",
        description="advantage and loss estimator of the policy-gradient update: "
        + ", ".join(ESTIMATORS),
    )

    @field_validator("estimator")
    @classmethod
    def _known_estimator(cls, value: str) -> str:
        return _registered(ESTIMATORS, value)


class SFTConfig(_Strict):
    """Supervised fine-tuning on given correct paths (an SFT phase at the start of a run)."""

    lr: float = Field(
        0.1, gt=0, description="Adam learning rate of SFT (fresh Adam state per SFT phase)"
    )
    steps: int = Field(0, ge=0, description="SFT steps at the start of the run, before RL")
    problems: str = Field(
        "new:16",
        description="what the initial SFT phase trains on: new:N (N new problems), train, or below:X "
        "(training problems with accuracy below X at the start)",
    )

    @model_validator(mode="after")
    def _problems_spec(self) -> SFTConfig:
        parse_problem_spec(self.problems)
        return self


def parse_problem_spec(spec: str) -> tuple[str, float]:
    """'new:16' -> ('new', 16); 'train' -> ('train', 0); 'below:0.1' -> ('below', 0.1)."""
    kind, _, arg = spec.partition(":")
    if kind == "train" and not arg:
        return "train", 0.0
    try:
        value = float(arg)
    except ValueError:
        value = float("nan")
    if kind == "new" and value.is_integer() and value >= 1:
        return "new", value
    if kind == "below" and 0 < value <= 1:
        return "below", value
    raise ValueError(
        f"problem selection must be new:N, train or below:X (0 < X <= 1), got {spec!r}"
    )


class EvalConfig(_Strict):
    """Periodic evaluation with many rollouts on training and held-out problems."""

    every: int = Field(10, ge=0, description="evaluate every this many steps (0: never)")
    G: int = Field(64, ge=1, description="rollouts per problem at evaluation")
    final_G: int | None = Field(
        None,
        ge=1,
        description="rollouts per problem at the final evaluation, for pass@k up to this k "
        "(e.g. 256); None: G",
    )


class CheckpointConfig(_Strict):
    """Full-state checkpoints (logits, optimizer, RNG) for analysis and exact resume."""

    every: int = Field(10, ge=1, description="checkpoint every this many steps (and at the end)")


class DetectorConfig(_Strict):
    """Online detector of the maximally frustrated state (sees only the past)."""

    window: int = Field(10, ge=2, description="smoothing window (steps)")
    min_steps: int = Field(30, ge=1, description="never fire before this many steps of history")
    patience: int = Field(20, ge=1, description="steps the signal must stay past its peak")
    min_forgetting: float = Field(
        0.4,
        ge=0,
        description="peak smoothed forgetting events per step needed to fire (0: fire on the reward knee alone)",
    )
    signal: Literal["forgetting", "knee", "length", "vote"] = Field(
        "forgetting", description="which past-only signal decides (vote: two of the three)"
    )
    confidence: float = Field(
        0.9,
        gt=0,
        lt=1,
        description="level of the binomial interval that calls an observation of a problem solved "
        "or unsolved (runs recorded with n and n_correct per problem: LLM runs)",
    )
    peak_p: float = Field(
        1e-6,
        gt=0,
        le=1,
        description="runs recorded per observation (LLM runs): fire only on an F peak whose "
        "events are this unlikely (Poisson) at the run's rate of chance flips outside the peak",
    )


class HeatConfig(_Strict):
    """What heating does and to whom."""

    operator: str = Field(
        PAPER_HEATING, description=heating_help() + ". All act only on the selected problems."
    )
    steps: int = Field(20, ge=1, description="heating steps (counted in the step budget)")
    threshold: float = Field(0.1, ge=0, le=1, description="heat problems with accuracy below this")
    temperature: float = Field(
        2.0, gt=0, description="sampling temperature multiplier ('temperature')"
    )
    reset_frac: float = Field(
        0.5, gt=0, le=1, description="logit shrink factor towards 0 ('reset')"
    )
    reset_nodes: int = Field(
        20, ge=1, description="how many most-frustrated nodes to reset ('reset')"
    )
    entropy_coef: float = Field(0.05, gt=0, description="entropy bonus during heating ('entropy')")

    @field_validator("operator")
    @classmethod
    def _known_operator(cls, value: str) -> str:
        return _registered(HEATING_OPERATORS, value)


class AnnealConfig(_Strict):
    """Annealed-RLVR: when to heat (mode) and how (heat)."""

    mode: Literal["off", "auto", "at"] = Field(
        "off", description="off, auto (detector) or at a fixed step"
    )
    max_heats: int = Field(1, ge=1, description="how many times a run may heat")
    at_step: int | None = Field(None, ge=0, description="heating step for mode 'at'")
    heat: HeatConfig = Field(default_factory=HeatConfig)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)

    @field_validator("mode", mode="before")
    @classmethod
    def _off_is_not_false(cls, value: object) -> object:
        return "off" if value is False else value  # YAML reads a bare `off` as false

    @model_validator(mode="after")
    def _at_needs_step(self) -> AnnealConfig:
        if self.mode == "at" and self.at_step is None:
            raise ValueError("anneal.mode 'at' needs anneal.at_step")
        return self


class RunConfig(_Strict):
    """Everything a CoNet run needs; written out in full to config.json."""

    preset: str | None = Field(None, description="name of the preset this config started from")
    seed: int = Field(0, ge=0, description="seed of the run (graph, problems, rollouts)")
    steps: int = Field(600, ge=1, description="total update steps (RL and SFT together)")
    model: ModelConfig = Field(default_factory=ModelConfig)
    problems: ProblemsConfig = Field(default_factory=ProblemsConfig)
    grpo: GRPOConfig = Field(default_factory=GRPOConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    anneal: AnnealConfig = Field(default_factory=AnnealConfig)
    init_from: str | None = Field(None, description="start from this run directory's checkpoint")
    init_step: int | None = Field(
        None, ge=0, description="checkpoint step of init_from (None: latest)"
    )

    @model_validator(mode="after")
    def _enough_node_pairs(self) -> RunConfig:
        n_pairs = self.model.N * (self.model.N - 1)
        if self.problems.Q + self.problems.held_out > n_pairs // 2:
            raise ValueError(
                f"Q + held_out = {self.problems.Q + self.problems.held_out} is too many problems "
                f"for N={self.model.N} nodes"
            )
        p = self.problems
        if p.distinct and 2 * max(p.Q, p.held_out) > self.model.N:
            raise ValueError(
                f"problems.distinct needs 2*Q <= N distinct nodes (Q={p.Q}, N={self.model.N})"
            )
        for name, value in (("n_starts", p.n_starts), ("n_answers", p.n_answers)):
            if value is not None and value >= self.model.N:
                raise ValueError(f"problems.{name}={value} must be smaller than N={self.model.N}")
        return self

    @property
    def graph_seed(self) -> int:
        return self.seed if self.model.graph_seed is None else self.model.graph_seed


PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "paper": (
        "the published CoNet sizes: N=800, K=40, Q=128, G=16, L=100, lr 0.1",
        {"steps": 800, "model": {"N": 800, "K": 40}},
    ),
    "sparse": (
        "a sparser graph (K=8) where two-stage learning, the V and frustration appear",
        {"steps": 600, "model": {"N": 800, "K": 8}},
    ),
    "frustrated": (
        "a very sparse graph (K=4): learning stalls on a frustrated plateau",
        {"steps": 600, "model": {"N": 800, "K": 4}},
    ),
    "pretrained": (
        "K=40 with a 'pretrained' prior (logits ~ N(0, 2^2)): effectively sparse",
        {"steps": 600, "model": {"N": 800, "K": 40, "init": "prior", "prior_std": 2.0}},
    ),
    "tiny": (
        "a small graph for tests and demos: N=200, K=6, Q=32, 150 steps",
        {
            "steps": 150,
            "model": {"N": 200, "K": 6, "L": 60},
            "problems": {"Q": 32, "held_out": 16},
            "grpo": {"G": 8},
            "eval": {"every": 10, "G": 32},
        },
    ),
}


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge `update` into a copy of `base`."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# plain decimals, which YAML reads as int() and float() do (no leading zeros: YAML 1.1 reads 010
# as octal; no "_", "+", exponent or ":", which YAML 1.1 reads its own way)
_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")


def parse_set(item: str) -> dict[str, Any]:
    """Turn 'a.b.c=value' into {'a': {'b': {'c': value}}}; the value is parsed as YAML."""
    if "=" not in item:
        raise ConceptwebError(f"--set expects KEY=VALUE, got {item!r}")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConceptwebError(f"--set has an empty key in {item!r}")
    if raw in ("true", "false"):  # the common values, read as YAML reads them without loading it
        value: Any = raw == "true"
    elif _DECIMAL.fullmatch(raw):
        value = float(raw) if "." in raw else int(raw)
    else:
        import yaml

        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConceptwebError(f"--set {item!r}: value is not valid YAML ({exc})") from None
    out: dict[str, Any] = {}
    cursor = out
    parts = key.split(".")
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return out


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML, TOML or JSON config file into a dict, with a clear error on failure."""
    path = Path(path)
    if not path.is_file():
        raise ConceptwebError(f"config file not found: {path}")
    text = path.read_text()
    import tomllib

    import yaml

    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConceptwebError(f"cannot parse config file {path}: {parse_error_text(exc)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConceptwebError(f"config file {path} must hold a mapping, got {type(data).__name__}")
    return data


def parse_error_text(exc: Exception) -> str:
    """A YAML, TOML or JSON parse error as 'line L, column C: what is wrong' (1-based)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"line {exc.lineno}, column {exc.colno}: {exc.msg}"
    import yaml

    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        what = " ".join(x for x in (exc.context, exc.problem) if x)
        return f"line {mark.line + 1}, column {mark.column + 1}: {what}"
    text = str(exc).strip()  # tomllib: "message (at line L, column C)"
    m = re.match(r"(.*) \(at line (\d+), column (\d+)\)$", text)
    if m:
        return f"line {m.group(2)}, column {m.group(3)}: {m.group(1)}"
    return text.splitlines()[0] if text else type(exc).__name__


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem, 'field.path: message'."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def validate_config(data: dict[str, Any]) -> RunConfig:
    """Validate a config dict, turning pydantic errors into a ConceptwebError."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConceptwebError(f"invalid config: {format_validation_error(exc)}") from None


def preset_overrides(name: str) -> dict[str, Any]:
    """The overrides of a named preset (with its name recorded)."""
    if name not in PRESETS:
        known = ", ".join(sorted(PRESETS))
        raise ConceptwebError(f"unknown preset {name!r}; known presets: {known}")
    return deep_merge(PRESETS[name][1], {"preset": name})


def resolve_config(
    preset: str | None = None,
    config_file: str | Path | None = None,
    sets: list[str] | None = None,
    extra: dict[str, Any] | None = None,
    base: dict[str, Any] | None = None,
) -> RunConfig:
    """Defaults (or `base`) <- preset <- config file <- `extra` <- --set overrides, validated."""
    data: dict[str, Any] = dict(base or {})
    file_data = load_config_file(config_file) if config_file is not None else {}
    base_preset = preset or file_data.get("preset")
    if base_preset is not None:
        if not isinstance(base_preset, str):
            raise ConceptwebError(f"preset must be a name, got {base_preset!r}")
        data = deep_merge(data, preset_overrides(base_preset))
    data = deep_merge(data, file_data)
    if preset is not None:
        data["preset"] = preset
    if extra:
        data = deep_merge(data, extra)
    for item in sets or []:
        data = deep_merge(data, parse_set(item))
    return validate_config(data)


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    """The fully resolved config as plain JSON-able data."""
    return config.model_dump(mode="json")


def config_changes(
    saved: RunConfig, given: RunConfig, ignore: tuple[str, ...] = ("preset", "steps")
) -> list[str]:
    """'key (saved -> given)' for every value that differs, by dotted key, in field order."""

    def leaves(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(leaves(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    a, b = leaves(config_to_dict(saved)), leaves(config_to_dict(given))
    return [f"{k} ({a[k]!r} -> {b[k]!r})" for k in a if k not in ignore and a[k] != b.get(k)]
