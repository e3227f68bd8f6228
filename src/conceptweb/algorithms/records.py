"""The recorder of a CoNet run: metric rows, per-problem rows, evaluations and the trigger's history.

The recorder owns every buffer that becomes a file of the run directory, writes them
(atomically, whole files) and reads them back on resume. Column names come from
`conceptweb.runformat`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from conceptweb.model.engines import RolloutEngine, get_engine
from conceptweb.model.rollouts import Rollouts
from conceptweb.parquet_writer import Column
from conceptweb.rundir import RunDir
from conceptweb.runformat import SPLIT_NEW, SPLIT_TRAIN

if TYPE_CHECKING:
    import pandas as pd

SOLVED = 0.5


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


def metrics_row(
    step: int,
    phase: str,
    rollouts: Rollouts,
    stats: dict[str, np.ndarray],
    Q: int,
    probs: np.ndarray,
    engine: RolloutEngine | None = None,
) -> dict[str, Any]:
    """The sampling part of a step's metrics (the update and the trigger add theirs).

    `probs` is the policy at the model's temperature; walks 0..Q*G-1 are the training
    problems' (new problems' walks follow them); `engine` computes the entropies and counts
    visits (numpy unless given). Each mean is a sum divided by a count, added as numpy's
    `mean` and `nanmean` add (so the numbers are theirs), in a few array calls per step.
    """
    engine = engine or get_engine("numpy")
    n = Q * rollouts.G
    train_ok = rollouts.success[:n]
    train_len = rollouts.lengths[:n]
    n_ok = int(np.count_nonzero(train_ok))
    entropy_mean, entropy_visited = engine.entropy_means(probs, rollouts, n)
    acc = stats["accuracy"][:Q]
    path_entropy = stats["path_entropy"][:Q]
    seen = ~np.isnan(path_entropy)
    row: dict[str, Any] = {
        "step": step,
        "phase": phase,
        "reward_mean": n_ok / n,
        "len_correct_mean": int(train_len[train_ok].sum(dtype=np.int64)) / n_ok
        if n_ok
        else float("nan"),
        "len_mean": int(train_len.sum(dtype=np.int64)) / n,
        "entropy_mean": entropy_mean,
        "entropy_visited": entropy_visited,
        "n_solved": int(np.count_nonzero(acc >= SOLVED)),
        "n_distinct_correct_mean": _mean(stats["n_distinct_correct"][:Q]),
        "path_entropy_mean": float(np.add.reduce(np.where(seen, path_entropy, 0.0)))
        / int(np.count_nonzero(seen))
        if n_ok
        else float("nan"),
    }
    if stats["accuracy"].size > Q:
        row["new_acc_mean"] = _mean(stats["accuracy"][Q:])
    return row


def _mean(x: np.ndarray) -> float:
    """x.mean() of a float array (the same sum, without the method's overhead)."""
    return float(np.add.reduce(x)) / x.size


def rows_columns(rows: list[dict[str, Any]]) -> list[Column] | None:
    """Metric rows as flat columns, typed as pandas.DataFrame(rows) would type them.

    Columns in order of first appearance; a missing value (or NaN) is null. Integers stay int64
    unless a value is missing (then float64, as pandas does), booleans stay bool, text is text.
    None if a column holds anything else (then the rows are for pandas to write).
    """
    names = list(dict.fromkeys(k for row in rows for k in row))
    columns = []
    for name in names:
        values = [row.get(name) for row in rows]
        present = [v.item() if isinstance(v, np.generic) else v for v in values if v is not None]
        kinds = {type(v) for v in present}
        valid = np.array([v is not None for v in values])
        if kinds == {bool}:
            columns.append(Column(name, np.array([bool(v) for v in values]), valid))
        elif kinds == {int} and valid.all():
            columns.append(Column(name, np.array(values, dtype=np.int64)))
        elif kinds <= {int, float}:
            floats = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
            columns.append(Column(name, floats, ~np.isnan(floats)))
        elif kinds == {str}:
            text = np.array(["" if v is None else v for v in values], dtype=object)
            columns.append(Column(name, text, valid))
        else:
            return None
    return columns


PROBLEM_STATS = ("accuracy", "len_correct_mean", "len_mean", "n_distinct_correct", "path_entropy")
ROWS_PER_GROUP = 4096  # rows of problems.parquet built and written at a time


@dataclass(frozen=True)
class StepProblems:
    """One step's per-problem statistics; its rows of problems.parquet are built when written
    (the step, problem and split columns would triple the memory the records take)."""

    step: int
    n_train: int
    stats: dict[str, np.ndarray]

    def columns(self) -> dict[str, np.ndarray]:
        """The step's rows, column by column (problems 0..n_train-1 are training problems)."""
        problem = np.arange(self.stats["accuracy"].size, dtype=np.int64)
        return {
            "step": np.full(problem.size, self.step, dtype=np.int64),
            "problem": problem,
            "split": np.where(problem < self.n_train, SPLIT_TRAIN, SPLIT_NEW),
            **{k: self.stats[k] for k in PROBLEM_STATS},
        }


def problem_row_groups(
    chunks: list[StepProblems | dict[str, np.ndarray]], rows: int = ROWS_PER_GROUP
) -> Iterator[list[Column]]:
    """The per-problem records as row groups of about `rows` rows each (columns read back on
    resume come as one chunk of whole columns)."""
    pending: list[dict[str, np.ndarray]] = []
    n = 0
    for chunk in chunks:
        pending.append(chunk.columns() if isinstance(chunk, StepProblems) else chunk)
        n += pending[-1]["step"].size
        if n >= rows:
            yield _row_group(pending)
            pending, n = [], 0
    if pending:
        yield _row_group(pending)


def _row_group(chunks: list[dict[str, np.ndarray]]) -> list[Column]:
    return [Column(c, np.concatenate([ch[c] for ch in chunks])) for c in chunks[0]]


class Recorder:
    """Buffers of metrics.parquet, problems.parquet and eval.parquet, and the trigger's history."""

    def __init__(self, capacity: int, n_train: int) -> None:
        self.metrics: list[dict[str, Any]] = []
        self.problem_chunks: list[StepProblems | dict[str, np.ndarray]] = []
        self.eval_frames: list[pd.DataFrame] = []
        self.history = TrainHistory(capacity, n_train)

    def add_step(self, row: dict[str, Any], stats: dict[str, np.ndarray], Q: int) -> None:
        """Per-problem rows of a step and its entry in the trigger's history (not yet `row`)."""
        step = int(row["step"])
        self.problem_chunks.append(StepProblems(step, Q, {k: stats[k] for k in PROBLEM_STATS}))
        self.history.append(
            step, row["reward_mean"], row["len_correct_mean"], stats["accuracy"][:Q]
        )

    def add_metrics(self, row: dict[str, Any]) -> None:
        self.metrics.append(row)

    def add_eval(self, step: int, frame: pd.DataFrame) -> None:
        frame.insert(0, "step", step)
        self.eval_frames.append(frame)

    def flush(self, run: RunDir) -> None:
        """Write metrics, per-problem records and evaluations (atomically, whole files; the
        per-problem rows a row group at a time, without pyarrow)."""
        if self.metrics:
            columns = rows_columns(self.metrics)
            if columns is None:  # a column pandas must type
                import pandas as pd

                run.write_table("metrics", pd.DataFrame(self.metrics))
            else:
                run.write_columns("metrics", [columns])
        if self.problem_chunks:
            run.write_columns("problems", problem_row_groups(self.problem_chunks))
        if self.eval_frames:
            import pandas as pd

            frame = pd.concat(self.eval_frames, ignore_index=True)
            self.eval_frames = [frame]
            run.write_table("eval", frame)

    @classmethod
    def from_run(cls, run: RunDir, up_to: int, capacity: int, n_train: int) -> Recorder:
        """The records of `run` up to step `up_to` (rows from after it are dropped)."""
        rec = cls(max(capacity, 1), n_train)
        metrics = run.read_table("metrics", required=False)
        problems = run.read_table("problems", required=False)
        evals = run.read_table("eval", required=False)
        if len(metrics):
            metrics = metrics[metrics["step"] <= up_to]
            rec.metrics = metrics.to_dict("records")
        if len(problems):
            problems = problems[problems["step"] <= up_to]
            rec.problem_chunks = [{c: problems[c].to_numpy() for c in problems.columns}]
            train = problems[problems["split"] == SPLIT_TRAIN]
            acc = train.pivot(index="step", columns="problem", values="accuracy").sort_index()
            by_step = {int(r["step"]): r for r in rec.metrics}
            for s, row in acc.iterrows():
                m = by_step[int(s)]
                rec.history.append(int(s), m["reward_mean"], m["len_correct_mean"], row.to_numpy())
        if len(evals):
            rec.eval_frames = [evals[evals["step"] <= up_to]]
        return rec
