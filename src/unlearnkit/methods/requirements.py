"""What a method needs from an architecture, declared on its registration and checked before any work.

A method that reaches into a model names what it reaches for (``METHODS.register(..., needs=
("stages",))``); one that needs nothing works on any ``nn.Module`` classifier. :func:`verdict`
says, for a model and each method, whether it applies and if not why, from the model itself (its
declared parts, or the parts found from its forward pass: ``models.parts``), never from its name.
``run_method`` refuses a method whose needs are not met, with the same reason, before it starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from unlearnkit.errors import InputError
from unlearnkit.models import ModelSpec, model_parts


@dataclass(frozen=True)
class Need:
    """One thing a method needs from an architecture.

    Attributes:
        says: What it is, for messages ("a classifier head it can find").
        unmet: ``unmet(model, spec)``: None when the model has it, else why it has not.
    """

    says: str
    unmet: Callable[[nn.Module, ModelSpec], str | None]


def _parts_problem(model: nn.Module, spec: ModelSpec) -> str | None:
    try:
        model_parts(model, spec)
    except InputError as exc:
        return str(exc)
    return None


def _stages_problem(model: nn.Module, spec: ModelSpec) -> str | None:
    try:
        blocks = model_parts(model, spec).blocks
    except InputError as exc:
        return str(exc)
    return f"{type(model).__name__} has no trunk stage before its classifier head" if len(blocks) < 2 else None


def _kernels_problem(model: nn.Module, spec: ModelSpec) -> str | None:
    from unlearnkit.methods.common import spatial_kernels

    try:
        if spatial_kernels(model, spec, min_size=2):
            return None
    except InputError as exc:
        return str(exc)
    return (f"{type(model).__name__} has no square conv kernel wider than 1x1, and its first layer is not a Linear "
            f"reading the {spec.in_channels}x{spec.image_size}x{spec.image_size} image")


def _relu_sites_problem(model: nn.Module, spec: ModelSpec) -> str | None:
    from unlearnkit.methods.activation_pruning import masking_sites

    try:
        masking_sites(model, spec)
    except InputError as exc:
        return str(exc)
    return None


NEEDS: dict[str, Need] = {
    "head": Need("a classifier head it can find (the last nn.Linear with one output per class) and a first layer",
                 _parts_problem),
    "stages": Need("trunk stages before the classifier head (found from the forward pass where not declared)",
                   _stages_problem),
    "square_kernels": Need("square conv kernels (side 2 or more) or a first Linear layer reading the image, "
                           "to transform spatially", _kernels_problem),
    "relu_sites": Need("ReLU modules fed straight by a batch norm or Linear, whose channels it can mask and bake in",
                       _relu_sites_problem),
}


def check_needs(needs: tuple[str, ...]) -> None:
    """Refuse a registration that names an unknown need (a typo would silently apply everywhere)."""
    unknown = [n for n in needs if n not in NEEDS]
    if unknown:
        raise ValueError(f"unknown architecture need {unknown[0]!r}; known: {', '.join(NEEDS)}")


def unmet_needs(name: str, model: nn.Module, spec: ModelSpec, checked: dict[str, str | None] | None = None) -> list[str]:
    """Why method ``name`` does not apply to ``model`` (one line per unmet need); empty when it applies.

    ``checked`` holds needs already checked on ``model`` (need -> problem or None) and gains the new ones.
    """
    from unlearnkit.methods.base import METHODS

    checked = {} if checked is None else checked
    out = []
    for need in METHODS.entry(name).meta.get("needs", ()):
        if need not in checked:
            checked[need] = NEEDS[need].unmet(model, spec)
        if checked[need] is not None:
            out.append(f"it needs {NEEDS[need].says}: {checked[need]}")
    return out


def verdict(model: nn.Module, spec: ModelSpec, names: list[str] | None = None) -> dict[str, list[str]]:
    """For each method (default: all), the reasons it does not apply to ``model``; an empty list where it does.

    Each need is checked once on ``model``, however many methods declare it.
    """
    from unlearnkit.methods.base import METHODS

    checked: dict[str, str | None] = {}
    return {name: unmet_needs(name, model, spec, checked) for name in (names or METHODS.names())}


def require_applicable(name: str, model: nn.Module, spec: ModelSpec) -> None:
    """Raise InputError naming why method ``name`` does not apply to ``model``, if it does not."""
    reasons = unmet_needs(name, model, spec)
    if reasons:
        raise InputError(f"method {name} does not apply to {spec.name} ({type(model).__name__}): " + "; ".join(reasons)
                         + f". See `unlearnkit methods --model {spec.name}` for the methods that do")
