"""CLI commands for verl runs: `conceptweb llm verl-import` and `conceptweb llm verl-heat`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conceptweb.errors import ConceptwebError
from conceptweb.interfaces.cli_common import user_errors


def register(llm_app: typer.Typer) -> None:
    """Add the verl commands to the `llm` command group."""
    llm_app.command("verl-import")(user_errors(verl_import))
    llm_app.command("verl-heat")(user_errors(verl_heat))


def verl_import(
    dump: Annotated[
        Path, typer.Argument(help="verl's trainer.rollout_data_dir (<step>.jsonl files)")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="run directory to write")],
    threshold: Annotated[
        float,
        typer.Option(help="a response is correct when score > this (when lines have no 'acc')"),
    ] = 0.0,
    metrics: Annotated[
        Path | None,
        typer.Option(
            help="verl's metrics log (file logger JSONL, or a CSV/parquet with step and "
            "response_length/clip_ratio): each step's truncation rate"
        ),
    ] = None,
) -> None:
    """Record a verl training run (its dumped generations) into a conceptweb run directory.

    Per step and problem: accuracy, lengths (in words) and distinct correct responses, as the
    TRL monitor records them; then `conceptweb analyze OUT` gives the two-stage fit, the V,
    forgetting, F(t) and the frustration candidates of the verl run. Truncation rates are
    unknown (NaN) unless the dump's lines say `truncated` or --metrics gives verl's own
    per-step rate.
    """
    from conceptweb.llm.verl import import_verl_dump

    run = import_verl_dump(dump, out, threshold, metrics=metrics)
    meta = run.read_meta()
    typer.echo(
        f"wrote {out}: {meta['last_step']} steps; analyse it with `conceptweb analyze {out}`"
    )


def verl_heat(
    run: Annotated[Path, typer.Argument(help="run directory made by `llm verl-import`")],
    out: Annotated[Path, typer.Option("--out", "-o", help="parquet for verl's SFT trainer")],
    threshold: Annotated[float, typer.Option(help="heat problems under this accuracy")] = 0.1,
    recent: Annotated[int, typer.Option(help="accuracy averaged over this many steps")] = 3,
    solutions: Annotated[
        Path | None,
        typer.Option(help="JSONL of reference solutions, line i = problem i, field 'solution'"),
    ] = None,
) -> None:
    """The heating step of Annealed-RLVR for verl: the SFT data (prompt, response) of the hard problems.

    Selects the problems whose accuracy over their last `recent` recorded steps is under
    `threshold` (the rule of Annealed-RLVR on TRL) and writes them for verl's SFT trainer
    (data.prompt_key=prompt, data.response_key=response). See docs/verl.md for the recipe.
    """
    from conceptweb.llm.verl import heating_plan, heating_sft_table
    from conceptweb.rundir import atomic_write_table

    if out.suffix != ".parquet":
        raise ConceptwebError(f"--out must be a .parquet file, got {out}")
    step, plan = heating_plan(run, threshold, recent)
    table = heating_sft_table(plan, solutions)
    atomic_write_table(out, table)
    typer.echo(f"step {step}: {len(table)} problems under accuracy {threshold}; wrote {out}")
