"""The `conceptweb` command line: the root app, assembled from one Typer app per command group.

Groups: single runs (`cli_train`: train, sft, presets, config), analysis (`cli_analysis`:
analyze, web), the detector's replay (`cli_detect`: detect), experiment suites
(`cli_experiments`: reproduce, ablate, sweep; `cli_explore`: explore) and the LLM side
(`cli_llm`: the `llm` sub-command). Each group imports only `cli_common`; heavy libraries are
imported inside the commands that need them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer
from typer.main import get_command_name

from conceptweb.interfaces import (
    cli_analysis,
    cli_detect,
    cli_experiments,
    cli_explore,
    cli_llm,
    cli_train,
)
from conceptweb.interfaces.cli_common import group

GROUPS = (cli_train.app, cli_analysis.app, cli_detect.app, cli_experiments.app, cli_explore.app)


def root() -> typer.Typer:
    """The `conceptweb` app with no command yet."""
    return typer.Typer(
        name="conceptweb",
        help="See and steer how language models learn to reason under RLVR: CoNet simulation, "
        "concept-web analysis, training-dynamics diagnostics and Annealed-RLVR.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode="rich",
    )


app = root()
for _group in GROUPS:
    app.add_typer(_group)
app.add_typer(cli_llm.app, name="llm")


def app_for(args: Sequence[str]) -> typer.Typer:
    """The app that runs `args`: when they start with a command's name, a root holding that
    command alone, so that Typer builds one command's options instead of all twenty (a few
    hundredths of a CPU-second); the whole app otherwise (no command, --help, a misspelt one)."""
    name = args[0] if args else None
    single = root()
    if name == "llm":
        single.add_typer(cli_llm.app, name="llm")
        return single
    for command_group in GROUPS:
        for info in command_group.registered_commands:
            if name == (info.name or get_command_name(info.callback.__name__)):
                one = group()
                one.registered_commands.append(info)
                single.add_typer(one)
                return single
    return app


def main() -> None:
    """Entry point of the `conceptweb` script."""
    try:
        app_for(sys.argv[1:])()
    except KeyboardInterrupt as exc:  # a training run's message names its resume command
        typer.echo(str(exc) or "interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
