"""Single CoNet runs: create or resume a run directory and train it, with the trigger wired in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from conceptweb.algorithms.heating import Trigger
from conceptweb.algorithms.trainer import Trainer
from conceptweb.config import RunConfig, config_changes, config_to_dict, validate_config
from conceptweb.errors import ConceptwebError, RunInterrupted
from conceptweb.rundir import RunDir, atomic_write_json
from conceptweb.runformat import STATUS_INTERRUPTED, STATUS_RUNNING


def make_trigger(config: RunConfig) -> Trigger | None:
    """The heating trigger a config asks for: none, a fixed step, or the frustration detector."""
    if config.anneal.mode == "auto":
        from conceptweb.analysis.detector import FrustrationDetector

        return FrustrationDetector.from_config(config.anneal.detector)
    return None


def prepare_run(
    config: RunConfig | None, out: str | Path, resume: bool, steps: int | None = None
) -> tuple[RunDir, RunConfig]:
    """A new run directory for `config`, or (resume) the existing one with its saved config.

    On resume, `steps` may extend the run; a given `config` must equal the saved one (steps and
    the preset's name aside), else the error names every value it would change.
    """
    if not resume:
        if config is None:
            raise ConceptwebError("a new run needs a config")
        return RunDir.create(out, config_to_dict(config)), config
    run = RunDir.open(out)
    if run.kind != "conet":
        raise ConceptwebError(f"{out} is a {run.kind} run; only CoNet runs resume here")
    saved = validate_config(run.read_config())
    if config is not None:
        changes = config_changes(saved, config)
        if changes:
            raise ConceptwebError(
                "--resume continues the saved config; only --steps may change it, but the "
                f"options given change {', '.join(changes)}"
            )
    if steps is not None and steps != saved.steps:
        if steps < run.read_meta().get("last_step", 0):
            raise ConceptwebError(f"--steps {steps} is before the run's last step")
        saved = validate_config({**config_to_dict(saved), "steps": steps})
        atomic_write_json(run.config_path, config_to_dict(saved))
    return run, saved


def train_run(
    config: RunConfig | None,
    out: str | Path,
    *,
    resume: bool = False,
    steps: int | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    on_start: Callable[[Trainer], None] | None = None,
) -> RunDir:
    """Train (or resume) a CoNet run into `out` and return its run directory.

    The directory is locked while this process writes it. Resuming skips checkpoints that
    cannot be read (the trainer's `notes` say which). Ctrl-C (SIGINT) marks the run
    `interrupted` in run.json and raises RunInterrupted, whose message names the command
    that resumes it.
    """
    path = Path(out)
    if resume:
        RunDir.open(path)  # a clear error before anything is written
    else:
        RunDir.check_new(path)
    with RunDir(path).writing(command="conceptweb train"):
        run, cfg = prepare_run(config, path, resume, steps)
        if resume:
            run.update_meta(status=STATUS_RUNNING)
        trainer = Trainer(cfg, run, trigger=make_trigger(cfg), on_step=on_step)
        try:
            if resume:
                trainer.resume()
            else:
                trainer.start()
            if on_start is not None:
                on_start(trainer)
            trainer.run()
        except KeyboardInterrupt:
            last = run.checkpoint_steps()
            run.update_meta(status=STATUS_INTERRUPTED)
            raise RunInterrupted(
                f"{path}: interrupted; it resumes from its checkpoint at step "
                f"{last[-1] if last else 0} with `conceptweb train --out {path} --resume`"
            ) from None
    return run
