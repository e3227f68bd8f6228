"""Single CoNet runs: create or resume a run directory and train it, with the trigger wired in."""

from __future__ import annotations

import contextlib
import sys
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
    _check_target(path, resume)
    with RunDir(path).writing(command="conceptweb train"):
        trainer = _trainer(config, path, resume, steps, on_step)
        try:
            if resume:
                trainer.resume()
            else:
                trainer.start()
            if on_start is not None:
                on_start(trainer)
            trainer.run()
        except KeyboardInterrupt:
            raise RunInterrupted(_mark_interrupted(trainer)) from None
    assert trainer.run_dir is not None
    return trainer.run_dir


def train_batch(configs: list[RunConfig | None], outs: list[str | Path]) -> list[RunDir]:
    """Train several runs as batched replicas in this process (`BatchedTrainer`): a run whose
    config is None resumes from its directory, the others are created. Each run ends exactly
    as `train_run` would leave it. Ctrl-C marks every unfinished run `interrupted` and raises
    RunInterrupted naming the command that resumes each."""
    from conceptweb.algorithms.replicas import BatchedTrainer

    paths = [Path(o) for o in outs]
    for cfg, path in zip(configs, paths, strict=True):
        _check_target(path, cfg is None)
    with contextlib.ExitStack() as locks:
        for path in paths:
            locks.enter_context(RunDir(path).writing(command="conceptweb train"))
        trainers = [
            _trainer(cfg, path, cfg is None, None, None)
            for cfg, path in zip(configs, paths, strict=True)
        ]
        try:
            for t, cfg in zip(trainers, configs, strict=True):
                if cfg is None:
                    t.resume()
                else:
                    t.start()
            batch = BatchedTrainer(trainers)
            if batch.note():
                print(batch.note(), file=sys.stderr)
            batch.run()
        except KeyboardInterrupt:
            cut = [t for t in trainers if not hasattr(t, "state") or t.step < t.cfg.steps]
            raise RunInterrupted("; ".join(_mark_interrupted(t) for t in cut)) from None
    return [RunDir.open(path) for path in paths]


def replica_shape(config: dict[str, Any]) -> tuple[Any, ...]:
    """The sizes that runs batched together share to sample in one compiled call."""
    m = config["model"]
    return (m["N"], m["K"], m["L"], config["problems"]["Q"], config["grpo"]["G"], m["engine"])


def _check_target(path: Path, resume: bool) -> None:
    """A clear error before anything is written: no run to resume, or not a new directory."""
    if resume:
        RunDir.open(path)
    else:
        RunDir.check_new(path)


def _trainer(
    config: RunConfig | None,
    path: Path,
    resume: bool,
    steps: int | None,
    on_step: Callable[[dict[str, Any]], None] | None,
) -> Trainer:
    """The trainer of a new or resumed run directory (run.json says `running`)."""
    run, cfg = prepare_run(config, path, resume, steps)
    if resume:
        run.update_meta(status=STATUS_RUNNING)
    return Trainer(cfg, run, trigger=make_trigger(cfg), on_step=on_step)


def _mark_interrupted(trainer: Trainer) -> str:
    """Mark the trainer's run `interrupted`; the sentence that says how to resume it."""
    run = trainer.run_dir
    assert run is not None
    last = run.checkpoint_steps()
    run.update_meta(status=STATUS_INTERRUPTED)
    return (
        f"{run.path}: interrupted; it resumes from its checkpoint at step "
        f"{last[-1] if last else 0} with `conceptweb train --out {run.path} --resume`"
    )
