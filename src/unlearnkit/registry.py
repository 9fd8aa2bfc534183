"""One small generic registry: names map to objects plus the config class and metadata they declare."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

from unlearnkit.errors import InputError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered object with its name, optional config dataclass and free-form metadata."""

    name: str
    obj: T
    config: type | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        """The first line of the object's docstring."""
        doc = (getattr(self.obj, "__doc__", None) or "").strip()
        return doc.splitlines()[0] if doc else ""


class Registry(Generic[T]):
    """A name -> object mapping. Duplicate names raise; unknown names say "did you mean".

    Args:
        kind: What is registered, for messages ("method", "dataset").
        on_register: Called with each new entry as it is registered (e.g. to check its config).
    """

    def __init__(self, kind: str, on_register: Callable[[Entry[T]], None] | None = None):
        self.kind = kind
        self._on_register = on_register
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, *, config: type | None = None, **meta: Any) -> Callable[[T], T]:
        """Decorator that registers ``obj`` under ``name``."""

        def decorate(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            entry = Entry(name=name, obj=obj, config=config, meta=dict(meta))
            if self._on_register is not None:
                self._on_register(entry)
            self._entries[name] = entry
            return obj

        return decorate

    def entry(self, name: str) -> Entry[T]:
        """The entry for ``name``; an unknown name raises InputError listing the known ones."""
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._entries, n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise InputError(
                f"unknown {self.kind} {name!r}.{hint} Available: {', '.join(self.names())}"
            ) from None

    def get(self, name: str) -> T:
        """The object registered as ``name``."""
        return self.entry(name).obj

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)
