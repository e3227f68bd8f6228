"""Append-only tables: parts per flush, read with the old single files, truncated on resume."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from conceptweb.rundir import RunDir


def rows(steps: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"step": steps, "problem": range(len(steps)), "x": [0.5] * len(steps)})


@pytest.fixture
def run(tmp_path: Path) -> RunDir:
    return RunDir.create(tmp_path / "r", {"x": 1}, kind="llm")


def test_parts_append_without_rewriting_and_read_with_a_legacy_file(run: RunDir) -> None:
    run.write_table("problems", rows([1, 1, 2]))  # a run begun by an older version
    first = run.append_table("problems", rows([3, 3]))
    assert first is not None
    stamp = first.stat().st_mtime_ns, first.stat().st_ino
    run.append_table("problems", rows([4]))
    assert run.append_table("problems", rows([])) is None  # nothing to add: no empty part
    assert (first.stat().st_mtime_ns, first.stat().st_ino) == stamp  # never rewritten
    assert [p.name for p in run.table_parts("problems")] == [
        "part-000001.parquet",
        "part-000002.parquet",
    ]
    assert run.read_problems()["step"].tolist() == [1, 1, 2, 3, 3, 4]
    # a part being written when the process was killed is a hidden temporary: never read
    (run.parts_dir("problems") / ".part-000003.parquet.abc.tmp").write_bytes(b"half")
    assert len(run.read_problems()) == 6
    assert run.has_table("problems") and not run.has_table("eval")
    assert run.read_table("eval", required=False).empty


def test_parts_sort_by_number_past_a_million(run: RunDir) -> None:
    d = run.parts_dir("t")
    d.mkdir()
    rows([2]).to_parquet(d / "part-1000000.parquet")
    rows([1]).to_parquet(d / "part-999999.parquet")
    assert run.read_table("t")["step"].tolist() == [1, 2]
    run.append_table("t", rows([3]))
    assert run.table_parts("t")[-1].name == "part-1000001.parquet"


def test_truncate_drops_later_parts_and_cuts_the_straddling_one(run: RunDir) -> None:
    run.write_table("problems", rows([1, 2, 3]))
    run.append_table("problems", rows([4, 5]))
    run.append_table("problems", rows([6, 7]))
    run.truncate_table("problems", 4)
    assert run.read_problems()["step"].tolist() == [1, 2, 3, 4]
    assert len(run.table_parts("problems")) == 1
    run.truncate_table("problems", 4)  # again (a kill during the first): nothing changes
    assert run.read_problems()["step"].tolist() == [1, 2, 3, 4]
    run.truncate_table("problems", 2)
    assert run.read_problems()["step"].tolist() == [1, 2]
    run.append_table("problems", rows([3]))  # resumed writing continues after it
    assert run.read_problems()["step"].tolist() == [1, 2, 3]
    run.truncate_table("absent", 1)  # a table that does not exist: nothing to do


def test_parts_with_newer_columns_read_with_older_rows(run: RunDir) -> None:
    run.write_table("problems", rows([1, 2]))  # written before truncated_rate existed
    run.append_table("problems", rows([3]).assign(truncated_rate=[0.25]))
    table = run.read_problems()
    assert table["step"].tolist() == [1, 2, 3]
    assert table["truncated_rate"].isna().tolist() == [True, True, False]
    assert run.read_table("problems", columns=["step"]).columns.tolist() == ["step"]


def test_per_problem_records_are_written_a_row_group_at_a_time(run: RunDir) -> None:
    """The recorder's per-step records (and rows read back on resume) become one file of
    several row groups whose rows are those of the steps, in order."""
    import numpy as np
    import pyarrow.parquet as pq

    from conceptweb.algorithms.records import PROBLEM_STATS, StepProblems, problem_row_groups

    rng = np.random.default_rng(0)
    resumed = {
        "step": np.array([1, 1, 1]),
        "problem": np.array([0, 1, 2]),
        "split": np.array(["train", "train", "new"], dtype=object),
        **{k: rng.random(3) for k in PROBLEM_STATS},
    }
    steps = [StepProblems(s, 2, {k: rng.random(3) for k in PROBLEM_STATS}) for s in (2, 3, 4)]
    run.write_columns("problems", problem_row_groups([resumed, *steps], rows=5))
    assert pq.ParquetFile(run.problems_path).metadata.num_row_groups == 2
    got = run.read_problems()
    assert got["step"].tolist() == [1] * 3 + [2] * 3 + [3] * 3 + [4] * 3
    assert got["problem"].tolist() == [0, 1, 2] * 4
    assert got["split"].tolist() == ["train", "train", "new"] * 4
    for k in PROBLEM_STATS:
        want = np.concatenate([resumed[k], *[s.stats[k] for s in steps]])
        np.testing.assert_array_equal(got[k].to_numpy(), want)
    with pytest.raises(ValueError, match="no row groups"):
        run.write_columns("problems", iter([]))
    assert len(run.read_problems()) == 12  # a failed write leaves the file as it was
