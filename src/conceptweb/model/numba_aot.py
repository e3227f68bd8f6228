"""The numba kernels compiled ahead of time into an extension module, cached on disk.

Importing numba costs about 70 MiB and half a second of CPU in every process; a module that
numba compiled ahead of time (`numba.pycc`) needs only numpy. The first process that wants the
compiled engine builds the module in a child process (about 20 s, once per kernel source,
numba, numpy and Python version and processor) into the cache directory; later processes import
it in milliseconds. The module is compiled for this processor's vector instructions (as the JIT
is) and named after the processor, so a cache shared with other processors never runs code they
lack. If the build fails (no C compiler, say), the engine JIT-compiles the same kernels
in-process instead (`conceptweb.model.numba_kernels`), so results never depend on which.

Cache directory: $CONCEPTWEB_KERNEL_CACHE, else $XDG_CACHE_HOME/conceptweb (~/.cache/conceptweb).
Set CONCEPTWEB_KERNEL_CACHE=off to always JIT-compile in-process.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.machinery
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

# the exported kernels and their signatures (arrays are C-contiguous; the engine makes them so)
SIGNATURES = {
    "walks": "void(f8[:,::1], i4[:,::1], i8[::1], i8[::1], i8, i8, i8,"
    " i4[:,::1], i2[:,::1], i4[::1], b1[::1])",
    "problem_stats": "void(i2[:,::1], i4[::1], b1[::1], i8,"
    " f8[::1], f8[::1], f8[::1], f8[::1], f8[::1], i8[::1])",
    "visit_counts": "void(i4[:,::1], i4[::1], i8, i8[::1])",
    "walk_logprob": "f8(i4[:,::1], i2[:,::1], i4[::1], f8[::1], f8[:,::1], f8, f8[:,::1])",
    "logprob_grad": "f8[:,::1](i8[::1], i8[::1], f8[::1], f8[:,::1], f8)",
    "weighted_logprob": "Tuple((f8, f8[:,::1]))(i8[::1], i8[::1], i8[::1], f8[::1], f8[:,::1], f8)",
    "softmax": "void(f8[:,::1], f8, f8[:,::1])",
    "entropy": "void(f8[:,::1], f8[::1])",
    "cumsum_rows": "void(f8[:,::1], f8[:,::1])",
    "entropy_visits": "i8(f8[:,::1], i4[:,::1], i4[::1], i8, f8[::1], i8[::1], f8[::1])",
    "keep_walks": "void(i4[:,::1], i4[::1], i8[::1], i8[::1], i4[:,::1])",
    "adam_step": "void(f8[:,::1], f8[:,::1], f8[:,::1], f8[:,::1], f8, f8, f8, f8, f8, f8)",
    "fisher_yates": "void(i4[::1], u4[::1], i8[::1], b1)",
}
_BUILD_TIMEOUT_S = 600


def cache_dir() -> Path | None:
    """Where compiled modules live (None: the cache is switched off)."""
    env = os.environ.get("CONCEPTWEB_KERNEL_CACHE")
    if env:
        return None if env.lower() in ("off", "0", "no") else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "conceptweb"


def module_name() -> str:
    """A name unique to the kernels' source and the versions that compile and run them."""
    from importlib.metadata import version  # numba's version without importing numba

    import numpy

    here = Path(__file__).parent
    h = hashlib.sha256()
    for name in ("numba_kernels.py", "numba_aot.py"):
        h.update((here / name).read_bytes())
    for part in (version("numba"), numpy.__version__, sys.version, platform.machine()):
        h.update(part.encode())
    h.update(host_cpu().encode())
    return f"conceptweb_kernels_{h.hexdigest()[:16]}"


def host_cpu() -> str:
    """The processor's model and instruction sets (Linux: /proc/cpuinfo), for which the kernels
    are compiled; empty where unknown (then they are compiled for any processor of the
    architecture). A cache shared by different processors thus keeps one module for each."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [line for line in f if line.startswith(("model name", "flags"))][:2]
    except OSError:
        return ""
    return "".join(lines)


def _module_path(directory: Path, name: str) -> Path:
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    return directory / f"{name}{suffix}"


def _import(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_LOADED: list[ModuleType] = []  # the module load() returned in this process


def loaded() -> ModuleType | None:
    """The compiled module if this process loaded it already (never loads or builds it)."""
    return _LOADED[0] if _LOADED else None


def load() -> ModuleType | None:
    """The compiled module (built first if needed), or None if it cannot be built here."""
    if _LOADED:
        return _LOADED[0]
    directory = cache_dir()
    if directory is None:
        return None
    name = module_name()
    path = _module_path(directory, name)
    if not path.exists():
        failed = directory / f"{name}.failed"
        if failed.exists():
            return None
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; the others wait and reuse it
            if not path.exists() and not _build_in_child(directory, name, failed):
                return None
    try:
        _LOADED.append(_import(path, name))
    except ImportError:
        return None
    return _LOADED[0]


def _build_in_child(directory: Path, name: str, failed: Path) -> bool:
    """Compile in a fresh interpreter (so this one never imports numba); record a failure."""
    print(f"note: compiling the numba kernels once into {directory} (about 20 s)", file=sys.stderr)
    cmd = [sys.executable, "-m", "conceptweb.model.numba_aot", str(directory), name]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_BUILD_TIMEOUT_S)
        ok = proc.returncode == 0 and _module_path(directory, name).exists()
        log = proc.stderr[-4000:]
    except (OSError, subprocess.TimeoutExpired) as exc:
        ok, log = False, str(exc)
    if not ok:
        with contextlib.suppress(OSError):
            failed.write_text(log)
        print(
            f"note: could not compile the kernels ahead of time (see {failed}); "
            "compiling them in-process instead",
            file=sys.stderr,
        )
    return ok


def build(directory: Path, name: str) -> Path:
    """Compile every kernel of SIGNATURES into `directory`/`name` (atomically)."""
    from numba.pycc import CC

    from conceptweb.model import numba_kernels

    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        cc = CC(name)
        cc.output_dir = tmp
        cc.verbose = False
        if host_cpu():
            cc.target_cpu = "host"  # this processor's vector instructions (AVX2: 4 doubles)
        for kernel, signature in SIGNATURES.items():
            cc.export(kernel, signature)(getattr(numba_kernels, kernel).py_func)
        cc.compile()
        built = _module_path(Path(tmp), name)
        final = _module_path(directory, name)
        os.replace(built, final)
    return final


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")  # numba.pycc's pending-deprecation notice
    build(Path(sys.argv[1]), sys.argv[2])
