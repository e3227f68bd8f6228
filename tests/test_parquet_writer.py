"""The numpy parquet writer: pyarrow reads back exactly the values and types it would have
written itself, and a training process writes its records without loading pyarrow."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conceptweb.parquet_writer import Column, write_parquet
from conceptweb.rundir import arrow_array
from tests.conftest import modules_loaded_by


def _groups(rng: np.random.Generator, sizes: list[int]) -> list[list[Column]]:
    groups = []
    for n in sizes:
        words = np.array(["train", "new", "", "héllo ✓", "x" * 300], dtype=object)[
            rng.integers(0, 5, n)
        ]
        groups.append(
            [
                Column("step", rng.integers(-(2**40), 2**40, n)),
                Column("reward", rng.random(n), rng.random(n) > 0.3),
                Column("fire", rng.random(n) > 0.5, rng.random(n) > 0.2),
                Column("split", np.where(rng.random(n) > 0.5, "train", "new")),
                Column("phase", words, rng.random(n) > 0.1),
                Column("count", rng.integers(0, 5, n).astype(np.int32)),
                Column("all_null", np.full(n, np.nan), np.zeros(n, dtype=bool)),
            ]
        )
    return groups


@pytest.mark.parametrize("sizes", [[1], [7, 8, 9], [0, 5], [1000, 3]])
def test_pyarrow_reads_back_what_it_would_have_written(sizes):
    groups = _groups(np.random.default_rng(len(sizes)), sizes)
    buf = io.BytesIO()
    write_parquet(buf, groups)
    got = pq.read_table(pa.BufferReader(buf.getvalue()))
    assert pq.ParquetFile(pa.BufferReader(buf.getvalue())).metadata.num_row_groups == len(sizes)
    for i, col in enumerate(groups[0]):
        parts = [arrow_array(g[i].values, g[i].valid) for g in groups]
        want = pa.chunked_array(parts).combine_chunks()
        assert got.schema.field(i).name == col.name
        assert got.column(i).combine_chunks().equals(want), col.name


def test_mismatched_row_groups_and_unknown_kinds_are_refused():
    a = [Column("x", np.arange(3))]
    with pytest.raises(ValueError, match="differ"):
        write_parquet(io.BytesIO(), [a, [Column("x", np.arange(3.0))]])
    with pytest.raises(ValueError, match="rows"):
        write_parquet(io.BytesIO(), [[Column("x", np.arange(3)), Column("y", np.arange(2))]])
    with pytest.raises(ValueError, match="kind"):
        write_parquet(io.BytesIO(), [[Column("t", np.array([1, 2], dtype="datetime64[s]"))]])


def test_a_training_process_loads_neither_pyarrow_nor_pandas(tmp_path):
    """Records and checkpoints of a run with evaluation off are written without pyarrow (about
    40 MiB and 0.2 CPU-seconds to load) or pandas; the files read back as parquet."""
    code = (
        "from conceptweb.algorithms.trainer import Trainer; "
        "from conceptweb.rundir import RunDir; from tests.conftest import small_config; "
        "cfg = small_config(**{'eval.every': 0, 'steps': 5}); "
        f"t = Trainer(cfg, RunDir.create({str(tmp_path / 'r')!r}, {{}})); t.start(); t.run()"
    )
    assert modules_loaded_by(code, {"pyarrow", "pandas"}) == []
    from conceptweb.rundir import RunDir

    run = RunDir(tmp_path / "r")
    assert run.read_metrics()["step"].tolist() == [1, 2, 3, 4, 5]
    assert len(run.read_problems()) == 5 * (12 + len(run.load_checkpoint().new_sources))


def test_ascii_text_columns_are_written_as_their_values_one_by_one():
    """The bulk path for ASCII numpy strings writes the bytes of the value-by-value path."""
    from conceptweb.parquet_writer import _plain, text_bytes

    rng = np.random.default_rng(4)
    words = np.array(["", "a", "new", "train", "x y z", "heat"], dtype="U7")[
        rng.integers(0, 6, 500)
    ]
    for values in (words, words[:1], np.array(["", ""])):
        generic = values.astype(object)
        assert _plain(values, 6) == _plain(generic, 6)
        (a, la), (b, lb) = text_bytes(values), text_bytes(generic)
        assert a == b and la.tolist() == lb.tolist()
