"""The dynamics monitor: per-step and per-problem records of a TRL GRPO run, in CoNet's format."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from conceptweb.algorithms.heating import Trigger, select_hard_problems
from conceptweb.analysis.events import DEFAULT_CONFIDENCE, OBSERVED_PHASES, ObservationHistory
from conceptweb.errors import ConceptwebError
from conceptweb.llm.rewards import Score, Task
from conceptweb.rundir import RunDir
from conceptweb.runformat import EVAL_COLUMNS as RUNFORMAT_EVAL_COLUMNS
from conceptweb.runformat import LLM_METRIC_COLUMNS, LLM_PROBLEM_COLUMNS

try:  # the callback base class; the pure record-keeping below works without it
    from transformers import TrainerCallback
except ImportError:  # pragma: no cover - conceptweb.llm is only imported with the extra
    TrainerCallback = object  # type: ignore[assignment,misc]

SOLVED = 0.5
# the columns CoNet runs share with LLM runs are defined once, in conceptweb.runformat
METRIC_COLUMNS = list(LLM_METRIC_COLUMNS)
PROBLEM_COLUMNS = list(LLM_PROBLEM_COLUMNS)


class MonitorSetupError(ConceptwebError, ValueError):
    """The trainer, its arguments or its dataset cannot give the monitor correct records."""


EVAL_COLUMNS = list(RUNFORMAT_EVAL_COLUMNS)


@dataclass(frozen=True)
class Completion:
    """One scored completion of one problem."""

    problem: int
    reward: float
    correct: bool
    length: int
    key: str
    truncated: bool = False  # cut at the token limit (no end-of-sequence token)


def completion_text(completion: Any) -> str:
    """The text of a completion: a string, or the content of a chat completion's messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    return str(completion)


def summarize_problems(completions: list[Completion]) -> pd.DataFrame:
    """Per-problem accuracy, lengths and diversity of the correct completions."""
    by_problem: dict[int, list[Completion]] = {}
    for c in completions:
        by_problem.setdefault(c.problem, []).append(c)
    rows = []
    for q in sorted(by_problem):
        cs = by_problem[q]
        ok = [c for c in cs if c.correct]
        counts = np.array(list(Counter(c.key for c in ok).values()), dtype=np.float64)
        if ok:
            p = counts / counts.sum()
            path_entropy = float(-(p * np.log(p)).sum()) + 0.0
        else:
            path_entropy = math.nan
        rows.append(
            {
                "problem": q,
                "accuracy": len(ok) / len(cs),
                "n": len(cs),
                "n_correct": len(ok),
                "len_correct_mean": float(np.mean([c.length for c in ok])) if ok else math.nan,
                "len_mean": float(np.mean([c.length for c in cs])),
                "n_distinct_correct": len(counts),
                "path_entropy": path_entropy,
                "truncated_rate": float(np.mean([c.truncated for c in cs])),
            }
        )
    return pd.DataFrame(rows)


def step_metrics(completions: list[Completion], per_problem: pd.DataFrame) -> dict[str, Any]:
    """The metrics row of one step (pooled over its completions, as CoNet pools its rollouts)."""
    rewards = np.array([c.reward for c in completions], dtype=np.float64)
    lengths = np.array([c.length for c in completions], dtype=np.float64)
    ok = np.array([c.correct for c in completions], dtype=bool)
    has_ok = per_problem["n_correct"] > 0 if len(per_problem) else []
    return {
        "reward_mean": float(np.nanmean(rewards)) if rewards.size else math.nan,
        "len_correct_mean": float(lengths[ok].mean()) if ok.any() else math.nan,
        "len_mean": float(lengths.mean()) if lengths.size else math.nan,
        "n_solved": int((per_problem["accuracy"] >= SOLVED).sum()) if len(per_problem) else 0,
        "n_sampled": len(per_problem),
        "n_completions": len(completions),
        "truncated_rate": float(np.mean([c.truncated for c in completions]))
        if completions
        else math.nan,
        "n_distinct_correct_mean": float(per_problem["n_distinct_correct"].mean())
        if len(per_problem)
        else math.nan,
        "path_entropy_mean": float(per_problem.loc[has_ok, "path_entropy"].mean())
        if ok.any()
        else math.nan,
    }


class RecordBook:
    """All rows of a run so far (metrics and per-problem), the trigger's history, and their files."""

    def __init__(self, n_problems: int, confidence: float = DEFAULT_CONFIDENCE) -> None:
        self.n_problems = n_problems
        self.metrics: list[dict[str, Any]] = []
        self.problem_frames: list[pd.DataFrame] = []
        self.eval_frames: list[pd.DataFrame] = []  # TRL's own evaluation calls (eval_strategy)
        self.own_frames: list[pd.DataFrame] = []  # correct completions kept as heating targets
        self.has_own = np.zeros(n_problems, dtype=bool)  # a correct completion is on record
        self.history = ObservationHistory(n_problems, confidence)

    def row(self, step: int) -> dict[str, Any] | None:
        for r in reversed(self.metrics):
            if r["step"] == step:
                return r
        return None

    def add_rl_step(
        self, step: int, completions: list[Completion], sentinel: list[Completion] | None = None
    ) -> dict[str, Any]:
        """Close GRPO step `step`: its metrics row and per-problem rows, and (optionally) a
        sentinel evaluation after its update (rows with phase `sentinel`). Training samples and
        sentinel samples of one problem at one step are one pooled observation, as offline."""
        per_problem = summarize_problems(completions)
        row = {c: math.nan for c in METRIC_COLUMNS}
        row.update({"step": step, "phase": "rl", "n_heat_problems": 0, "trl_logged": False})
        row.update(step_metrics(completions, per_problem))
        self.metrics.append(row)
        self._add_problem_rows(step, "rl", per_problem)
        observed = [per_problem]
        if sentinel:
            sentinel_problems = summarize_problems(sentinel)
            self._add_problem_rows(step, "sentinel", sentinel_problems)
            row["sentinel_accuracy"] = float(sentinel_problems["accuracy"].mean())
            observed.append(sentinel_problems)
        obs = pd.concat([o for o in observed if len(o)]) if any(len(o) for o in observed) else None
        if obs is not None:
            self.history.observe(step, obs["problem"], obs["n"], obs["n_correct"])
        self.history.append(step, row["reward_mean"], row["len_correct_mean"])
        return row

    def add_sentinel_baseline(self, step: int, sentinel: list[Completion]) -> pd.DataFrame:
        """A sentinel evaluation before the first update (rows with phase `sentinel` at `step`,
        0 in a new run; no metrics row): every sentinel problem's starting state, so that
        forgetting of the problems solved before training is counted from the first check.
        The step enters the trigger's history with NaN reward, as `conceptweb detect` replays it."""
        per_problem = summarize_problems(sentinel)
        self._add_problem_rows(step, "sentinel", per_problem)
        if len(per_problem):
            self.history.observe(
                step, per_problem["problem"], per_problem["n"], per_problem["n_correct"]
            )
        self.history.append(step, math.nan, math.nan)
        return per_problem

    def add_sft_step(self, step: int, n_heat_problems: int, **fields: Any) -> dict[str, Any]:
        row = {c: math.nan for c in METRIC_COLUMNS}
        row.update({"step": step, "phase": "sft", "n_heat_problems": n_heat_problems})
        row.update(fields)
        self.metrics.append(row)
        return row

    def add_own(self, step: int, own: list[tuple[int, str, int]]) -> None:
        """Keep (problem, text, n_tokens) of correct completions of step `step` as the
        model's own heating targets (one per problem and step; own_completions table)."""
        if not own:
            return
        frame = pd.DataFrame(own, columns=["problem", "text", "n_tokens"])
        frame.insert(0, "step", np.int64(step))
        frame["problem"] = frame["problem"].astype(np.int64)
        frame["n_tokens"] = frame["n_tokens"].astype(np.int64)
        self.own_frames.append(frame)
        self.has_own[frame["problem"].to_numpy()] = True

    def add_eval(self, step: int, completions: list[Completion]) -> pd.DataFrame:
        """eval.parquet rows (split `trl_eval`) for completions TRL scored while evaluating."""
        per_problem = summarize_problems(completions)
        if len(per_problem):
            frame = per_problem.rename(columns={"n": "G"})
            frame.insert(0, "step", np.int64(step))
            frame.insert(1, "split", "trl_eval")
            self.eval_frames.append(frame[EVAL_COLUMNS])
        return per_problem

    def add_probe(self, step: int, completions: list[Completion]) -> pd.DataFrame:
        """Per-problem rows of a probe of the heated problems, at the last heating step."""
        per_problem = summarize_problems(completions)
        self._add_problem_rows(step, "sft", per_problem)
        return per_problem

    def _add_problem_rows(self, step: int, phase: str, per_problem: pd.DataFrame) -> None:
        if not len(per_problem):
            return
        frame = per_problem.copy()
        frame.insert(0, "step", np.int64(step))
        frame.insert(2, "split", "train")
        frame.insert(3, "phase", phase)
        self.problem_frames.append(frame[PROBLEM_COLUMNS])

    def pending_problems(self) -> pd.DataFrame:
        """Per-problem rows not yet written (typed as the run format says)."""
        if not self.problem_frames:
            return pd.DataFrame({c: [] for c in PROBLEM_COLUMNS})
        frame = pd.concat(self.problem_frames, ignore_index=True)
        frame["step"] = frame["step"].astype(np.int64)
        frame["problem"] = frame["problem"].astype(np.int64)
        return frame

    def metrics_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.metrics)
        if len(frame):
            frame["step"] = frame["step"].astype(np.int64)
            frame["n_heat_problems"] = frame["n_heat_problems"].astype(np.int64)
            frame["trl_logged"] = frame["trl_logged"].astype("boolean")
        return frame

    def write(self, run: RunDir) -> None:
        """Rewrite metrics.parquet (one row per step, small) and append the per-problem and
        evaluation rows since the last write as new parts (problems.parts/, eval.parts/), so
        a flush costs the rows it adds, not the run's history."""
        if self.metrics:
            run.write_table("metrics", self.metrics_frame())
            run.update_meta(last_step=int(self.metrics[-1]["step"]))
        if self.problem_frames:
            run.append_table("problems", self.pending_problems())
        if self.eval_frames:
            run.append_table("eval", pd.concat(self.eval_frames, ignore_index=True))
        if self.own_frames:
            run.append_table(OWN_TABLE, pd.concat(self.own_frames, ignore_index=True))
        self.discard_pending()

    def discard_pending(self) -> None:
        """Forget the rows waiting to be written (processes other than the writer call this)."""
        self.problem_frames, self.eval_frames, self.own_frames = [], [], []

    @classmethod
    def from_run(
        cls, run: RunDir, n_problems: int, up_to: int, confidence: float = DEFAULT_CONFIDENCE
    ) -> RecordBook:
        """The records of `run` up to step `up_to` (later rows, from after the checkpoint, dropped).

        Only the metrics rows and the trigger's history are kept in memory; the per-problem
        rows stay on disk (truncate_records drops those after `up_to` there).
        """
        book = cls(n_problems, confidence)
        metrics = run.read_table("metrics", required=False)
        problems = run.read_table("problems", required=False)
        if not len(metrics):
            return book
        metrics = metrics[metrics["step"] <= up_to]
        problems = problems[problems["step"] <= up_to] if len(problems) else problems
        book.metrics = [
            {k: v for k, v in r.items() if not (isinstance(v, float) and math.isnan(v))}
            for r in metrics.to_dict("records")
        ]
        for r in book.metrics:
            for c in METRIC_COLUMNS:
                r.setdefault(c, math.nan)
        own = run.read_table(OWN_TABLE, required=False, columns=["step", "problem"])
        if len(own):
            book.has_own[own.loc[own["step"] <= up_to, "problem"].to_numpy()] = True
        observed = problems[problems["phase"].isin(OBSERVED_PHASES)] if len(problems) else problems
        groups = dict(tuple(observed.groupby("step"))) if len(observed) else {}
        rl = {int(r["step"]): r for r in book.metrics if r["phase"] == "rl"}
        # the steps of GRPO updates and of observations without one (a sentinel baseline),
        # in order: what the monitor appended online and `conceptweb detect` replays
        for step in sorted(set(rl) | {int(s) for s in groups}):
            g = groups.get(step)
            if g is not None:
                book.history.observe(step, g["problem"], g["n"], g["n_correct"])
            r = rl.get(step, {})
            book.history.append(
                step, r.get("reward_mean", math.nan), r.get("len_correct_mean", math.nan)
            )
        return book


OWN_TABLE = "own_completions"  # step, problem, text, n_tokens: the model's correct completions
APPENDED_TABLES = ("problems", "eval", "completions", OWN_TABLE)  # grow with the run


def truncate_records(run: RunDir, up_to: int) -> None:
    """Drop the appended rows after step `up_to` on disk (main process, before resuming)."""
    for name in APPENDED_TABLES:
        run.truncate_table(name, up_to)


@dataclass
class HeatDecision:
    """The trigger fired: at which run step and TRL step, and which problems to heat."""

    step: int
    trl_step: int
    problems: list[int]


def _gather(items: list[Completion]) -> list[Completion]:
    """All processes' completions (identity on a single process)."""
    try:
        from accelerate.utils import gather_object

        from conceptweb.llm.runtime import distributed_state
    except ImportError:  # pragma: no cover
        return items
    if distributed_state().num_processes <= 1:
        return items
    return list(gather_object(items))


class Monitor(TrainerCallback):  # type: ignore[misc,valid-type]
    """Reward function + TrainerCallback: scores completions, records them, decides heating.

    The monitor is a reward function and a TrainerCallback at once. TRL calls the reward function
    with every completion of the step together with its dataset row (problem id, answer), so the
    monitor sees each completion's correctness and token length; at the end of the optimizer step
    the callback folds them into one metrics row and one problems row per sampled problem, asks the
    trigger whether to heat, and (on TRL's log) attaches what TRL itself logged for the step
    (reward, token entropy, loss), so the two can be checked against each other.

    Pass `monitor.correctness` as GRPOTrainer's reward function and `monitor` as a callback.
    `step_offset` maps TRL's global step to the run's step (heating steps are run steps too).
    """

    def __init__(
        self,
        book: RecordBook,
        task: Task,
        *,
        run: RunDir | None = None,
        step_offset: int = 0,
        trigger: Trigger | None = None,
        heats_left: int = 0,
        threshold: float = 0.1,
        recent: int = 3,
        has_solution: np.ndarray | None = None,
        flush_every: int = 1,
        on_step: Callable[[dict[str, Any]], None] | None = None,
        on_decision: Callable[[HeatDecision], None] | None = None,
        report: bool = False,
        sentinel: Any = None,
        targets: str = "reference",
    ) -> None:
        self.book = book
        self.sentinel = sentinel  # conceptweb.llm.sentinel.Sentinel, evaluated in on_step_end
        self.targets = targets  # heating targets: reference, own or own_or_reference
        self.own_pending: dict[int, tuple[str, int]] = {}  # problem -> a correct completion
        self._sentinel_prev = 0  # TRL step of the last step with completions
        self._end_ids: set[int] = set()
        self._max_len: int | None = None
        self.report = report
        self.task = task
        self.run = run
        self.step_offset = step_offset
        self.trigger = trigger
        self.heats_left = heats_left
        self.threshold = threshold
        self.recent = recent
        self.has_solution = has_solution
        self.flush_every = flush_every
        self.on_step = on_step
        self.on_decision = on_decision
        self.pending: list[Completion] = []
        self.eval_pending: list[Completion] = []
        self.decisions: list[HeatDecision] = []
        self.stopped: HeatDecision | None = None
        self.finish_at_train_end = False
        self._resume = False
        self._model: Any = None
        self._began = False
        self._in_step = False
        self._flush_due = False
        self._t0 = time.perf_counter()

    # -- use from a script ------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | Path,
        task: Task,
        n_problems: int,
        *,
        resume: bool = False,
        config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Monitor:
        """A monitor writing the run directory `path`, for use in your own TRL script.

        resume=False starts a new run (the folder must be new or empty); resume=True continues
        the run in `path`: pass `resume_from_checkpoint` to `trainer.train` as usual, and the
        records after TRL's checkpoint are dropped when training begins. The run is marked
        finished when `trainer.train()` returns (or call `finish()` yourself).
        """
        if resume:
            run = RunDir.open(path)
            run.update_meta(status="running")
        else:
            p = Path(path)
            if p.is_dir() and any(p.iterdir()):
                raise MonitorSetupError(
                    f"{p} already holds a run: Monitor.open(..., resume=True) continues it "
                    "(with trainer.train(resume_from_checkpoint=...)); or choose another folder"
                )
            run = RunDir.create(p, config or {"note": "recorded by conceptweb's Monitor"}, "llm")
        monitor = cls(RecordBook(n_problems), task, run=run, **kwargs)
        monitor.finish_at_train_end = True
        monitor._resume = resume
        return monitor

    def finish(self, status: str = "finished") -> None:
        """Write the records and mark the run `status` (finished, failed, ...) in run.json."""
        if self.run is not None and _is_main_process():
            self.book.write(self.run)
            self.run.update_meta(status=status)

    def check_dataset(self, dataset: Any) -> None:
        """One-line MonitorSetupError unless `dataset` has the columns and ids the monitor needs."""
        columns = list(getattr(dataset, "column_names", None) or [])
        if not columns:
            return  # not a datasets.Dataset: checked per call instead
        need = ["problem_id", "answer", *getattr(self.task, "required_fields", ())]
        missing = [c for c in need if c not in columns]
        if missing:
            raise MonitorSetupError(
                f"the training dataset lacks column(s) {', '.join(missing)} that the monitor "
                f"needs (it has {', '.join(columns)})"
            )
        ids = np.asarray(dataset["problem_id"])
        self._check_ids(ids)

    def _check_ids(self, ids: np.ndarray) -> None:
        n = self.book.n_problems
        bad = ids[(ids < 0) | (ids >= n)] if ids.size else ids
        if bad.size:
            raise MonitorSetupError(
                f"problem_id {int(bad[0])} is outside 0..{n - 1} (the monitor's n_problems is "
                f"{n}: number the training problems 0..n-1)"
            )

    def _is_eval(self) -> bool:
        """Whether TRL is scoring for its own evaluation, not for a training step."""
        if self._model is not None and not getattr(self._model, "training", True):
            return True
        return self._began and not self._in_step

    # -- the reward function ----------------------------------------------------------------
    def correctness(
        self,
        prompts: list[Any],
        completions: list[Any],
        completion_ids: list[list[int]] | None = None,
        problem_id: list[int] | None = None,
        **columns: Any,
    ) -> list[float]:
        """TRL reward function: 1.0 for a verified-correct completion, else 0.0; records each one."""
        if problem_id is None:
            raise MonitorSetupError("the training dataset needs a problem_id column (0..n-1)")
        self._check_ids(np.asarray(problem_id, dtype=np.int64))
        sink = self.eval_pending if self._is_eval() else self.pending
        rewards = []
        keys = [k for k in columns if k not in ("trainer_state", "log_extra", "log_metric")]
        for i, completion in enumerate(completions):
            row = {k: columns[k][i] for k in keys}
            text = completion_text(completion)
            score: Score = self.task.score(text, row)
            ids = completion_ids[i] if completion_ids is not None else None
            n_tokens = len(ids) if ids is not None else len(text.split())
            length = score.length if score.length is not None else n_tokens
            key = score.key if score.key is not None else " ".join(text.split())
            cut = self.truncated(ids)
            if score.correct and self.targets != "reference" and sink is self.pending:
                self.own_pending.setdefault(int(problem_id[i]), (text, n_tokens))
            sink.append(
                Completion(int(problem_id[i]), score.reward, score.correct, length, key, cut)
            )
            rewards.append(score.reward)
        return rewards

    def truncated(self, ids: list[int] | None) -> bool:
        """Whether a completion was cut at max_completion_length: as long as the limit and not
        ending in an end token (either rule alone when only one is known)."""
        if not ids:
            return False
        unended = int(ids[-1]) not in self._end_ids if self._end_ids else True
        at_limit = len(ids) >= self._max_len if self._max_len else True
        return bool(self._end_ids or self._max_len) and unended and at_limit

    # -- callback hooks ---------------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Check the setup (one-line errors), and on resume drop records after the checkpoint."""
        strategy = str(getattr(args, "logging_strategy", "steps")).split(".")[-1].lower()
        if strategy != "steps" or int(getattr(args, "logging_steps", 1)) != 1:
            raise MonitorSetupError(
                f"the monitor needs TRL's log at every step: set logging_steps=1 and "
                f"logging_strategy='steps' (got {getattr(args, 'logging_steps', None)}, {strategy})"
            )
        loader = kwargs.get("train_dataloader")
        if loader is not None:
            self.check_dataset(getattr(loader, "dataset", None))
        self._model = kwargs.get("model")
        self._began = True
        tok = kwargs.get("processing_class")
        tok = getattr(tok, "tokenizer", tok)  # a processor wraps its tokenizer
        ends = (getattr(tok, "eos_token_id", None), getattr(tok, "pad_token_id", None))
        self._end_ids = {int(i) for i in ends if isinstance(i, int)}
        max_len = getattr(args, "max_completion_length", None)
        self._max_len = int(max_len) if isinstance(max_len, int) else None
        self._sentinel_prev = int(state.global_step)
        if self._resume and self.run is not None:
            up_to = int(state.global_step) + self.step_offset
            if state.is_world_process_zero:
                truncate_records(self.run, up_to)
            _barrier()
            self.book = RecordBook.from_run(self.run, self.book.n_problems, up_to)
            self._resume = False
        self._sentinel_baseline(state)

    def _sentinel_baseline(self, state: Any) -> None:
        """Evaluate the sentinel set before the first update (once per run: not after a
        resume from a checkpoint, nor when the records already hold the baseline)."""
        step = int(state.global_step) + self.step_offset
        if self.sentinel is None or int(state.global_step) != 0 or step in self.book.history.steps:
            return
        self.book.add_sentinel_baseline(step, self.sentinel.evaluate(0))
        self._write_records(state)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._t0 = time.perf_counter()
        self._in_step = True

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        completions = _gather(self.eval_pending)
        self.eval_pending = []
        if completions:
            self.book.add_eval(int(state.global_step) + self.step_offset, completions)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._in_step = False
        step = int(state.global_step) + self.step_offset
        completions = _gather(self.pending)
        self.pending = []
        if not completions:  # a step that reused an earlier generation (num_iterations > 1)
            return
        if self.targets != "reference":
            own = _gather([(q, t, n) for q, (t, n) in self.own_pending.items()])
            self.own_pending = {}
            first = {}
            for q, t, n in own:  # one per problem: the first process's
                first.setdefault(q, (q, t, n))
            self.book.add_own(step, list(first.values()))
        trl_step = int(state.global_step)
        sentinel = None
        if self.sentinel is not None and self.sentinel.due(self._sentinel_prev, trl_step):
            sentinel = self.sentinel.evaluate(trl_step)  # the weights after this step's update
        self._sentinel_prev = trl_step
        row = self.book.add_rl_step(step, completions, sentinel)
        row["time_s"] = time.perf_counter() - self._t0
        if self.trigger is not None and self.heats_left > 0:
            fire, evidence = self.trigger.decide(self.book.history)
            row.update({f"det_{k}": float(v) for k, v in evidence.items()})
            row["det_fire"] = bool(fire)
            if fire and int(state.global_step) < int(state.max_steps):
                self._decide(row, state, control)
        if step % self.flush_every == 0 or control.should_save or control.should_training_stop:
            self._flush_due = True  # written once TRL's log for the step has come (on_log)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any
    ) -> None:
        if not logs or "reward" not in logs:
            return
        row = self.book.row(int(state.global_step) + self.step_offset)
        if row is None:
            return
        row["trl_logged"] = True
        row["trl_reward"] = _num(logs.get("reward"))
        row["entropy_mean"] = _num(logs.get("entropy"))
        for k in ("loss", "grad_norm", "learning_rate"):
            row[k] = _num(logs.get(k))
        if self.report:
            logs.update(self.report_values(row))
        if self.on_step is not None:
            self.on_step(row)
        self._write_if_due(state)

    def _write_if_due(self, state: Any) -> None:
        if self._flush_due:
            self._write_records(state)
        self._flush_due = False

    def _write_records(self, state: Any) -> None:
        """The writer (process 0) appends the new rows; the others drop their copies."""
        if self.run is not None and state.is_world_process_zero:
            self.book.write(self.run)
        else:
            self.book.discard_pending()

    def report_values(self, row: dict[str, Any]) -> dict[str, float]:
        """What the monitor adds to TRL's log for report_to: the step's records (conceptweb/...)
        and the detector's signals on the history so far (conceptweb/signal/...: F(t), its peak,
        the reward slope and knee, the length's running minimum, i.e. the V's state)."""
        from conceptweb.analysis.detector import FrustrationDetector
        from conceptweb.trackers import numeric_values

        skip = ("step", "trl_reward", "entropy_mean", "loss", "grad_norm", "learning_rate")
        out = {f"conceptweb/{k}": v for k, v in numeric_values(row, skip).items()}
        detector = self.trigger if hasattr(self.trigger, "signals") else FrustrationDetector()
        signals = detector.signals(self.book.history)
        out.update({f"conceptweb/signal/{k}": v for k, v in numeric_values(signals).items()})
        return out

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._write_records(state)
        self._flush_due = False

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._began = False
        self._write_records(state)
        self._flush_due = False
        if self.finish_at_train_end:
            self.finish()

    # -- heating selection ------------------------------------------------------------------
    def _decide(self, row: dict[str, Any], state: Any, control: Any) -> None:
        """The trigger fired: choose the problems; stop GRPO (and save) if there are any."""
        chosen = self.select()
        decision = HeatDecision(int(row["step"]), int(state.global_step), chosen)
        row["n_heat_problems"] = len(chosen)
        self.heats_left -= 1
        self.decisions.append(decision)
        if self.on_decision is not None:
            self.on_decision(decision)
        if chosen:
            self.stopped = decision
            control.should_save = True
            control.should_training_stop = True

    def select(self) -> list[int]:
        """Problems whose recent accuracy is under the threshold and that have a target: a
        reference solution, an own correct completion on record, or either (`targets`)."""
        recent = self.book.history.recent_accuracy(self.recent)
        chosen = select_hard_problems(recent[None, :], self.threshold)
        solution = (
            self.has_solution if self.has_solution is not None else np.ones_like(self.book.has_own)
        )
        has_target = {
            "reference": solution,
            "own": self.book.has_own,
            "own_or_reference": solution | self.book.has_own,
        }[self.targets]
        return [int(q) for q in chosen[has_target[chosen]]]


def _barrier() -> None:
    try:
        from conceptweb.llm.runtime import barrier
    except ImportError:  # pragma: no cover
        return
    barrier()


def _is_main_process() -> bool:
    try:
        from conceptweb.llm.runtime import is_main_process
    except ImportError:  # pragma: no cover
        return True
    return is_main_process()


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
