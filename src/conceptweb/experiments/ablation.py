"""The Annealed-RLVR ablation: arms x seeds of CoNet runs, paired comparisons against plain RLVR.

Arms are named OPERATOR@WHEN (e.g. sft@auto, sft@150, temperature@auto, rl_hard@auto) or
"plain". Every arm runs the same seeds (so runs are paired and share their trajectory up to
the heating) and the same total number of update steps (heating steps included). Finished
(arm, seed) pairs are never redone: an interrupted ablation resumes where it stopped.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from conceptweb.algorithms.heating import CONTROL_HEATING, HEATING_OPERATORS, PAPER_HEATING
from conceptweb.analysis.stats import holm, mean_ci, paired_comparison, verdict
from conceptweb.config import (
    RunConfig,
    config_to_dict,
    deep_merge,
    parse_set,
    resolve_config,
    validate_config,
)
from conceptweb.errors import ConceptwebError
from conceptweb.experiments.executor import Backend, execute, execute_batched
from conceptweb.experiments.passk_arms import pass_at_k_of_run
from conceptweb.experiments.runs import replica_shape, train_batch, train_run
from conceptweb.experiments.suitedir import SuiteDir
from conceptweb.rundir import RunDir, atomic_write_table
from conceptweb.runformat import DETECTOR_PREFIX, SPLIT_HELDOUT, SPLIT_TRAIN

FREEZE_PROBE_EVERY = 10  # checkpoint interval of the plain probe of an OPERATOR@frozen arm
WHENS = ("auto", "early", "mid", "late")
PLAIN = "plain"


def arm_name(operator: str, when: str) -> str:
    """The arm that heats with `operator` at `when` (auto, early, mid, late or a step)."""
    return f"{operator}@{when}"


# the paper's heating at every moment, the control, then every other operator at the detector
DEFAULT_ARMS = [
    PLAIN,
    *(arm_name(PAPER_HEATING, w) for w in WHENS),
    arm_name(CONTROL_HEATING, "auto"),
    *(
        arm_name(op, "auto")
        for op in HEATING_OPERATORS
        if op not in (PAPER_HEATING, CONTROL_HEATING)
    ),
]
METRICS = {  # name -> higher is better
    "final_acc": True,
    "final_best_at_k": True,
    "heldout_acc": True,
    "n_solved": True,
    "auc_reward": True,
    "final_avg_degree": False,
    "final_n_components": False,
}


class AblationConfig(BaseModel):
    """What an ablation runs: a base CoNet config, arms, seeds and the fixed heating moments."""

    model_config = ConfigDict(extra="forbid")

    preset: str | None = "sparse"
    config_file: str | None = None
    sets: list[str] = Field(default_factory=list)
    seeds: int = Field(16, ge=2)
    first_seed: int = Field(0, ge=0)
    arms: list[str] = Field(default_factory=lambda: list(DEFAULT_ARMS))
    heat_steps: int = Field(20, ge=1, description="heating steps of every heated arm")
    threshold: float = Field(0.1, gt=0, le=1, description="heat problems with accuracy below this")
    early: float = Field(
        0.1, gt=0, lt=1, description="'early' heating step as a fraction of the run"
    )
    mid: float = Field(0.25, gt=0, lt=1)
    late: float = Field(0.5, gt=0, lt=1)
    best_k: int = Field(8, ge=1, description="k of best@k (pass@k) on the final evaluation")
    checkpoint_every: int = Field(
        100, ge=1, description="checkpoint interval of the ablation's runs"
    )

    @field_validator("arms")
    @classmethod
    def _arms_parse(cls, arms: list[str]) -> list[str]:
        if not arms:
            raise ValueError("at least one arm")
        for arm in arms:
            parse_arm(arm)
        if len(set(arms)) != len(arms):
            raise ValueError("arms must be distinct")
        return arms

    def base_config(self) -> RunConfig:
        return resolve_config(self.preset, self.config_file, self.sets)


def parse_arm(arm: str) -> tuple[str, str]:
    """'plain' -> ('plain', ''); 'sft@auto' -> ('sft', 'auto'); 'sft@150' -> ('sft', '150')."""
    if arm == PLAIN:
        return PLAIN, ""
    op, sep, when = arm.partition("@")
    if not sep or op not in HEATING_OPERATORS:
        raise ValueError(
            f"arm {arm!r}: expected {PLAIN} or OPERATOR@WHEN with OPERATOR in "
            f"{', '.join(HEATING_OPERATORS)}"
        )
    if when not in (*WHENS, "frozen") and not when.isdigit():
        raise ValueError(
            f"arm {arm!r}: WHEN must be auto, early, mid, late, frozen or a step number"
        )
    return op, when


def arm_config(
    abl: AblationConfig, base: RunConfig, arm: str, seed: int, at: int | None = None
) -> RunConfig:
    """The run config of one (arm, seed); an OPERATOR@frozen arm needs its step `at`
    (without it: the plain probe run whose freezing decides the step, see after_freezing)."""
    data = config_to_dict(base)
    data["seed"] = seed
    data["checkpoint"]["every"] = abl.checkpoint_every
    op, when = parse_arm(arm)
    heat = {
        "operator": op if op != PLAIN else PAPER_HEATING,
        "steps": abl.heat_steps,
        "threshold": abl.threshold,
    }
    if op == PLAIN:
        anneal: dict[str, Any] = {"mode": "off"}
    elif when == "auto":
        anneal = {"mode": "auto"}
    elif when == "frozen" and at is None:
        data["checkpoint"]["every"] = FREEZE_PROBE_EVERY
        anneal = {"mode": "off"}
    else:
        step = at if at is not None else (int(when) if when.isdigit() else None)
        step = step if step is not None else int(round(getattr(abl, when) * base.steps))
        if step >= base.steps:
            raise ConceptwebError(
                f"arm {arm}: heating step {step} is not before the end ({base.steps})"
            )
        anneal = {"mode": "at", "at_step": step}
    data["anneal"] = deep_merge(data["anneal"], {**anneal, "heat": heat})
    return validate_config(data)


@dataclass(frozen=True)
class RunOutcome:
    """The ablation's outcome measures of one finished run (one row of results.parquet)."""

    final_acc: float  # mean accuracy of the training problems at the last evaluation
    final_best_at_k: float  # mean best@k (pass@k) there
    heldout_acc: float  # mean accuracy of the held-out problems there (NaN without any)
    n_solved: int  # training problems with accuracy >= 0.5 there
    auc_reward: float  # mean training reward over all steps
    final_avg_degree: float  # <k> of the final web (tau 0.5)
    final_n_components: int  # its islands
    fire_step: int  # first step the trigger fired (-1: never)
    heat_step: int  # first heating step (-1: none)
    n_heat_problems: int  # problems heated

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_metrics(run: RunDir, best_k: int) -> RunOutcome:
    """The ablation's outcome measures of one finished run."""
    from conceptweb.analysis.dynamics import pass_at_k
    from conceptweb.analysis.topology import concept_web, web_topology

    metrics = run.read_metrics()
    ev = run.read_eval()
    last = ev[ev["step"] == ev["step"].max()]
    train = last[last["split"] == SPLIT_TRAIN]
    held = last[last["split"] == SPLIT_HELDOUT]
    ck = run.load_checkpoint()
    web = concept_web(ck.logits, ck.neighbors, tau=0.5, temperature=ck.temperature)
    topo = web_topology(web)
    heat_rows = metrics[metrics["n_heat_problems"] > 0]
    fire = f"{DETECTOR_PREFIX}fire"
    fired = (
        metrics[metrics[fire].fillna(False).astype(bool)] if fire in metrics else metrics.iloc[:0]
    )
    return RunOutcome(
        final_acc=float(train["accuracy"].mean()),
        final_best_at_k=float(pass_at_k(train["G"], train["n_correct"], best_k).mean()),
        heldout_acc=float(held["accuracy"].mean()) if len(held) else math.nan,
        n_solved=int((train["accuracy"] >= 0.5).sum()),
        auc_reward=float(metrics["reward_mean"].mean()),
        final_avg_degree=float(topo.avg_degree),
        final_n_components=int(topo.n_components),
        fire_step=int(fired["step"].min()) if len(fired) else -1,
        heat_step=int(heat_rows["step"].min()) if len(heat_rows) else -1,
        n_heat_problems=int(heat_rows["n_heat_problems"].iloc[0]) if len(heat_rows) else 0,
    )


def after_freezing(probe: RunDir) -> int | None:
    """The heating step of an OPERATOR@frozen arm: the checkpoint by which 90% of the final web's
    nodes that freeze in the plain run (its probe) have frozen; None if none freezes."""
    from conceptweb.analysis.trees import trees_over_training, trees_sections

    _, freezing = trees_sections(trees_over_training(probe))
    q90 = (freezing or {}).get("q90_step")
    if q90 is None:
        return None
    steps = np.asarray(probe.checkpoint_steps())
    return int(steps[steps >= q90][0])


def _job(args: tuple[Any, ...]) -> dict[str, Any]:
    """One (arm, seed): train (or resume) its run, then measure it. Runs in a worker process.

    For an OPERATOR@frozen arm (args carry the ablation config, arm and seed), a plain probe
    run is trained first (in seedN-probe/ beside the run) to find the step after freezing.
    """
    cfg_dict, out, best_k = args[:3]
    path = Path(out)
    if len(args) > 3:
        abl, arm, seed = args[3]
        probe = path.parent / f"{path.name}-probe"
        done = (probe / "run.json").is_file()
        probe_run = train_run(None if done else validate_config(cfg_dict), probe, resume=done)
        at = after_freezing(probe_run)
        if at is None or at >= probe_run.read_config()["steps"]:
            return {"heat_step": -1, "frozen_step": -1}
        cfg_dict = config_to_dict(arm_config(abl, abl.base_config(), arm, seed, at))
    cfg = validate_config(cfg_dict)
    resume = (path / "run.json").is_file()
    run = train_run(None if resume else cfg, path, resume=resume)
    out_metrics = {**run_metrics(run, best_k).to_dict(), **pass_at_k_of_run(run)}
    if len(args) > 3:
        out_metrics["frozen_step"] = int(cfg.anneal.at_step or -1)
    return out_metrics


def _batch_job(items: list[tuple[dict[str, Any], str, int]]) -> list[dict[str, Any]]:
    """Several (arm, seed) runs trained as batched replicas in one worker, then each measured
    (items as for `_job`, without frozen arms); their outcomes in order."""
    paths = [Path(out) for _, out, _ in items]
    configs = [
        None if (path / "run.json").is_file() else validate_config(cfg)
        for (cfg, _, _), path in zip(items, paths, strict=True)
    ]
    runs = train_batch(configs, paths)
    return [
        {**run_metrics(run, best_k).to_dict(), **pass_at_k_of_run(run)}
        for run, (_, _, best_k) in zip(runs, items, strict=True)
    ]


class Ablation(SuiteDir):
    """An ablation directory: ablation.json, runs/ARM/seedN/, results.parquet, comparisons."""

    FILE, WHAT, CONFIG = "ablation.json", "an ablation", AblationConfig
    cfg: AblationConfig

    @staticmethod
    def check(cfg: AblationConfig) -> None:
        cfg.base_config()

    def run_path(self, arm: str, seed: int) -> Path:
        return self.out / "runs" / arm.replace("@", "_at_") / f"seed{seed}"

    def seeds(self) -> list[int]:
        return list(range(self.cfg.first_seed, self.cfg.first_seed + self.cfg.seeds))

    def pending(self) -> list[tuple[str, int]]:
        done = self.read_results()
        have = set(zip(done["arm"], done["seed"], strict=True)) if len(done) else set()
        return [(a, s) for a in self.cfg.arms for s in self.seeds() if (a, s) not in have]

    def run(
        self,
        workers: int | None = None,
        on_done: Callable[[str, int, int, int], None] | None = None,
        backend: Backend | None = None,
        batch: int = 1,
    ) -> pd.DataFrame:
        """Run every pending (arm, seed) on `backend` (default: a process pool); results are
        saved as they arrive. `batch` > 1: up to that many runs of the same sizes train as
        batched replicas in one worker (`train_batch`; frozen arms still run one by one)."""
        base = self.cfg.base_config()
        todo = self.pending()
        jobs = {
            (a, s): (
                config_to_dict(arm_config(self.cfg, base, a, s)),
                str(self.run_path(a, s)),
                self.cfg.best_k,
                *([(self.cfg, a, s)] if parse_arm(a)[1] == "frozen" else []),
            )
            for a, s in todo
        }
        rows = self.read_results().to_dict("records")
        workers = workers or os.cpu_count() or 1
        total = len(todo)
        done = [0]

        def on_result(key: Any, metrics: dict[str, Any]) -> None:
            rows.append({"arm": key[0], "seed": key[1], **metrics})
            self._save(rows)
            done[0] += 1
            if on_done:
                on_done(key[0], key[1], done[0], total)

        path = lambda key: self.run_path(*key)  # noqa: E731
        if batch <= 1:
            execute(_job, jobs, workers, on_result, path, backend)
            return self.read_results()
        alone = {k: job for k, job in jobs.items() if len(job) > 3}  # frozen arms: a probe first
        together = {k: job for k, job in jobs.items() if k not in alone}
        shape = lambda job: replica_shape(job[0])  # noqa: E731
        execute_batched(_batch_job, together, workers, on_result, path, backend, batch, shape)
        if alone:
            execute(_job, alone, workers, on_result, path, backend)
        return self.read_results()

    def _save(self, rows: list[dict[str, Any]]) -> None:
        df = pd.DataFrame(rows).sort_values(["arm", "seed"], kind="stable").reset_index(drop=True)
        atomic_write_table(self.results_path, df)

    def comparisons(self, reference: str = PLAIN) -> pd.DataFrame:
        """Paired differences (arm - reference) over seeds for every metric, with 95% CIs."""
        res = self.read_results()
        if reference not in set(res.get("arm", [])):
            raise ConceptwebError(f"the ablation has no {reference!r} arm to compare against")
        return compare_arms(res, reference, self.cfg.arms)


def compare_arms(
    results: pd.DataFrame, reference: str = PLAIN, order: list[str] | None = None
) -> pd.DataFrame:
    """One row per (arm, metric): arm mean with CI, paired difference to `reference`, tests, verdict.

    The verdict uses the paired t-test's p-value after Holm's correction over the arms compared
    (diff_p_holm), since every arm is tested against the same reference; diff_p_t is uncorrected.
    """
    ref = results[results["arm"] == reference].set_index("seed")
    arms = [reference, *[a for a in (order or dict.fromkeys(results["arm"])) if a != reference]]
    arms = [a for a in arms if a in set(results["arm"])]
    rows = []
    for metric, higher in METRICS.items():
        block = []
        for arm in arms:
            cur = results[results["arm"] == arm].set_index("seed")
            m, lo, hi = mean_ci(cur[metric].to_numpy())
            row: dict[str, Any] = {
                "arm": arm,
                "metric": metric,
                "mean": m,
                "ci_low": lo,
                "ci_high": hi,
            }
            if arm != reference:
                seeds = ref.index.intersection(cur.index)
                comp = paired_comparison(
                    cur.loc[seeds, metric].to_numpy(), ref.loc[seeds, metric].to_numpy()
                )
                row.update({f"diff_{k}" if k != "n" else "n_pairs": v for k, v in comp.items()})
            block.append(row)
        others = [r for r in block if r["arm"] != reference]
        adjusted = holm(np.array([r["diff_p_t"] for r in others]))
        for r, p in zip(others, adjusted, strict=True):
            r["diff_p_holm"] = float(p)
            r["verdict"] = verdict(
                r | {"p_holm": p, "mean_diff": r["diff_mean_diff"]},
                higher_is_better=higher,
                p_key="p_holm",
            )
        rows += block
    order_index = {a: i for i, a in enumerate(arms)}
    out = pd.DataFrame(rows)
    return out.sort_values(["arm"], key=lambda c: c.map(order_index), kind="stable").reset_index(
        drop=True
    )


def ablation_config_from_options(
    preset: str | None, config_file: str | None, sets: list[str], **kwargs: Any
) -> AblationConfig:
    """Build and validate an AblationConfig from CLI options (None options keep defaults)."""
    from pydantic import ValidationError

    from conceptweb.config import format_validation_error

    for item in sets:
        parse_set(item)
    data = {k: v for k, v in kwargs.items() if v is not None}
    try:
        cfg = AblationConfig(
            preset=preset if preset or config_file else "sparse",
            config_file=config_file,
            sets=sets,
            **data,
        )
    except ValidationError as exc:
        raise ConceptwebError(f"invalid ablation: {format_validation_error(exc)}") from None
    cfg.base_config()
    return cfg
