"""The method registry, the data a method sees, and the wrapper that runs and costs a method.

A method is a function ``(model, data, cfg, *, seed) -> nn.Module`` registered with its frozen config
dataclass. It must not modify ``model``; it never sees the test split (``UnlearnData`` has none).
"""

from __future__ import annotations

import contextvars
import copy
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from unlearnkit.config import from_dict, to_dict
from unlearnkit.engine.compute import BudgetSpent
from unlearnkit.engine.seeding import derive_seed, torch_generator
from unlearnkit.engine.tensors import TensorSet, class_weights
from unlearnkit.engine.train import Runtime, TrainConfig
from unlearnkit.errors import InputError
from unlearnkit.methods.checks import guard_config
from unlearnkit.methods.requirements import require_applicable
from unlearnkit.methods.guard import GuardConfig, GuardOutcome, Probe, accuracies, run_guarded
from unlearnkit.methods.regime import Regime, apply_regime
from unlearnkit.metrics.efficiency import Cost, measure
from unlearnkit.models import ModelSpec
from unlearnkit.registry import Registry

# Every method's config refuses impossible values when it is built (see methods/checks.py).
METHODS: Registry = Registry("method", on_register=guard_config)


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
    guard: GuardOutcome | None = None
    regime: Regime | None = None


# The model a method is training: set by clone(), read when a budget stops the method early.
_STUDENT: contextvars.ContextVar[nn.Module | None] = contextvars.ContextVar("unlearnkit_student", default=None)


def method_config(name: str, overrides: dict[str, Any] | None = None):
    """The config of method ``name``: its reference defaults with ``overrides``."""
    return from_dict(METHODS.entry(name).config, dict(overrides or {}), where=f"method.{name}")


def run_method(
    name: str, model: nn.Module, data: UnlearnData, cfg: Any = None, *, seed: int, max_compute: float | None = None,
    guard: GuardConfig | None = None, regime: tuple[str, ...] | None = None,
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
        max_compute: A budget of example passes (engine.compute: every model call counts, teachers
            and predictions too). A method sees what is left with ``engine.compute.remaining_compute()`` and
            sizes its phases to it; one that would still pass it is stopped before the model
            call or optimizer step that would, and its model is returned as it is then (what a
            competition entry over the time limit would have had to submit).
        guard: Hold the model to this utility guard (methods.guard, docs/guard.md; None: no guard).
            Its probe evaluations are counted in the run's compute and under ``max_compute``; its
            outcome is the result's ``guard``.
        regime: Apply the regime rule (methods.regime) to these of ``cfg``'s fields (the method's
            strength fields the user did not set; None: no rule). The original's probe evaluation
            is counted in the run's compute; what it found is the result's ``regime``, and the
            result's ``config`` is the config the method ran with.
    """
    entry = METHODS.entry(name)
    cfg = cfg if cfg is not None else entry.config()
    if not isinstance(cfg, entry.config):
        raise InputError(f"method {name} expects a {entry.config.__name__}, got {type(cfg).__name__}")
    fn: Callable[..., nn.Module] = entry.obj
    require_applicable(name, model, data.spec)
    devices = [data.runtime.device] if data.runtime.device.type == "cuda" else []
    stopped, outcome, found, probe, base = False, None, None, None, None
    token = _STUDENT.set(None)
    try:
        with torch.random.fork_rng(devices=devices), measure(data.runtime.device, max_compute=max_compute) as cost:
            torch.manual_seed(derive_seed(seed, name, "global"))
            if regime is not None:
                # The guard's probes (its sizes, or the defaults unguarded): a guarded run reuses this evaluation.
                probe = Probe(guard or GuardConfig(), data.retain, data.val, seed, data.runtime)
                base = probe(model)
                cfg, found = apply_regime(cfg, name, regime, *accuracies(base))
            try:
                if guard is None:
                    out = fn(model, data, cfg, seed=seed)
                else:
                    out, outcome, stopped = run_guarded(lambda: fn(model, data, cfg, seed=seed), model, data, guard,
                                                        seed=seed, stopped=_STUDENT.get, probe=probe, base=base)
            except BudgetSpent:
                out, stopped = _STUDENT.get(), True
                if out is None:
                    raise InputError(f"method {name} cannot run under a compute budget of {max_compute:.0f} example "
                                     "passes (it was stopped before it made a copy of the model to return)") from None
    finally:
        _STUDENT.reset(token)
    out.eval()
    return UnlearnResult(model=out, method=name, seed=seed, config=to_dict(cfg), cost=cost, stopped_by_budget=stopped,
                         guard=outcome, regime=found)


def clone(model: nn.Module) -> nn.Module:
    """A trainable deep copy of ``model``; the original is never touched by a method."""
    out = copy.deepcopy(model)
    for p in out.parameters():
        p.requires_grad_(True)
    out.train()
    _STUDENT.set(out)
    return out
