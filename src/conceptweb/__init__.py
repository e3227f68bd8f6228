"""conceptweb: see and steer how language models learn to reason under RLVR."""

from __future__ import annotations

from typing import Any

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
