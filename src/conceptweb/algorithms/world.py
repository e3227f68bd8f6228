"""The fixed part of a CoNet run (graph and problems), how it is built, and evaluation on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from conceptweb.algorithms.estimators import select_groups
from conceptweb.config import RunConfig, parse_problem_spec
from conceptweb.errors import ConceptwebError
from conceptweb.model.engines import RolloutEngine, get_engine
from conceptweb.model.families import build_graph
from conceptweb.model.graph import ConceptGraph
from conceptweb.model.policy import mask_logits, softmax
from conceptweb.model.problems import ProblemSet, sample_new_problems, sample_problems
from conceptweb.model.rollouts import Rollouts
from conceptweb.rundir import RunDir
from conceptweb.runformat import SPLIT_HELDOUT, SPLIT_NEW, SPLIT_TRAIN, Checkpoint

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class World:
    """Graph, training problems, held-out problems, new problems (never change during a run)."""

    graph: ConceptGraph
    train: ProblemSet
    heldout: ProblemSet
    new: ProblemSet
    _paths: dict[tuple[int, ...], list[np.ndarray]] = field(default_factory=dict, repr=False)

    @cached_property
    def tracked(self) -> ProblemSet:
        """Problems whose rollouts are sampled every step: training problems, then new ones."""
        return self.train.concat(self.new)

    def shortest_paths(self, problems: np.ndarray) -> list[np.ndarray]:
        """Reference solutions (shortest paths) of the given tracked problems (cached)."""
        key = tuple(int(q) for q in problems)
        if key not in self._paths:
            tracked = self.tracked
            self._paths[key] = (
                self.graph.shortest_paths(tracked.sources[problems], tracked.targets[problems])
                if len(problems)
                else []
            )
        return self._paths[key]

    @classmethod
    def from_checkpoint(cls, ck: Checkpoint) -> World:
        return cls(
            ConceptGraph(ck.neighbors),
            ProblemSet(ck.sources, ck.targets),
            ProblemSet(ck.heldout_sources, ck.heldout_targets),
            ProblemSet(ck.new_sources, ck.new_targets),
        )


def select_rollouts(rollouts: Rollouts, problems: np.ndarray) -> Rollouts:
    """The walks of the given problems only, renumbered 0..len(problems)-1."""
    problems = np.asarray(problems, dtype=np.int64)
    if np.array_equal(problems, np.arange(rollouts.n_problems)):
        return rollouts  # all of them, in order: keep the arrays (and their cached tokens)
    return select_groups(rollouts, problems)


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
    import pandas as pd  # only when evaluating: a training process need not load it

    engine = engine or get_engine("numpy")
    probs = softmax(logits, temperature)
    frames = []
    splits = ((SPLIT_TRAIN, world.train), (SPLIT_HELDOUT, world.heldout), (SPLIT_NEW, world.new))
    for split, problems in splits:
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
        graph = build_graph(
            m.graph,
            m.N,
            m.K,
            config.graph_seed,
            directed=m.directed,
            rewire_p=m.rewire_p,
            communities=m.communities,
            community_in=m.community_in,
        )
        train, heldout = sample_problems(
            graph,
            config.problems.Q,
            config.problems.held_out,
            np.random.default_rng([config.graph_seed, 1]),
            n_starts=config.problems.n_starts,
            min_dist=config.problems.min_dist,
            n_answers=config.problems.n_answers,
            distinct=config.problems.distinct,
        )
        world = World(graph, train, heldout, ProblemSet.empty())
        if m.init == "prior":
            shape = (graph.N, graph.K)
            logits = np.random.default_rng([config.seed, 2]).normal(0.0, m.prior_std, shape)
        else:
            logits = np.zeros((graph.N, graph.K))
        if not graph.valid_actions().all():
            logits = mask_logits(logits, graph.valid_actions())
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


def initial_sft_problems(
    config: RunConfig, world: World, logits: np.ndarray, engine: RolloutEngine | None = None
) -> np.ndarray:
    """Indices (into the tracked problems) of the initial SFT phase's problems."""
    if config.sft.steps == 0:
        return np.zeros(0, dtype=np.int64)
    kind, value = parse_problem_spec(config.sft.problems)
    Q = len(world.train)
    if kind == "new":
        return np.arange(Q, Q + len(world.new))
    if kind == "train":
        return np.arange(Q)
    train_only = World(world.graph, world.train, ProblemSet.empty(), ProblemSet.empty())
    acc = evaluate(
        logits,
        config.model.temperature,
        train_only,
        config.eval.G,
        config.model.L,
        np.random.default_rng([config.seed, 6]),
        engine,
    )["accuracy"].to_numpy()
    return np.flatnonzero(acc < value)
