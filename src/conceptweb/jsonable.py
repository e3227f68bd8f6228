"""Plain JSON data from numpy, pandas and pathlib values: the one sanitiser every writer uses."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np


def to_jsonable(obj: Any) -> Any:
    """Plain JSON data: numpy scalars to Python, NaN and infinities to None, tuples to lists.

    >>> to_jsonable({"a": np.float64("nan"), "b": (np.int64(2), Path("x"))})
    {'a': None, 'b': [2, 'x']}
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        return x if math.isfinite(x) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def json_default(obj: Any) -> Any:
    """`default=` hook for json.dumps: the values to_jsonable converts, else TypeError."""
    out = to_jsonable(obj)
    if out is obj:
        raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
    return out
