"""verl runs in the conceptweb run format: a reward hook, an importer of dumped generations, heating.

verl (the trainer of the DeepScaleR recipe) writes, with `trainer.rollout_data_dir=DIR`, one
JSONL file per training step, `DIR/<step>.jsonl`, one line per rollout: `input` (the prompt),
`output` (the response), `score`, `step`, `gts` (the ground truth; recent verl versions) and
every extra key that the reward function returned. `compute_score` below is a verl custom reward
function (`custom_reward_function.path=<this file>`, `custom_reward_function.name=compute_score`)
that scores with math-verify and returns, besides `score`, the problem's id (`problem_id`, from
the dataset's `extra_info.index`), `acc` and `response_words`; so each dumped line says which
problem it answered. `import_verl_dump` turns such a directory into a run directory whose
records `conceptweb analyze` (and every diagnostic) reads like a TRL run's. Without the hook,
problems are identified by their prompt text and correctness is `score > 0`.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from conceptweb.errors import ConceptwebError
from conceptweb.rundir import RunDir, atomic_write_table

__all__ = [
    "compute_score",
    "heating_plan",
    "heating_sft_table",
    "import_verl_dump",
    "read_verl_dump",
    "read_verl_metrics",
]

_STEP_FILE = re.compile(r"^(\d+)\.jsonl$")


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """verl custom reward function: math-verify correctness plus what conceptweb records.

    Returns {"score": 1.0 or 0.0, "acc": same, "problem_id": extra_info["index"] (or -1),
    "response_words": number of whitespace-separated words of the response}.
    """
    from conceptweb.llm.rewards import MathTask

    ok = MathTask().score(str(solution_str), {"answer": str(ground_truth)}).correct
    index = (extra_info or {}).get("index", -1)
    return {
        "score": 1.0 if ok else 0.0,
        "acc": 1.0 if ok else 0.0,
        "problem_id": int(index) if index is not None else -1,
        "response_words": len(str(solution_str).split()),
    }


def _read_step_file(path: Path, step: int) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise ConceptwebError(f"{path}:{n} is not JSON (a verl generation dump?)") from None
        if not isinstance(row, dict) or "input" not in row or "output" not in row:
            raise ConceptwebError(f"{path}:{n} has no 'input'/'output' (not a verl dump)")
        row.setdefault("step", step)
        rows.append(row)
    return rows


def read_verl_dump(path: str | Path) -> pd.DataFrame:
    """Every line of a verl `rollout_data_dir` (files <step>.jsonl) as one frame, by step."""
    path = Path(path)
    if not path.is_dir():
        raise ConceptwebError(f"{path} is not a directory (give verl's trainer.rollout_data_dir)")
    files = sorted(
        ((int(m.group(1)), p) for p in path.iterdir() if (m := _STEP_FILE.match(p.name))),
    )
    if not files:
        raise ConceptwebError(f"{path} has no <step>.jsonl files (verl's rollout dumps)")
    rows = [r for step, p in files for r in _read_step_file(p, step)]
    frame = pd.DataFrame(rows)
    frame["step"] = frame["step"].astype(np.int64)
    return frame.sort_values("step", kind="stable").reset_index(drop=True)


def _problem_ids(frame: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Each line's problem id (the hook's problem_id, else by prompt text in order of appearance)."""
    if "problem_id" in frame and (frame["problem_id"].fillna(-1) >= 0).all():
        ids = frame["problem_id"].astype(np.int64).to_numpy()
    else:
        codes, _ = pd.factorize(frame["input"], sort=False)
        ids = codes.astype(np.int64)
    first = frame.assign(problem=ids).drop_duplicates("problem").sort_values("problem")
    cols = ["problem", "input"] + (["gts"] if "gts" in frame else [])
    return ids, first[cols].reset_index(drop=True)


def _completions(frame: pd.DataFrame, ids: np.ndarray, threshold: float) -> pd.DataFrame:
    correct = (
        frame["acc"].astype(float) >= 0.5
        if "acc" in frame
        else frame["score"].astype(float) > threshold
    )
    if "response_words" in frame:
        length = frame["response_words"].astype(np.int64)
    else:
        length = frame["output"].astype(str).str.split().str.len()
    # verl's dumps hold text, not token counts: whether a response was cut at
    # data.max_response_length is known only where a line says so (`truncated`)
    truncated = (
        frame["truncated"].eq(True)  # a line without it: not known to be cut
        if "truncated" in frame
        else pd.Series(False, index=frame.index)
    )
    return pd.DataFrame(
        {
            "step": frame["step"],
            "problem": ids,
            "reward": frame["score"].astype(float),
            "correct": correct.to_numpy(),
            "length": length.to_numpy(),
            "key": frame["output"].astype(str).str.split().str.join(" "),
            "truncated": truncated.to_numpy(),
        }
    )


CLIP_RATIO = "response_length/clip_ratio"  # verl's per-step fraction of responses at the limit


def read_verl_metrics(path: str | Path) -> pd.Series:
    """verl's per-step truncation rate (`response_length/clip_ratio`) from its metrics log.

    Reads the JSONL of verl's file logger (`trainer.logger=[console,file]`, written to
    VERL_FILE_LOGGER_PATH: lines {"step": n, "data": {metric: value}}), or a CSV/parquet table
    with columns step and response_length/clip_ratio (e.g. exported from W&B). Step -> rate.
    """
    path = Path(path)
    if not path.is_file():
        raise ConceptwebError(f"{path} does not exist (give verl's metrics log)")
    try:
        if path.suffix.lower() in (".csv", ".parquet", ".pq"):
            table = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
        else:
            rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x]
            table = pd.DataFrame(
                [
                    {"step": r.get("step"), **(r.get("data") or r)}
                    for r in rows
                    if isinstance(r, dict)
                ]
            )
    except (ValueError, OSError) as exc:
        raise ConceptwebError(f"cannot read {path}: {exc}") from None
    if "step" not in table or CLIP_RATIO not in table:
        raise ConceptwebError(f"{path} has no step and {CLIP_RATIO} (verl's metrics log?)")
    table = table[["step", CLIP_RATIO]].dropna()
    return table.drop_duplicates("step", keep="last").set_index("step")[CLIP_RATIO].astype(float)


def import_verl_dump(
    dump: str | Path,
    out: str | Path,
    threshold: float = 0.0,
    config: dict | None = None,
    metrics: str | Path | None = None,
) -> RunDir:
    """Write a run directory (kind `llm`, source `verl`) from verl's dumped generations.

    Records per step and problem exactly as the TRL monitor does (accuracy, lengths in words,
    distinct correct responses); `verl_problems.parquet` maps problem ids to prompts.
    Truncation rates are NaN (unknown) unless the dumped lines carry `truncated`; `metrics`
    (verl's metrics log, read_verl_metrics) gives each step's rate from verl's own
    `response_length/clip_ratio`.
    """
    from conceptweb.llm.monitor import Completion, RecordBook

    frame = read_verl_dump(dump)
    clip = read_verl_metrics(metrics) if metrics is not None else None
    ids, problems = _problem_ids(frame)
    comps = _completions(frame, ids, threshold)
    cfg = {"source": "verl", "rollout_data_dir": str(Path(dump).resolve()), **(config or {})}
    cfg["correct_if"] = "acc >= 0.5" if "acc" in frame else f"score > {threshold}"
    known = "truncated" in frame
    cfg["truncated_from"] = (
        "the dump's truncated field" if known else "unknown (no truncated field in the dump)"
    )
    if clip is not None:
        cfg["step_truncated_from"] = f"{CLIP_RATIO} in {Path(metrics).resolve()}"  # type: ignore[arg-type]
    run = RunDir.create(out, cfg, kind="llm")
    book = RecordBook(int(ids.max()) + 1)
    for step, group in comps.groupby("step", sort=True):
        row = book.add_rl_step(
            int(step),
            [
                Completion(int(q), float(r), bool(c), int(n), str(k), bool(t))
                for q, r, c, n, k, t in group[
                    ["problem", "reward", "correct", "length", "key", "truncated"]
                ].itertuples(index=False)
            ],
        )
        if not known:  # not 0: nothing says which responses were cut
            row["truncated_rate"] = math.nan
            book.problem_frames[-1]["truncated_rate"] = math.nan
        if clip is not None:
            row["truncated_rate"] = float(clip.get(int(step), math.nan))
    book.write(run)
    atomic_write_table(run.path / "verl_problems.parquet", problems)
    run.update_meta(status="finished")
    return run


def heating_plan(
    run: str | Path, threshold: float = 0.1, recent: int = 3
) -> tuple[int, pd.DataFrame]:
    """(last step, problems to heat): recent accuracy under `threshold`, with a ground truth.

    The same rule as Annealed-RLVR on TRL: accuracy averaged over each problem's last `recent`
    recorded steps. The frame has problem, recent_accuracy, input and gts (the SFT target is the
    problem's reference solution where the user has one; verl's dumps hold only the answer).
    """
    rd = RunDir.open(run)
    problems = rd.read_problems()
    texts_path = rd.path / "verl_problems.parquet"
    if not texts_path.is_file():
        raise ConceptwebError(f"{rd.path} was not imported from verl (no verl_problems.parquet)")
    texts = pd.read_parquet(texts_path)
    rl = problems[problems["phase"] == "rl"].sort_values("step", kind="stable")
    acc = rl.groupby("problem")["accuracy"].apply(lambda s: float(s.iloc[-recent:].mean()))
    hard = acc[acc < threshold].rename("recent_accuracy").reset_index()
    plan = hard.merge(texts, on="problem", how="left")
    if "gts" in plan:
        plan = plan[plan["gts"].notna()]
    last = int(rl["step"].max()) if len(rl) else 0
    return last, plan.reset_index(drop=True)


def heating_sft_table(plan: pd.DataFrame, solutions: str | Path | None = None) -> pd.DataFrame:
    """The SFT data of a heating step for verl's SFT trainer: columns prompt and response.

    The response is the problem's reference solution from `solutions` (a JSONL file, line i =
    training problem i, field `solution`, i.e. the order of the verl training parquet), else the
    ground truth written as a final answer, `\\boxed{...}`.
    """
    response = ["\\boxed{" + str(g) + "}" for g in plan.get("gts", [""] * len(plan))]
    if solutions is not None:
        sol = pd.read_json(solutions, lines=True)
        if "solution" not in sol:
            raise ConceptwebError(f"{solutions} has no 'solution' field")
        for i, q in enumerate(plan["problem"].tolist()):
            if 0 <= q < len(sol) and isinstance(sol["solution"].iloc[q], str):
                response[i] = sol["solution"].iloc[q]
    return pd.DataFrame({"problem": plan["problem"], "prompt": plan["input"], "response": response})
