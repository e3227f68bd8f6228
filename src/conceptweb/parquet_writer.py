"""A writer of flat parquet files in numpy alone, so that a training process never loads pyarrow.

pyarrow and its parquet module take about 40 MiB and 0.2 CPU-seconds to load, more than a
small CoNet run needs for everything else. The records a run writes while it trains
(`metrics.parquet`, `problems.parquet`) are flat tables of bool, int64, float64 and text
columns, which this module writes by the Apache Parquet format's specification: one data page
per column chunk (format version 1 pages, PLAIN values, definition levels for nulls), GZIP
compression, metadata in Thrift's compact protocol. Readers (pyarrow, hence pandas) see the
same values and column types as in a file pyarrow wrote: int64, double, bool and string
(nullable). Anything else (nested columns, timestamps) is for pyarrow to write.

    >>> import io, numpy as np
    >>> buf = io.BytesIO()
    >>> write_parquet(buf, [[Column("x", np.arange(3)), Column("s", np.array(["a", "b", "c"]))]])
    >>> buf.getvalue()[:4] == buf.getvalue()[-4:] == b"PAR1"
    True

References: https://parquet.apache.org/docs/file-format/ and the Thrift definitions of
`parquet.thrift` (apache/parquet-format); Thrift's compact protocol
(apache/thrift, doc/specs/thrift-compact-protocol.md).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

__all__ = ["Column", "text_bytes", "write_parquet"]

MAGIC = b"PAR1"
# parquet.thrift enums
BOOLEAN, INT64, DOUBLE, BYTE_ARRAY = 0, 2, 5, 6
OPTIONAL = 1
UTF8 = 0  # ConvertedType
PLAIN, RLE = 0, 3
GZIP = 2
DATA_PAGE = 0
# Thrift compact protocol types
T_I32, T_I64, T_BINARY, T_LIST, T_STRUCT = 5, 6, 8, 9, 12
GZIP_LEVEL = 1  # fast; files come out about the size of pyarrow's (snappy, dictionaries)


@dataclass(frozen=True)
class Column:
    """One column of a row group: bool, integer, float or text values; `valid` False is null."""

    name: str
    values: np.ndarray
    valid: np.ndarray | None = None


def text_bytes(values: np.ndarray) -> tuple[bytes, np.ndarray]:
    """The UTF-8 bytes of a text column, concatenated, and each value's length in bytes.

    ASCII columns of numpy strings (the record splits and phases) are converted in bulk from
    their code points, the rest value by value. Numpy's own string casts are avoided: they can
    swallow a KeyboardInterrupt that arrives meanwhile (numpy 2.4), and Ctrl-C would be lost.
    """
    grid = _ascii_grid(values)
    if grid is not None:
        used = grid != 0  # NUL-padded
        return grid[used].tobytes(), used.sum(axis=1)
    encoded = [str(v).encode() for v in values.tolist()]
    return b"".join(encoded), np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))


def _ascii_grid(values: np.ndarray) -> np.ndarray | None:
    """(n, width) uint8 code points of a numpy string column, NUL-padded; None unless ASCII."""
    if values.dtype.kind != "U" or not len(values):
        return None
    width = max(values.dtype.itemsize // 4, 1)
    codes = np.frombuffer(np.ascontiguousarray(values).tobytes(), dtype=np.uint32)
    if codes.size != len(values) * width or (codes.size and codes.max() >= 128):
        return None
    return codes.reshape(len(values), width).astype(np.uint8)


def write_parquet(sink: IO[bytes], row_groups: Iterable[list[Column]]) -> None:
    """Write row groups (lists of columns, the same names and kinds in each) as a parquet file.

    One row group is encoded at a time, so a generator of row groups bounds the memory.
    """
    sink.write(MAGIC)
    offset = len(MAGIC)
    schema: list[tuple[str, int]] | None = None
    groups, n_rows = [], 0
    for columns in row_groups:
        kinds = [(c.name, _physical_type(c.values)) for c in columns]
        if schema is None:
            schema = kinds
        elif kinds != schema:
            raise ValueError(f"row groups differ in their columns: {kinds} vs {schema}")
        chunks, size, rows = [], 0, len(columns[0].values) if columns else 0
        for col, (name, ptype) in zip(columns, kinds, strict=True):
            if len(col.values) != rows:
                raise ValueError(f"column {name} has {len(col.values)} rows, not {rows}")
            page, raw_size = _data_page(col, ptype)
            sink.write(page)
            chunks.append(_column_chunk(name, ptype, rows, offset, raw_size, len(page)))
            offset += len(page)
            size += raw_size
        groups.append({1: (T_LIST, (T_STRUCT, chunks)), 2: (T_I64, size), 3: (T_I64, rows)})
        n_rows += rows
    if schema is None:
        raise ValueError("no row groups to write")
    footer = _struct(
        {
            1: (T_I32, 1),
            2: (T_LIST, (T_STRUCT, _schema_elements(schema))),
            3: (T_I64, n_rows),
            4: (T_LIST, (T_STRUCT, groups)),
            6: (T_BINARY, b"conceptweb parquet_writer"),
        }
    )
    sink.write(footer + struct.pack("<I", len(footer)) + MAGIC)


def _physical_type(values: np.ndarray) -> int:
    kind = np.asarray(values).dtype.kind
    types = {"b": BOOLEAN, "i": INT64, "u": INT64, "f": DOUBLE, "U": BYTE_ARRAY, "O": BYTE_ARRAY}
    if kind not in types:
        raise ValueError(f"cannot write a column of numpy kind {kind!r}")
    return types[kind]


def _schema_elements(schema: list[tuple[str, int]]) -> list[dict[int, Any]]:
    root = {4: (T_BINARY, b"schema"), 5: (T_I32, len(schema))}
    fields = []
    for name, ptype in schema:
        el: dict[int, Any] = {1: (T_I32, ptype), 3: (T_I32, OPTIONAL), 4: (T_BINARY, name.encode())}
        if ptype == BYTE_ARRAY:  # text: converted type UTF8 and logical type STRING
            el[6] = (T_I32, UTF8)
            el[10] = (T_STRUCT, {1: (T_STRUCT, {})})
        fields.append(el)
    return [root, *fields]


def _column_chunk(
    name: str, ptype: int, rows: int, offset: int, raw_size: int, size: int
) -> dict[int, Any]:
    meta = {
        1: (T_I32, ptype),
        2: (T_LIST, (T_I32, [PLAIN, RLE])),
        3: (T_LIST, (T_BINARY, [name.encode()])),
        4: (T_I32, GZIP),
        5: (T_I64, rows),
        6: (T_I64, raw_size),
        7: (T_I64, size),
        9: (T_I64, offset),
    }
    return {2: (T_I64, offset), 3: (T_STRUCT, meta)}


def _data_page(col: Column, ptype: int) -> tuple[bytes, int]:
    """A column chunk's one data page (header and compressed body) and its size uncompressed."""
    values = np.asarray(col.values)
    valid = None if col.valid is None or np.all(col.valid) else np.asarray(col.valid, bool)
    present = values if valid is None else values[valid]
    levels = _definition_levels(len(values), valid)
    body = struct.pack("<I", len(levels)) + levels + _plain(present, ptype)
    packer = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: gzip framing
    data = packer.compress(body) + packer.flush()
    page_header = {
        1: (T_I32, DATA_PAGE),
        2: (T_I32, len(body)),
        3: (T_I32, len(data)),
        5: (
            T_STRUCT,
            {1: (T_I32, len(values)), 2: (T_I32, PLAIN), 3: (T_I32, RLE), 4: (T_I32, RLE)},
        ),
    }
    header = _struct(page_header)
    return header + data, len(header) + len(body)


def _definition_levels(n: int, valid: np.ndarray | None) -> bytes:
    """Levels of a nullable flat column (1 present, 0 null) in the RLE / bit-packed hybrid."""
    if valid is None:  # one run of n ones
        return _varint(n << 1) + b"\x01" if n else b""
    groups = (n + 7) // 8  # bit-packed groups of 8 levels, 1 bit each
    padded = np.zeros(groups * 8, dtype=bool)
    padded[:n] = valid
    return _varint(groups << 1 | 1) + np.packbits(padded, bitorder="little").tobytes()


def _plain(values: np.ndarray, ptype: int) -> bytes:
    """PLAIN encoding: little-endian numbers, packed booleans, length-prefixed text."""
    if ptype == BOOLEAN:
        return np.packbits(values.astype(bool), bitorder="little").tobytes()
    if ptype == INT64:
        return np.ascontiguousarray(values, dtype="<i8").tobytes()
    if ptype == DOUBLE:
        return np.ascontiguousarray(values, dtype="<f8").tobytes()
    grid = _ascii_grid(values)
    if grid is not None:  # each row: its length, then its characters up to the padding
        n, width = grid.shape
        used = grid != 0
        rows = np.empty((n, 4 + width), dtype=np.uint8)
        rows[:, :4] = used.sum(axis=1).astype("<u4").view(np.uint8).reshape(n, 4)
        rows[:, 4:] = grid
        keep = np.ones((n, 4 + width), dtype=bool)
        keep[:, 4:] = used
        return rows[keep].tobytes()
    data, lengths = text_bytes(values)
    lengths = np.asarray(lengths, dtype=np.int64)
    out = np.empty(4 * lengths.size + len(data), dtype=np.uint8)
    starts = np.cumsum(4 + lengths) - (4 + lengths)  # where each value's length goes
    prefix = lengths.astype("<u4").view(np.uint8).reshape(-1, 4)
    out[(starts[:, None] + np.arange(4)).ravel()] = prefix.ravel()
    src_starts = np.cumsum(lengths) - lengths
    dest = np.repeat(starts + 4 - src_starts, lengths) + np.arange(len(data))
    out[dest] = np.frombuffer(data, dtype=np.uint8)
    return out.tobytes()


# -- Thrift's compact protocol ------------------------------------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    _put_varint(out, n)
    return bytes(out)


def _put_varint(out: bytearray, n: int) -> None:
    """n >= 0 in 7-bit groups, least significant first, the high bit set on all but the last."""
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)


def _zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 63)


def _struct(fields: dict[int, tuple[int, Any]]) -> bytes:
    """A struct: its fields in order of id (each a (compact type, value) pair), then a stop."""
    out = bytearray()
    _put_struct(out, fields)
    return bytes(out)


def _put_struct(out: bytearray, fields: dict[int, tuple[int, Any]]) -> None:
    last = 0
    for fid in sorted(fields):
        ttype, value = fields[fid]
        delta = fid - last
        if 0 < delta <= 15:
            out.append(delta << 4 | ttype)
        else:
            out.append(ttype)
            _put_varint(out, _zigzag(fid))
        _put_value(out, ttype, value)
        last = fid
    out.append(0)


def _put_value(out: bytearray, ttype: int, value: Any) -> None:
    if ttype in (T_I32, T_I64):
        _put_varint(out, _zigzag(int(value)))
    elif ttype == T_BINARY:
        _put_varint(out, len(value))
        out += value
    elif ttype == T_STRUCT:
        _put_struct(out, value)
    elif ttype == T_LIST:
        etype, items = value
        if len(items) < 15:
            out.append(len(items) << 4 | etype)
        else:
            out.append(0xF0 | etype)
            _put_varint(out, len(items))
        for item in items:
            _put_value(out, etype, item)
    else:
        raise ValueError(f"no encoding for thrift type {ttype}")
