"""Single CoNet runs: create or resume a run directory and train it, with the trigger wired in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from conceptweb.algorithms.heating import Trigger
from conceptweb.algorithms.trainer import Trainer
from conceptweb.config import RunConfig, config_to_dict, validate_config
from conceptweb.errors import ConceptwebError
from conceptweb.rundir import RunDir


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

    On resume, `steps` may extend the run; nothing else of the saved config changes.
    """
    if resume:
        run = RunDir.open(out)
        if run.kind != "conet":
            raise ConceptwebError(f"{out} is a {run.kind} run; only CoNet runs resume here")
        saved = validate_config(run.read_config())
        if steps is not None and steps != saved.steps:
            if steps < run.read_meta().get("last_step", 0):
                raise ConceptwebError(f"--steps {steps} is before the run's last step")
            saved = validate_config({**config_to_dict(saved), "steps": steps})
            from conceptweb.rundir import atomic_write_json

            atomic_write_json(run.config_path, config_to_dict(saved))
        return run, saved
    if config is None:
        raise ConceptwebError("a new run needs a config")
    return RunDir.create(out, config_to_dict(config)), config


def train_run(
    config: RunConfig | None,
    out: str | Path,
    *,
    resume: bool = False,
    steps: int | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    on_start: Callable[[Trainer], None] | None = None,
) -> RunDir:
    """Train (or resume) a CoNet run into `out` and return its run directory."""
    run, cfg = prepare_run(config, out, resume, steps)
    trainer = Trainer(cfg, run, trigger=make_trigger(cfg), on_step=on_step)
    if resume:
        trainer.resume()
    else:
        trainer.start()
    if on_start is not None:
        on_start(trainer)
    trainer.run()
    return run
