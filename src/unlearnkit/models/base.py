"""The model registry and the architecture-independent view of a model that methods use."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from unlearnkit.errors import InputError
from unlearnkit.registry import Registry



def _register_external(name: str) -> bool:
    from unlearnkit.models.external import register_factory

    return register_factory(name)


# A name of the form ``module:function`` or ``file.py:function`` registers a user's factory on first
# use (models/external.py).
MODELS: Registry = Registry("model", on_missing=_register_external)


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model: its registered name, its config and the data shape."""

    name: str
    num_classes: int
    in_channels: int
    image_size: int
    config: object | None = None

    def __post_init__(self) -> None:
        if self.num_classes < 2:
            raise InputError(f"model {self.name}: num_classes must be at least 2, got {self.num_classes}")
        if self.in_channels not in (1, 3):
            raise InputError(f"model {self.name}: in_channels must be 1 or 3, got {self.in_channels}")
        if self.image_size < 8:
            raise InputError(f"model {self.name}: image_size must be at least 8, got {self.image_size}")
        entry = MODELS.entry(self.name)
        if self.config is None:
            # Canonical form: a spec always carries its config, so equal models have equal specs.
            object.__setattr__(self, "config", entry.config())
        elif not isinstance(self.config, entry.config):
            raise InputError(f"model {self.name} expects a {entry.config.__name__}, got {type(self.config).__name__}")


@dataclass(frozen=True)
class ModelParts:
    """Roles that unlearning methods address, resolved per architecture.

    Attributes:
        stem: The first weight layer (a conv, or a linear layer for an MLP).
        classifier: The final linear layer.
        blocks: The trunk's stages in order, input to output, ending with the classifier; CF-k and
            EU-k act on the last k of them.
    """

    stem: nn.Module
    classifier: nn.Linear
    blocks: tuple[nn.Module, ...]


def build_model(spec: ModelSpec) -> nn.Module:
    """Instantiate the model ``spec`` describes, with its config or the registered default."""
    return MODELS.get(spec.name)(spec.num_classes, spec.in_channels, spec.image_size, spec.config)


def model_parts(model: nn.Module, spec: ModelSpec | None = None) -> ModelParts:
    """The stem, classifier and blocks of ``model``.

    A model that declares them (a ``parts()`` method, as the registered ones do) is asked; any other
    is traced once on a blank input of ``spec``'s shape and its parts found from what its forward
    pass calls (``models.parts.discover_parts``).

    Raises:
        InputError: the model declares no parts and ``spec`` is None, or a part cannot be found
            (the message says which and why).
    """
    parts = getattr(model, "parts", None)
    if callable(parts):
        return parts()
    if spec is None:
        raise InputError(f"{type(model).__name__} does not declare its parts (a parts() method); "
                         "pass the model's spec so that they can be found from its forward pass")
    from unlearnkit.models.parts import discover_parts

    return discover_parts(model, spec)


def norm_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters of the normalisation layers (BatchNorm, GroupNorm, LayerNorm)."""
    norms = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)
    return [p for m in model.modules() if isinstance(m, norms) for p in m.parameters(recurse=False)]


def reset_parameters(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """Re-initialise every submodule of ``module`` with PyTorch's default initialisation.

    A generator makes it deterministic without touching the global RNG.
    """
    if generator is None:
        for m in module.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        return
    state = torch.random.get_rng_state()
    torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
    try:
        reset_parameters(module)
    finally:
        torch.random.set_rng_state(state)
