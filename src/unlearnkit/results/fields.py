"""Reading a typed record from JSON: every field present, none unknown, each of the type it claims.

A record that fails is refused with one line naming where it came from (a file, or a field path in
it) and what is wrong, never a ``KeyError`` or a ``TypeError`` deep in a table.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

from unlearnkit.errors import InputError

# A field reader: (value, where it is) -> the typed value, or InputError.
Reader = Callable[[Any, str], Any]


def check_keys(record: Any, cls: type, where: str) -> Mapping[str, Any]:
    """``record`` as a mapping with exactly the fields of dataclass ``cls``.

    Raises:
        InputError: ``record`` is not an object, lacks a field, or has one ``cls`` does not know.
    """
    if not isinstance(record, Mapping):
        raise InputError(f"{where}: expected an object with the fields of {cls.__name__}, got {type(record).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]
    missing = [n for n in names if n not in record]
    unknown = sorted(set(record) - set(names))
    if missing or unknown:
        parts = ([f"lacks {', '.join(missing)}"] if missing else []) + ([f"has unknown {', '.join(unknown)}"] if unknown else [])
        raise InputError(f"{where}: {'; '.join(parts)} (a {cls.__name__} of another schema, truncated, or edited by hand)")
    return record


def read_fields(cls: type, record: Any, where: str, readers: Mapping[str, Reader]) -> Any:
    """An instance of ``cls`` from ``record``, each field through its reader in ``readers``."""
    record = check_keys(record, cls, where)
    return cls(**{name: read(record[name], f"{where}.{name}") for name, read in readers.items()})


def _fail(value: Any, where: str, expected: str) -> InputError:
    return InputError(f"{where}: expected {expected}, got {value!r}"[:300])


def text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _fail(value, where, "a string")
    return value


def number(value: Any, where: str) -> float:
    """A float; NaN is a number (a mean over nothing), a bool is not."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(value, where, "a number")
    return float(value)


def integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(value, where, "an integer")
    return value


def flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(value, where, "true or false")
    return value


def mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(value, where, "an object")
    return dict(value)


def numbers(value: Any, where: str) -> dict[str, float]:
    """An object of numbers, e.g. accuracies by split."""
    return {k: number(v, f"{where}.{k}") for k, v in mapping(value, where).items()}


def pair(value: Any, where: str) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise _fail(value, where, "[low, high]")
    return number(value[0], f"{where}[0]"), number(value[1], f"{where}[1]")


def optional(read: Reader) -> Reader:
    """``read``, or None for a JSON null."""
    def read_optional(value: Any, where: str) -> Any:
        return None if value is None else read(value, where)

    return read_optional


def listed(read: Reader) -> Reader:
    """A JSON list read item by item into a tuple."""
    def read_list(value: Any, where: str) -> tuple:
        if not isinstance(value, list):
            raise _fail(value, where, "a list")
        return tuple(read(v, f"{where}[{i}]") for i, v in enumerate(value))

    return read_list


def finite_or_none(value: float | None) -> float | None:
    """None for a missing or non-finite value (a ratio against nothing)."""
    return None if value is None or not math.isfinite(value) else float(value)
