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
        on_missing: Called with a name that is not registered, before "unknown" is raised; it may
            register the name (e.g. import a user's model factory named ``module:function``) and
            return True, or return False to leave it unknown.
    """

    def __init__(self, kind: str, on_register: Callable[[Entry[T]], None] | None = None,
                 on_missing: Callable[[str], bool] | None = None):
        self.kind = kind
        self._on_register = on_register
        self._on_missing = on_missing
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
        if name not in self._entries and self._on_missing is not None and self._on_missing(name):
            return self._entries[name]
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
        """Whether ``name`` is registered (without calling ``on_missing``)."""
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)
