"""RLVR diagnostics and Annealed-RLVR for real language models on TRL (the [llm] extra)."""

from __future__ import annotations

import importlib.util

from conceptweb.errors import ConceptwebError

REQUIRED = ("torch", "transformers", "trl", "datasets", "accelerate", "math_verify")
INSTALL_HINT = "pip install torch==2.13.0 'conceptweb[llm]'"


def missing_packages() -> list[str]:
    """The packages of the [llm] extra that cannot be imported here."""
    return [name for name in REQUIRED if importlib.util.find_spec(name) is None]


def require_llm() -> None:
    """Raise a one-line ConceptwebError when the [llm] extra is not installed."""
    missing = missing_packages()
    if missing:
        raise ConceptwebError(
            f"this needs the LLM extra (missing: {', '.join(missing)}); install it with: "
            f"{INSTALL_HINT}"
        )
