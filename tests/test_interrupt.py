"""Ctrl-C on the multi-run commands: the pool stops within seconds, cut runs are marked, and the
message says how to resume (SIGINT sent to real subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import restore_sigint

STOP_WITHIN_S = 20.0  # generous for a loaded 2-core machine; the pool itself stops in ~1 s


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.is_file() and stat.read_text().split()[2] == "Z")


def _interrupt(args: list[str], root: Path, timeout: float = 120.0) -> tuple[int, str, list[int]]:
    """Start `conceptweb ARGS`, wait until a run directory exists, send SIGINT; return
    (exit status, stderr, worker pids seen)."""
    env = {**os.environ, "CONCEPTWEB_PROGRESS_EVERY": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "conceptweb", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=restore_sigint,
    )
    deadline = time.monotonic() + timeout
    while not list(root.rglob("run.json")) and proc.poll() is None:
        assert time.monotonic() < deadline, "no run started"
        time.sleep(0.2)
    time.sleep(1.0)
    workers = _children(proc.pid)
    proc.send_signal(signal.SIGINT)
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=STOP_WITHIN_S + 30)
    assert time.monotonic() - t0 < STOP_WITHIN_S, err
    return proc.returncode, err, workers


def _statuses(root: Path) -> list[str]:
    return [json.loads(p.read_text())["status"] for p in root.rglob("run.json")]


def _assert_stopped_and_resumable(args: list[str], out: Path, command: str) -> None:
    """Ctrl-C: exit 130, the resume command named, cut runs marked, no worker left alive."""
    rc, err, pids = _interrupt(args, out)
    assert rc == 130, err
    assert "Resume with the same command" in err and command in err
    assert "Traceback" not in err
    statuses = _statuses(out)
    assert statuses and "running" not in statuses and "interrupted" in statuses
    time.sleep(0.5)
    assert not [p for p in pids if _alive(p)], "worker processes left behind"


@pytest.mark.parametrize(("workers", "batch"), [("2", "1"), ("1", "1"), ("2", "3")])
def test_ctrl_c_stops_an_ablation_and_says_how_to_resume(tmp_path, workers, batch):
    out = tmp_path / "abl"
    args = ["ablate", "-p", "tiny", "-s", "steps=3000", "-s", "eval.every=1000"]
    args += ["--seeds", "3", "--arms", "plain,sft@auto", "--workers", workers, "--out", str(out)]
    args += ["--batch", batch]
    _assert_stopped_and_resumable(args, out, "ablate")


def test_ctrl_c_stops_the_reproduction_suite(tmp_path):
    out = tmp_path / "rq"
    args = ["reproduce", "--quick", "--skip", "phase,ablation", "--workers", "2", "--out", str(out)]
    rc, err, pids = _interrupt(args, out)
    assert rc == 130, err
    assert "Resume with the same command" in err and "reproduce --quick" in err
    statuses = _statuses(out)
    assert statuses and "running" not in statuses
    time.sleep(0.5)
    assert not [p for p in pids if _alive(p)]


def test_ctrl_c_stops_a_map_and_says_how_to_resume(tmp_path):
    out = tmp_path / "map"
    args = ["explore", "-p", "tiny", "-s", "steps=3000", "-a", "structure=random,distinct"]
    args += ["--seeds", "2", "--workers", "2", "--out", str(out)]
    _assert_stopped_and_resumable(args, out, "explore")
