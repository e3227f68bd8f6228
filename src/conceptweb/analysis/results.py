"""The base of every analysis result: a frozen dataclass that turns into plain data with to_dict().

Results are what the pure ``compute_*`` functions of ``conceptweb.analysis`` return. A field
declared with ``optional()`` is left out of ``to_dict()`` while it is None, so a result can
carry measurements that only some runs have (for example the cut-bridge mechanism of SFT
forgetting, which needs checkpoints) without writing ``null`` for the others.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Example(Result):
...     n: int
...     extra: float | None = optional()
>>> Example(3).to_dict(), Example(3, 0.5).to_dict()
({'n': 3}, {'n': 3, 'extra': 0.5})
"""

from __future__ import annotations

from dataclasses import field, fields
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Result", "optional"]


def optional() -> Any:
    """A dataclass field that defaults to None and is omitted from to_dict() while None."""
    return field(default=None, metadata={"optional": True})


def _plain(value: Any) -> Any:
    if isinstance(value, Result):
        return value.to_dict()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, pd.DataFrame):
        return value.to_dict(orient="records")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


class Result:
    """Mixin for frozen result dataclasses: ``to_dict()`` in field order, arrays as lists."""

    def to_dict(self) -> dict[str, Any]:
        """The fields in declaration order as plain Python data (optional ones only if set)."""
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and f.metadata.get("optional"):
                continue
            out[f.name] = _plain(value)
        return out
