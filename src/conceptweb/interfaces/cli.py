"""The `conceptweb` command line: the root app, assembled from one Typer app per command group.

Groups: single runs (`cli_train`: train, sft, presets, config), analysis (`cli_analysis`:
analyze, web), the detector's replay (`cli_detect`: detect), experiment suites
(`cli_experiments`: reproduce, ablate, sweep; `cli_explore`: explore) and the LLM side
(`cli_llm`: the `llm` sub-command). Each group imports only `cli_common`; heavy libraries are
imported inside the commands that need them.
"""

from __future__ import annotations

import sys

import typer

from conceptweb.interfaces import (
    cli_analysis,
    cli_detect,
    cli_experiments,
    cli_explore,
    cli_llm,
    cli_train,
)

app = typer.Typer(
    name="conceptweb",
    help="See and steer how language models learn to reason under RLVR: CoNet simulation, "
    "concept-web analysis, training-dynamics diagnostics and Annealed-RLVR.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)
app.add_typer(cli_train.app)
app.add_typer(cli_analysis.app)
app.add_typer(cli_detect.app)
app.add_typer(cli_experiments.app)
app.add_typer(cli_explore.app)
app.add_typer(cli_llm.app, name="llm")


def main() -> None:
    """Entry point of the `conceptweb` script."""
    try:
        app()
    except KeyboardInterrupt as exc:  # a training run's message names its resume command
        typer.echo(str(exc) or "interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
