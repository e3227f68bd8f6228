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
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from conceptweb.config import config_to_dict, deep_merge, resolve_config, validate_config
from conceptweb.errors import ConceptwebError
from conceptweb.experiments.ablation import DEFAULT_ARMS, Ablation, AblationConfig
from conceptweb.experiments.runs import train_run
from conceptweb.rundir import RunDir, atomic_write_json, atomic_write_table

CORE_PRESETS = ("sparse", "paper", "frustrated", "pretrained")
SECTIONS = ("core", "phase", "ablation")


class SuiteConfig(BaseModel):
    """Sizes of the reproduction suite; `quick()` is the few-minutes version with the same figures."""

    model_config = ConfigDict(extra="forbid")

    quick: bool = False
    N: int = Field(800, ge=10, description="nodes of every graph in the suite")
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

    @classmethod
    def quick_version(cls, **overrides: Any) -> SuiteConfig:
        base = {
            "quick": True,
            "N": 300,
            "seeds": 3,
            "steps": 300,
            "paper_steps": 300,
            "sft_new": 8,
            "sft_steps": 30,
            "recovery_steps": 60,
            "phase_K": [4, 6, 8, 12, 16, 40],
            "phase_Q": [32, 128],
            "phase_seeds": 2,
            "phase_steps": 200,
            "ablation_seeds": 4,
            "ablation_arms": ["plain", "sft@auto", "sft@mid", "rl_hard@auto"],
        }
        return cls(**{**base, **overrides})


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
    for preset in CORE_PRESETS:
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


def _run_job(job: Job) -> dict[str, Any]:
    """Train (or resume) one run and analyse it; runs in a worker process."""
    from conceptweb.analysis.summary import analyze, write_summary

    path = Path(job.path)
    finished = False
    if (path / "run.json").is_file():
        finished = RunDir.open(path).read_meta().get("status") == "finished"
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


def run_jobs(
    jobs: list[Job], workers: int, on_done: Callable[[Job], None] | None = None
) -> dict[str, dict[str, Any]]:
    """Run jobs over a process pool; returns {path: summary}."""
    out: dict[str, dict[str, Any]] = {}
    if workers <= 1:
        for job in jobs:
            out[job.path] = _run_job(job)
            if on_done:
                on_done(job)
        return out
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(_run_job, job): job for job in jobs}
        for fut in as_completed(futures):
            job = futures[fut]
            out[job.path] = fut.result()
            if on_done:
                on_done(job)
    return out


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
        """Runs of the suite; with pending_only, ablation runs already done are not counted."""
        n = sum(len(v) for v in self.all_jobs().values())
        if "ablation" in self.cfg.sections:
            per = self.cfg.ablation_seeds * len(self.cfg.ablation_arms)
            for preset in self.cfg.ablation_presets:
                n += len(self.ablation(preset).pending()) if pending_only else per
        return n

    def run(
        self, workers: int | None = None, on_done: Callable[[str], None] | None = None
    ) -> pd.DataFrame:
        """Make and analyse every run; write runs.parquet (one row per run) and return it."""
        workers = workers or os.cpu_count() or 1
        plans = self.all_jobs()
        summaries: dict[str, dict[str, Any]] = {}

        def done(job: Job) -> None:
            if on_done:
                on_done(f"{job.group} {job.label} seed {job.seed}")

        first = plans.get("core", []) + plans.get("phase", [])
        summaries.update(run_jobs(first, workers, done))
        if plans.get("sft"):
            summaries.update(run_jobs(plans["sft"], workers, done))
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
                )
        return table

    def read_runs(self) -> pd.DataFrame:
        path = self.out / "runs.parquet"
        return pd.read_parquet(path) if path.is_file() else pd.DataFrame()


# -- the paper's claims, judged over seeds ---------------------------------------------------------
REPRODUCED_FRAC = 0.8  # a per-seed criterion met in at least this fraction of seeds: reproduced
PARTLY_FRAC = 0.2  # ... in at least this fraction (but fewer than REPRODUCED_FRAC): partly


@dataclass
class Claim:
    """One claim of the paper, the per-seed criterion we test, what we measured, the verdict."""

    key: str
    claim: str
    criterion: str
    measured: str
    verdict: str
    n_met: int = 0
    n_seeds: int = 0


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


def _ci(values: Any, spec: str = ".3g") -> str:
    from conceptweb.analysis.stats import mean_ci

    m, lo, hi = mean_ci(np.asarray(values, dtype=np.float64))
    if not np.isfinite(m):
        return "n/a"
    if not np.isfinite(lo):
        return format(m, spec)
    return f"{format(m, spec)} [{format(lo, spec)}, {format(hi, spec)}]"


def _col(df: pd.DataFrame, name: str) -> np.ndarray:
    if name not in df:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=np.float64)


def _flag(df: pd.DataFrame, name: str) -> np.ndarray:
    if name not in df:
        return np.zeros(len(df), dtype=bool)
    return df[name].fillna(False).astype(bool).to_numpy()


def evaluate_claims(
    runs: pd.DataFrame, steps: int, ablation_verdicts: dict[str, dict[str, Any]]
) -> list[Claim]:
    """Judge each claim of the paper on the suite's runs (criteria documented in the report)."""
    claims: list[Claim] = []
    sparse = runs[(runs["group"] == "core") & (runs["label"] == "sparse")]
    paper = runs[(runs["group"] == "core") & (runs["label"] == "paper")]
    sft = runs[runs["group"] == "sft"]

    met = _flag(sparse, "two_stage.is_two_stage")
    v, k, n = _verdict(met)
    claims.append(
        Claim(
            "two_stage",
            "Two-stage learning curve: a fast rise, then a long slow stage (sparse preset)",
            "piecewise-linear fit beats the saturating fit by BIC and the early slope is >= 5x the late one",
            f"{k}/{n} seeds; knee at step {_ci(_col(sparse, 'two_stage.knee_step'))}; "
            f"slope ratio {_ci(_col(sparse, 'two_stage.slope_ratio'))}",
            v,
            k,
            n,
        )
    )

    met = _flag(sparse, "v_shape.is_v")
    v, k, n = _verdict(met)
    claims.append(
        Claim(
            "v_shape",
            "V-shaped length of correct rollouts: first shorter, then longer (sparse preset)",
            "smoothed minimum away from the first/last 10% of steps, a >= 15% fall before it and a >= 15% rise after",
            f"{k}/{n} seeds; minimum at step {_ci(_col(sparse, 'v_shape.min_step'))}; fall "
            f"{_ci(_col(sparse, 'v_shape.drop_frac'), '.2f')}, rise {_ci(_col(sparse, 'v_shape.rise_frac'), '.2f')}",
            v,
            k,
            n,
        )
    )

    deg = _col(sparse, "web.final_avg_degree")
    v, k, n = _verdict(np.abs(deg - 2.0) <= 0.25)
    claims.append(
        Claim(
            "sparse_web",
            "The learned concept web is sparse, average degree near 2 (sparse preset)",
            "final web (edges with pi >= 0.5) has <k> within 2 +- 0.25",
            f"{k}/{n} seeds; final <k> {_ci(deg)}; components {_ci(_col(sparse, 'web.final_n_components'))}; "
            f"giant fraction {_ci(_col(sparse, 'web.final_giant_fraction'), '.2f')}",
            v,
            k,
            n,
        )
    )

    peak = _col(sparse, "web.peak_islands_step")
    giant = _col(sparse, "web.final_giant_fraction")
    v, k, n = _verdict((peak <= 0.25 * steps) & (giant >= 0.5))
    claims.append(
        Claim(
            "islands_then_web",
            "Skill islands first, then one web (sparse preset)",
            "the island count peaks in the first quarter of the run and the final giant component "
            "holds >= 50% of web nodes",
            f"{k}/{n} seeds; islands peak at step {_ci(peak)}; final giant fraction {_ci(giant, '.2f')}",
            v,
            k,
            n,
        )
    )

    f_peak = _col(sparse, "frustration_candidates.forgetting_peak_step")
    v_min = _col(sparse, "frustration_candidates.v_bottom_step")
    knee = _col(sparse, "frustration_candidates.knee_step")
    trio = np.vstack([f_peak, v_min, knee])
    spread = np.nanmax(trio, axis=0) - np.nanmin(trio, axis=0) if trio.size else np.array([])
    coincide = np.isfinite(trio).all(axis=0) & (spread <= 0.15 * steps)
    v, k, n = _verdict(coincide)
    claims.append(
        Claim(
            "frustration_coincides",
            "The maximally frustrated state: forgetting peaks where the V bottoms out and the curve kinks",
            "the forgetting peak, the V bottom and the knee lie within 15% of the run of each other",
            f"{k}/{n} seeds; forgetting peak {_ci(f_peak)}, V bottom {_ci(v_min)}, knee {_ci(knee)}",
            v,
            k,
            n,
        )
    )

    lost = _col(sft, "forgetting.lost_frac")
    rec = _col(sft, "forgetting.recovery_steps")
    v, k, n = _verdict((lost >= 0.1) & np.isfinite(rec))
    claims.append(
        Claim(
            "sft_forgetting",
            "SFT after RLVR forgets solved problems; renewed RLVR recovers them quickly",
            "SFT on new problems unsolves >= 10% of the solved problems and renewed RLVR recovers within its budget",
            f"{k}/{n} seeds; lost {_ci(lost, '.2f')} of solved problems; of those, downstream of a cut bridge "
            f"{_ci(_col(sft, 'forgetting.lost_downstream_of_cut_bridges_frac'), '.2f')}; recovery steps {_ci(rec)}",
            v,
            k,
            n,
        )
    )

    d0, d1 = _col(sparse, "collapse.diversity_start"), _col(sparse, "collapse.diversity_end")
    v, k, n = _verdict(d1 <= 0.9 * d0)
    claims.append(
        Claim(
            "collapse",
            "Policy collapse: the diversity of correct solutions shrinks (sparse preset)",
            "distinct correct paths per problem at the end <= 90% of their value early in training",
            f"{k}/{n} seeds; diversity {_ci(d0, '.3g')} -> {_ci(d1, '.3g')}; leaf entropy "
            f"{_ci(_col(sparse, 'collapse.leaf_entropy_start'), '.3g')} -> "
            f"{_ci(_col(sparse, 'collapse.leaf_entropy_end'), '.3g')}",
            v,
            k,
            n,
        )
    )

    met = _flag(paper, "two_stage.is_two_stage") & _flag(paper, "v_shape.is_v")
    v, k, n = _verdict(met)
    claims.append(
        Claim(
            "published_sizes",
            "At the published density (paper preset, K=40) the curve is two-stage and the length V-shaped",
            "both criteria above hold on the paper preset",
            f"{k}/{n} seeds; two-stage {int(_flag(paper, 'two_stage.is_two_stage').sum())}/{len(paper)}, "
            f"V {int(_flag(paper, 'v_shape.is_v').sum())}/{len(paper)}; "
            f"final reward {_ci(_col(paper, 'final_reward'))}",
            v,
            k,
            n,
        )
    )

    for preset, info in ablation_verdicts.items():
        verdict = info.get("verdict", "not measured")
        mapped = {"helped": "reproduced", "hurt": "not reproduced (hurt)"}.get(
            verdict, "not reproduced"
        )
        claims.append(
            Claim(
                f"annealing_{preset}",
                f"Annealed-RLVR (SFT heating at the detected state) beats plain RLVR ({preset})",
                "paired difference in final train accuracy > 0 at the 5% level (paired t-test, Holm-corrected "
                "over the ablation's arms)",
                info.get("measured", "n/a"),
                mapped if verdict != "not measured" else verdict,
                int(verdict == "helped"),
                int(info.get("n", 0)),
            )
        )
    return claims


def phase_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (K, Q) of the phase diagram: means with 95% CIs and fractions over seeds."""
    from conceptweb.analysis.stats import mean_ci

    ph = runs[runs["group"] == "phase"]
    rows = []
    for (K, Q), g in ph.groupby(["K", "Q"]):
        m, lo, hi = mean_ci(g["final_reward"].to_numpy())
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
