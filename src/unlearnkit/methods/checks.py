"""Range checks that every registered method config gets, from its field names.

A method config is built from user input (``--set method.seif.lr=-1``, a YAML file, a bench.json
being resumed). A value no method can run with must be refused when the config is built, so that a
bench refuses it before it writes anything, not inside a unit after the folder records the config.
The conventions below cover the fields most methods share (learning rates, epochs, batch sizes,
momenta, fractions, ...); a field with a range of its own (``alpha``, ``budget``, a stricter
fraction) keeps its check in its config's ``__post_init__``, which runs first.

Zero learning rates and zero epochs pass: they switch a phase off (the methods' tests use this to
isolate one phase), where a negative one cannot mean anything.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any, Callable

from unlearnkit.errors import InputError
from unlearnkit.methods.requirements import check_needs
from unlearnkit.registry import Entry


@dataclass(frozen=True)
class Rule:
    """The range of every field whose name ``matches``: ``low <= value <= high`` (None: unbounded),
    ``low < value`` where ``low_open``; ``what`` is said when a value is refused."""

    matches: Callable[[str], bool]
    low: float | None
    high: float | None
    what: str
    low_open: bool = False

    def admits(self, v: float) -> bool:
        above = self.low is None or (v > self.low if self.low_open else v >= self.low)
        return above and (self.high is None or v <= self.high)


# The first rule whose name matches wins.
RULES: tuple[Rule, ...] = (
    Rule(lambda n: n == "batch_size" or n.endswith("_batch_size"), 1, None, "a batch size of at least 1"),
    Rule(lambda n: n == "lr" or n.endswith(("_lr", "_lrs", "_eta_min")), 0, None, "a learning rate >= 0"),
    Rule(lambda n: n == "epochs" or n.endswith(("_epochs", "_passes", "steps", "_warmup")), 0, None, "a count >= 0"),
    Rule(lambda n: n == "momentum" or n.endswith("_momentum"), 0, 1, "a momentum in [0, 1]"),
    Rule(lambda n: n == "weight_decay" or n.endswith("_weight_decay"), 0, None, "a weight decay >= 0"),
    Rule(lambda n: n == "fraction" or n.endswith(("_fraction", "_ratio")), 0, 1, "a fraction in [0, 1]"),
    Rule(lambda n: n == "temperature", 0, None, "a temperature > 0", low_open=True),  # it divides the logits
    Rule(lambda n: n == "l1" or n.endswith(("_std", "_weight")), 0, None, "a value >= 0"),
    Rule(lambda n: n in ("k", "neighbours") or n.endswith("_hidden"), 1, None, "a whole number of at least 1"),
)


def _rule(name: str) -> Rule | None:
    return next((rule for rule in RULES if rule.matches(name)), None)


def _values(value: Any) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def check_config(cfg: Any, where: str) -> None:
    """Refuse a value of ``cfg`` that no method can run with; errors name ``where.FIELD``.

    Every float must be finite; a field whose name follows a convention in :data:`RULES` must lie
    in its range, element by element for a tuple.

    Raises:
        InputError: naming the field, the value and what was expected.
    """
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        numbers = [v for v in _values(value) if isinstance(v, (int, float)) and not isinstance(v, bool)]
        for v in numbers:
            if isinstance(v, float) and not math.isfinite(v):
                raise InputError(f"{where}.{f.name} = {value!r}: expected a finite number")
        rule = _rule(f.name)
        if rule is not None and not all(rule.admits(v) for v in numbers):
            raise InputError(f"{where}.{f.name} = {value!r}: expected {rule.what}")


def guard_config(entry: Entry) -> None:
    """Make every construction of a registered method's config run :func:`check_config`.

    The method registry calls this as each method is registered, so the checks reach every config
    however it is built: ``SeifConfig(lr=-1)``, ``from_dict``, ``dataclasses.replace``. The config's
    own ``__post_init__`` runs first, inside the dataclass ``__init__``.
    """
    check_needs(tuple(entry.meta.get("needs", ())))
    cls = entry.config
    strength = tuple(entry.meta.get("strength", ()))
    if cls is None:
        if strength:
            raise ValueError(f"method {entry.name} declares strength fields {strength} but has no config")
        return
    floats = {f.name for f in dataclasses.fields(cls) if f.type in ("float", float)}
    odd = [name for name in strength if name not in floats]
    if odd:
        raise ValueError(f"method {entry.name}: strength field {odd[0]!r} is not a float field of {cls.__name__} "
                         "(the regime rule scales it)")
    init = cls.__init__
    where = f"method.{entry.name}"

    @functools.wraps(init)
    def checked_init(self, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        check_config(self, where)

    cls.__init__ = checked_init
