"""The `conceptweb` command line: train, sft, presets (and analysis, reproduction, ablation, LLM)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.table import Table

from conceptweb.config import (
    PRESETS,
    config_to_dict,
    deep_merge,
    format_validation_error,
    parse_set,
    resolve_config,
    validate_config,
)
from conceptweb.errors import ConceptwebError
from conceptweb.interfaces.progress import console, training_progress

app = typer.Typer(
    name="conceptweb",
    help="See and steer how language models learn to reason under RLVR: CoNet simulation, "
    "concept-web analysis, training-dynamics diagnostics and Annealed-RLVR.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Turn user mistakes into a one-line 'error: ...' and exit status 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConceptwebError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except ValidationError as exc:
            typer.echo(f"error: {format_validation_error(exc)}", err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def parse_anneal(value: str | None) -> dict[str, Any]:
    """--anneal off | auto | at:STEP into config overrides."""
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
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")]


@app.command()
@user_errors
def train(
    out: OutOpt,
    preset: PresetOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    seed: Annotated[int | None, typer.Option(help="seed of the run")] = None,
    steps: Annotated[int | None, typer.Option(help="total update steps")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="continue the run in --out exactly where it stopped")
    ] = False,
    anneal: Annotated[
        str | None, typer.Option(help="Annealed-RLVR: off, auto (detector) or at:STEP")
    ] = None,
    heat: Annotated[
        str | None, typer.Option(help="heating OPERATOR[:STEPS], e.g. sft:20, temperature:10")
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Train the CoNet walk policy with GRPO (RLVR) and record the run into --out."""
    from conceptweb.experiments.runs import train_run

    set_ = set_ or []
    if resume:
        if preset or config or set_ or seed is not None or anneal or heat:
            raise ConceptwebError("--resume continues the saved config; only --steps may change it")
        cfg = None
    else:
        extra: dict[str, Any] = {}
        if seed is not None:
            extra["seed"] = seed
        if steps is not None:
            extra["steps"] = steps
        extra = deep_merge(deep_merge(extra, parse_anneal(anneal)), parse_heat(heat))
        cfg = resolve_config(preset, config, set_, extra)
    _run_with_progress(
        lambda on_step, on_start: train_run(
            cfg, out, resume=resume, steps=steps, on_step=on_step, on_start=on_start
        ),
        quiet,
        out,
    )


def _run_with_progress(job: Callable[..., Any], quiet: bool, out: Path) -> None:
    state: dict[str, Any] = {}

    def on_start(trainer: Any) -> None:
        cfg = trainer.cfg
        if trainer.step >= cfg.steps:
            console.print(
                f"{out}: already finished ({trainer.step}/{cfg.steps} steps); raise --steps to extend"
            )
        ctx = training_progress(
            cfg.steps,
            trainer.step,
            str(out),
            len(trainer.world.train),
            enabled=not quiet and trainer.step < cfg.steps,
        )
        state["ctx"] = ctx
        state["update"] = ctx.__enter__()

    def on_step(row: dict[str, Any]) -> None:
        state["update"](row)
        if row.get("det_fire") and not quiet:
            n = int(row.get("det_n_selected", 0))
            what = (
                f"heating {n} problems from step {row['step'] + 1}"
                if n
                else "no problem under the threshold: nothing heated"
            )
            console.print(f"step {row['step']}: the trigger fired; {what}")

    try:
        job(on_step, on_start)
    finally:
        if "ctx" in state:
            state["ctx"].__exit__(*sys.exc_info())
    if not quiet:
        console.print(f"run written to {out}")


@app.command()
@user_errors
def sft(
    from_: Annotated[Path, typer.Option("--from", help="run directory whose policy to fine-tune")],
    out: OutOpt,
    problems: Annotated[
        str, typer.Option(help="new:N (new problems), train, or below:X (train problems under X)")
    ] = "new:16",
    steps: Annotated[int, typer.Option(help="SFT steps")] = 50,
    then_rl: Annotated[
        int, typer.Option("--then-rl", help="RLVR steps on the original problems afterwards")
    ] = 0,
    step: Annotated[
        int | None, typer.Option(help="checkpoint step of --from (default: latest)")
    ] = None,
    lr: Annotated[float | None, typer.Option(help="SFT learning rate")] = None,
    set_: SetOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Supervised fine-tuning of a trained policy on reference solutions (e.g. new problems).

    Every step still samples rollouts of the original problems, so the records show what SFT
    makes the policy forget; --then-rl resumes RLVR to show the recovery.
    """
    from conceptweb.experiments.runs import train_run
    from conceptweb.rundir import RunDir

    source = RunDir.open(from_)
    if source.kind != "conet":
        raise ConceptwebError(f"{from_} is a {source.kind} run; `sft` works on CoNet runs")
    if steps < 1 or then_rl < 0:
        raise ConceptwebError("--steps must be >= 1 and --then-rl >= 0")
    source.load_checkpoint(step)  # fail early on a missing checkpoint
    base = source.read_config()
    sft_cfg = {**base.get("sft", {}), "steps": steps, "problems": problems}
    if lr is not None:
        sft_cfg["lr"] = lr
    extra = {
        "steps": steps + then_rl,
        "sft": sft_cfg,
        "anneal": {"mode": "off"},
        "init_from": str(Path(from_).resolve()),
        "init_step": step,
    }
    data = deep_merge(base, extra)
    for item in set_ or []:
        data = deep_merge(data, parse_set(item))
    cfg = validate_config(data)
    _run_with_progress(
        lambda on_step, on_start: train_run(cfg, out, on_step=on_step, on_start=on_start),
        quiet,
        out,
    )


@app.command()
def presets() -> None:
    """List the built-in presets with the values they set."""
    from rich.console import Console

    from conceptweb.config import RunConfig

    table = Table(title="conceptweb presets")
    for col in ("preset", "N", "K", "Q", "G", "L", "lr", "steps", "init", "what it is"):
        table.add_column(col, no_wrap=col != "what it is")
    for name, (desc, over) in PRESETS.items():
        c = RunConfig.model_validate(deep_merge(over, {"preset": name}))
        init = c.model.init if c.model.init == "zero" else f"prior std {c.model.prior_std}"
        table.add_row(
            name,
            desc,
            str(c.model.N),
            str(c.model.K),
            str(c.problems.Q),
            str(c.grpo.G),
            str(c.model.L),
            str(c.grpo.lr),
            str(c.steps),
            init,
        )
    Console().print(table)


@app.command("config")
@user_errors
def show_config(
    preset: PresetOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Print the fully resolved config (YAML) for a preset, file and overrides."""
    import yaml

    cfg = resolve_config(preset, config, set_ or [])
    typer.echo(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def _register_command_groups() -> None:
    from conceptweb.interfaces import cli_analysis, cli_experiments
    from conceptweb.llm import cli as llm_cli

    cli_analysis.register(app)
    cli_experiments.register(app)
    llm_cli.register(app)


_register_command_groups()


def main() -> None:
    """Entry point of the `conceptweb` script."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted; resume with `conceptweb train --out DIR --resume`", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
