"""Grid sweeps: one CoNet run per combination of `--set key=v1,v2,...` values, gathered in a table.

A sweep directory holds sweep.json (what was asked), runs/POINT/ (one run directory per point
of the grid) and results.parquet (one row per finished run: its grid values, its final reward
and the scalars of its analysis summary). Running the same sweep again keeps finished runs and
resumes interrupted ones. Runs execute on a process pool or on Ray
(conceptweb.experiments.executor).

>>> grid_axes(["steps=100", "model.K=4,8", "seed=0,1,2", "problems.n_starts=[1, 2]"])
(['steps=100', 'problems.n_starts=[1, 2]'], ['model.K=4,8', 'seed=0,1,2'])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from conceptweb.config import config_to_dict, parse_set, resolve_config
from conceptweb.errors import ConceptwebError
from conceptweb.experiments.executor import Backend
from conceptweb.experiments.explore import axis_grid, cell_name, check_axes
from conceptweb.experiments.reproduce import Job, final_reward, flatten_summary, run_each
from conceptweb.experiments.suitedir import SuiteDir
from conceptweb.rundir import RunDir, atomic_write_table


def grid_axes(sets: list[str]) -> tuple[list[str], list[str]]:
    """Split `--set` items into fixed overrides (`key=value`) and grid axes (`key=a,b,...`).

    A value that is a YAML list or mapping (`[1, 2]`, `{a: 1}`) is one value, not an axis.
    """
    fixed: list[str] = []
    axes: list[str] = []
    for item in sets:
        parse_set(item)  # KEY=VALUE with a non-empty key
        raw = item.partition("=")[2].strip()
        is_axis = "," in raw and not raw.startswith(("[", "{"))
        (axes if is_axis else fixed).append(item)
    return fixed, axes


class SweepConfig(BaseModel):
    """What a sweep runs: a base config (preset, file, fixed overrides) and its grid axes."""

    model_config = ConfigDict(extra="forbid")

    preset: str | None = None
    config_file: str | None = None
    sets: list[str] = Field(default_factory=list, description="fixed KEY=VALUE overrides")
    axes: list[str] = Field(default_factory=list, description="KEY=v1,v2,... per axis")

    @field_validator("axes")
    @classmethod
    def _axes_parse(cls, axes: list[str]) -> list[str]:
        if not axes:
            raise ValueError("nothing to sweep: give at least one --set KEY=v1,v2,...")
        return check_axes(axes)

    def points(self) -> list[dict[str, str]]:
        """Every combination of axis values, as {key: value}."""
        return axis_grid(self.axes)

    def point_config(self, point: dict[str, str]) -> dict[str, Any]:
        sets = [*self.sets, *(f"{k}={v}" for k, v in point.items())]
        return config_to_dict(resolve_config(self.preset, self.config_file, sets))

    def check(self) -> None:
        """Every point resolves to a valid config (raises ConceptwebError otherwise)."""
        for point in self.points():
            try:
                self.point_config(point)
            except ConceptwebError as exc:
                raise ConceptwebError(f"sweep point {cell_name(point)}: {exc}") from None


def sweep_config_from_options(
    preset: str | None, config_file: str | None, sets: list[str]
) -> SweepConfig:
    """A SweepConfig from the CLI's --preset, --config and --set items, checked point by point."""
    from pydantic import ValidationError

    from conceptweb.config import format_validation_error

    fixed, axes = grid_axes(sets)
    try:
        cfg = SweepConfig(preset=preset, config_file=config_file, sets=fixed, axes=axes)
    except ValidationError as exc:
        raise ConceptwebError(f"invalid sweep: {format_validation_error(exc)}") from None
    cfg.check()
    return cfg


def _typed(point: dict[str, str]) -> dict[str, Any]:
    """Grid values as the config reads them ('0.1' -> 0.1), for the results table."""
    out = {}
    for key, raw in point.items():
        value: Any = parse_set(f"{key}={raw}")
        for part in key.split("."):
            value = value[part]
        out[key] = value
    return out


class Sweep(SuiteDir):
    """A sweep directory: sweep.json, runs/POINT/, results.parquet."""

    FILE, WHAT, CONFIG = "sweep.json", "a sweep", SweepConfig
    cfg: SweepConfig

    @staticmethod
    def check(cfg: SweepConfig) -> None:
        cfg.check()

    def pending(self) -> list[dict[str, str]]:
        """Points whose run is not in results.parquet yet."""
        done = set(self.read_results().get("run", pd.Series(dtype=str)))
        return [p for p in self.cfg.points() if cell_name(p) not in done]

    def run(
        self,
        workers: int | None = None,
        on_done: Callable[[str], None] | None = None,
        backend: Backend | None = None,
        batch: int = 1,
    ) -> pd.DataFrame:
        """Train and analyse every pending point on `backend` (default: a process pool);
        results.parquet grows as runs finish. `batch` > 1: points of the same sizes train up to
        that many at a time as batched replicas in one worker."""
        todo = {cell_name(p): p for p in self.pending()}
        jobs = {
            name: Job("sweep", name, 0, str(self.out / "runs" / name), self.cfg.point_config(p))
            for name, p in todo.items()
        }
        rows = self.read_results().to_dict("records")
        order = {cell_name(p): i for i, p in enumerate(self.cfg.points())}  # the grid's order

        def on_result(name: Any, summary: dict[str, Any]) -> None:
            reward = final_reward(RunDir.open(jobs[name].path))
            row = {"run": name, **_typed(todo[name]), "final_reward": reward}
            rows.append({**row, **flatten_summary(summary)})
            rows.sort(key=lambda r: order[r["run"]])
            atomic_write_table(self.results_path, pd.DataFrame(rows))
            if on_done:
                on_done(str(name))

        run_each(jobs, workers, on_result, lambda name: jobs[name].path, backend, batch)
        return self.read_results()
