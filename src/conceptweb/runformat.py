"""The run format: what a run directory's files hold, defined once for every reader and writer.

A run directory (see `conceptweb.rundir` for the files and atomic writes) holds records
(`metrics.parquet`, `problems.parquet`, `eval.parquet`) and, for CoNet runs, checkpoints.
This module is the single definition of

- the format's name and version, and which older versions are still read;
- the checkpoint schema: every array's name, dtype and shape, in `CHECKPOINT_ARRAYS`, with
  the sizes N, K and L stored explicitly (`Checkpoint.to_arrays` / `Checkpoint.from_arrays`
  are the only code that turns a checkpoint into arrays and back);
- the metric and per-problem columns that CoNet runs and LLM runs (`conceptweb.llm.monitor`)
  share;
- the frozen result of a training run (`TrainResult`).

Versions: format 1 (conceptweb 0.1.0 before the run-format module) stored no sizes in its
checkpoints; they are read, N and K from the neighbour table and L from the run's
config.json (or, without one, from the width of `own_paths`). Format 2 adds `schema_version`,
`N`, `K` and `L` to every checkpoint. Records are the same in both.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from conceptweb.errors import ConceptwebError

FORMAT = "conceptweb-run"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)

# run.json
KINDS = ("conet", "llm")
STATUS_RUNNING = "running"
STATUS_FINISHED = "finished"
STATUS_INTERRUPTED = "interrupted"

# phases and splits written into the records (heating phases carry the operator's name)
PHASE_RL = "rl"
PHASE_SFT = "sft"
SPLIT_TRAIN = "train"
SPLIT_HELDOUT = "heldout"
SPLIT_NEW = "new"

# -- records ------------------------------------------------------------------------------------
# metrics.parquet: one row per step. The shared columns mean the same in CoNet and LLM runs
# (lengths in steps for CoNet, in tokens for LLMs); each kind adds its own.
_LEAD = ("step", "phase", "reward_mean", "len_correct_mean", "len_mean", "entropy_mean")
_DIVERSITY = ("n_distinct_correct_mean", "path_entropy_mean")  # of the correct solutions
SHARED_METRIC_COLUMNS = (
    *_LEAD,
    "n_solved",
    *_DIVERSITY,
    "loss",
    "grad_norm",
    "n_heat_problems",
    "time_s",
)
UPDATE_COLUMNS = ("loss", "grad_norm", "clip_frac", "kl")  # from the CoNet update step
CONET_METRIC_COLUMNS = (
    *_LEAD,
    "entropy_visited",
    "n_solved",
    *_DIVERSITY,
    "new_acc_mean",  # only in runs with new (SFT) problems
    *UPDATE_COLUMNS,
    "n_heat_problems",
    "time_s",
)
LLM_METRIC_COLUMNS = (
    *_LEAD,
    "n_solved",
    "n_sampled",
    "n_completions",
    "truncated_rate",  # fraction of the step's completions cut at the token limit
    *_DIVERSITY,
    "sentinel_accuracy",  # mean accuracy of the sentinel set evaluated after this step
    "trl_reward",
    "loss",
    "grad_norm",
    "learning_rate",
    "n_heat_problems",
    "trl_logged",  # TRL's log for the step was attached (false: the run stopped before it)
    "time_s",
)
DETECTOR_PREFIX = "det_"  # the trigger's decision (det_fire) and evidence, after the columns above

# problems.parquet: one row per (step, problem)
_PROBLEM_KEYS = ("step", "problem", "split")
_PROBLEM_LENGTHS = ("len_correct_mean", "len_mean", "n_distinct_correct", "path_entropy")
SHARED_PROBLEM_COLUMNS = (*_PROBLEM_KEYS, "accuracy", *_PROBLEM_LENGTHS)
CONET_PROBLEM_COLUMNS = SHARED_PROBLEM_COLUMNS
LLM_PROBLEM_COLUMNS = (
    *_PROBLEM_KEYS,
    "phase",
    "accuracy",
    "n",
    "n_correct",
    *_PROBLEM_LENGTHS,
    "truncated_rate",  # fraction of the problem's n completions cut at the token limit
)
# eval.parquet: one row per (evaluation step, split, problem)
EVAL_COLUMNS = (
    "step",
    "split",
    "problem",
    "accuracy",
    "n_correct",
    "G",
    "len_correct_mean",
    "n_distinct_correct",
)


# -- checkpoints --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArraySpec:
    """One array of a checkpoint: name, dtype kind ('i', 'f', 'U'), symbolic shape, meaning.

    Shape symbols: N nodes, K neighbours, L maximum walk length (L1 = L + 1), Q training
    problems, H held-out problems, Qn new problems, P = Q + Qn tracked problems; lower-case
    symbols are free lengths.
    """

    name: str
    kind: str
    shape: tuple[str, ...]
    doc: str
    group: str = "policy"  # policy: what analysis reads; state: what resume needs


CHECKPOINT_ARRAYS: tuple[ArraySpec, ...] = (
    ArraySpec("schema_version", "i", (), "checkpoint schema version (absent in format 1)"),
    ArraySpec("N", "i", (), "number of nodes (absent in format 1)"),
    ArraySpec("K", "i", (), "neighbours per node (absent in format 1)"),
    ArraySpec("L", "i", (), "maximum walk length (absent in format 1)"),
    ArraySpec("step", "i", (), "updates applied to the policy"),
    ArraySpec("temperature", "f", (), "pi(.|i) = softmax(logits[i] / temperature)"),
    ArraySpec("neighbors", "i", ("N", "K"), "node i steps to neighbors[i, k] with action k"),
    ArraySpec("logits", "f", ("N", "K"), "the policy's logits"),
    ArraySpec("sources", "i", ("Q",), "start node of each training problem"),
    ArraySpec("targets", "i", ("Q",), "answer node of each training problem"),
    ArraySpec("heldout_sources", "i", ("H",), "start nodes of the held-out problems"),
    ArraySpec("heldout_targets", "i", ("H",), "answer nodes of the held-out problems"),
    ArraySpec("new_sources", "i", ("Qn",), "start nodes of new (SFT) problems"),
    ArraySpec("new_targets", "i", ("Qn",), "answer nodes of new (SFT) problems"),
    ArraySpec("rng_state", "U", (), "the rollout generator's state (JSON)", "state"),
    ArraySpec("n_heats", "i", (), "how many times the trigger has fired", "state"),
    ArraySpec("heat_start", "i", (), "first heating step (-1: none)", "state"),
    ArraySpec("heat_until", "i", (), "last heating step (-1: none)", "state"),
    ArraySpec("heat_problems", "i", ("h",), "tracked problems being heated", "state"),
    ArraySpec(
        "own_paths", "i", ("P", "L1"), "latest own successful walk per problem, -1 padded", "state"
    ),
    ArraySpec("sft_problems", "i", ("s",), "tracked problems of the initial SFT phase", "state"),
    ArraySpec("rl_adam_m", "f", ("N", "K"), "RL Adam first moment", "state"),
    ArraySpec("rl_adam_v", "f", ("N", "K"), "RL Adam second moment", "state"),
    ArraySpec("rl_adam_t", "i", (), "RL Adam step count", "state"),
    ArraySpec("sft_adam_m", "f", ("N", "K"), "SFT Adam (while SFT steps remain)", "optional"),
    ArraySpec("sft_adam_v", "f", ("N", "K"), "", "optional"),
    ArraySpec("sft_adam_t", "i", (), "", "optional"),
    ArraySpec("heat_adam_m", "f", ("N", "K"), "heating Adam (while heating)", "optional"),
    ArraySpec("heat_adam_v", "f", ("N", "K"), "", "optional"),
    ArraySpec("heat_adam_t", "i", (), "", "optional"),
    ArraySpec("heat_lr", "f", (), "heating Adam's learning rate", "optional"),
    ArraySpec(
        "estimator_state",
        "f",
        ("b",),
        "the estimator's running state (REINFORCE's per-problem baseline)",
        "optional",
    ),
)
CHECKPOINT_SCHEMA_VERSION = 2
_SPECS = {s.name: s for s in CHECKPOINT_ARRAYS}
_SIZES = ("schema_version", "N", "K", "L")
_EMPTY = np.zeros(0, dtype=np.int32)


@dataclass(frozen=True, eq=False)
class AdamState:
    """An Adam optimiser's moments, step count and (for heating) learning rate."""

    m: np.ndarray
    v: np.ndarray
    t: int
    lr: float | None = None


@dataclass(frozen=True, eq=False)
class TrainerArrays:
    """The part of a checkpoint that only resuming a run needs."""

    rng_state: str
    n_heats: int
    heat_start: int
    heat_until: int
    heat_problems: np.ndarray
    own_paths: np.ndarray
    sft_problems: np.ndarray
    rl_adam: AdamState
    sft_adam: AdamState | None = None
    heat_adam: AdamState | None = None
    estimator_state: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """A CoNet checkpoint: the policy, its world, and (optionally) the trainer's state.

    Analysis needs the policy part only; `trainer` is None for checkpoints written by hand or
    by tools that only record a policy. `L` is None only for a format-1 checkpoint read
    without its run's config and without `own_paths`.
    """

    step: int
    neighbors: np.ndarray
    logits: np.ndarray
    sources: np.ndarray
    targets: np.ndarray
    L: int | None
    temperature: float = 1.0
    heldout_sources: np.ndarray = field(default_factory=lambda: _EMPTY)
    heldout_targets: np.ndarray = field(default_factory=lambda: _EMPTY)
    new_sources: np.ndarray = field(default_factory=lambda: _EMPTY)
    new_targets: np.ndarray = field(default_factory=lambda: _EMPTY)
    trainer: TrainerArrays | None = None
    schema_version: int = CHECKPOINT_SCHEMA_VERSION

    @property
    def N(self) -> int:
        return int(self.neighbors.shape[0])

    @property
    def K(self) -> int:
        return int(self.neighbors.shape[1])

    def require_trainer(self, where: str) -> TrainerArrays:
        """The trainer's state, or a clear error if this checkpoint holds only a policy."""
        if self.trainer is None:
            raise ConceptwebError(f"checkpoint {where} holds no trainer state; it cannot resume")
        return self.trainer

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The checkpoint as named arrays in the current schema (what the .npz file holds)."""
        if self.L is None:
            raise ConceptwebError("a checkpoint needs its maximum walk length L to be saved")
        a: dict[str, np.ndarray] = {
            "schema_version": np.array(CHECKPOINT_SCHEMA_VERSION),
            "N": np.array(self.N),
            "K": np.array(self.K),
            "L": np.array(self.L),
            "neighbors": self.neighbors,
            "sources": self.sources,
            "targets": self.targets,
            "heldout_sources": self.heldout_sources,
            "heldout_targets": self.heldout_targets,
            "new_sources": self.new_sources,
            "new_targets": self.new_targets,
            "logits": self.logits,
            "step": np.array(self.step),
            "temperature": np.array(self.temperature),
        }
        tr = self.trainer
        if tr is not None:
            a.update(
                {
                    "rng_state": np.array(tr.rng_state),
                    "n_heats": np.array(tr.n_heats),
                    "heat_start": np.array(tr.heat_start),
                    "heat_until": np.array(tr.heat_until),
                    "heat_problems": tr.heat_problems,
                    "own_paths": _compact_paths(tr.own_paths, self.N),
                    "sft_problems": tr.sft_problems,
                }
            )
            for prefix, st in (("rl", tr.rl_adam), ("sft", tr.sft_adam), ("heat", tr.heat_adam)):
                if st is not None:
                    a.update({f"{prefix}_adam_m": st.m, f"{prefix}_adam_v": st.v})
                    a[f"{prefix}_adam_t"] = np.array(st.t)
            if tr.heat_adam is not None and tr.heat_adam.lr is not None:
                a["heat_lr"] = np.array(tr.heat_adam.lr)
            if tr.estimator_state is not None:
                a["estimator_state"] = np.asarray(tr.estimator_state, dtype=np.float64)
        check_arrays(a, "being saved")
        return a

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, np.ndarray], where: str, config_L: int | None = None
    ) -> Checkpoint:
        """Read a checkpoint of any readable schema; errors name the array and `where` it is.

        config_L: the run's L from config.json, used for format-1 checkpoints (no stored L).
        """
        version = int(arrays["schema_version"]) if "schema_version" in arrays else 1
        if version not in READABLE_VERSIONS:
            raise ConceptwebError(
                f"checkpoint {where} has schema version {version}; this conceptweb reads "
                f"versions {', '.join(map(str, READABLE_VERSIONS))}"
            )
        if version == 1:
            arrays = _upgrade_v1(arrays, config_L)
        check_arrays(arrays, where)
        a = arrays
        L = int(a["L"]) if "L" in a else None
        trainer = None
        if all(s.name in a for s in CHECKPOINT_ARRAYS if s.group == "state"):
            trainer = TrainerArrays(
                rng_state=str(a["rng_state"]),
                n_heats=int(a["n_heats"]),
                heat_start=int(a["heat_start"]),
                heat_until=int(a["heat_until"]),
                heat_problems=np.array(a["heat_problems"], dtype=np.int64),
                own_paths=np.array(a["own_paths"], dtype=np.int32),
                sft_problems=np.array(a["sft_problems"], dtype=np.int64),
                rl_adam=_adam(a, "rl"),
                sft_adam=_adam(a, "sft") if "sft_adam_m" in a else None,
                heat_adam=_adam(a, "heat") if "heat_adam_m" in a else None,
                estimator_state=(
                    np.array(a["estimator_state"], dtype=np.float64)
                    if "estimator_state" in a
                    else None
                ),
            )
        return cls(
            step=int(a["step"]) if "step" in a else -1,
            neighbors=np.asarray(a["neighbors"], dtype=np.int32),
            logits=np.array(a["logits"], dtype=np.float64),
            sources=np.asarray(a["sources"], dtype=np.int32),
            targets=np.asarray(a["targets"], dtype=np.int32),
            L=L,
            temperature=float(a["temperature"]) if "temperature" in a else 1.0,
            heldout_sources=np.asarray(a.get("heldout_sources", _EMPTY), dtype=np.int32),
            heldout_targets=np.asarray(a.get("heldout_targets", _EMPTY), dtype=np.int32),
            new_sources=np.asarray(a.get("new_sources", _EMPTY), dtype=np.int32),
            new_targets=np.asarray(a.get("new_targets", _EMPTY), dtype=np.int32),
            trainer=trainer,
            schema_version=version,
        )


def _adam(a: dict[str, np.ndarray], prefix: str) -> AdamState:
    lr = float(a["heat_lr"]) if prefix == "heat" and "heat_lr" in a else None
    return AdamState(
        np.array(a[f"{prefix}_adam_m"], dtype=np.float64),
        np.array(a[f"{prefix}_adam_v"], dtype=np.float64),
        int(a[f"{prefix}_adam_t"]),
        lr,
    )


def _compact_paths(own_paths: np.ndarray, N: int) -> np.ndarray:
    """own_paths as int16 when every node fits (they are much of a checkpoint's size)."""
    return own_paths.astype(np.int16) if N < 2**15 else own_paths.astype(np.int32)


def _upgrade_v1(arrays: dict[str, np.ndarray], config_L: int | None) -> dict[str, np.ndarray]:
    """A format-1 checkpoint's arrays with the sizes format 2 stores explicitly."""
    a = dict(arrays)
    if "neighbors" in a and np.ndim(a["neighbors"]) == 2:
        a["N"], a["K"] = (np.array(n) for n in np.shape(a["neighbors"]))
    if config_L is not None:
        a["L"] = np.array(config_L)
    elif "own_paths" in a and np.ndim(a["own_paths"]) == 2:
        a["L"] = np.array(np.shape(a["own_paths"])[1] - 1)
    return a


def check_arrays(arrays: dict[str, np.ndarray], where: str) -> dict[str, int]:
    """Check names, dtypes and shapes against CHECKPOINT_ARRAYS; return the sizes bound.

    The policy arrays (neighbors, logits, sources, targets) are required; the trainer's state
    is all or nothing; unknown names are errors.
    """
    unknown = sorted(set(arrays) - set(_SPECS))
    if unknown:
        raise ConceptwebError(f"checkpoint {where} has unknown arrays: {', '.join(unknown)}")
    missing = [k for k in ("neighbors", "logits", "sources", "targets") if k not in arrays]
    if missing:
        raise ConceptwebError(
            f"checkpoint {where} lacks {', '.join(missing)} (older or foreign format?)"
        )
    state = [s.name for s in CHECKPOINT_ARRAYS if s.group == "state"]
    have = [n for n in state if n in arrays]
    if have and len(have) != len(state):
        lacking = ", ".join(n for n in state if n not in arrays)
        raise ConceptwebError(f"checkpoint {where} has a partial trainer state (lacks {lacking})")
    sizes: dict[str, int] = {}
    for name in _SIZES:
        if name in arrays:
            sizes[name] = int(arrays[name])
    if "L" in sizes:
        sizes["L1"] = sizes["L"] + 1
    for name, arr in arrays.items():
        spec = _SPECS[name]
        arr = np.asarray(arr)
        if arr.dtype.kind != spec.kind and not (spec.kind == "f" and arr.dtype.kind == "i"):
            raise ConceptwebError(
                f"checkpoint {where}: {name} has dtype {arr.dtype}, expected kind {spec.kind!r}"
            )
        if arr.ndim != len(spec.shape):
            raise ConceptwebError(
                f"checkpoint {where}: {name} has {arr.ndim} dimensions, expected {spec.shape}"
            )
        for sym, n in zip(spec.shape, arr.shape, strict=True):
            want = sizes.setdefault(sym, int(n))
            if want != n:
                raise ConceptwebError(
                    f"checkpoint {where}: {name} has shape {arr.shape}, but {sym} = {want}"
                )
    if "P" in sizes and sizes["P"] != sizes.get("Q", 0) + sizes.get("Qn", 0):
        raise ConceptwebError(f"checkpoint {where}: own_paths has a row per problem missing")
    return sizes


# -- results ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainResult:
    """What a finished (or stopped) training call reports: where, how far, what happened."""

    path: str | None
    status: str
    steps_done: int
    steps_total: int
    n_heats: int
    heat_steps: tuple[int, int] | None  # (first, last) heating step of the latest heat
    final_metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        d = asdict(self)
        d["heat_steps"] = list(self.heat_steps) if self.heat_steps else None
        d["final_metrics"] = json.loads(json.dumps(self.final_metrics, default=_plain))
        return d


def _plain(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
