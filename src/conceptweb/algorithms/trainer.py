"""The CoNet training loop: sample -> record -> update -> trigger, one step at a time.

    world, logits, source = build_world(cfg)           # graph, problems, initial policy
    state = TrainState.fresh(cfg, world, logits, source)
    for step in 1..cfg.steps:
        walks = engine.sample(policy at the step's temperature)      # sample
        row   = metrics of the walks; per-problem rows                # record
        update the policy: SFT, GRPO (estimator) or a heating operator # update
        the trigger may fire: choose problems, open the heating window # trigger
        callbacks: evaluation, checkpointing, progress

`TrainState` owns every array that changes during a run and turns itself into a checkpoint
and back (`conceptweb.runformat.Checkpoint`), so a killed run resumes bit-for-bit. The
recorder owns the records; evaluation, checkpointing and progress are callbacks
(`conceptweb.algorithms.callbacks`). Example:

    >>> from conceptweb.config import resolve_config
    >>> cfg = resolve_config("tiny", sets=["steps=3", "model.N=30", "problems.Q=4",
    ...                                    "problems.held_out=2"])
    >>> trainer = Trainer(cfg)          # no run directory: nothing written
    >>> trainer.start()
    >>> trainer.run().steps_done
    3
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conceptweb.algorithms.callbacks import Callback, StepHook, default_callbacks
from conceptweb.algorithms.estimators import Estimator, Resample, make_estimator
from conceptweb.algorithms.grpo import grpo_update
from conceptweb.algorithms.heating import (
    HEATING_OPERATORS,
    RECENT_STEPS_FOR_SELECTION,
    FixedStepTrigger,
    HeatStart,
    HeatStep,
    Trigger,
    select_hard_problems,
)
from conceptweb.algorithms.optim import Adam
from conceptweb.algorithms.records import Recorder, TrainHistory, metrics_row
from conceptweb.algorithms.sft import SFTBatch, sft_update
from conceptweb.algorithms.world import (
    World,
    build_world,
    evaluate,
    initial_sft_problems,
    select_rollouts,
)
from conceptweb.config import RunConfig
from conceptweb.errors import ConceptwebError
from conceptweb.model.engines import AUTO, RolloutEngine, get_engine
from conceptweb.model.policy import log_softmax
from conceptweb.model.replicas import WalkRequest
from conceptweb.model.rollouts import Rollouts
from conceptweb.rundir import RunDir
from conceptweb.runformat import (
    DETECTOR_PREFIX,
    PHASE_RL,
    PHASE_SFT,
    STATUS_FINISHED,
    STATUS_RUNNING,
    UPDATE_COLUMNS,
    Checkpoint,
    TrainerArrays,
    TrainResult,
)

__all__ = [
    "HeatWindow",
    "TrainHistory",
    "TrainState",
    "Trainer",
    "World",
    "build_world",
    "evaluate",
    "select_rollouts",
]


@dataclass(frozen=True)
class HeatWindow:
    """The steps first..last (inclusive) during which `problems` are heated."""

    first: int = -1
    last: int = -1
    problems: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @classmethod
    def after(cls, step: int, config: RunConfig, problems: np.ndarray) -> HeatWindow:
        """The window opened by a trigger that fired at `step` (clipped to the run's end)."""
        last = min(step + config.anneal.heat.steps, config.steps)
        return cls(step + 1, last, problems.astype(np.int64))

    def __contains__(self, step: int) -> bool:
        return self.first <= step <= self.last


class TrainState:
    """Everything of a run that changes as it trains, and its checkpoint form."""

    def __init__(self, cfg: RunConfig, world: World, logits: np.ndarray) -> None:
        self.step = 0
        self.logits = logits
        self.ref_log_probs = log_softmax(logits, cfg.model.temperature)  # KL reference
        self.rng = np.random.default_rng([cfg.seed, 3])
        self.rl_opt = _adam(cfg, cfg.grpo.lr, logits.shape)
        self.sft_opt = _adam(cfg, cfg.sft.lr, logits.shape)
        self.heat_opt: Adam | None = None
        self.heat = HeatWindow()
        self.n_heats = 0
        self.own_paths = np.full((len(world.tracked), cfg.model.L + 1), -1, dtype=np.int32)
        self.sft_problems = np.zeros(0, dtype=np.int64)
        self.estimator = make_estimator(cfg.grpo.estimator)  # may keep a running state

    @classmethod
    def from_checkpoint(cls, cfg: RunConfig, ck: Checkpoint, first: Checkpoint) -> TrainState:
        """The state saved in `ck`; `first` is the run's step-0 checkpoint (the KL reference)."""
        arrays = ck.require_trainer(f"at step {ck.step}")
        state = cls(cfg, World.from_checkpoint(ck), np.array(ck.logits, dtype=np.float64))
        state.ref_log_probs = log_softmax(first.logits, cfg.model.temperature)
        state.step = ck.step
        state.rng = np.random.default_rng()
        state.rng.bit_generator.state = json.loads(arrays.rng_state)
        state.rl_opt.load_state(arrays.rl_adam)
        if arrays.sft_adam is not None:
            state.sft_opt.load_state(arrays.sft_adam)
        if arrays.heat_adam is not None:
            state.heat_opt = _adam(cfg, float(arrays.heat_adam.lr or 0.0), ck.logits.shape)
            state.heat_opt.load_state(arrays.heat_adam)
        state.heat = HeatWindow(arrays.heat_start, arrays.heat_until, arrays.heat_problems)
        state.n_heats = arrays.n_heats
        state.own_paths = arrays.own_paths
        state.sft_problems = arrays.sft_problems
        state.estimator.load_state(arrays.estimator_state)
        return state

    def to_checkpoint(self, world: World, cfg: RunConfig) -> Checkpoint:
        """The state as a checkpoint; optimiser states only while they can still be used."""
        keep_sft = self.step < cfg.sft.steps
        heat_opt = self.heat_opt if self.step < self.heat.last else None
        arrays = TrainerArrays(
            rng_state=json.dumps(self.rng.bit_generator.state),
            n_heats=self.n_heats,
            heat_start=self.heat.first,
            heat_until=self.heat.last,
            heat_problems=self.heat.problems,
            own_paths=self.own_paths,
            sft_problems=self.sft_problems,
            rl_adam=self.rl_opt.state(),
            sft_adam=self.sft_opt.state() if keep_sft else None,
            heat_adam=heat_opt.state(with_lr=True) if heat_opt is not None else None,
            estimator_state=self.estimator.state(),
        )
        return Checkpoint(
            step=self.step,
            neighbors=world.graph.neighbors,
            logits=self.logits,
            sources=world.train.sources,
            targets=world.train.targets,
            L=cfg.model.L,
            temperature=cfg.model.temperature,
            heldout_sources=world.heldout.sources,
            heldout_targets=world.heldout.targets,
            new_sources=world.new.sources,
            new_targets=world.new.targets,
            trainer=arrays,
        )

    def remember_successes(
        self, rollouts: Rollouts, shortest: np.ndarray, targets: np.ndarray, engine: RolloutEngine
    ) -> None:
        """Keep, per problem, the shortest successful walk of the latest step that had one.

        `shortest` is the engine's per-problem index of that walk (-1: no success this step);
        the answer node closes the path (a successful walk's last step lands on it).
        """
        engine.keep_walks(rollouts, shortest, targets, self.own_paths)


def _adam(cfg: RunConfig, lr: float, shape: tuple[int, ...]) -> Adam:
    g = cfg.grpo
    return Adam(shape, lr, g.beta1, g.beta2, g.adam_eps)


class Trainer:
    """Runs (or resumes) one CoNet run described by a RunConfig.

    Parameters
    ----------
    config: the run's config (`conceptweb.config.RunConfig`).
    run: the run directory to write (None: train in memory, write nothing).
    trigger: decides when to heat; mode `at` builds a FixedStepTrigger, mode `auto` needs one
        (`conceptweb.experiments.runs.make_trigger` builds the frustration detector).
    callbacks: the loop's callbacks; default: evaluation and checkpointing into `run`.
    on_step: a function called with each step's metrics row, after the callbacks.
    """

    def __init__(
        self,
        config: RunConfig,
        run: RunDir | None = None,
        trigger: Trigger | None = None,
        on_step: Callable[[dict[str, Any]], None] | None = None,
        callbacks: list[Callback] | None = None,
    ) -> None:
        self.cfg = config
        self.run_dir = run
        if trigger is None and config.anneal.mode == "at":
            trigger = FixedStepTrigger(int(config.anneal.at_step or 0))
        if config.anneal.mode == "auto" and trigger is None:
            raise ConceptwebError("anneal.mode 'auto' needs a frustration detector as trigger")
        self.trigger = trigger if config.anneal.mode != "off" else None
        self.engine = self._choose_engine()
        make_estimator(config.grpo.estimator)  # an unknown name fails here, before any work
        self.operator = HEATING_OPERATORS.get(config.anneal.heat.operator)()
        self.callbacks = list(default_callbacks(run) if callbacks is None else callbacks)
        if on_step is not None:
            self.callbacks.append(StepHook(on_step))
        self.notes: list[str] = []  # what the user should know (e.g. a skipped checkpoint)
        self.world: World
        self.state: TrainState
        self.recorder: Recorder

    def _choose_engine(self) -> RolloutEngine:
        """The configured engine; a resumed 'auto' run keeps the engine it started with.

        Runs written before run.json recorded the engine (run format 1) used numpy.
        """
        name = self.cfg.model.engine
        if name == AUTO and self.run_dir is not None and self.run_dir.meta_path.exists():
            meta = self.run_dir.read_meta()
            name = meta.get("engine", "numpy" if meta.get("format_version") == 1 else name)
        return get_engine(name)

    # -- set-up ---------------------------------------------------------------------------------
    def start(self) -> None:
        """A fresh run at step 0: world, policy, optimisers, RNG; callbacks evaluate and save."""
        cfg = self.cfg
        self.world, logits, source = build_world(cfg)
        self.state = TrainState(cfg, self.world, logits)
        if source is not None and source.trainer is not None:
            self.state.rl_opt.load_state(source.trainer.rl_adam)
        self.state.sft_problems = initial_sft_problems(cfg, self.world, logits, self.engine)
        self.recorder = Recorder(cfg.steps, len(self.world.train))
        if self.run_dir is not None:
            self.run_dir.update_meta(engine=self.engine.name)
        for cb in self.callbacks:
            cb.on_train_begin(self, fresh=True)

    def resume(self) -> None:
        """Continue from the latest checkpoint of the run directory, dropping later records."""
        run = self.run_dir
        if run is None:
            raise ConceptwebError("resume needs a run directory")
        if not run.checkpoint_steps():
            self.start()
            return
        ck, skipped = run.load_latest_readable_checkpoint()
        if skipped:
            names = ", ".join(run.checkpoint_path(s).name for s in skipped)
            self.notes.append(
                f"cannot read {names}; resuming from the checkpoint at step {ck.step}"
            )
        first = run.load_checkpoint(run.checkpoint_steps()[0])
        self.world = World.from_checkpoint(ck)
        self.state = TrainState.from_checkpoint(self.cfg, ck, first)
        self.recorder = Recorder.from_run(run, ck.step, self.cfg.steps, len(self.world.train))
        for cb in self.callbacks:
            cb.on_train_begin(self, fresh=False)

    # -- the loop -------------------------------------------------------------------------------
    @property
    def step(self) -> int:
        return self.state.step

    @property
    def estimator(self) -> Estimator:
        """The policy-gradient estimator (part of the state: it may keep a running baseline)."""
        return self.state.estimator

    def phase_of(self, step: int) -> str:
        if step <= self.cfg.sft.steps:
            return PHASE_SFT
        if step in self.state.heat:
            return self.cfg.anneal.heat.operator
        return PHASE_RL

    def run(self, stop_after: int | None = None) -> TrainResult:
        """Train until cfg.steps (or stop after `stop_after` more steps, for tests of resume)."""
        done = 0
        while self.state.step < self.cfg.steps:
            if stop_after is not None and done >= stop_after:
                return self.result(STATUS_RUNNING)
            self.train_step()
            done += 1
        return self.finish()

    def finish(self) -> TrainResult:
        """Mark the run finished and tell the callbacks (after its last step)."""
        if self.run_dir is not None:
            self.run_dir.update_meta(status=STATUS_FINISHED, last_step=self.state.step)
        result = self.result(STATUS_FINISHED)
        for cb in self.callbacks:
            cb.on_train_end(self, result)
        return result

    def next_policy(self) -> tuple[float, np.ndarray]:
        """The next step's sampling temperature and the policy (N, K) its walks come from."""
        step = self.state.step + 1
        heating = step > self.cfg.sft.steps and step in self.state.heat
        T = self.cfg.model.temperature
        if heating:
            T = self.operator.temperature(T, self.cfg)
        return T, self.engine.softmax(self.state.logits, T)

    def walk_request(self, probs: np.ndarray) -> WalkRequest:
        """The next step's walks under `probs`, as a request (batched replicas sample it)."""
        tracked = self.world.tracked
        return WalkRequest(
            self.engine,
            self.world.graph.neighbors,
            probs,
            tracked.sources,
            tracked.targets,
            self.cfg.grpo.G,
            self.cfg.model.L,
            self.state.rng,
        )

    def train_step(
        self, sampled: tuple[float, np.ndarray, Rollouts] | None = None
    ) -> dict[str, Any]:
        """One step: sample -> record -> update -> trigger, then the callbacks.

        `sampled` (T, probs, walks): the step's walks, already sampled from `next_policy()`
        by the caller (`conceptweb.algorithms.replicas`); None: sampled here.
        """
        cfg, state, world = self.cfg, self.state, self.world
        t0 = time.perf_counter()
        step = state.step + 1
        phase = self.phase_of(step)
        heating = step > cfg.sft.steps and step in state.heat
        Q = len(world.train)
        # sample
        tracked = world.tracked
        if sampled is None:
            T, probs = self.next_policy()
            walks = self.walk_request(probs).alone()
        else:
            T, probs, walks = sampled
        stats = self.engine.stats(walks)
        state.remember_successes(walks, stats["shortest_success"], tracked.targets, self.engine)
        # record
        row = metrics_row(
            step,
            phase,
            walks,
            stats,
            Q,
            probs if not heating else self.engine.softmax(state.logits, cfg.model.temperature),
            self.engine,
        )
        # update
        if step <= cfg.sft.steps:
            batch = self.sft_batch(state.sft_problems, own=False)
            upd = sft_update(state.logits, T, batch, state.sft_opt, self.engine)
        elif heating:
            upd = self._heat_update(walks, T)
        else:
            upd = grpo_update(
                state.logits,
                T,
                self.estimator.refill(
                    walks if walks.n_problems == Q else select_rollouts(walks, np.arange(Q)),
                    self._resampler(probs),
                    cfg.grpo,
                ),
                cfg.grpo,
                state.rl_opt,
                state.ref_log_probs,
                estimator=self.estimator,
                engine=self.engine,
            )
        row.update({k: upd.get(k, np.nan) for k in UPDATE_COLUMNS})
        row["n_heat_problems"] = int(state.heat.problems.size) if heating else 0
        state.step = step
        self.recorder.add_step(row, stats, Q)
        # trigger
        row.update(self._maybe_trigger(step))
        row["time_s"] = time.perf_counter() - t0
        self.recorder.add_metrics(row)
        for cb in self.callbacks:
            cb.on_step_end(self, row)
        return row

    # -- update and trigger ---------------------------------------------------------------------
    def _resampler(self, probs: np.ndarray) -> Resample:
        """Fresh walks of given training problems under `probs` (the estimator's refill)."""
        cfg, tracked = self.cfg, self.world.tracked

        def resample(problems: np.ndarray) -> Rollouts:
            return self.engine.sample(
                self.world.graph.neighbors,
                probs,
                tracked.sources[problems],
                tracked.targets[problems],
                cfg.grpo.G,
                cfg.model.L,
                self.state.rng,
            )

        return resample

    def _heat_update(self, walks: Rollouts, T: float) -> dict[str, float]:
        """One step of the heating operator: only the selected problems, its own fresh Adam."""
        state = self.state
        assert state.heat_opt is not None
        if state.heat.problems.size == 0:
            return {"loss": 0.0, "grad_norm": 0.0}
        heat = HeatStep(
            logits=state.logits,
            temperature=T,
            problems=state.heat.problems,
            config=self.cfg,
            optimizer=state.heat_opt,
            ref_log_probs=state.ref_log_probs,
            estimator=self.estimator,
            engine=self.engine,
            select_walks=lambda problems: select_rollouts(walks, problems),
            sft_batch=self.sft_batch,
        )
        stats = self.operator.update(heat)
        for cb in self.callbacks:
            cb.on_heat_step(self, heat)
        return stats

    def _maybe_trigger(self, step: int) -> dict[str, Any]:
        """Ask the trigger (when it may fire); if it fires, choose problems and open the window."""
        cfg, state = self.cfg, self.state
        if (
            self.trigger is None
            or state.n_heats >= cfg.anneal.max_heats
            or step <= cfg.sft.steps
            or step <= state.heat.last
            or step >= cfg.steps
        ):
            return {}
        fire, evidence = self.trigger.decide(self.recorder.history)
        out: dict[str, Any] = {f"{DETECTOR_PREFIX}{k}": float(v) for k, v in evidence.items()}
        out[f"{DETECTOR_PREFIX}fire"] = bool(fire)
        if not fire:
            return out
        recent = self.recorder.history.accuracy[-RECENT_STEPS_FOR_SELECTION:]
        chosen = select_hard_problems(recent, cfg.anneal.heat.threshold)
        chosen = self.operator.select(chosen, state.own_paths)
        state.n_heats += 1
        out[f"{DETECTOR_PREFIX}n_selected"] = int(chosen.size)
        if chosen.size == 0:
            return out  # nothing to heat: the moment passes and RL simply continues
        state.heat = HeatWindow.after(step, cfg, chosen)
        lr = cfg.sft.lr if self.operator.uses_sft_lr else cfg.grpo.lr
        state.heat_opt = _adam(cfg, lr, state.logits.shape)
        start = HeatStart(
            state.logits,
            state.heat.problems,
            cfg,
            self.world.graph.neighbors,
            self.world.shortest_paths,
        )
        out.update(self.operator.begin(start))
        for cb in self.callbacks:
            cb.on_heat_start(self, step, state.heat.problems)
        return out

    def sft_batch(self, problems: np.ndarray, own: bool) -> SFTBatch:
        """SFT batch of tracked problems: their own latest successes, or shortest paths."""
        if own:
            own_paths = self.state.own_paths
            paths = [own_paths[q][own_paths[q] >= 0] for q in problems]
            paths = [p for p in paths if p.size >= 2]
        else:
            paths = self.world.shortest_paths(problems)
        return SFTBatch.from_paths(self.world.graph, paths)

    # -- results --------------------------------------------------------------------------------
    def flush(self) -> None:
        """Write the records so far (atomically)."""
        assert self.run_dir is not None
        self.recorder.flush(self.run_dir)

    def result(self, status: str) -> TrainResult:
        """Where the run stands: its directory, steps, heats and the last step's metrics."""
        heat = self.state.heat
        return TrainResult(
            path=str(self.run_dir.path) if self.run_dir is not None else None,
            status=status,
            steps_done=self.state.step,
            steps_total=self.cfg.steps,
            n_heats=self.state.n_heats,
            heat_steps=(heat.first, heat.last) if heat.first >= 0 else None,
            final_metrics=dict(self.recorder.metrics[-1]) if self.recorder.metrics else {},
        )
