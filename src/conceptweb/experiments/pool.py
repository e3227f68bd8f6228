"""Running many independent runs over a process pool that stops promptly when interrupted.

On KeyboardInterrupt (Ctrl-C, SIGINT) or any error, jobs not yet started are cancelled, the
worker processes are stopped within seconds, and every run they left half-done is marked
`interrupted` in its run.json; the exception then propagates so the caller can say how to
resume. Workers ignore SIGINT themselves: the parent decides when they stop.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

STOP_TIMEOUT_S = 5.0


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


RunPaths = str | Path | list[str | Path]  # a job's run directory, or a batch job's several


def mark_interrupted(paths: Iterable[RunPaths]) -> list[Path]:
    """Set status `interrupted` in the run.json of each run directory still marked running
    (an item may be a batch job's list of run directories)."""
    from conceptweb.rundir import RunDir

    marked = []
    for p in (q for item in paths for q in (item if isinstance(item, list) else [item])):
        path = Path(p)
        if not (path / "run.json").is_file():
            continue
        try:
            run = RunDir.open(path)
            if run.read_meta().get("status") == "running":
                run.update_meta(status="interrupted")
                marked.append(path)
        except Exception:  # noqa: BLE001 - a damaged directory stays as it is; resume reports it
            continue
    return marked


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel queued jobs and stop the workers: SIGTERM, then SIGKILL after STOP_TIMEOUT_S."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    for proc in processes:
        proc.join(STOP_TIMEOUT_S)
        if proc.is_alive():
            proc.kill()
            proc.join(1.0)


def run_pool(
    fn: Callable[[Any], Any],
    jobs: dict[Hashable, Any],
    workers: int,
    on_result: Callable[[Hashable, Any], None],
    run_path: Callable[[Hashable], RunPaths],
) -> None:
    """Call fn(job) for every job (in `workers` processes when > 1), on_result(key, result)
    in the parent as each finishes. Interrupted: see the module docstring."""
    if workers <= 1 or len(jobs) <= 1:
        for key, job in jobs.items():
            try:
                result = fn(job)
            except BaseException:
                mark_interrupted([run_path(key)])
                raise
            on_result(key, result)
        return
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_ignore_sigint)
    delivered: set[Hashable] = set()
    try:
        futures = {pool.submit(fn, job): key for key, job in jobs.items()}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                on_result(futures[fut], fut.result())
                delivered.add(futures[fut])
    except BaseException:
        _stop(pool)
        mark_interrupted(run_path(k) for k in jobs if k not in delivered)
        raise
    pool.shutdown(wait=True)
