"""CLI commands that make and inspect single CoNet runs: `train`, `sft`, `presets`, `config`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from conceptweb.errors import ConceptwebError
from conceptweb.interfaces.cli_common import (
    AnnealOpt,
    ConfigOpt,
    LogOpt,
    OutOpt,
    PresetOpt,
    QuietOpt,
    ResumeOpt,
    SetOpt,
    group,
    parse_anneal,
    parse_heat,
    user_errors,
)

app = group()


@app.command()
@user_errors
def train(
    out: OutOpt,
    preset: PresetOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    seed: Annotated[int | None, typer.Option(help="seed of the run")] = None,
    steps: Annotated[int | None, typer.Option(help="total update steps")] = None,
    resume: ResumeOpt = False,
    anneal: AnnealOpt = None,
    heat: Annotated[
        str | None, typer.Option(help="heating OPERATOR[:STEPS], e.g. sft:20, temperature:10")
    ] = None,
    quiet: QuietOpt = False,
    log: LogOpt = None,
) -> None:
    """Train the CoNet walk policy with GRPO (RLVR) and record the run into --out."""
    from conceptweb.config import deep_merge, resolve_config
    from conceptweb.experiments.runs import train_run

    set_ = set_ or []
    extra: dict[str, Any] = {}
    if seed is not None:
        extra["seed"] = seed
    if steps is not None:
        extra["steps"] = steps
    extra = deep_merge(deep_merge(extra, parse_anneal(anneal)), parse_heat(heat))
    if not resume:
        cfg = resolve_config(preset, config, set_, extra)
    elif preset or config or set_ or seed is not None or anneal or heat:
        from conceptweb.rundir import RunDir

        # options on --resume must say what the run already is: compared with its saved config
        saved = RunDir.open(out).read_config()
        cfg = resolve_config(preset, config, set_, extra, base=saved)
    else:
        cfg = None
    run_with_progress(
        lambda on_step, on_start: train_run(
            cfg, out, resume=resume, steps=steps, on_step=on_step, on_start=on_start
        ),
        quiet,
        out,
        log,
    )


def detector_signals(trainer: Any) -> dict[str, float]:
    """The frustration detector's signals on the history so far (signal/F, .../slope, ...)."""
    from conceptweb.analysis.detector import FrustrationDetector

    detector = trainer.trigger if hasattr(trainer.trigger, "signals") else FrustrationDetector()
    return {f"signal/{k}": v for k, v in detector.signals(trainer.recorder.history).items()}


def run_with_progress(
    job: Callable[..., Any], quiet: bool, out: Path, log: list[str] | None = None
) -> None:
    """Run a training job with a progress display; say when the trigger fires and where it wrote.

    `log` names trackers (see conceptweb.trackers) that receive every step's metrics row and the
    detector's signals.
    """
    from conceptweb.config import config_to_dict
    from conceptweb.interfaces import console as consoles  # rich is imported only if it prints
    from conceptweb.interfaces.progress import training_progress
    from conceptweb.trackers import check_trackers, open_trackers

    state: dict[str, Any] = {"finished": False}
    log = check_trackers(log or [])  # before anything is written

    def on_start(trainer: Any) -> None:
        cfg = trainer.cfg
        if log:
            state["trackers"] = open_trackers(log, out, config_to_dict(cfg))
            state["signals"] = lambda: detector_signals(trainer)
        for note in trainer.notes:
            typer.echo(f"{out}: {note}")
        if trainer.step >= cfg.steps:
            state["finished"] = True
            consoles.console.print(
                f"{out}: already finished ({trainer.step}/{cfg.steps} steps); "
                "raise --steps to extend"
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
        if "trackers" in state:
            state["trackers"].on_step({**row, **state["signals"]()})
        if row.get("det_fire") and not quiet:
            n = int(row.get("det_n_selected", 0))
            what = (
                f"heating {n} problems from step {row['step'] + 1}"
                if n
                else "no problem under the threshold: nothing heated"
            )
            consoles.console.print(f"step {row['step']}: the trigger fired; {what}")

    try:
        job(on_step, on_start)
    finally:
        if "ctx" in state:
            state["ctx"].__exit__(*sys.exc_info())
        if "trackers" in state:
            state["trackers"].close()
    if not quiet and not state["finished"]:
        consoles.console.print(f"run written to {out}")


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
    log: LogOpt = None,
) -> None:
    """Supervised fine-tuning of a trained policy on reference solutions (e.g. new problems).

    Every step still samples rollouts of the original problems, so the records show what SFT
    makes the policy forget; --then-rl resumes RLVR to show the recovery.
    """
    from conceptweb.config import deep_merge, parse_set, validate_config
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
    run_with_progress(
        lambda on_step, on_start: train_run(cfg, out, on_step=on_step, on_start=on_start),
        quiet,
        out,
        log,
    )


def preset_rows() -> tuple[list[str], list[list[str]]]:
    """The presets table: header and one row per preset (the values each preset sets)."""
    from conceptweb.config import PRESETS, RunConfig, deep_merge

    head = ["preset", "N", "K", "Q", "G", "L", "lr", "steps", "init", "what it is"]
    rows = []
    for name, (desc, over) in PRESETS.items():
        c = RunConfig.model_validate(deep_merge(over, {"preset": name}))
        init = c.model.init if c.model.init == "zero" else f"N(0,{c.model.prior_std:g}²)"
        values = (c.model.N, c.model.K, c.problems.Q, c.grpo.G, c.model.L, c.grpo.lr, c.steps)
        rows.append([name, *(f"{v:g}" for v in values), init, desc])
    return head, rows


@app.command()
def presets() -> None:
    """List the built-in presets with the values they set."""
    from conceptweb.interfaces.console import print_table

    head, rows = preset_rows()
    print_table(head, rows, title="conceptweb presets", wrap=("what it is",))


@app.command("config")
@user_errors
def show_config(
    preset: PresetOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Print the fully resolved config (YAML) for a preset, file and overrides."""
    import yaml

    from conceptweb.config import config_to_dict, resolve_config

    cfg = resolve_config(preset, config, set_ or [])
    typer.echo(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
