"""The CoNet training loop: GRPO, SFT phases and heating, recorded step by step into a run directory.

One step = sample G walks for every tracked problem with the current policy, record what they
show, then update the policy with the step's phase (RL, SFT or a heating operator). Records and
full-state checkpoints are written atomically, so a killed run resumes bit-for-bit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from conceptweb.algorithms.grpo import grpo_update
from conceptweb.algorithms.heating import (
    FixedStepTrigger,
    Trigger,
    frustrated_nodes,
    reset_logits,
    select_hard_problems,
)
from conceptweb.algorithms.optim import Adam
from conceptweb.algorithms.sft import SFTBatch, sft_update
from conceptweb.config import RunConfig, parse_problem_spec
from conceptweb.errors import ConceptwebError
from conceptweb.model.engines import RolloutEngine, get_engine
from conceptweb.model.graph import ConceptGraph, random_regular_graph
from conceptweb.model.policy import entropy, log_softmax, softmax
from conceptweb.model.problems import ProblemSet, sample_new_problems, sample_problems
from conceptweb.model.rollouts import Rollouts
from conceptweb.rundir import RunDir
from conceptweb.runformat import (
    STATUS_FINISHED,
    STATUS_RUNNING,
    UPDATE_COLUMNS,
    Checkpoint,
    TrainerArrays,
    TrainResult,
)

RECENT_STEPS_FOR_SELECTION = 5
GRPO_OPERATORS = ("temperature", "reset", "entropy", "rl_hard")


@dataclass
class World:
    """The fixed part of a run: graph, training problems, held-out problems, new problems."""

    graph: ConceptGraph
    train: ProblemSet
    heldout: ProblemSet
    new: ProblemSet

    @property
    def tracked(self) -> ProblemSet:
        """Problems whose rollouts are sampled every step: training problems, then new ones."""
        return self.train.concat(self.new)

    @classmethod
    def from_checkpoint(cls, ck: Checkpoint) -> World:
        return cls(
            ConceptGraph(ck.neighbors),
            ProblemSet(ck.sources, ck.targets),
            ProblemSet(ck.heldout_sources, ck.heldout_targets),
            ProblemSet(ck.new_sources, ck.new_targets),
        )


@dataclass
class TrainHistory:
    """Per-step records of the training problems so far (what a trigger may look at)."""

    capacity: int
    n_problems: int
    n: int = 0
    _steps: np.ndarray = field(init=False)
    _reward: np.ndarray = field(init=False)
    _len: np.ndarray = field(init=False)
    _acc: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self._steps = np.zeros(self.capacity, dtype=np.int64)
        self._reward = np.full(self.capacity, np.nan)
        self._len = np.full(self.capacity, np.nan)
        self._acc = np.full((self.capacity, self.n_problems), np.nan)

    def append(self, step: int, reward: float, len_correct: float, accuracy: np.ndarray) -> None:
        if self.n == self.capacity:
            self._grow()
        self._steps[self.n] = step
        self._reward[self.n] = reward
        self._len[self.n] = len_correct
        self._acc[self.n] = accuracy
        self.n += 1

    def _grow(self) -> None:
        cap = max(2 * self.capacity, 16)
        for name in ("_steps", "_reward", "_len", "_acc"):
            old = getattr(self, name)
            shape = (cap,) + old.shape[1:]
            new = np.full(shape, np.nan) if old.dtype.kind == "f" else np.zeros(shape, old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)
        self.capacity = cap

    @property
    def steps(self) -> np.ndarray:
        return self._steps[: self.n]

    @property
    def reward(self) -> np.ndarray:
        return self._reward[: self.n]

    @property
    def len_correct(self) -> np.ndarray:
        return self._len[: self.n]

    @property
    def accuracy(self) -> np.ndarray:
        return self._acc[: self.n]


def select_rollouts(rollouts: Rollouts, problems: np.ndarray) -> Rollouts:
    """The walks of the given problems only, renumbered 0..len(problems)-1."""
    G = rollouts.G
    problems = np.asarray(problems, dtype=np.int64)
    if np.array_equal(problems, np.arange(rollouts.n_problems)):
        return rollouts  # all of them, in order: keep the arrays (and their cached tokens)
    idx = (problems[:, None] * G + np.arange(G)[None, :]).ravel()
    return Rollouts(
        np.repeat(np.arange(problems.size, dtype=np.int64), G),
        rollouts.nodes[idx],
        rollouts.actions[idx],
        rollouts.lengths[idx],
        rollouts.success[idx],
        int(problems.size),
        G,
    )


def evaluate(
    logits: np.ndarray,
    temperature: float,
    world: World,
    G: int,
    L: int,
    rng: np.random.Generator,
    engine: RolloutEngine | None = None,
) -> pd.DataFrame:
    """G walks per training, held-out and new problem: per-problem accuracy and lengths."""
    engine = engine or get_engine("numpy")
    probs = softmax(logits, temperature)
    frames = []
    for split, problems in (("train", world.train), ("heldout", world.heldout), ("new", world.new)):
        if len(problems) == 0:
            continue
        ro = engine.sample(
            world.graph.neighbors, probs, problems.sources, problems.targets, G, L, rng
        )
        st = engine.stats(ro)
        frames.append(
            pd.DataFrame(
                {
                    "split": split,
                    "problem": np.arange(len(problems)),
                    "accuracy": st["accuracy"],
                    "n_correct": st["n_correct"].astype(np.int64),
                    "G": G,
                    "len_correct_mean": st["len_correct_mean"],
                    "n_distinct_correct": st["n_distinct_correct"],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def build_world(config: RunConfig) -> tuple[World, np.ndarray, Checkpoint | None]:
    """Graph, problems and initial logits of a fresh run (from init_from's checkpoint if set).

    Returns (world, logits, source_checkpoint or None).
    """
    source = None
    if config.init_from is not None:
        source = RunDir.open(config.init_from).load_checkpoint(config.init_step)
        world = World.from_checkpoint(source)
        world = World(world.graph, world.train, world.heldout, ProblemSet.empty())
        logits = np.array(source.logits, dtype=np.float64)
        if logits.shape != (world.graph.N, world.graph.K):
            raise ConceptwebError("init_from checkpoint has logits of the wrong shape")
    else:
        m = config.model
        graph = random_regular_graph(m.N, m.K, seed=config.graph_seed)
        train, heldout = sample_problems(
            graph,
            config.problems.Q,
            config.problems.held_out,
            np.random.default_rng([config.graph_seed, 1]),
            n_starts=config.problems.n_starts,
            min_dist=config.problems.min_dist,
        )
        world = World(graph, train, heldout, ProblemSet.empty())
        if m.init == "prior":
            logits = np.random.default_rng([config.seed, 2]).normal(0.0, m.prior_std, (m.N, m.K))
        else:
            logits = np.zeros((m.N, m.K))
    kind, value = parse_problem_spec(config.sft.problems)
    if config.sft.steps > 0 and kind == "new":
        exclude = world.train.pairs() | world.heldout.pairs()
        new = sample_new_problems(
            world.graph,
            int(value),
            np.random.default_rng([config.seed, 5]),
            exclude,
            config.problems.min_dist,
        )
        world = World(world.graph, world.train, world.heldout, new)
    return world, logits, source


class Trainer:
    """Runs (or resumes) one CoNet run described by a RunConfig, writing to a run directory."""

    def __init__(
        self,
        config: RunConfig,
        run: RunDir | None = None,
        trigger: Trigger | None = None,
        on_step: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.cfg = config
        self.run_dir = run
        self.on_step = on_step
        if trigger is None and config.anneal.mode == "at":
            trigger = FixedStepTrigger(int(config.anneal.at_step or 0))
        if config.anneal.mode == "auto" and trigger is None:
            raise ConceptwebError("anneal.mode 'auto' needs a frustration detector as trigger")
        self.trigger = trigger if config.anneal.mode != "off" else None
        self._metrics: list[dict[str, Any]] = []
        self._problem_chunks: list[dict[str, np.ndarray]] = []
        self._eval_frames: list[pd.DataFrame] = []
        self._path_cache: dict[tuple[int, ...], list[np.ndarray]] = {}
        self.engine = self._choose_engine()

    def _choose_engine(self) -> RolloutEngine:
        """The configured engine; a resumed 'auto' run keeps the engine it started with."""
        name = self.cfg.model.engine
        if name == "auto" and self.run_dir is not None and self.run_dir.meta_path.exists():
            name = self.run_dir.read_meta().get("engine", name)
        return get_engine(name)

    # -- set-up -------------------------------------------------------------------------------
    def start(self) -> None:
        """Initialise a fresh run (step 0): world, policy, optimisers, RNG; evaluate; checkpoint."""
        cfg = self.cfg
        self.world, self.logits, source = build_world(cfg)
        self.ref_log_probs = log_softmax(self.logits, cfg.model.temperature)
        self.rl_opt = self._new_adam(cfg.grpo.lr)
        if source is not None and source.trainer is not None:
            self.rl_opt.load_state(source.trainer.rl_adam)
        self.rng = np.random.default_rng([cfg.seed, 3])
        self.step = 0
        self.n_heats = 0
        self.heat_start = -1
        self.heat_until = -1
        self.heat_problems = np.zeros(0, dtype=np.int64)
        self.heat_opt: Adam | None = None
        self.sft_opt = self._new_adam(cfg.sft.lr)
        L = cfg.model.L
        self.own_paths = np.full((len(self.world.tracked), L + 1), -1, dtype=np.int32)
        self.sft_problems = self._initial_sft_problems()
        self.history = TrainHistory(cfg.steps, len(self.world.train))
        if self.run_dir is not None:
            self.run_dir.update_meta(engine=self.engine.name)
            self._evaluate()
            self._checkpoint()

    def _new_adam(self, lr: float) -> Adam:
        g = self.cfg.grpo
        return Adam(self.logits.shape, lr, g.beta1, g.beta2, g.adam_eps)

    def _initial_sft_problems(self) -> np.ndarray:
        """Indices (into the tracked problems) of the initial SFT phase's problems."""
        cfg = self.cfg
        if cfg.sft.steps == 0:
            return np.zeros(0, dtype=np.int64)
        kind, value = parse_problem_spec(cfg.sft.problems)
        Q = len(self.world.train)
        if kind == "new":
            return np.arange(Q, Q + len(self.world.new))
        if kind == "train":
            return np.arange(Q)
        acc = evaluate(
            self.logits,
            cfg.model.temperature,
            World(
                self.world.graph,
                self.world.train,
                ProblemSet.empty(),
                ProblemSet.empty(),
            ),
            cfg.eval.G,
            cfg.model.L,
            np.random.default_rng([cfg.seed, 6]),
            self.engine,
        )["accuracy"].to_numpy()
        return np.flatnonzero(acc < value)

    def resume(self) -> None:
        """Continue from the latest checkpoint of the run directory, truncating later records."""
        if self.run_dir is None:
            raise ConceptwebError("resume needs a run directory")
        run = self.run_dir
        if not run.checkpoint_steps():
            self.start()
            return
        ck = run.load_checkpoint()
        state = ck.require_trainer(f"at step {ck.step} of {run.path}")
        cfg = self.cfg
        self.world = World.from_checkpoint(ck)
        self.logits = np.array(ck.logits, dtype=np.float64)
        # the KL reference is the run's initial policy, kept in the step-0 checkpoint
        first = run.load_checkpoint(run.checkpoint_steps()[0])
        self.ref_log_probs = log_softmax(first.logits, cfg.model.temperature)
        self.rl_opt = self._new_adam(cfg.grpo.lr)
        self.rl_opt.load_state(state.rl_adam)
        self.sft_opt = self._new_adam(cfg.sft.lr)
        if state.sft_adam is not None:
            self.sft_opt.load_state(state.sft_adam)
        self.heat_opt = None
        if state.heat_adam is not None:
            self.heat_opt = self._new_adam(float(state.heat_adam.lr))
            self.heat_opt.load_state(state.heat_adam)
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = json.loads(state.rng_state)
        self.step = ck.step
        self.n_heats = state.n_heats
        self.heat_start = state.heat_start
        self.heat_until = state.heat_until
        self.heat_problems = state.heat_problems
        self.own_paths = state.own_paths
        self.sft_problems = state.sft_problems
        self._load_records_until(self.step)

    def _load_records_until(self, step: int) -> None:
        run = self.run_dir
        assert run is not None
        metrics = run.read_table("metrics", required=False)
        problems = run.read_table("problems", required=False)
        evals = run.read_table("eval", required=False)
        self.history = TrainHistory(max(self.cfg.steps, 1), len(self.world.train))
        if len(metrics):
            metrics = metrics[metrics["step"] <= step]
            self._metrics = metrics.to_dict("records")
        if len(problems):
            problems = problems[problems["step"] <= step]
            self._problem_chunks = [{c: problems[c].to_numpy() for c in problems.columns}]
            train = problems[problems["split"] == "train"]
            acc = train.pivot(index="step", columns="problem", values="accuracy").sort_index()
            by_step = {int(r["step"]): r for r in self._metrics}
            for s, row in acc.iterrows():
                m = by_step[int(s)]
                self.history.append(int(s), m["reward_mean"], m["len_correct_mean"], row.to_numpy())
        if len(evals):
            self._eval_frames = [evals[evals["step"] <= step]]

    # -- the loop -----------------------------------------------------------------------------
    def phase_of(self, step: int) -> str:
        if step <= self.cfg.sft.steps:
            return "sft"
        if self.heat_start <= step <= self.heat_until:
            return self.cfg.anneal.heat.operator
        return "rl"

    def run(self, stop_after: int | None = None) -> TrainResult:
        """Train until cfg.steps (or stop after `stop_after` more steps, for tests of resume)."""
        done = 0
        while self.step < self.cfg.steps:
            if stop_after is not None and done >= stop_after:
                return self.result(STATUS_RUNNING)
            self.train_step()
            done += 1
        if self.run_dir is not None:
            self.run_dir.update_meta(status=STATUS_FINISHED, last_step=self.step)
        return self.result(STATUS_FINISHED)

    def result(self, status: str) -> TrainResult:
        """Where the run stands: its directory, steps, heats and the last step's metrics."""
        heated = self.heat_start >= 0
        return TrainResult(
            path=str(self.run_dir.path) if self.run_dir is not None else None,
            status=status,
            steps_done=self.step,
            steps_total=self.cfg.steps,
            n_heats=self.n_heats,
            heat_steps=(self.heat_start, self.heat_until) if heated else None,
            final_metrics=dict(self._metrics[-1]) if self._metrics else {},
        )

    def train_step(self) -> dict[str, Any]:
        cfg = self.cfg
        t0 = time.perf_counter()
        step = self.step + 1
        phase = self.phase_of(step)
        T = cfg.model.temperature
        heat = cfg.anneal.heat
        if phase == "temperature":
            T = T * heat.temperature
        tracked = self.world.tracked
        Q = len(self.world.train)
        probs = softmax(self.logits, T)
        ro = self.engine.sample(
            self.world.graph.neighbors,
            probs,
            tracked.sources,
            tracked.targets,
            cfg.grpo.G,
            cfg.model.L,
            self.rng,
        )
        stats = self.engine.stats(ro)
        self._remember_successes(ro)
        row = self._metrics_row(step, phase, ro, stats, Q)

        if step <= cfg.sft.steps:
            upd = sft_update(
                self.logits,
                T,
                self._sft_batch(self.sft_problems, own=False),
                self.sft_opt,
                self.engine,
            )
        elif phase == "rl":
            train_ro = select_rollouts(ro, np.arange(Q))
            upd = grpo_update(
                self.logits,
                T,
                train_ro,
                cfg.grpo,
                self.rl_opt,
                self.ref_log_probs,
                0.0,
                self.engine,
            )
        else:
            upd = self._heat_update(phase, ro, T)
        row.update({k: upd.get(k, np.nan) for k in UPDATE_COLUMNS})
        heating = step > cfg.sft.steps and self.heat_start <= step <= self.heat_until
        row["n_heat_problems"] = int(self.heat_problems.size) if heating else 0
        self.step = step
        self._record_problems(step, stats, Q)
        self.history.append(
            step, row["reward_mean"], row["len_correct_mean"], stats["accuracy"][:Q]
        )
        row.update(self._maybe_trigger(step))
        row["time_s"] = time.perf_counter() - t0
        self._metrics.append(row)
        if self.run_dir is not None:
            if cfg.eval.every and (step % cfg.eval.every == 0 or step == cfg.steps):
                self._evaluate()
            if step % cfg.checkpoint.every == 0 or step == cfg.steps:
                self._checkpoint()
        if self.on_step is not None:
            self.on_step(row)
        return row

    def _heat_update(self, operator: str, ro: Rollouts, T: float) -> dict[str, float]:
        """One heating step; it touches only the selected problems, with its own fresh Adam."""
        assert self.heat_opt is not None
        if self.heat_problems.size == 0:
            return {"loss": 0.0, "grad_norm": 0.0}
        if operator in ("sft", "sft_own"):
            batch = self._sft_batch(self.heat_problems, own=operator == "sft_own")
            return sft_update(self.logits, T, batch, self.heat_opt, self.engine)
        entropy_coef = self.cfg.anneal.heat.entropy_coef if operator == "entropy" else 0.0
        hard_ro = select_rollouts(ro, self.heat_problems)
        return grpo_update(
            self.logits,
            T,
            hard_ro,
            self.cfg.grpo,
            self.heat_opt,
            self.ref_log_probs,
            entropy_coef,
            self.engine,
        )

    def _metrics_row(
        self, step: int, phase: str, ro: Rollouts, stats: dict[str, np.ndarray], Q: int
    ) -> dict[str, Any]:
        train_ok = ro.success[: Q * ro.G]
        train_len = ro.lengths[: Q * ro.G]
        n_ok = int(train_ok.sum())
        node_entropy = entropy(softmax(self.logits, self.cfg.model.temperature))
        _, node, _ = select_rollouts(ro, np.arange(Q)).tokens()
        visits = np.bincount(node, minlength=node_entropy.size)
        acc = stats["accuracy"][:Q]
        row: dict[str, Any] = {
            "step": step,
            "phase": phase,
            "reward_mean": float(train_ok.mean()),
            "len_correct_mean": float(train_len[train_ok].mean()) if n_ok else float("nan"),
            "len_mean": float(train_len.mean()),
            "entropy_mean": float(node_entropy.mean()),
            "entropy_visited": float((visits * node_entropy).sum() / max(visits.sum(), 1)),
            "n_solved": int((acc >= 0.5).sum()),
            "n_distinct_correct_mean": float(stats["n_distinct_correct"][:Q].mean()),
            "path_entropy_mean": float(np.nanmean(stats["path_entropy"][:Q]))
            if n_ok
            else float("nan"),
        }
        if len(self.world.new):
            row["new_acc_mean"] = float(stats["accuracy"][Q:].mean())
        return row

    def _record_problems(self, step: int, stats: dict[str, np.ndarray], Q: int) -> None:
        P = stats["accuracy"].size
        split = np.where(np.arange(P) < Q, "train", "new")
        self._problem_chunks.append(
            {
                "step": np.full(P, step, dtype=np.int64),
                "problem": np.arange(P, dtype=np.int64),
                "split": split,
                "accuracy": stats["accuracy"],
                "len_correct_mean": stats["len_correct_mean"],
                "len_mean": stats["len_mean"],
                "n_distinct_correct": stats["n_distinct_correct"],
                "path_entropy": stats["path_entropy"],
            }
        )

    def _remember_successes(self, ro: Rollouts) -> None:
        """Keep, per problem, the shortest successful walk of the latest step that had one."""
        ok = np.flatnonzero(ro.success)
        if ok.size == 0:
            return
        order = ok[np.lexsort((ro.lengths[ok], ro.problem[ok]))]
        first = order[np.unique(ro.problem[order], return_index=True)[1]]
        q, n = ro.problem[first], ro.lengths[first].astype(np.int64)
        L = ro.nodes.shape[1]
        self.own_paths[q] = -1
        self.own_paths[q, :L] = ro.nodes[first]
        # the answer node closes the path (a successful walk's last step lands on it)
        self.own_paths[q, n] = self.world.tracked.targets[q]

    def _sft_batch(self, problems: np.ndarray, own: bool) -> SFTBatch:
        if own:
            paths = [self.own_paths[q][self.own_paths[q] >= 0] for q in problems]
            paths = [p for p in paths if p.size >= 2]
        else:
            paths = self._shortest_paths(problems)
        return SFTBatch.from_paths(self.world.graph, paths)

    def _shortest_paths(self, problems: np.ndarray) -> list[np.ndarray]:
        key = tuple(int(q) for q in problems)
        if key not in self._path_cache:
            tracked = self.world.tracked
            self._path_cache[key] = (
                self.world.graph.shortest_paths(
                    tracked.sources[problems], tracked.targets[problems]
                )
                if len(problems)
                else []
            )
        return self._path_cache[key]

    def _maybe_trigger(self, step: int) -> dict[str, Any]:
        cfg = self.cfg
        if (
            self.trigger is None
            or self.n_heats >= cfg.anneal.max_heats
            or step <= cfg.sft.steps
            or step <= self.heat_until
            or step >= cfg.steps
        ):
            return {}
        fire, evidence = self.trigger.decide(self.history)
        out: dict[str, Any] = {f"det_{k}": float(v) for k, v in evidence.items()}
        out["det_fire"] = bool(fire)
        if not fire:
            return out
        heat = cfg.anneal.heat
        recent = self.history.accuracy[-RECENT_STEPS_FOR_SELECTION:]
        chosen = select_hard_problems(recent, heat.threshold)
        if heat.operator == "sft_own":
            has_path = (self.own_paths[chosen] >= 0).sum(axis=1) >= 2
            chosen = chosen[has_path]
        self.n_heats += 1
        out["det_n_selected"] = int(chosen.size)
        if chosen.size == 0:
            return out  # nothing to heat: the moment passes and RL simply continues
        self.heat_problems = chosen.astype(np.int64)
        self.heat_start = step + 1
        self.heat_until = min(step + heat.steps, cfg.steps)
        lr = cfg.sft.lr if heat.operator.startswith("sft") else cfg.grpo.lr
        self.heat_opt = self._new_adam(lr)
        if heat.operator == "reset" and chosen.size:
            paths = self._shortest_paths(chosen)
            nodes = frustrated_nodes(
                self.logits,
                cfg.model.temperature,
                self.world.graph.neighbors,
                paths,
                heat.reset_nodes,
            )
            reset_logits(self.logits, nodes, heat.reset_frac)
            out["det_n_reset_nodes"] = int(nodes.size)
        return out

    # -- records and checkpoints --------------------------------------------------------------
    def _evaluate(self) -> None:
        cfg = self.cfg
        frame = evaluate(
            self.logits,
            cfg.model.temperature,
            self.world,
            cfg.eval.G,
            cfg.model.L,
            np.random.default_rng([cfg.seed, 4, self.step]),
            self.engine,
        )
        frame.insert(0, "step", self.step)
        self._eval_frames.append(frame)

    def flush(self) -> None:
        """Write metrics, per-problem records and evaluations (atomically, whole files)."""
        run = self.run_dir
        assert run is not None
        if self._metrics:
            run.write_table("metrics", pd.DataFrame(self._metrics))
        if self._problem_chunks:
            cols = self._problem_chunks[0].keys()
            table = pa.table(
                {c: np.concatenate([ch[c] for ch in self._problem_chunks]) for c in cols}
            )
            self._problem_chunks = [{c: table.column(c).to_numpy() for c in cols}]
            run.write_table("problems", table)
        if self._eval_frames:
            frame = pd.concat(self._eval_frames, ignore_index=True)
            self._eval_frames = [frame]
            run.write_table("eval", frame)

    def _checkpoint(self) -> None:
        run = self.run_dir
        assert run is not None
        self.flush()
        # optimiser states only while they can still be used (they are most of a checkpoint's size)
        keep_sft = self.step < self.cfg.sft.steps
        keep_heat = self.heat_opt is not None and self.step < self.heat_until
        state = TrainerArrays(
            rng_state=json.dumps(self.rng.bit_generator.state),
            n_heats=self.n_heats,
            heat_start=self.heat_start,
            heat_until=self.heat_until,
            heat_problems=self.heat_problems,
            own_paths=self.own_paths,
            sft_problems=self.sft_problems,
            rl_adam=self.rl_opt.state(),
            sft_adam=self.sft_opt.state() if keep_sft else None,
            heat_adam=self.heat_opt.state(with_lr=True) if keep_heat and self.heat_opt else None,
        )
        w = self.world
        run.save_checkpoint(
            self.step,
            Checkpoint(
                step=self.step,
                neighbors=w.graph.neighbors,
                logits=self.logits,
                sources=w.train.sources,
                targets=w.train.targets,
                L=self.cfg.model.L,
                temperature=self.cfg.model.temperature,
                heldout_sources=w.heldout.sources,
                heldout_targets=w.heldout.targets,
                new_sources=w.new.sources,
                new_targets=w.new.targets,
                trainer=state,
            ),
        )
        run.update_meta(last_step=self.step)
