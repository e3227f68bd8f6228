"""CLI command `explore`: the map of phenomena over a grid of CoNet settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conceptweb.interfaces.cli_common import (
    AddressOpt,
    BackendOpt,
    ConfigOpt,
    PresetOpt,
    QuietOpt,
    SetOpt,
    WorkersOpt,
    group,
    interruptible,
    start_backend,
    user_errors,
)

app = group()


@app.command()
@user_errors
def explore(
    out: Annotated[Path, typer.Option("--out", "-o", help="map directory (re-run to resume)")],
    axis: Annotated[
        list[str] | None,
        typer.Option(
            "--axis",
            "-a",
            help="NAME=v1,v2,... (repeatable): graph (FAMILY or FAMILY-directed), structure "
            "(random, distinct, answers:M, starts:M), estimator, or any dotted config key, "
            "e.g. problems.Q=128,512",
        ),
    ] = None,
    preset: PresetOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    seeds: Annotated[int | None, typer.Option(help="seeds per cell (default 5)")] = None,
    first_seed: Annotated[int | None, typer.Option(help="first seed (default 0)")] = None,
    workers: WorkersOpt = None,
    backend: BackendOpt = "process",
    address: AddressOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Run a grid of settings over seeds; per cell, which phenomena appear (counts, intervals).

    Writes results.parquet (one row per run), cells.csv, figures/map.png and report.md.
    Interrupted? Run the same command again: finished runs are kept.
    """
    from conceptweb.experiments.explore import Explore, explore_config_from_options
    from conceptweb.interfaces.console import console
    from conceptweb.interfaces.explore_report import write_explore_report
    from conceptweb.interfaces.progress import task_progress

    resuming = (out / "explore.json").is_file()
    given = any(v is not None for v in (preset, config, seeds, first_seed)) or bool(set_ or axis)
    cfg = None
    if not resuming or given:
        cfg = explore_config_from_options(
            preset,
            str(config) if config else None,
            set_ or [],
            axis or [],
            seeds=seeds,
            first_seed=first_seed,
        )
    where = start_backend(backend, address, workers)
    ex = Explore.open_or_create(out, cfg)
    pending = ex.pending()

    def job() -> None:
        with task_progress(len(pending), "map runs", enabled=not quiet) as advance:
            ex.run(workers, lambda cell, seed, i, n: advance(1, f"{cell} seed {seed}"), where)

    interruptible(job)
    report = write_explore_report(ex)
    if not quiet:
        console.print(f"report: {report}")
