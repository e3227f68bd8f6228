"""What every command group of the CLI shares: error handling, option types, option parsers."""

from __future__ import annotations

import functools
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from conceptweb.errors import ConceptwebError, RunInterrupted

F = TypeVar("F", bound=Callable[..., Any])


def group(help_text: str | None = None) -> typer.Typer:
    """A Typer app for one command group, with the settings every group shares."""
    return typer.Typer(
        help=help_text,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode="rich",
    )


def user_errors(func: F) -> F:
    """Turn user mistakes into a one-line 'error: ...' and exit status 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConceptwebError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except RunInterrupted as exc:  # Ctrl-C during training: say how to resume
            typer.echo(str(exc), err=True)
            raise typer.Exit(130) from None
        except Exception as exc:
            # imported here: the CLI starts, and --help runs, without pydantic, config or numpy
            from pydantic import ValidationError

            if not isinstance(exc, ValidationError):
                raise
            from conceptweb.config import format_validation_error

            typer.echo(f"error: {format_validation_error(exc)}", err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def flag(*names: str, help: str) -> Any:  # noqa: A002 - Typer's own keyword
    """A boolean on/off option shown without a value in --help (`--resume`, not `--resume <bool>`)."""
    return typer.Option(*names, help=help, metavar="", show_default=False)


def parse_anneal(value: str | None) -> dict[str, Any]:
    """--anneal off | auto | at:STEP into config overrides (the config checks the step's range)."""
    if value is None:
        return {}
    if value in ("off", "auto"):
        return {"anneal": {"mode": value}}
    kind, _, arg = value.partition(":")
    if kind == "at" and arg.isdigit():
        return {"anneal": {"mode": "at", "at_step": int(arg)}}
    raise ConceptwebError(f"--anneal must be off, auto or at:STEP, got {value!r}")


def parse_heat(value: str | None) -> dict[str, Any]:
    """--heat OPERATOR[:STEPS] into config overrides."""
    if value is None:
        return {}
    op, _, arg = value.partition(":")
    heat: dict[str, Any] = {"operator": op}
    if arg:
        if not arg.isdigit() or int(arg) < 1:
            raise ConceptwebError(f"--heat steps must be a positive integer, got {arg!r}")
        heat["steps"] = int(arg)
    return {"anneal": {"heat": heat}}


def parse_list(value: str | None) -> list[str]:
    """A comma-separated option value as a list of non-empty, stripped items."""
    return [v.strip() for v in (value or "").split(",") if v.strip()]


PresetOpt = Annotated[
    str | None, typer.Option("--preset", "-p", help="start from a named preset (see `presets`)")
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML, TOML or JSON config file")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="override a config value, e.g. --set model.K=16 (repeatable)"),
]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="run directory to write")]
QuietOpt = Annotated[bool, flag("--quiet", "-q", help="no progress bar")]
LogOpt = Annotated[
    list[str] | None,
    typer.Option(
        help="also log every step to a tracker: tensorboard, wandb, trackio or mlflow "
        "(repeatable); the run directory stays the record"
    ),
]
ResumeOpt = Annotated[bool, flag("--resume", help="continue the run in --out where it stopped")]
AnnealOpt = Annotated[
    str | None, typer.Option(help="Annealed-RLVR: off, auto (detector) or at:STEP")
]
WorkersOpt = Annotated[int | None, typer.Option(help="parallel processes (default: all cores)")]
BatchOpt = Annotated[
    int,
    typer.Option(
        "--batch",
        min=1,
        help="train up to this many runs of the same sizes together in one process (batched "
        "replicas: one compiled call samples all their walks; the same results as one by one)",
    ),
]
BackendOpt = Annotated[
    str,
    typer.Option(
        "--backend",
        help="where runs execute: process (a process pool on this machine) or ray (Ray tasks; "
        "needs the dist extra)",
    ),
]
AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="with --backend ray, the cluster to use: auto (on a node of it), HOST:6379 or "
        "ray://HOST:10001 (default: start a private local Ray instance)",
    ),
]


def start_backend(kind: str, address: str | None, workers: int | None) -> Any:
    """The Backend of --backend/--address, connected (Ray started or reached) before any
    directory is written, so that a missing Ray or an unreachable cluster writes nothing."""
    from conceptweb.experiments.executor import Backend

    if address and workers:
        from conceptweb.interfaces.console import console

        console.print(
            f"note: --workers {workers} is ignored with --address: the cluster's CPUs set how "
            "many runs go at once",
            highlight=False,
        )
    backend = Backend(kind, address)
    backend.start(workers)
    return backend


def interruptible(job: Callable[[], None]) -> None:
    """Run a suite; on Ctrl-C say that the pool stopped, what was kept and how to resume."""
    from conceptweb.interfaces.console import console

    try:
        job()
    except KeyboardInterrupt:
        command = "conceptweb " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "the same command"
        console.print(
            "interrupted: workers stopped; finished runs are kept and cut runs are marked "
            f"interrupted. Resume with the same command: {command}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(130) from None
