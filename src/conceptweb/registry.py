"""Named registries of interchangeable parts (rollout engines, estimators, heating operators).

A registry maps a name to a class. Adding a part is one decorated class; the config's choices,
the CLI's help and the ablation's arms read the registry's names, so a name is written once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from conceptweb.errors import ConceptwebError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> entry, in registration order.

    >>> shapes = Registry[type]("shape")
    >>> @shapes.register("square")
    ... class Square: ...
    >>> shapes.names(), shapes.get("square") is Square
    (('square',), True)
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator: register the class under `name` (names are unique)."""

        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.what} {name!r} is registered twice")
            self._entries[name] = entry
            return entry

        return add

    def get(self, name: str) -> T:
        """The entry named `name`, or a one-line error that lists the known names."""
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self._entries)
            raise ConceptwebError(f"unknown {self.what} {name!r}; known: {known}") from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)
