"""The method registry, the data a method sees, and the wrapper that runs and costs a method.

A method is a function ``(model, data, cfg, *, seed) -> nn.Module`` registered with its frozen config
dataclass. It must not modify ``model``; it never sees the test split (``UnlearnData`` has none).
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from unlearnkit.config import from_dict, to_dict
from unlearnkit.engine.seeding import derive_seed, torch_generator
from unlearnkit.engine.tensors import TensorSet, class_weights
from unlearnkit.engine.train import Runtime, TrainConfig
from unlearnkit.errors import InputError
from unlearnkit.metrics.efficiency import Cost, measure
from unlearnkit.models import ModelSpec
from unlearnkit.registry import Registry

METHODS: Registry = Registry("method")


@dataclass(frozen=True, eq=False)
class UnlearnData:
    """What an unlearning method may use: retain, forget and validation examples, never test.

    Attributes:
        retain: D minus S.
        forget: S.
        val: Held-out people/examples (unseen data; e.g. euclid distils on it, gan contrasts with it).
        spec: The model architecture, for methods that build fresh models.
        train_config: The original training recipe (retrain replays it).
        runtime: Device and numeric settings.
    """

    retain: TensorSet
    forget: TensorSet
    val: TensorSet
    spec: ModelSpec
    train_config: TrainConfig
    runtime: Runtime

    @property
    def num_classes(self) -> int:
        return self.spec.num_classes

    @property
    def class_weights(self) -> torch.Tensor:
        """Inverse-frequency weights over the retain labels (mean example weight 1), on the device."""
        return class_weights(self.retain.y, self.num_classes).to(self.runtime.device)

    def batches(self, which: TensorSet, batch_size: int, generator: torch.Generator | None):
        """Normalised (x, y) batches of ``which`` on the run's device, shuffled by ``generator``."""
        return which.batches(batch_size, generator=generator, channels_last=self.runtime.channels_last)

    def to(self, device: torch.device | str) -> "UnlearnData":
        return UnlearnData(
            self.retain.to(device), self.forget.to(device), self.val.to(device), self.spec, self.train_config, self.runtime
        )


def generator(seed: int, *purpose: str | int) -> torch.Generator:
    """A torch.Generator for one purpose of one method run (e.g. the retain order of epoch 3)."""
    return torch_generator(derive_seed(seed, *purpose))


@dataclass
class UnlearnResult:
    """An unlearned model, the resolved config that made it, and what it cost."""

    model: nn.Module
    method: str
    seed: int
    config: dict[str, Any]
    cost: Cost = field(default_factory=Cost)
    stopped_by_budget: bool = False


class _BudgetSpent(Exception):
    """Raised inside a method by the step hook once its optimizer-step budget is used up."""


# The model a method is training: set by clone(), read when a budget stops the method early.
_STUDENT: contextvars.ContextVar[nn.Module | None] = contextvars.ContextVar("unlearnkit_student", default=None)


@contextlib.contextmanager
def _step_budget(max_steps: int | None) -> Iterator[None]:
    """Stop the enclosed method (raise _BudgetSpent) before it takes optimizer step ``max_steps + 1``."""
    if max_steps is None:
        yield
        return
    taken = 0

    def check(_opt, _args, _kwargs) -> None:
        nonlocal taken
        if taken >= max_steps:
            raise _BudgetSpent
        taken += 1

    handle = register_optimizer_step_pre_hook(check)
    try:
        yield
    finally:
        handle.remove()


def method_config(name: str, overrides: dict[str, Any] | None = None):
    """The config of method ``name``: its reference defaults with ``overrides``."""
    return from_dict(METHODS.entry(name).config, dict(overrides or {}), where=f"method.{name}")


def run_method(
    name: str, model: nn.Module, data: UnlearnData, cfg: Any = None, *, seed: int, max_steps: int | None = None
) -> UnlearnResult:
    """Run method ``name`` on a copy of ``model`` and measure its cost.

    Global RNG use inside the method (dropout, ``torch.randn``) is seeded from (seed, name), so the
    same seed gives the same model whatever ran before.

    Args:
        name: Registered method name.
        model: The original model (never modified).
        data: Retain, forget and validation examples.
        cfg: The method's config (default: its reference defaults).
        seed: This run's seed.
        max_steps: A budget of optimizer steps (all optimizers together). A method that would take
            more is stopped before step ``max_steps + 1`` and its model is returned as it is then
            (what a competition entry over the time limit would have had to submit).
    """
    entry = METHODS.entry(name)
    cfg = cfg if cfg is not None else entry.config()
    if not isinstance(cfg, entry.config):
        raise InputError(f"method {name} expects a {entry.config.__name__}, got {type(cfg).__name__}")
    fn: Callable[..., nn.Module] = entry.obj
    devices = [data.runtime.device] if data.runtime.device.type == "cuda" else []
    stopped = False
    token = _STUDENT.set(None)
    try:
        with torch.random.fork_rng(devices=devices), measure(data.runtime.device) as cost, _step_budget(max_steps):
            torch.manual_seed(derive_seed(seed, name, "global"))
            try:
                out = fn(model, data, cfg, seed=seed)
            except _BudgetSpent:
                out, stopped = _STUDENT.get(), True
                if out is None:
                    raise InputError(f"method {name} cannot run under a step budget (it trains no clone of the model)") from None
    finally:
        _STUDENT.reset(token)
    out.eval()
    return UnlearnResult(model=out, method=name, seed=seed, config=to_dict(cfg), cost=cost, stopped_by_budget=stopped)


def clone(model: nn.Module) -> nn.Module:
    """A trainable deep copy of ``model``; the original is never touched by a method."""
    out = copy.deepcopy(model)
    for p in out.parameters():
        p.requires_grad_(True)
    out.train()
    _STUDENT.set(out)
    return out
