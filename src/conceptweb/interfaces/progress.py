"""Progress for people and for logs: a rich bar that fits 80 columns on a terminal, and one plain
line every PROGRESS_EVERY seconds (and at the end) when the output is a file or a pipe."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from conceptweb.interfaces import console as consoles
from conceptweb.interfaces.numbers import fmt

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

LABEL_WIDTH = 16


def progress_every() -> float:
    """Seconds between plain progress lines (CONCEPTWEB_PROGRESS_EVERY, default 30)."""
    try:
        return max(0.0, float(os.environ.get("CONCEPTWEB_PROGRESS_EVERY", "30")))
    except ValueError:
        return 30.0


def _short(label: str, width: int = LABEL_WIDTH) -> str:
    return label if len(label) <= width else "…" + label[-(width - 1) :]


def _clock(seconds: float) -> str:
    s = int(max(seconds, 0))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class LineProgress:
    """Plain progress lines for logs: 'LABEL: done/total (p%) NOTE, elapsed H:MM:SS, ~H:MM:SS left'."""

    def __init__(self, label: str, total: int, start: int = 0, every: float | None = None) -> None:
        self.label, self.total, self.start = label, max(total, 0), start
        self.done = start
        self.note = ""
        self.every = progress_every() if every is None else every
        self.t0 = time.monotonic()
        self.last = -float("inf")

    def update(self, done: int, note: str = "") -> None:
        self.done, self.note = done, note
        if time.monotonic() - self.last >= self.every or done >= self.total:
            self.emit()

    def emit(self) -> None:
        self.last = now = time.monotonic()
        elapsed = now - self.t0
        frac = self.done / self.total if self.total else 1.0
        made = self.done - self.start
        left = elapsed / made * (self.total - self.done) if made > 0 else None
        text = f"{self.label}: {self.done}/{self.total} ({frac:.0%})"
        text += f" {self.note}" if self.note else ""
        text += f", {_clock(elapsed)} elapsed"
        text += f", ~{_clock(left)} left" if left is not None and self.done < self.total else ""
        print(text, file=sys.stderr, flush=True)


def _bar(target: Console, note_style: str = "") -> Progress:
    """A bar with a note column (rich.progress is imported here: logs and pipes never need it)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn(f"[bold]{{task.description:<{LABEL_WIDTH}}}"),
        BarColumn(bar_width=12),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}", style=note_style),
        TimeElapsedColumn(),
        TimeRemainingColumn(compact=True),
        console=target,
        transient=False,
    )


def _row_note(row: dict[str, Any], n_problems: int) -> str:
    return (
        f"{row['phase']} r {fmt(row['reward_mean'], '.3f')} len✓ "
        f"{fmt(row['len_correct_mean'], '.1f')} solved {row['n_solved']}/{n_problems}"
    )


@contextmanager
def training_progress(
    total: int,
    start: int,
    label: str,
    n_problems: int,
    enabled: bool = True,
    target: Console | None = None,
) -> Iterator[Any]:
    """Progress of a training run: step, phase, reward, length of correct rollouts, solved.

    Yields a callback taking a metrics row. A bar on a terminal, plain lines otherwise.
    """
    if not enabled:
        yield lambda row: None
        return
    target = target or consoles.console
    if not target.is_terminal:
        lines = LineProgress(label, total, start)
        yield lambda row: lines.update(int(row["step"]), _row_note(row, n_problems))
        return
    with _bar(target) as progress:
        task = progress.add_task(_short(label), total=total, completed=start, note="")

        def update(row: dict[str, Any]) -> None:
            note = (
                f"{str(row['phase'])[:7]} r {fmt(row['reward_mean'], '.2f')} "
                f"✓{row['n_solved']}/{n_problems}"
            )
            progress.update(task, completed=row["step"], note=note)

        yield update


@contextmanager
def task_progress(
    total: int, label: str, enabled: bool = True, target: Console | None = None
) -> Iterator[Any]:
    """Progress over `total` units of work; yields advance(n=1, note='')."""
    if not enabled:
        yield lambda n=1, note="": None
        return
    target = target or consoles.console
    if not target.is_terminal:
        lines = LineProgress(label, total)

        def advance_line(n: int = 1, note: str = "") -> None:
            lines.update(lines.done + n, note)

        yield advance_line
        return
    with _bar(target, "dim") as progress:
        task = progress.add_task(_short(label), total=total, note="")

        def advance(n: int = 1, note: str = "") -> None:
            progress.update(task, advance=n, note=note[:18])

        yield advance
