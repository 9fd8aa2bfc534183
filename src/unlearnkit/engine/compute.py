"""Compute in a hardware-independent unit: example passes through a model, counted by the engine.

One example through a model's forward pass is 1; its backward pass is 2 (a backward costs about
twice a forward: the gradients with respect to both the activations and the weights). A training
step on a batch of b examples is 3b, a prediction on b examples b. The count is the same on every
machine, precision and thread count, so it can be compared across runs where wall time cannot.

Counting is done by the engine, not by methods: :func:`count_compute` installs global module hooks
that count every outermost module call (a model's submodules are part of its pass) by the first
dimension of its first tensor input, and, when the output requires grad, a tensor hook that adds
twice that when a backward pass flows through it. Calls under a ``torch.func`` transform (``vmap``,
``grad``) see one example at a time and are not counted by the hooks; code that uses them counts
its work with :func:`spend` (the ensemble, fisher's and ssd's per-example gradients).

A counter may carry a cap: a call that would take it past the cap raises :class:`BudgetSpent`
before it runs, so the work counted never exceeds the cap (``methods.base.run_method`` turns that
into a model returned as it was). A forward with grad enabled is checked for its backward too.

The unit is examples, not FLOPs, so it errs on the side of counting: any module called on its own
counts its batch as full passes (a method's small discriminator as much as the model), and a
backward that stops early (a frozen backbone under a trainable head) counts as a whole one.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import nn
from torch._C._functorch import peek_interpreter_stack
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.optim.optimizer import register_optimizer_step_pre_hook

FORWARD = 1  # example passes of one example's forward pass
BACKWARD = 2  # ... and of its backward pass


class BudgetSpent(Exception):
    """Raised when work would take a capped counter past its cap (before that work runs)."""


class ComputeCounter:
    """Example passes counted while a :func:`count_compute` block runs (state that lives across calls).

    Attributes:
        forward: Examples passed forward through a model (a module called outside any other).
        backward: Example passes of the backward passes through them (2 per example).
        spent: Example passes counted by :func:`spend` (work under ``torch.func``).
        cap: The most example passes the block may use (None: no cap).
    """

    def __init__(self, cap: float | None = None) -> None:
        self.forward = 0.0
        self.backward = 0.0
        self.spent = 0.0
        self.cap = cap

    @property
    def total(self) -> float:
        return self.forward + self.backward + self.spent

    def remaining(self) -> float | None:
        """Example passes left under the cap (None: no cap)."""
        return None if self.cap is None else max(0.0, self.cap - self.total)

    def check(self, passes: float) -> None:
        """Raise :class:`BudgetSpent` if ``passes`` more would take the count past the cap."""
        if self.cap is not None and self.total + passes > self.cap:
            raise BudgetSpent

    def _step(self, _opt, _args, _kwargs) -> None:
        # The forward hook already stops a step whose passes would not fit; this catches work
        # that went past the cap without being stopped (it never should).
        if self.cap is not None and self.total > self.cap:
            raise BudgetSpent


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for v in value:
            t = _first_tensor(v)
            if t is not None:
                return t
    if isinstance(value, dict):
        return _first_tensor(list(value.values()))
    return None


def _batch(args: tuple) -> int:
    t = _first_tensor(args)
    if t is None:
        return 0
    return int(t.shape[0]) if t.dim() > 0 else 1


# The counters of the enclosing count_compute blocks, innermost last, and how deep the module calls
# in progress are nested (one depth for all counters: only an outermost call is a pass).
_ACTIVE: list[ComputeCounter] = []
_DEPTH = [0]


def _pre(_module: nn.Module, args: tuple) -> None:
    if _DEPTH[0] == 0 and peek_interpreter_stack() is None:
        b = _batch(args)
        # A forward with grad enabled is about to be followed by its backward: both must fit.
        passes = b * (FORWARD + BACKWARD if torch.is_grad_enabled() else FORWARD)
        for counter in _ACTIVE:
            counter.check(passes)
    _DEPTH[0] += 1


def _post(_module: nn.Module, args: tuple, output: Any) -> None:
    _DEPTH[0] = max(0, _DEPTH[0] - 1)
    if _DEPTH[0] or peek_interpreter_stack() is not None:
        return
    b = _batch(args)
    counters = list(_ACTIVE)
    for counter in counters:
        counter.forward += FORWARD * b
    out = _first_tensor(output)
    if out is not None and out.requires_grad:
        out.register_hook(lambda _grad: _backward(counters, b))


def _backward(counters: list[ComputeCounter], b: int) -> None:
    for counter in counters:
        counter.backward += BACKWARD * b


_HOOKS: list[Any] = []


@contextlib.contextmanager
def count_compute(cap: float | None = None) -> Iterator[ComputeCounter]:
    """Count the example passes of every model call in the block (see the module docstring).

    Args:
        cap: The most example passes the block may use; work that would pass it raises
            :class:`BudgetSpent` before it runs, and so does an optimizer step taken past it.
    """
    counter = ComputeCounter(cap)
    if not _ACTIVE:
        _DEPTH[0] = 0
        _HOOKS[:] = [register_module_forward_pre_hook(_pre), register_module_forward_hook(_post)]
    step = register_optimizer_step_pre_hook(counter._step) if cap is not None else None
    _ACTIVE.append(counter)
    try:
        yield counter
    finally:
        _ACTIVE.remove(counter)
        if step is not None:
            step.remove()
        if not _ACTIVE:
            for h in _HOOKS:
                h.remove()
            _HOOKS.clear()
            # A call interrupted by an exception (a budget stop) never reached its forward hook.
            _DEPTH[0] = 0


def spend(passes: float) -> None:
    """Count ``passes`` example passes of work the hooks do not see (calls under ``torch.func``).

    Call it before doing the work: where a cap would be passed it raises :class:`BudgetSpent`
    and nothing is counted.
    """
    for counter in _ACTIVE:
        counter.check(passes)
    for counter in _ACTIVE:
        counter.spent += passes


def remaining_compute() -> float | None:
    """Example passes the enclosing capped blocks still allow (the tightest); None when none is capped.

    A method with phases sizes them to this (e.g. a Fisher estimate on a subsample that fits).
    """
    left = [c.remaining() for c in _ACTIVE if c.cap is not None]
    return min(left) if left else None


def train_compute(examples: int, epochs: int, predicted_per_epoch: int = 0) -> float:
    """Example passes of ``epochs`` epochs of training on ``examples`` examples, plus
    ``predicted_per_epoch`` examples predicted after each epoch (e.g. a best-validation checkpoint)."""
    return float(epochs * ((FORWARD + BACKWARD) * examples + FORWARD * predicted_per_epoch))
