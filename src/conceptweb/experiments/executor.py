"""Where a batch of independent runs executes: a local process pool (the default) or Ray.

`execute(fn, jobs, workers, on_result, run_path, backend)` calls `on_result(key, fn(job))` in
this process as each job finishes, whatever the backend, so the callers (ablation, map,
reproduction suite, sweeps) save results as they arrive and resume without redoing finished
runs. Interrupted or failed, runs left half-done are marked `interrupted` (see
conceptweb.experiments.pool). Ray is imported only when asked for (the `dist` extra).

>>> results = {}
>>> execute(abs, {"a": -1, "b": 2}, 1, results.__setitem__, str)
>>> results
{'a': 1, 'b': 2}
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conceptweb.errors import ConceptwebError
from conceptweb.experiments.pool import RunPaths, mark_interrupted, run_pool

BACKENDS = ("process", "ray")
CONNECT_TIMEOUT_S = 5.0  # a cluster address that does not answer within this is unreachable


@dataclass(frozen=True)
class Backend:
    """Where runs execute: `process` (a pool on this machine) or `ray` (one Ray task per run).

    With `ray`, `address` names an existing cluster (`auto` on one of its nodes, `HOST:6379`,
    or a Ray Client address `ray://HOST:10001`); None starts a private local Ray instance on
    the loopback interface.
    """

    kind: str = "process"
    address: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in BACKENDS:
            raise ConceptwebError(
                f"unknown backend {self.kind!r}; choose one of {', '.join(BACKENDS)}"
            )
        if self.address and self.kind != "ray":
            raise ConceptwebError("--address is for --backend ray")

    def start(self, workers: int | None = None) -> None:
        """Connect to Ray (or start it) now, so that a missing Ray or an unreachable cluster
        is reported before anything is written. Nothing to do for the process pool."""
        if self.kind == "ray":
            _ray_connect(self.address, workers or os.cpu_count() or 1)


def execute(
    fn: Callable[[Any], Any],
    jobs: dict[Hashable, Any],
    workers: int | None,
    on_result: Callable[[Hashable, Any], None],
    run_path: Callable[[Hashable], RunPaths],
    backend: Backend | None = None,
) -> None:
    """fn(job) for every job; on_result(key, result) here as each finishes.

    The process backend (default) uses `workers` processes on this machine (1: this process).
    The Ray backend runs one task per job; `fn` must be importable by the Ray workers.
    """
    from conceptweb.model.engines import note_fallback

    backend = backend or Backend()
    workers = workers or os.cpu_count() or 1
    note_fallback()  # here, once, rather than in every worker
    if backend.kind == "process" or not jobs:
        run_pool(fn, jobs, workers, on_result, run_path)
        return
    backend.start(workers)
    _ray_execute(fn, jobs, on_result, run_path)


def batches(
    keys: Sequence[Hashable], shape: Callable[[Hashable], Hashable], size: int
) -> list[tuple[Hashable, ...]]:
    """`keys` in batches of at most `size` that share a shape (first appearance order), for
    batched replicas (`conceptweb.experiments.runs.train_batch`): one job per batch.

    >>> batches(["a1", "b1", "a2", "a3"], lambda k: k[0], 2)
    [('a1', 'a2'), ('a3',), ('b1',)]
    """
    groups: dict[Hashable, list[Hashable]] = {}
    for key in keys:
        groups.setdefault(shape(key), []).append(key)
    return [
        tuple(group[i : i + size]) for group in groups.values() for i in range(0, len(group), size)
    ]


def execute_batched(
    fn: Callable[[list[Any]], list[Any]],
    jobs: dict[Hashable, Any],
    workers: int | None,
    on_result: Callable[[Hashable, Any], None],
    run_path: Callable[[Hashable], RunPaths],
    backend: Backend | None,
    size: int,
    shape: Callable[[Any], Hashable],
) -> None:
    """`execute` for jobs that run `size` at a time: fn(list of jobs) -> their results, one
    call per batch of jobs of the same shape(job); on_result(key, result) per job as above."""

    def deliver(group: Any, results: Any) -> None:
        for key, result in zip(group, results, strict=True):
            on_result(key, result)

    groups = batches(list(jobs), lambda key: shape(jobs[key]), size)
    batched = {group: [jobs[key] for key in group] for group in groups}
    paths = lambda group: [p for key in group for p in _as_list(run_path(key))]  # noqa: E731
    execute(fn, batched, workers, deliver, paths, backend)


def _as_list(paths: RunPaths) -> list[str | Path]:
    return paths if isinstance(paths, list) else [paths]


def _ray_module() -> Any:
    try:
        import ray
    except ImportError:
        raise ConceptwebError("--backend ray needs Ray: pip install 'conceptweb[dist]'") from None
    return ray


def _check_reachable(address: str) -> None:
    """Refuse at once an address whose host:port does not accept a connection (Ray itself
    would retry for minutes)."""
    if address in ("auto", "local"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        raise ConceptwebError(f"--address {address!r}: use auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ConceptwebError(
            f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}"
        ) from None


def _ray_connect(address: str | None, workers: int) -> None:
    """Connect to the cluster at `address`, or start a local instance with `workers` CPUs."""
    ray = _ray_module()
    if ray.is_initialized():
        return
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if address:
            _check_reachable(address)
            ray.init(address=address, **quiet)
        else:
            ray.init(
                num_cpus=workers,
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                **quiet,
            )
    except ConnectionError as exc:
        where = address or "a local instance"
        raise ConceptwebError(f"cannot connect to Ray ({where}): {exc}") from None


def _ray_execute(
    fn: Callable[[Any], Any],
    jobs: dict[Hashable, Any],
    on_result: Callable[[Hashable, Any], None],
    run_path: Callable[[Hashable], RunPaths],
) -> None:
    """Submit every job as a Ray task, deliver results as they finish; stop them all on error."""
    ray = _ray_module()
    remote = ray.remote(num_cpus=1)(_call)
    pending = {remote.remote(fn, job): key for key, job in jobs.items()}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                key = pending.pop(ref)
                on_result(key, ray.get(ref))
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        mark_interrupted(run_path(k) for k in pending.values())
        raise


def _call(fn: Callable[[Any], Any], job: Any) -> Any:
    """fn(job), as a plain module-level function that Ray can ship to its workers."""
    return fn(job)
