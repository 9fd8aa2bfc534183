"""The parts of any classifier, found from what its forward pass calls (for models that do not declare them).

A registered model declares its stem, classifier and stages (``parts()``). A user's model need not:
one forward pass of two blank images, in eval mode and without gradients, records the order in
which its modules are called, and the parts are read from that order.

* **classifier**: the last ``nn.Linear`` called whose ``out_features`` equals the width of the
  model's output (its number of classes); the rule ``engine.features`` uses for the penultimate
  features. A head that is not a Linear (a 1x1 conv, a custom layer) is not found.
* **stem**: the first ``nn.Conv2d`` or ``nn.Linear`` called (for a ViT, its patch embedding).
* **blocks** (stages): the model's parametrised children in call order, with list containers
  (``nn.ModuleList``, ``nn.ModuleDict``, which are never called themselves) opened; while there
  are fewer than :data:`MIN_STAGES`, the largest unit is opened into its children; the unit
  holding the classifier is opened until the classifier stands alone, last; and a unit made only of
  normalisation layers joins the unit before it (a ViT's final LayerNorm belongs to its last block,
  not a stage of its own). So a VGG-style net with three conv stages keeps them, a MobileNet whose
  trunk is one ``features`` Sequential gets its blocks, and a ViT gets its transformer blocks.

Parameters held directly by the model (a ViT's class token and position embedding) are in no stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from unlearnkit.errors import InputError

# Stages (the head included) below which the largest stage is opened into its children.
MIN_STAGES = 4
_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
_LISTS = (nn.ModuleList, nn.ModuleDict)


@dataclass(frozen=True)
class Trace:
    """What one forward pass of ``model`` called.

    Attributes:
        first_call: Each called module's position in call order (by ``id``).
        head: The classifier head found (None: no Linear of the output's width was called).
        stem: The first Conv2d or Linear called (None: neither was).
        output_width: The width of the model's output.
    """

    first_call: dict[int, int]
    head: nn.Linear | None
    stem: nn.Module | None
    output_width: int


@torch.no_grad()
def blank_forward(model: nn.Module, in_channels: int, image_size: int, handles: list) -> object:
    """``model``'s output on two blank images, in eval mode and without gradients; its mode is
    restored and the hook ``handles`` (registered for this pass) are removed afterwards.

    Raises:
        InputError: the forward pass fails on images of this shape; the message names the model's class.
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        return model(torch.zeros(2, in_channels, image_size, image_size, device=device))
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise InputError(f"{type(model).__name__} cannot run on images of shape [batch, {in_channels}, {image_size}, "
                         f"{image_size}]: {str(exc).splitlines()[0][:200]}") from None
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)


def trace(model: nn.Module, in_channels: int, image_size: int) -> Trace:
    """Run ``model`` once on two blank images (:func:`blank_forward`) and record what it calls.

    Raises:
        InputError: the forward pass fails on images of this shape, or does not return logits
            [batch, classes]; the message names the model's class.
    """
    first_call: dict[int, int] = {}
    linears: list[nn.Linear] = []
    stems: list[nn.Module] = []

    def pre(module: nn.Module, _args) -> None:
        first_call.setdefault(id(module), len(first_call))
        if isinstance(module, (nn.Conv2d, nn.Linear)) and not stems:
            stems.append(module)
        if isinstance(module, nn.Linear):
            linears.append(module)

    out = blank_forward(model, in_channels, image_size, [m.register_forward_pre_hook(pre) for m in model.modules()])
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        what = f"a tensor of shape {list(out.shape)}" if isinstance(out, torch.Tensor) else f"a {type(out).__name__}"
        raise InputError(f"{type(model).__name__} returns {what}; a classifier must return logits [batch, classes]")
    width = int(out.shape[1])
    head = next((m for m in reversed(linears) if m.out_features == width), None)
    return Trace(first_call, head, stems[0] if stems else None, width)


def _has_params(m: nn.Module) -> bool:
    return next(m.parameters(), None) is not None


def _size(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _norm_only(m: nn.Module) -> bool:
    holders = [x for x in m.modules() if next(x.parameters(recurse=False), None) is not None]
    return bool(holders) and all(isinstance(x, _NORMS) for x in holders)


def stages(model: nn.Module, t: Trace) -> tuple[nn.Module, ...]:
    """The model's stages in call order, ending with the head alone (see the module docstring).

    Raises:
        InputError: no classifier head was found.
    """
    if t.head is None:
        raise InputError(f"{type(model).__name__}: no nn.Linear with {t.output_width} outputs (its number of classes) "
                         "is called in its forward pass, so its classifier head cannot be found")

    def start(m: nn.Module) -> int | None:
        calls = [t.first_call[id(x)] for x in m.modules() if id(x) in t.first_call]
        return min(calls) if calls else None

    def opened(m: nn.Module) -> list[nn.Module]:
        out: list[nn.Module] = []
        for c in m.children():
            if isinstance(c, _LISTS):
                out += opened(c)
            elif _has_params(c) and start(c) is not None:
                out.append(c)
        return sorted(out, key=start)

    def contains_head(m: nn.Module) -> bool:
        return any(x is t.head for x in m.modules())

    units = opened(model)
    while len(units) < MIN_STAGES:
        openable = [u for u in units if u is not t.head and opened(u)]
        if not openable:
            break
        largest = max(openable, key=_size)
        i = units.index(largest)
        units[i:i + 1] = opened(largest)
    while True:
        holder = next(u for u in units if contains_head(u))
        if holder is t.head:
            break
        i = units.index(holder)
        units[i:i + 1] = opened(holder)
    # The head goes last; whatever the forward pass calls after it (a scale, a bias) stays in place.
    units = [u for u in units if u is not t.head] + [t.head]
    merged: list[list[nn.Module]] = []
    for u in units[:-1]:
        if merged and _norm_only(u):
            merged[-1].append(u)
        else:
            merged.append([u])
    blocks = [group[0] if len(group) == 1 else nn.ModuleList(group) for group in merged]
    return (*blocks, t.head)


def discover_parts(model: nn.Module, spec) -> "ModelParts":  # noqa: F821 (models.base imports this module)
    """The stem, classifier and stages of ``model``, found by :func:`trace` on ``spec``'s image shape.

    Raises:
        InputError: a part cannot be found; the message says which and why.
    """
    from unlearnkit.models.base import ModelParts

    t = trace(model, spec.in_channels, spec.image_size)
    blocks = stages(model, t)
    if t.stem is None:
        raise InputError(f"{type(model).__name__}: no nn.Conv2d or nn.Linear is called in its forward pass, "
                         "so its first layer cannot be found")
    return ModelParts(stem=t.stem, classifier=t.head, blocks=blocks)
