"""Callbacks of the CoNet training loop: evaluation, checkpointing, progress, and your own.

A callback has one job and the loop calls every callback of its list in order (as TRL's
`TrainerCallback`s). Subclass `Callback` and override what you need:

    class PrintReward(Callback):
        def on_step_end(self, trainer, row):
            print(row["step"], row["reward_mean"])

    Trainer(config, run, callbacks=[*default_callbacks(run), PrintReward()])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from conceptweb.algorithms.heating import HeatStep
from conceptweb.algorithms.world import evaluate
from conceptweb.rundir import RunDir
from conceptweb.runformat import TrainResult

# a conceptweb.algorithms.trainer.Trainer; not imported, because the trainer imports this module
Trainer = Any


class Callback:
    """Hooks of the loop; each does nothing unless overridden."""

    def on_train_begin(self, trainer: Trainer, fresh: bool) -> None:
        """After start() (fresh: step 0 of a new run) or resume()."""

    def on_step_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        """After each step; `row` is the step's metrics row."""

    def on_heat_start(self, trainer: Trainer, step: int, problems: np.ndarray) -> None:
        """The trigger fired at `step`; heating of `problems` starts at the next step."""

    def on_heat_step(self, trainer: Trainer, heat: HeatStep) -> None:
        """After a heating update; heat.used_walks / heat.used_batch are what it trained on."""

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        """When run() returns."""


class Evaluation(Callback):
    """Evaluates every `eval.every` steps, at step 0 and at the end (eval.parquet); 0: never."""

    def on_train_begin(self, trainer: Trainer, fresh: bool) -> None:
        if fresh and trainer.cfg.eval.every:  # eval.every = 0: never, not even at step 0
            self._evaluate(trainer)

    def on_step_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        cfg, step = trainer.cfg, trainer.state.step
        if cfg.eval.every and (step % cfg.eval.every == 0 or step == cfg.steps):
            self._evaluate(trainer)

    @staticmethod
    def _evaluate(trainer: Trainer) -> None:
        cfg, step = trainer.cfg, trainer.state.step
        final = step == cfg.steps and cfg.eval.final_G is not None
        frame = evaluate(
            trainer.state.logits,
            cfg.model.temperature,
            trainer.world,
            int(cfg.eval.final_G) if final else cfg.eval.G,
            cfg.model.L,
            np.random.default_rng([cfg.seed, 4, step]),
            trainer.engine,
        )
        trainer.recorder.add_eval(step, frame)


class Checkpointing(Callback):
    """Flushes the records and saves a checkpoint every `checkpoint.every` steps, at 0 and at the end."""

    def __init__(self, run: RunDir) -> None:
        self.run = run

    def on_train_begin(self, trainer: Trainer, fresh: bool) -> None:
        if fresh:
            self._save(trainer)

    def on_step_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        cfg, step = trainer.cfg, trainer.state.step
        if step % cfg.checkpoint.every == 0 or step == cfg.steps:
            self._save(trainer)

    def _save(self, trainer: Trainer) -> None:
        trainer.recorder.flush(self.run)
        state = trainer.state
        self.run.save_checkpoint(state.step, state.to_checkpoint(trainer.world, trainer.cfg))
        self.run.update_meta(last_step=state.step)


class StepHook(Callback):
    """Calls a function with each step's metrics row (a progress bar, a logger)."""

    def __init__(self, fn: Callable[[dict[str, Any]], None]) -> None:
        self.fn = fn

    def on_step_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        self.fn(row)


def default_callbacks(run: RunDir | None) -> list[Callback]:
    """Evaluation and checkpointing into `run` (none without a run directory)."""
    return [] if run is None else [Evaluation(), Checkpointing(run)]
