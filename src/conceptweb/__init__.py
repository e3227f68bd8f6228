"""conceptweb: see and steer how language models learn to reason under RLVR."""

from conceptweb.errors import ConceptwebError

__version__ = "0.1.0"
__all__ = ["ConceptwebError", "__version__"]
