"""One registry type for families, scorers, backends and benchmarks.

Entries are either objects registered with :meth:`Registry.register` or lazy
``"module:attribute"`` strings imported on first use, so nothing registers by
import side effect and heavy modules load only when asked for.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from coe.errors import ConfigError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> object mapping with lazy entries and helpful lookup errors.

    Args:
        kind: what the entries are ("family", "scorer", ...), used in messages.
        lazy: initial entries as ``{"name": "package.module:attribute"}``.
    """

    def __init__(self, kind: str, lazy: dict[str, str] | None = None) -> None:
        self.kind = kind
        self._lazy: dict[str, str] = dict(lazy or {})
        self._loaded: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers an object under ``name``."""

        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T | str) -> None:
        """Register ``obj`` (or a lazy ``"module:attr"`` string) under ``name``."""
        if name in self._lazy or name in self._loaded:
            raise ConfigError(f"{self.kind} {name!r} is already registered")
        if isinstance(obj, str):
            self._lazy[name] = obj
        else:
            self._loaded[name] = obj

    def get(self, name: str) -> T:
        """Return the entry called ``name``, importing it if it is lazy.

        Raises:
            ConfigError: no such entry; the message lists the known names and
                suggests the closest one.
        """
        if name in self._loaded:
            return self._loaded[name]
        if name not in self._lazy:
            raise ConfigError(self._unknown_message(name))
        module_name, _, attribute = self._lazy[name].partition(":")
        obj = getattr(importlib.import_module(module_name), attribute)
        self._loaded[name] = obj
        return obj

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted({*self._lazy, *self._loaded})

    def items(self) -> Iterator[tuple[str, T]]:
        """(name, entry) pairs in name order, importing lazy entries."""
        for name in self.names():
            yield name, self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._lazy or name in self._loaded

    def _unknown_message(self, name: str) -> str:
        known = self.names()
        message = f"unknown {self.kind} {name!r}; known: {', '.join(known) or '(none)'}"
        close = difflib.get_close_matches(name, known, n=1)
        if close:
            message += f". Did you mean {close[0]!r}?"
        return message
