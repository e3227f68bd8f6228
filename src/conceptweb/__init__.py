"""conceptweb: see and steer how language models learn to reason under RLVR."""

from __future__ import annotations

import os
from typing import Any

# Arrow's default allocator (mimalloc) reserves about 10 MiB of arenas on a process's first
# parquet write; the C library's allocator does as well for run records at a fraction of the
# memory. Arrow reads this when pyarrow is imported (so only if conceptweb comes first); a
# value the user set is kept.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

from conceptweb.errors import ConceptwebError

__version__ = "0.1.0"
__all__ = ["ConceptwebError", "__version__", "open_ablation", "open_run", "open_suite"]

_NOTEBOOK = ("open_run", "open_ablation", "open_suite")


def __getattr__(name: str) -> Any:
    # the notebook API, imported on first use so that `import conceptweb` stays light
    if name in _NOTEBOOK:
        from conceptweb.interfaces import notebook

        return getattr(notebook, name)
    raise AttributeError(f"module 'conceptweb' has no attribute {name!r}")
