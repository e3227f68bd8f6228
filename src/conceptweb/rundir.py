"""Run directories: atomic writes of config, tables, checkpoints and summaries, and their validation."""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
import time
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from conceptweb.errors import ConceptwebError
from conceptweb.jsonable import json_default
from conceptweb.parquet_writer import Column, text_bytes, write_parquet

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

from conceptweb.runformat import (
    FORMAT,
    FORMAT_VERSION,
    READABLE_VERSIONS,
    STATUS_RUNNING,
    Checkpoint,
)

_CKPT_RE = re.compile(r"^step_(\d{6,})\.npz$")
_PART_RE = re.compile(r"^part-(\d{6,})\.parquet$")
PARTS_SUFFIX = ".parts"
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(
        path, json.dumps(data, indent=2, sort_keys=False, default=json_default) + "\n"
    )


def atomic_write_table(path: str | Path, table: pd.DataFrame | pa.Table) -> None:
    """Write a DataFrame or Arrow table as parquet, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def atomic_write_columns(path: str | Path, row_groups: Iterable[list[Column]]) -> None:
    """Write row groups of flat columns as parquet, atomically, without pyarrow
    (`conceptweb.parquet_writer`; a generator of row groups bounds the memory to one)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        write_parquet(fh, row_groups)


def arrow_array(
    values: np.ndarray, valid: np.ndarray | None = None, large: bool = False
) -> pa.Array:
    """A numpy column (bool, int64, float64 or text) as an Arrow array; `valid` False is null.

    Built from raw buffers because pyarrow's converters import pandas (about 40 MiB and half a
    second) on first use. Text is `string`, or `large_string` if `large` (what pandas' str
    columns become).
    """
    import pyarrow as pa

    values = np.asarray(values)
    n = len(values)
    bitmap = None
    if valid is not None and not valid.all():
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    kind = values.dtype.kind
    if kind == "b":
        return pa.Array.from_buffers(
            pa.bool_(), n, [bitmap, pa.py_buffer(np.packbits(values, bitorder="little"))]
        )
    if kind in "iu":
        data = np.ascontiguousarray(values, dtype=np.int64)
        return pa.Array.from_buffers(pa.int64(), n, [bitmap, pa.py_buffer(data)])
    if kind == "f":
        data = np.ascontiguousarray(values, dtype=np.float64)
        return pa.Array.from_buffers(pa.float64(), n, [bitmap, pa.py_buffer(data)])
    data, lengths = text_bytes(values)
    offsets = np.zeros(n + 1, dtype=np.int64 if large else np.int32)
    np.cumsum(lengths, out=offsets[1:])
    kind_type = pa.large_string() if large else pa.string()
    return pa.Array.from_buffers(kind_type, n, [bitmap, pa.py_buffer(offsets), pa.py_buffer(data)])


def arrow_table(columns: dict[str, pa.Array]) -> pa.Table:
    """A table of the given Arrow arrays (no pandas involved)."""
    import pyarrow as pa

    return pa.Table.from_arrays(list(columns.values()), names=list(columns))


def atomic_savez(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Save arrays as an .npz (what `np.load` reads), atomically, streamed to the file.

    An array is deflated (level 1) if a sample of it shrinks to under half, else stored as it
    is: a trained policy's float tables and a random graph barely compress (deflating them
    saved 4% and 30% and took most of a checkpoint's time at N=100k), while walks padded with
    -1 and tables still zero shrink many times.
    """
    with (
        atomic_path(path) as tmp,
        zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, allowZip64=True, compresslevel=1) as zf,
    ):
        for name, value in arrays.items():
            a = np.asanyarray(value)
            entry: str | zipfile.ZipInfo = name + ".npy"
            if not _compresses(a):
                entry = zipfile.ZipInfo(entry, date_time=time.localtime()[:6])
                entry.compress_type = zipfile.ZIP_STORED
            with zf.open(entry, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, a, allow_pickle=False)


_SAMPLE_PIECES, _PIECE_BYTES = 8, 4096


def _compresses(a: np.ndarray) -> bool:
    """Whether deflating `a` pays: small arrays always, others if 8 pieces spread over the array
    deflate to under half their size."""
    if a.nbytes <= _SAMPLE_PIECES * _PIECE_BYTES or a.dtype.hasobject:
        return True
    data = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
    gap = data.size // _SAMPLE_PIECES
    sample = b"".join(
        data[i * gap : i * gap + _PIECE_BYTES].tobytes() for i in range(_SAMPLE_PIECES)
    )
    return len(zlib.compress(sample, 1)) < len(sample) // 2


class RunDir:
    """A run directory: config.json, run.json, metrics/problems/eval parquet, checkpoints/, figures/."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # -- layout ---------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def meta_path(self) -> Path:
        return self.path / "run.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.parquet"

    @property
    def problems_path(self) -> Path:
        return self.path / "problems.parquet"

    @property
    def eval_path(self) -> Path:
        return self.path / "eval.parquet"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def figures_dir(self) -> Path:
        return self.path / "figures"

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    # -- creation and validation ----------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, config: dict[str, Any], kind: str = "conet") -> RunDir:
        """Start a new run directory; refuses to touch a non-empty existing directory."""
        path = Path(path)
        cls.check_new(path)
        run = cls(path)
        path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run.config_path, config)
        from conceptweb import __version__

        run.write_meta(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "kind": kind,
                "status": STATUS_RUNNING,
                "last_step": 0,
                "conceptweb_version": __version__,
            }
        )
        return run

    @staticmethod
    def check_new(path: Path) -> None:
        """Refuse a path that is a file or a non-empty directory (its writer's lock aside)."""
        if path.exists() and not path.is_dir():
            raise ConceptwebError(f"{path} exists and is not a directory")
        if path.is_dir() and any(p.name != ".lock" for p in path.iterdir()):
            raise ConceptwebError(
                f"{path} already exists and is not empty; use --resume to continue it, "
                "or choose another --out"
            )

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """Open an existing run directory, with a clear error if it is not one."""
        path = Path(path)
        if not path.is_dir():
            raise ConceptwebError(f"{path} is not a directory (expected a run directory)")
        run = cls(path)
        if not run.meta_path.is_file() or not run.config_path.is_file():
            raise ConceptwebError(
                f"{path} is not a conceptweb run directory (no run.json/config.json)"
            )
        meta = run.read_meta()
        if meta.get("format") != FORMAT:
            raise ConceptwebError(f"{path} is not a conceptweb run directory (unknown format)")
        version = meta.get("format_version")
        if version not in READABLE_VERSIONS:
            readable = ", ".join(map(str, READABLE_VERSIONS))
            raise ConceptwebError(
                f"{path} was written in run format {version}; this conceptweb reads formats "
                f"{readable}. Re-run it with this version."
            )
        return run

    # -- metadata ---------------------------------------------------------------------------
    def read_meta(self) -> dict[str, Any]:
        try:
            return json.loads(self.meta_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConceptwebError(f"cannot read {self.meta_path}: {exc}") from None

    def write_meta(self, meta: dict[str, Any]) -> None:
        atomic_write_json(self.meta_path, meta)

    def update_meta(self, **fields: Any) -> None:
        meta = self.read_meta()
        meta.update(fields)
        self.write_meta(meta)

    @property
    def kind(self) -> str:
        return str(self.read_meta().get("kind", "conet"))

    def read_config(self) -> dict[str, Any]:
        try:
            return json.loads(self.config_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConceptwebError(f"cannot read {self.config_path}: {exc}") from None

    # -- tables -----------------------------------------------------------------------------
    # A table NAME is NAME.parquet (rewritten whole by write_table), or parts appended to
    # NAME.parts/ (append_table: one file per flush, written atomically), or both (a run
    # begun by an older version and continued by this one); readers see their rows together.
    def write_table(self, name: str, table: pd.DataFrame | pa.Table) -> None:
        atomic_write_table(self.path / f"{name}.parquet", table)

    def write_columns(self, name: str, row_groups: Iterable[list[Column]]) -> None:
        """Rewrite table `name` from row groups of flat columns (no pyarrow involved)."""
        atomic_write_columns(self.path / f"{name}.parquet", row_groups)

    def parts_dir(self, name: str) -> Path:
        return self.path / f"{name}{PARTS_SUFFIX}"

    def table_parts(self, name: str) -> list[Path]:
        """The appended parts of table `name`, in the order they were written."""
        d = self.parts_dir(name)
        if not d.is_dir():
            return []
        parts = [(int(m.group(1)), p) for p in d.iterdir() if (m := _PART_RE.match(p.name))]
        return [p for _, p in sorted(parts)]

    def append_table(self, name: str, table: pd.DataFrame) -> Path | None:
        """Append rows to table `name` as a new part (atomic: a kill leaves no half part)."""
        if not len(table):
            return None
        parts = self.table_parts(name)
        seq = int(_PART_RE.match(parts[-1].name).group(1)) + 1 if parts else 1  # type: ignore[union-attr]
        path = self.parts_dir(name) / f"part-{seq:06d}.parquet"
        atomic_write_table(path, table)
        return path

    def has_table(self, name: str) -> bool:
        return (self.path / f"{name}.parquet").is_file() or bool(self.table_parts(name))

    def read_table(
        self, name: str, required: bool = True, columns: list[str] | None = None
    ) -> pd.DataFrame:
        """All rows of table `name` (only `columns` if given): its single file, then its parts."""
        import pandas as pd  # readers only: writing a run loads neither pandas nor pyarrow
        import pyarrow as pa
        import pyarrow.parquet as pq

        files = [self.path / f"{name}.parquet"] if (self.path / f"{name}.parquet").is_file() else []
        files += self.table_parts(name)
        if not files:
            if required:
                raise ConceptwebError(f"{self.path} is incomplete: {name}.parquet is missing")
            return pd.DataFrame()
        tables = []
        for path in files:
            try:
                tables.append(pq.read_table(path, columns=columns))
            except (OSError, pa.ArrowInvalid) as exc:
                raise ConceptwebError(f"cannot read {path}: {exc}") from None
        try:  # parts of older versions may lack newer columns: those read as missing
            table = pa.concat_tables(tables, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ConceptwebError(
                f"the parts of {self.path}/{name} do not fit together: {exc}"
            ) from None
        return table.to_pandas()

    def truncate_table(self, name: str, up_to: int, column: str = "step") -> None:
        """Drop the rows of table `name` whose `column` exceeds `up_to` (for a resumed run).

        Parts wholly after `up_to` are deleted, the one that straddles it rewritten, each
        change atomic: a kill midway leaves whole files, and truncating again finishes it.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        single = self.path / f"{name}.parquet"
        for path in reversed([single, *self.table_parts(name)]):
            if not path.is_file():
                continue
            try:
                steps = pq.read_table(path, columns=[column]).column(column).to_numpy()
            except (OSError, pa.ArrowInvalid, KeyError) as exc:
                raise ConceptwebError(f"cannot read {path}: {exc}") from None
            if not steps.size or steps.max() <= up_to:
                continue
            if steps.min() > up_to and path != single:
                path.unlink()
                continue
            import pyarrow.compute as pc

            table = pq.read_table(path)
            atomic_write_table(path, table.filter(pc.less_equal(table[column], up_to)))

    def read_metrics(self) -> pd.DataFrame:
        return self.read_table("metrics")

    def read_problems(self) -> pd.DataFrame:
        return self.read_table("problems")

    def read_eval(self) -> pd.DataFrame:
        return self.read_table("eval", required=False)

    # -- checkpoints --------------------------------------------------------------------------
    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoints_dir / f"step_{step:06d}.npz"

    def checkpoint_steps(self) -> list[int]:
        if not self.checkpoints_dir.is_dir():
            return []
        steps = []
        for p in self.checkpoints_dir.iterdir():
            m = _CKPT_RE.match(p.name)
            if m:
                steps.append(int(m.group(1)))
        return sorted(steps)

    def save_checkpoint(self, step: int, checkpoint: Checkpoint | dict[str, np.ndarray]) -> Path:
        """Write checkpoint `step` in the current schema (arrays are validated against it)."""
        if not isinstance(checkpoint, Checkpoint):
            checkpoint = Checkpoint.from_arrays(
                {"step": np.array(step), **checkpoint}, f"for step {step}", self.config_L()
            )
        path = self.checkpoint_path(step)
        atomic_savez(path, checkpoint.to_arrays())
        return path

    def load_checkpoint(self, step: int | None = None) -> Checkpoint:
        """Load checkpoint `step` (the latest if None), in any readable schema."""
        steps = self.checkpoint_steps()
        if not steps:
            raise ConceptwebError(f"{self.path} has no checkpoints")
        if step is None:
            step = steps[-1]
        elif step not in steps:
            near = min(steps, key=lambda s: abs(s - step))
            raise ConceptwebError(f"{self.path} has no checkpoint at step {step} (nearest: {near})")
        path = self.checkpoint_path(step)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
            raise ConceptwebError(f"cannot read checkpoint {path}: {exc}") from None
        arrays.setdefault("step", np.array(step))
        return Checkpoint.from_arrays(arrays, str(path), self.config_L())

    def load_latest_readable_checkpoint(self) -> tuple[Checkpoint, list[int]]:
        """The newest checkpoint that can be read, and the steps of newer ones that cannot.

        A run killed while the disk failed, or a file damaged later, leaves a checkpoint that
        cannot be read; resuming from the one before it loses only the steps since.
        """
        skipped: list[int] = []
        error = ""
        for step in reversed(self.checkpoint_steps()):
            try:
                return self.load_checkpoint(step), skipped
            except ConceptwebError as exc:
                skipped.append(step)
                error = str(exc)
        if skipped:
            raise ConceptwebError(f"{self.path}: no checkpoint can be read ({error})")
        raise ConceptwebError(f"{self.path} has no checkpoints")

    # -- the writer's lock ----------------------------------------------------------------------
    @property
    def lock_path(self) -> Path:
        return self.path / ".lock"

    @contextmanager
    def writing(self, command: str = "") -> Iterator[None]:
        """Hold an exclusive lock on the directory while this process writes it.

        A second writer gets a one-line error naming the process that holds the lock. The lock
        is an OS file lock (released when the process dies, even by SIGKILL); the file keeps
        who took it last, for the message.
        """
        import fcntl

        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
                raise ConceptwebError(
                    f"{self.path} is being written by {holder}; wait for it to finish or stop it"
                ) from None
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
            who = f"process {os.getpid()} on {socket.gethostname()} since {since}"
            if command:
                who += f" ({command})"
            os.ftruncate(fd, 0)
            os.pwrite(fd, who.encode(), 0)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def config_L(self) -> int | None:
        """The run's maximum walk length from config.json (None if it states none)."""
        try:
            L = self.read_config().get("model", {}).get("L")
        except ConceptwebError:
            return None
        return int(L) if isinstance(L, int) and L > 0 else None

    # -- summary ------------------------------------------------------------------------------
    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.summary_path, summary)
