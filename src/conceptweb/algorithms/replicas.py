"""Batched replicas: many independent CoNet runs advanced in lockstep in one process.

Each replica is an ordinary `Trainer` (its own config, seed, world, state, records, callbacks
and run directory). Per step, every unfinished replica says which policy it samples from
(`Trainer.next_policy`), one call samples the walks of all of them
(`conceptweb.model.replicas.ReplicaSampler`: one parallel compiled kernel for the replicas of
the same sizes on the numba engine), and then each replica finishes its own step (statistics,
records, update, trigger, callbacks) from its own walks. Replica r produces the same records,
checkpoints and final policy as the same run trained alone, bit for bit (the estimator's
refills and heating included: they sample through the replica's own engine and generator).
Replicas may stand at different steps (some resumed) or have different lengths: a replica
leaves the batch when it finishes. On the numpy engine the walks are sampled one replica after
another (same results as alone; no speed-up but the shared process).

    >>> from conceptweb.config import resolve_config
    >>> cfgs = [resolve_config("tiny", sets=["steps=3", "model.N=30", "problems.Q=4",
    ...                                      "problems.held_out=2", f"seed={s}"])
    ...         for s in (0, 1)]
    >>> trainers = [Trainer(cfg) for cfg in cfgs]
    >>> for t in trainers:
    ...     t.start()
    >>> [r.steps_done for r in BatchedTrainer(trainers).run()]
    [3, 3]
"""

from __future__ import annotations

from conceptweb.algorithms.trainer import Trainer
from conceptweb.model.replicas import ReplicaSampler, batched_engine
from conceptweb.runformat import STATUS_FINISHED, STATUS_RUNNING, TrainResult

__all__ = ["BatchedTrainer", "Trainer"]


class BatchedTrainer:
    """Advances started (or resumed) trainers together until each has done all its steps.

    Parameters
    ----------
    trainers: the replicas, each already `start()`ed or `resume()`d.
    """

    def __init__(self, trainers: list[Trainer]) -> None:
        self.trainers = list(trainers)
        self.sampler = ReplicaSampler()

    @property
    def batched(self) -> bool:
        """Whether the walks of two or more replicas share compiled calls (else one by one)."""
        return sum(batched_engine(t.engine) for t in self.trainers) >= 2

    def note(self) -> str | None:
        """What the user should know: replicas whose engine samples them one after another."""
        alone = sorted({t.engine.name for t in self.trainers if not batched_engine(t.engine)})
        if len(self.trainers) < 2 or not alone:
            return None
        return (
            f"note: the {', '.join(alone)} engine samples batched replicas one after another "
            "(same results; only the numba engine samples them in one call)"
        )

    def active(self) -> list[Trainer]:
        """The replicas with steps still to do."""
        return [t for t in self.trainers if t.state.step < t.cfg.steps]

    def step(self) -> int:
        """One step of every unfinished replica; returns how many stepped."""
        active = self.active()
        policies = [t.next_policy() for t in active]
        requests = [t.walk_request(probs) for t, (_, probs) in zip(active, policies, strict=True)]
        walks = self.sampler.sample(requests)
        for t, (T, probs), w in zip(active, policies, walks, strict=True):
            t.train_step((T, probs, w))
        return len(active)

    def run(self, stop_after: int | None = None) -> list[TrainResult]:
        """Train every replica to its last step (or `stop_after` more rounds, for tests of resume);
        each replica is marked finished as it ends. Results in the trainers' order."""
        open_ = list(self.trainers)

        def close_finished() -> None:
            for t in [t for t in open_ if t.state.step >= t.cfg.steps]:
                open_.remove(t)
                t.finish()

        close_finished()
        done = 0
        while open_ and (stop_after is None or done < stop_after):
            self.step()
            done += 1
            close_finished()
        return [t.result(STATUS_RUNNING if t in open_ else STATUS_FINISHED) for t in self.trainers]
