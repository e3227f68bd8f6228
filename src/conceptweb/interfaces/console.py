"""Console output: the two consoles (results on stdout, progress and notes on stderr) and tables
that fit the terminal (80 columns when the output is not a terminal), wrapping only text columns.

The consoles are made, and rich imported, on first use: `console` (progress, notes, warnings)
and `out_console` (results: tables a user may pipe elsewhere); a quiet run never imports rich."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    console: Console
    out_console: Console


def _made(name: str) -> Any:
    """The console called `name`; the two are made together on first use."""
    if "console" not in globals():
        from rich.console import Console

        globals().update(console=Console(stderr=True), out_console=Console())
    return globals()[name]


def __getattr__(name: str) -> Any:
    if name in ("console", "out_console"):
        return _made(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_NUMBER = re.compile(r"^[-+]?(\d[\d,]*\.?\d*|\.\d+)([eE][-+]?\d+)?%?$")


def _numeric(values: Sequence[str]) -> bool:
    filled = [v for v in values if v not in ("", "n/a")]
    return bool(filled) and all(_NUMBER.match(v) for v in filled)


def make_table(
    head: Sequence[str],
    rows: Sequence[Sequence[str]],
    title: str | None = None,
    wrap: Sequence[str] = (),
) -> Table:
    """A rich table: numeric columns right-aligned, only the columns named in `wrap` wrap."""
    from rich import box
    from rich.table import Table

    table = Table(
        title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title_justify="left"
    )
    for j, name in enumerate(head):
        col = [str(r[j]) for r in rows]
        table.add_column(
            name,
            justify="right" if _numeric(col) else "left",
            no_wrap=name not in wrap,
            overflow="fold",
        )
    for r in rows:
        table.add_row(*(str(c) for c in r))
    return table


def print_table(
    head: Sequence[str],
    rows: Sequence[Sequence[str]],
    title: str | None = None,
    wrap: Sequence[str] = (),
    target: Console | None = None,
) -> None:
    """Print a table that fits the console's width (see make_table)."""
    (target or _made("out_console")).print(make_table(head, rows, title, wrap))
