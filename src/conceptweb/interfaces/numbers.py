"""Numbers for people: the one formatter of every table, report and figure title.

Missing values (None, NaN, infinities) are shown as MISSING everywhere; booleans as yes/no.
"""

from __future__ import annotations

import math
from typing import Any

MISSING = "n/a"


def is_finite(x: Any) -> bool:
    """A real number that is not NaN or infinite (booleans are not numbers here)."""
    if isinstance(x, bool) or x is None:
        return False
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def fmt(x: Any, spec: str = ".3g") -> str:
    """A number as text: `spec` for floats, integers as they are, MISSING for missing values.

    >>> fmt(0.12345), fmt(3), fmt(float("nan")), fmt(True), fmt(2.0, ".0f")
    ('0.123', '3', 'n/a', 'yes', '2')
    """
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, str):
        return x
    if not is_finite(x):
        return MISSING
    if isinstance(x, int) or (hasattr(x, "dtype") and getattr(x.dtype, "kind", "") in "iu"):
        return str(int(x))
    return format(float(x), spec)


def pct(x: Any, digits: int = 0) -> str:
    """A fraction as a percentage ('42%'), MISSING when missing."""
    return f"{100 * float(x):.{digits}f}%" if is_finite(x) else MISSING


def fmt_interval(mean: Any, low: Any, high: Any, spec: str = ".3g", note: str = "") -> str:
    """'m [lo, hi]'; 'm' alone when there is no interval, with `note` (e.g. too few seeds)."""
    if not is_finite(mean):
        return MISSING
    text = fmt(mean, spec)
    if is_finite(low) and is_finite(high):
        return f"{text} [{fmt(low, spec)}, {fmt(high, spec)}]"
    return f"{text} ({note})" if note else text


def fmt_iv(iv: Any, spec: str = ".3g") -> str:
    """An analysis.stats.Interval as 'm [lo, hi]', or 'm (too few seeds)', or MISSING."""
    note = "too few seeds" if getattr(iv, "method", "") == "too few seeds" else ""
    return fmt_interval(iv.mean, iv.low, iv.high, spec, note)
