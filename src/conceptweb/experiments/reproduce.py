"""The reproduction suite: the paper's CoNet claims over seeds, a phase diagram, and the annealing ablation.

`run_suite` makes every run it needs (in a process pool, skipping finished ones, resuming
interrupted ones), analyses each, and gathers the numbers into tables that the report layer
turns into figures and a report. Nothing here draws.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from conceptweb.algorithms.heating import CONTROL_HEATING, PAPER_HEATING
from conceptweb.analysis.stats import Interval, seed_interval
from conceptweb.config import config_to_dict, deep_merge, resolve_config, validate_config
from conceptweb.errors import ConceptwebError
from conceptweb.experiments.ablation import (
    DEFAULT_ARMS,
    PLAIN,
    Ablation,
    AblationConfig,
    arm_name,
)
from conceptweb.experiments.executor import Backend, execute, execute_batched
from conceptweb.experiments.runs import replica_shape, train_batch, train_run
from conceptweb.rundir import RunDir, atomic_write_json, atomic_write_table

CORE_PRESETS = ("sparse", "paper", "frustrated", "pretrained")
SECTIONS = ("core", "phase", "ablation")


class SuiteConfig(BaseModel):
    """Sizes of the reproduction suite; `quick()` is the few-minutes version with the same figures."""

    model_config = ConfigDict(extra="forbid")

    quick: bool = False
    N: int = Field(800, ge=10, description="nodes of every graph in the suite")
    core_presets: list[str] = Field(
        default_factory=lambda: list(CORE_PRESETS),
        description="presets of the core section (the v3 claims need only sparse)",
    )
    seeds: int = Field(5, ge=1, description="seeds per core preset")
    steps: int = Field(
        600, ge=20, description="steps of the sparse, frustrated and pretrained runs"
    )
    paper_steps: int = Field(800, ge=20, description="steps of the paper-size runs")
    sft_new: int = Field(16, ge=1, description="new problems of the SFT forgetting experiment")
    sft_steps: int = Field(50, ge=1)
    recovery_steps: int = Field(100, ge=1, description="RLVR steps after SFT")
    phase_K: list[int] = Field(default_factory=lambda: [4, 6, 8, 12, 16, 40])
    phase_Q: list[int] = Field(default_factory=lambda: [32, 128, 512])
    phase_seeds: int = Field(3, ge=1)
    phase_steps: int = Field(600, ge=20)
    ablation_presets: list[str] = Field(default_factory=lambda: ["sparse", "frustrated"])
    ablation_seeds: int = Field(16, ge=2)
    ablation_arms: list[str] = Field(default_factory=lambda: list(DEFAULT_ARMS))
    sections: list[str] = Field(default_factory=lambda: list(SECTIONS))

    @field_validator("core_presets")
    @classmethod
    def _known_presets(cls, presets: list[str]) -> list[str]:
        unknown = [p for p in presets if p not in CORE_PRESETS]
        if unknown or not presets:
            raise ValueError(f"core presets must be among {', '.join(CORE_PRESETS)}")
        return presets

    @classmethod
    def quick_version(cls, **overrides: Any) -> SuiteConfig:
        base = {
            "quick": True,
            "N": 300,
            "seeds": 3,
            "steps": 300,
            "paper_steps": 300,
            "sft_new": 16,  # as the full suite: 30 steps on 8 problems cannot unsolve 10%
            "sft_steps": 50,
            "recovery_steps": 60,
            "phase_K": [4, 6, 8, 12, 16, 40],
            "phase_Q": [32, 128],
            "phase_seeds": 2,
            "phase_steps": 200,
            "ablation_seeds": 4,
            "ablation_arms": [
                PLAIN,
                arm_name(PAPER_HEATING, "auto"),
                arm_name(PAPER_HEATING, "mid"),
                arm_name(CONTROL_HEATING, "auto"),
            ],
        }
        return cls(**{**base, **overrides})

    @classmethod
    def with_sizes(cls, quick: bool, sizes: list[str], **overrides: Any) -> SuiteConfig:
        """The full (or quick) suite with KEY=VALUE size overrides (lists comma-separated)."""
        values: dict[str, Any] = {}
        for item in sizes:
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or key not in cls.model_fields or key in ("quick", "sections"):
                known = ", ".join(k for k in cls.model_fields if k not in ("quick", "sections"))
                raise ConceptwebError(
                    f"--size expects KEY=VALUE with KEY one of {known}; got {item!r}"
                )
            field_type = str(cls.model_fields[key].annotation)
            values[key] = (
                [v.strip() for v in value.split(",") if v.strip()]
                if "list" in field_type
                else value
            )
        base = cls.quick_version(**overrides) if quick else cls(**overrides)
        try:
            return cls.model_validate({**base.model_dump(), **values})
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            raise ConceptwebError(f"--size {where}: {err['msg']}") from None


@dataclass(frozen=True)
class Job:
    """One run of the suite: where it goes and what it is."""

    group: str  # "core", "sft" or "phase"
    label: str  # preset name, or K/Q for the phase diagram
    seed: int
    path: str
    config: dict[str, Any]
    K: int = 0
    Q: int = 0


def _cfg(preset: str, suite: SuiteConfig, seed: int, steps: int, **extra: Any) -> dict[str, Any]:
    sets = [f"model.N={suite.N}", f"steps={steps}", f"seed={seed}"]
    cfg = resolve_config(preset, None, sets)
    data = config_to_dict(cfg)
    return config_to_dict(validate_config(deep_merge(data, extra))) if extra else data


def plan_core(suite: SuiteConfig, out: Path) -> list[Job]:
    jobs = []
    for preset in suite.core_presets:
        steps = suite.paper_steps if preset == "paper" else suite.steps
        for seed in range(suite.seeds):
            path = out / "runs" / preset / f"seed{seed}"
            jobs.append(Job("core", preset, seed, str(path), _cfg(preset, suite, seed, steps)))
    return jobs


def plan_sft(suite: SuiteConfig, out: Path) -> list[Job]:
    """SFT on new problems from each sparse run's final policy, then RLVR again."""
    jobs = []
    for seed in range(suite.seeds):
        source = out / "runs" / "sparse" / f"seed{seed}"
        base = _cfg("sparse", suite, seed, suite.steps)
        cfg = deep_merge(
            base,
            {
                "steps": suite.sft_steps + suite.recovery_steps,
                "sft": {"steps": suite.sft_steps, "problems": f"new:{suite.sft_new}"},
                "init_from": str(source.resolve()),
                "init_step": None,
            },
        )
        path = out / "runs" / "sft" / f"seed{seed}"
        jobs.append(Job("sft", "sparse+sft", seed, str(path), config_to_dict(validate_config(cfg))))
    return jobs


def plan_phase(suite: SuiteConfig, out: Path) -> list[Job]:
    jobs = []
    for K in suite.phase_K:
        for Q in suite.phase_Q:
            for seed in range(suite.phase_seeds):
                sets = [
                    f"model.N={suite.N}",
                    f"model.K={K}",
                    f"problems.Q={Q}",
                    f"steps={suite.phase_steps}",
                    f"seed={seed}",
                    "checkpoint.every=20",
                ]
                cfg = resolve_config("sparse", None, sets)
                path = out / "phase" / f"K{K}_Q{Q}" / f"seed{seed}"
                jobs.append(
                    Job("phase", f"K={K} Q={Q}", seed, str(path), config_to_dict(cfg), K, Q)
                )
    return jobs


def _is_done(job: Job) -> bool:
    """Finished and analysed: its summary can be read without training or analysing."""
    path = Path(job.path)
    if not (path / "summary.json").is_file() or not (path / "topology.parquet").is_file():
        return False
    return RunDir.open(path).read_meta().get("status") == "finished"


def run_job(job: Job) -> dict[str, Any]:
    """Train (or resume) one run and analyse it, unless done; returns its summary. Runs in a
    worker process."""
    from conceptweb.analysis.summary import analyze, write_summary

    path = Path(job.path)
    finished = _finished(path)
    if not finished:
        resume = (path / "run.json").is_file()
        train_run(None if resume else validate_config(job.config), path, resume=resume)
    run = RunDir.open(path)
    topology = path / "topology.parquet"
    if run.summary_path.is_file() and topology.is_file() and finished:
        return json.loads(run.summary_path.read_text())
    analysis = analyze(run)
    write_summary(run, analysis.summary)
    run.write_table("topology", analysis.topology)
    return json.loads(run.summary_path.read_text())


def run_batch_job(jobs: list[Job]) -> list[dict[str, Any]]:
    """Several runs trained as batched replicas in one worker (`train_batch`; those not
    finished yet), then each analysed as `run_job` does; their summaries in order."""
    todo = [j for j in jobs if not _finished(Path(j.path))]
    if todo:
        train_batch(
            [
                None if Path(j.path, "run.json").is_file() else validate_config(j.config)
                for j in todo
            ],
            [j.path for j in todo],
        )
    return [run_job(j) for j in jobs]


def _finished(path: Path) -> bool:
    """Whether the run directory `path` holds a finished run."""
    if not (path / "run.json").is_file():
        return False
    return RunDir.open(path).read_meta().get("status") == "finished"


def run_jobs(
    jobs: list[Job],
    workers: int,
    on_done: Callable[[Job], None] | None = None,
    backend: Backend | None = None,
    batch: int = 1,
) -> dict[str, dict[str, Any]]:
    """Run jobs on `backend` (default: a process pool); returns {path: summary}. `batch` > 1:
    up to that many runs of the same sizes train as batched replicas in one worker."""
    out: dict[str, dict[str, Any]] = {}
    by_path = {job.path: job for job in jobs}

    def on_result(path: Any, summary: dict[str, Any]) -> None:
        out[path] = summary
        if on_done:
            on_done(by_path[path])

    run_each(by_path, workers, on_result, lambda path: path, backend, batch)
    return out


def run_each(
    jobs: dict[Any, Job],
    workers: int | None,
    on_result: Callable[[Any, dict[str, Any]], None],
    run_path: Callable[[Any], str | Path],
    backend: Backend | None,
    batch: int,
) -> None:
    """Train and analyse every job (`run_job`), or `batch` at a time (`run_batch_job`)."""
    if batch <= 1:
        execute(run_job, jobs, workers, on_result, run_path, backend)
        return
    shape = lambda job: replica_shape(job.config)  # noqa: E731
    execute_batched(run_batch_job, jobs, workers, on_result, run_path, backend, batch, shape)


def flatten_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """{'two_stage': {'knee_step': 1}} -> {'two_stage.knee_step': 1}, scalars only."""
    flat: dict[str, Any] = {}
    for section, values in summary.items():
        if isinstance(values, dict):
            for key, value in values.items():
                if isinstance(value, bool | int | float | str) or value is None:
                    flat[f"{section}.{key}"] = value
        elif isinstance(values, bool | int | float | str):
            flat[section] = values
    return flat


def final_reward(run: RunDir, frac: float = 0.1) -> float:
    m = run.read_metrics()
    m = m[m["phase"] == "rl"]
    n = max(1, int(round(frac * len(m))))
    return float(m["reward_mean"].iloc[-n:].mean())


def is_plateau(
    run: RunDir, level: float = 0.85, window_frac: float = 0.25, max_gain: float = 0.05
) -> bool:
    """A frustrated plateau: the final reward is below `level` and the late slope would add less
    than `max_gain` over the whole length of the run."""
    m = run.read_metrics()
    m = m[m["phase"] == "rl"]
    n = max(4, int(window_frac * len(m)))
    late = m.iloc[-n:]
    slope = (
        float(np.polyfit(late["step"], late["reward_mean"], 1)[0]) if len(late) >= 4 else math.nan
    )
    return bool(final_reward(run) < level and np.isfinite(slope) and slope * len(m) < max_gain)


def suite_tables(jobs: list[Job], summaries: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per run: group, label, seed, K, Q and the flattened summary plus final reward."""
    rows = []
    for job in jobs:
        if job.path not in summaries:
            continue
        run = RunDir.open(job.path)
        row = {
            "group": job.group,
            "label": job.label,
            "seed": job.seed,
            "K": job.K,
            "Q": job.Q,
            "path": job.path,
            **flatten_summary(summaries[job.path]),
        }
        row["final_reward"] = final_reward(run)
        row["is_plateau"] = is_plateau(run)
        rows.append(row)
    return pd.DataFrame(rows)


class Suite:
    """A reproduction directory: suite.json, runs/, phase/, ablation/, tables, figures, report."""

    def __init__(self, out: str | Path, cfg: SuiteConfig) -> None:
        self.out = Path(out)
        self.cfg = cfg

    @classmethod
    def open_or_create(cls, out: str | Path, cfg: SuiteConfig) -> Suite:
        out = Path(out)
        saved = out / "suite.json"
        if saved.is_file():
            old = SuiteConfig.model_validate(json.loads(saved.read_text()))
            if old.model_dump(exclude={"sections"}) != cfg.model_dump(exclude={"sections"}):
                raise ConceptwebError(
                    f"{out} holds a reproduction with other settings (quick={old.quick}); use another --out"
                )
        elif out.exists() and any(out.iterdir()):
            raise ConceptwebError(f"{out} exists and is not a reproduction directory")
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(saved, cfg.model_dump(mode="json"))
        return cls(out, cfg)

    def all_jobs(self) -> dict[str, list[Job]]:
        plans: dict[str, list[Job]] = {}
        if "core" in self.cfg.sections:
            plans["core"] = plan_core(self.cfg, self.out)
            plans["sft"] = plan_sft(self.cfg, self.out)
        if "phase" in self.cfg.sections:
            plans["phase"] = plan_phase(self.cfg, self.out)
        return plans

    def ablation(self, preset: str) -> Ablation:
        # only the overrides that differ from the preset, so that a standalone
        # `conceptweb ablate --preset P` of the same size is the same ablation (and can be reused)
        base = resolve_config(preset)
        sets = [f"model.N={self.cfg.N}"] if base.model.N != self.cfg.N else []
        sets += [f"steps={self.cfg.steps}"] if base.steps != self.cfg.steps else []
        cfg = AblationConfig(
            preset=preset,
            sets=sets,
            seeds=self.cfg.ablation_seeds,
            arms=self.cfg.ablation_arms,
        )
        return Ablation.open_or_create(self.out / "ablation" / preset, cfg)

    def n_runs(self, pending_only: bool = False) -> int:
        """Runs of the suite; with pending_only, only those not yet finished and analysed."""
        jobs = [j for v in self.all_jobs().values() for j in v]
        n = sum(not _is_done(j) for j in jobs) if pending_only else len(jobs)
        if "ablation" in self.cfg.sections:
            per = self.cfg.ablation_seeds * len(self.cfg.ablation_arms)
            for preset in self.cfg.ablation_presets:
                n += len(self.ablation(preset).pending()) if pending_only else per
        return n

    def run(
        self,
        workers: int | None = None,
        on_done: Callable[[str], None] | None = None,
        backend: Backend | None = None,
        batch: int = 1,
    ) -> pd.DataFrame:
        """Make and analyse every run on `backend` (default: a process pool); write runs.parquet
        (one row per run) and return it. `batch` > 1: runs of the same sizes train up to that
        many at a time as batched replicas in one worker (core, phase diagram, ablation)."""
        workers = workers or os.cpu_count() or 1
        plans = self.all_jobs()
        summaries: dict[str, dict[str, Any]] = {}

        def done(job: Job) -> None:
            if on_done:
                on_done(f"{job.group} {job.label} seed {job.seed}")

        for jobs in (plans.get("core", []) + plans.get("phase", []), plans.get("sft", [])):
            todo = [j for j in jobs if not _is_done(j)]
            summaries.update(
                {
                    j.path: json.loads(Path(j.path, "summary.json").read_text())
                    for j in jobs
                    if j not in todo
                }
            )
            summaries.update(run_jobs(todo, workers, done, backend, batch))
        all_jobs = [j for v in plans.values() for j in v]
        table = suite_tables(all_jobs, summaries)
        if len(table):
            atomic_write_table(self.out / "runs.parquet", table)
        if "ablation" in self.cfg.sections:
            for preset in self.cfg.ablation_presets:
                abl = self.ablation(preset)
                abl.run(
                    workers=workers,
                    on_done=lambda arm, seed, i, n, p=preset: (
                        on_done and on_done(f"ablation {p} {arm} seed {seed}")
                    ),
                    backend=backend,
                    batch=batch,
                )
        return table

    def read_runs(self) -> pd.DataFrame:
        path = self.out / "runs.parquet"
        return pd.read_parquet(path) if path.is_file() else pd.DataFrame()


# -- the paper's claims, judged over seeds ---------------------------------------------------------
REPRODUCED_FRAC = 0.8  # a per-seed criterion met in at least this fraction of seeds: reproduced
PARTLY_FRAC = 0.2  # ... in at least this fraction (but fewer than REPRODUCED_FRAC): partly


@dataclass(frozen=True)
class Measure:
    """A number reported beside a claim: a label, a column of the runs table (or a function of
    the group's rows), the range of the quantity (for its interval) and a format spec."""

    label: str
    column: str | Callable[[pd.DataFrame], np.ndarray]
    bounds: str = "none"  # "fraction" [0, 1], "step" [0, steps], "count" [0, inf), "none"
    spec: str = ".3g"

    def values(self, rows: pd.DataFrame) -> np.ndarray:
        return self.column(rows) if callable(self.column) else _col(rows, self.column)

    def interval(self, rows: pd.DataFrame, steps: int) -> Interval:
        lims = {"fraction": (0.0, 1.0), "step": (0.0, float(steps)), "count": (0.0, math.inf)}
        return seed_interval(self.values(rows), lims.get(self.bounds))


@dataclass(frozen=True)
class ClaimSpec:
    """One row of the claims table: which runs, the per-seed rule and its threshold, what to
    report. The rule is a flag column of the runs table (met where set) or a function
    (rows, threshold, steps) -> met. `quick_note(cfg)` says why the quick suite cannot test the
    claim (None: it can)."""

    key: str
    claim: str
    criterion: str
    group: str  # "sparse" or "paper" (core runs of that preset) or "sft"
    rule: str | Callable[[pd.DataFrame, float, int], np.ndarray]
    threshold: float
    measures: tuple[Measure, ...]
    quick_note: Callable[[SuiteConfig], str | None] = lambda cfg: None

    def met(self, rows: pd.DataFrame, steps: int) -> np.ndarray:
        """Per seed (row): whether the rule holds."""
        if isinstance(self.rule, str):
            return _flag(rows, self.rule)
        return self.rule(rows, self.threshold, steps)


@dataclass
class Claim:
    """A claim judged on a suite: the verdict, seeds meeting the rule, and the measured numbers."""

    key: str
    claim: str
    criterion: str
    verdict: str
    n_met: int = 0
    n_seeds: int = 0
    measured: list[tuple[str, Interval, str]] = field(default_factory=list)
    text: str = ""  # measured numbers already written as text (ablation claims)


def _verdict(met: np.ndarray) -> tuple[str, int, int]:
    met = np.asarray(met, dtype=bool)
    n, k = int(met.size), int(met.sum())
    if n == 0:
        return "not measured", 0, 0
    frac = k / n
    if frac >= REPRODUCED_FRAC:
        return "reproduced", k, n
    if frac >= PARTLY_FRAC:
        return "partly reproduced", k, n
    return "not reproduced", k, n


def _col(df: pd.DataFrame, name: str) -> np.ndarray:
    if name not in df:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=np.float64)


def _flag(df: pd.DataFrame, name: str) -> np.ndarray:
    if name not in df:
        return np.zeros(len(df), dtype=bool)
    values = df[name].to_numpy(dtype=object)
    return np.array([v is not None and v == v and bool(v) for v in values], dtype=bool)


def _spread(df: pd.DataFrame) -> np.ndarray:
    """Per seed: the distance between the earliest and latest of the three frustration candidates."""
    keys = ("forgetting_peak_step", "v_bottom_step", "knee_step")
    trio = np.vstack([_col(df, f"frustration_candidates.{k}") for k in keys])
    spread = np.full(trio.shape[1], np.nan)
    ok = np.isfinite(trio).all(axis=0)
    spread[ok] = trio[:, ok].max(axis=0) - trio[:, ok].min(axis=0)
    return spread


def _not_published_size(cfg: SuiteConfig) -> str | None:
    return None if cfg.N >= 800 else f"the quick suite uses N={cfg.N}, not the published N=800"


def _sft_too_small(cfg: SuiteConfig) -> str | None:
    if cfg.sft_steps < 40 or cfg.sft_new < 16:
        return f"{cfg.sft_steps} SFT steps on {cfg.sft_new} problems are too few to unsolve 10%"
    return None


def _inverse_trees(d: pd.DataFrame, th: float, steps: int) -> np.ndarray:
    """v3 claim 4 per seed: the map's inverse-trees criterion and >= th of the final web frozen."""
    return (
        (_col(d, "trees.tree_fraction") >= 0.9)
        & (_col(d, "trees.n_multi_input_trees") >= 1)
        & (_col(d, "trees.merged_problems_frac") >= 0.25)
        & (_col(d, "freezing.frozen_frac") >= th)
    )


def _bridge_rupture(d: pd.DataFrame, th: float, steps: int) -> np.ndarray:
    """v3 claim 2 per seed: most lost problems crossed a cut bridge, more often than others."""
    return (_col(d, "forgetting.lost_downstream_of_cut_bridges_frac") >= th) & (
        _col(d, "forgetting.lost_rate_crossing_cut_bridge")
        > _col(d, "forgetting.lost_rate_elsewhere")
    )


V3_CLAIMS: tuple[ClaimSpec, ...] = (  # the paper's third version; criteria: docs/analysis.md
    ClaimSpec(
        "v3_chains",
        "v3: reasoning chains lengthen as the web integrates (sparse preset)",
        "after the length minimum, Spearman rho(giant component size, correct length) >= 0.5 "
        "over >= 5 checkpoints and the length rises >= 5%",
        "sparse",
        "chains.lengthens",
        0.5,
        (
            Measure("rho", "chains.rho", "none", ".2f"),
            Measure("length rise after the minimum", "chains.rise_frac", "none", ".2f"),
        ),
    ),
    ClaimSpec(
        "v3_bridge_rupture",
        "v3: SFT forgets through bridge-node rupture",
        ">= 50% of the problems SFT unsolves crossed a bridge it cut, and the loss rate across "
        "cut bridges exceeds the rate elsewhere",
        "sft",
        _bridge_rupture,
        0.5,
        (
            Measure(
                "lost behind a cut bridge",
                "forgetting.lost_downstream_of_cut_bridges_frac",
                "fraction",
                ".2f",
            ),
            Measure(
                "loss rate across cut bridges",
                "forgetting.lost_rate_crossing_cut_bridge",
                "fraction",
                ".2f",
            ),
            Measure("elsewhere", "forgetting.lost_rate_elsewhere", "fraction", ".2f"),
        ),
        _sft_too_small,
    ),
    ClaimSpec(
        "v3_frustration_before_collapse",
        "v3: frustration drives policy collapse; the forgetting peak precedes the collapse",
        "the peak of F(t) is no later than the collapse onset (diversity >= 20% below its peak)",
        "sparse",
        "collapse_timing.frustration_first",
        0.2,
        (
            Measure("forgetting peak", "collapse_timing.forgetting_peak_step", "step"),
            Measure("collapse onset", "collapse_timing.onset_step", "step"),
        ),
    ),
    ClaimSpec(
        "v3_inverse_trees",
        "v3: the web freezes into multi-input, single-output inverse trees (sparse preset)",
        "final directed web >= 90% tree-like, a tree reached by 2+ starts, >= 25% of greedy paths "
        "merging, and >= 50% of the final web frozen",
        "sparse",
        _inverse_trees,
        0.5,
        (
            Measure("tree-like fraction", "trees.tree_fraction", "fraction", ".2f"),
            Measure("multi-input trees", "trees.n_multi_input_trees", "count"),
            Measure("frozen fraction", "freezing.frozen_frac", "fraction", ".2f"),
        ),
    ),
)
CLAIMS: tuple[ClaimSpec, ...] = (
    ClaimSpec(
        "two_stage",
        "Two-stage learning curve: a fast rise, then a long slow stage (sparse preset)",
        "piecewise-linear fit beats the saturating fit by BIC and the early slope is >= 5x "
        "the late one",
        "sparse",
        "two_stage.is_two_stage",
        5.0,
        (
            Measure("knee at step", "two_stage.knee_step", "step"),
            Measure("slope ratio", "two_stage.slope_ratio", "count"),
        ),
    ),
    ClaimSpec(
        "v_shape",
        "V-shaped length of correct rollouts: first shorter, then longer (sparse preset)",
        "smoothed minimum away from the first/last 10% of steps, a >= 15% fall before it and "
        "a >= 15% rise after",
        "sparse",
        "v_shape.is_v",
        0.15,
        (
            Measure("minimum at step", "v_shape.min_step", "step"),
            Measure("fall", "v_shape.drop_frac", "fraction", ".2f"),
            Measure("rise", "v_shape.rise_frac", "none", ".2f"),
        ),
    ),
    ClaimSpec(
        "sparse_web",
        "The learned concept web is sparse, average degree near 2 (sparse preset)",
        "final web (edges with pi >= 0.5) has <k> within 2 +- 0.25",
        "sparse",
        lambda d, th, steps: np.abs(_col(d, "web.final_avg_degree") - 2.0) <= th,
        0.25,
        (
            Measure("final <k>", "web.final_avg_degree", "count"),
            Measure("components", "web.final_n_components", "count"),
            Measure("giant fraction", "web.final_giant_fraction", "fraction", ".2f"),
        ),
    ),
    ClaimSpec(
        "islands_then_web",
        "Skill islands first, then one web (sparse preset)",
        "the island count peaks in the first quarter of the run and the final giant component "
        "holds >= 50% of web nodes",
        "sparse",
        lambda d, th, steps: (
            (_col(d, "web.peak_islands_step") <= 0.25 * steps)
            & (_col(d, "web.final_giant_fraction") >= th)
        ),
        0.5,
        (
            Measure("islands peak at step", "web.peak_islands_step", "step"),
            Measure("final giant fraction", "web.final_giant_fraction", "fraction", ".2f"),
        ),
    ),
    ClaimSpec(
        "frustration_coincides",
        "The maximally frustrated state: forgetting peaks where the V bottoms out and the "
        "curve kinks",
        "the forgetting peak, the V bottom and the knee lie within 15% of the run of each other",
        "sparse",
        lambda d, th, steps: _spread(d) <= th * steps,
        0.15,
        (
            Measure("forgetting peak", "frustration_candidates.forgetting_peak_step", "step"),
            Measure("V bottom", "frustration_candidates.v_bottom_step", "step"),
            Measure("knee", "frustration_candidates.knee_step", "step"),
        ),
    ),
    ClaimSpec(
        "sft_forgetting",
        "SFT after RLVR forgets solved problems; renewed RLVR recovers them quickly",
        "SFT on new problems unsolves >= 10% of the solved problems and renewed RLVR recovers "
        "within its budget",
        "sft",
        lambda d, th, steps: (
            (_col(d, "forgetting.lost_frac") >= th)
            & np.isfinite(_col(d, "forgetting.recovery_steps"))
        ),
        0.1,
        (
            Measure("lost", "forgetting.lost_frac", "fraction", ".2f"),
            Measure(
                "of those behind a cut bridge",
                "forgetting.lost_downstream_of_cut_bridges_frac",
                "fraction",
                ".2f",
            ),
            Measure("recovery steps", "forgetting.recovery_steps", "count"),
        ),
        _sft_too_small,
    ),
    ClaimSpec(
        "collapse",
        "Policy collapse: the diversity of correct solutions shrinks (sparse preset)",
        "distinct correct paths per problem at the end <= 90% of their value early in training",
        "sparse",
        lambda d, th, steps: (
            _col(d, "collapse.diversity_end") <= th * _col(d, "collapse.diversity_start")
        ),
        0.9,
        (
            Measure("diversity at the start", "collapse.diversity_start", "count"),
            Measure("at the end", "collapse.diversity_end", "count"),
            Measure("leaf entropy at the start", "collapse.leaf_entropy_start", "count"),
            Measure("at the end", "collapse.leaf_entropy_end", "count"),
        ),
    ),
    ClaimSpec(
        "published_sizes",
        "At the published density (paper preset, K=40) the curve is two-stage and the length "
        "V-shaped",
        "both criteria above hold on the paper preset",
        "paper",
        lambda d, th, steps: _flag(d, "two_stage.is_two_stage") & _flag(d, "v_shape.is_v"),
        1.0,
        (
            Measure(
                "two-stage seeds",
                lambda d: _flag(d, "two_stage.is_two_stage").astype(float),
                "fraction",
                ".2f",
            ),
            Measure("V seeds", lambda d: _flag(d, "v_shape.is_v").astype(float), "fraction", ".2f"),
            Measure("final reward", "final_reward", "fraction"),
        ),
        _not_published_size,
    ),
    *V3_CLAIMS,
)

ANNEALING_MIN_SEEDS = (
    8  # fewer paired seeds cannot resolve effects of the size the full suite finds
)


def _rows_of(runs: pd.DataFrame, group: str) -> pd.DataFrame:
    if group == "sft":
        return runs[runs["group"] == "sft"]
    return runs[(runs["group"] == "core") & (runs["label"] == group)]


def judge(spec: ClaimSpec, runs: pd.DataFrame, steps: int, cfg: SuiteConfig | None = None) -> Claim:
    """Judge one claim on the suite's runs: the per-seed rule over seeds, and its measures."""
    rows = _rows_of(runs, spec.group)
    measured = [(m.label, m.interval(rows, steps), m.spec) for m in spec.measures]
    note = spec.quick_note(cfg) if cfg is not None and cfg.quick else None
    met = spec.met(rows, steps) if len(rows) else np.zeros(0, bool)
    verdict, k, n = _verdict(met)
    if note:
        verdict = f"not tested at quick size ({note})"
    return Claim(spec.key, spec.claim, spec.criterion, verdict, k, n, measured)


def evaluate_claims(
    runs: pd.DataFrame,
    steps: int,
    ablation_verdicts: dict[str, dict[str, Any]],
    cfg: SuiteConfig | None = None,
) -> list[Claim]:
    """Judge every claim of CLAIMS (and the annealing claims from the ablation's verdicts)."""
    claims = [judge(spec, runs, steps, cfg) for spec in CLAIMS]
    for preset, info in ablation_verdicts.items():
        verdict = info.get("verdict", "not measured")
        mapped = {"helped": "reproduced", "hurt": "not reproduced (hurt)"}.get(
            verdict, "not reproduced"
        )
        n = int(info.get("n", 0))
        if verdict != "not measured" and n < ANNEALING_MIN_SEEDS:
            mapped = f"not tested at quick size ({n} paired seeds cannot resolve the effect)"
        claims.append(
            Claim(
                f"annealing_{preset}",
                f"Annealed-RLVR (SFT heating at the detected state) beats plain RLVR ({preset})",
                "paired difference in final train accuracy > 0 at the 5% level (paired t-test, "
                "Holm-corrected over the ablation's arms)",
                mapped if verdict != "not measured" else verdict,
                int(verdict == "helped"),
                n,
                text=info.get("measured", ""),
            )
        )
    return claims


def phase_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (K, Q) of the phase diagram: means with 95% bootstrap intervals (none under 3
    seeds) and fractions over seeds."""
    ph = runs[runs["group"] == "phase"]
    rows = []
    for (K, Q), g in ph.groupby(["K", "Q"]):
        iv = seed_interval(g["final_reward"].to_numpy(), bounds=(0.0, 1.0))
        m, lo, hi = iv.mean, iv.low, iv.high
        rows.append(
            {
                "K": int(K),
                "Q": int(Q),
                "n_seeds": len(g),
                "final_reward": m,
                "final_reward_lo": lo,
                "final_reward_hi": hi,
                "frac_two_stage": float(_flag(g, "two_stage.is_two_stage").mean()),
                "frac_v": float(_flag(g, "v_shape.is_v").mean()),
                "frac_plateau": float(_flag(g, "is_plateau").mean()),
                "forgetting_events": float(np.nanmean(_col(g, "frustration.n_forgetting_events"))),
                "final_avg_degree": float(np.nanmean(_col(g, "web.final_avg_degree"))),
            }
        )
    return pd.DataFrame(rows)
