"""The utility guard: one mechanism in the method runner that keeps a method's model within a
stated tolerance of the original's accuracy (docs/guard.md).

A method's defaults were chosen on settings where the original memorises its data; on a user's
data (a short recipe, an underfitting model) the same defaults can cost many points of accuracy.
The guard measures that during the run instead of trusting the defaults:

* before the method runs, the original is evaluated on two small probes: a seeded subset of the
  retain set R and of the validation split (test-like data a method may see);
* a method exposes check points with :func:`guard_point` (the end of each epoch or phase; a no-op
  unless a guard is active), where the guard keeps a copy of the model state, nothing more;
* after the method returns, the final model is evaluated; if it is within ``tolerance`` of the
  original on both probes (by ``margin`` standard errors of the paired difference: a probe is a
  sample of its split) it is kept. Otherwise the kept states are evaluated latest first and the
  first that passes is returned (later means more unlearning), so a guard that passes costs two
  probe evaluations, and only a failing run pays for more;
* where no state passes, one bounded repair that costs no training: the final model blended back
  towards the original in weight space, theta_0 + a (theta - theta_0), with the largest weight
  ``a`` that passes found by bisection in ``repair_evals`` probe evaluations (a < 1 keeps part of
  the method's change; the weight is recorded). Fine-tuning on R instead was tried first: on a
  short recipe (digits, 2 epochs) the compute it could be given (a tenth of a retrain: one or two
  steps) recovered nothing, and a repair that needs a retrain's compute defeats unlearning. A
  model that still fails is returned as the state closest to passing, and the outcome says it
  failed. The untouched original is never a candidate.

Every probe evaluation is counted in the run's compute (engine.compute), and the
guard's share is recorded on its own in :class:`GuardOutcome`.
"""

from __future__ import annotations

import contextvars
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
from torch import nn

from unlearnkit.engine.compute import FORWARD, BudgetSpent, count_compute, remaining_compute
from unlearnkit.engine.seeding import derive_seed, torch_generator
from unlearnkit.engine.tensors import TensorSet
from unlearnkit.engine.train import predict
from unlearnkit.errors import InputError


@dataclass(frozen=True)
class GuardConfig:
    """What the guard holds a method's model to.

    Attributes:
        tolerance: The most accuracy (a fraction: 0.02 = 2 points) the model may lose against the
            original on each probe (retain and validation); on a probe too small to resolve it, one
            probe example (1 / its size).
        retain_probe: Examples of R in the retain probe (all of R where it is smaller).
        val_probe: Examples of the validation split in its probe (all of it where smaller; 0: no
            validation probe).
        repair: Where no kept state passes, blend the method's model back towards the original, as
            little as passes (weight-space interpolation; see the module docstring).
        repair_evals: Probe evaluations the blend's bisection may spend (its weight to 2^-repair_evals).
        max_states: The most model states kept for the search (older ones thinned out first).
        margin: Standard errors of the paired accuracy difference a probe's loss must stay below
            the tolerance by (the probe is a sample of R and of the validation split: at 0, a model
            that just passes on its probe loses more than the tolerance on the full sets about half
            the time; measured at 0, two of 27 guarded rows ended 0.2 to 0.3 points past it).
    """

    tolerance: float = 0.02
    retain_probe: int = 512
    val_probe: int = 512
    repair: bool = True
    repair_evals: int = 6
    max_states: int = 8
    margin: float = 1.0

    def __post_init__(self) -> None:
        if not (isinstance(self.tolerance, (int, float)) and 0 <= self.tolerance <= 1):
            raise InputError(f"guard tolerance {self.tolerance!r}: expected accuracy points as a fraction in [0, 1], e.g. 0.02")
        if self.retain_probe < 1:
            raise InputError(f"guard retain_probe {self.retain_probe}: expected at least 1 example of R")
        if self.val_probe < 0:
            raise InputError(f"guard val_probe {self.val_probe}: expected 0 (none) or more examples")
        if not (isinstance(self.margin, (int, float)) and 0 <= self.margin <= 5):
            raise InputError(f"guard margin {self.margin!r}: expected standard errors in [0, 5], e.g. 1")
        if self.repair_evals < 1 or self.max_states < 1:
            raise InputError(f"guard repair_evals {self.repair_evals} and max_states {self.max_states}: expected at least 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "GuardConfig":
        unknown = sorted(set(raw) - set(cls.__dataclass_fields__))
        if unknown:
            raise InputError(f"guard config: unknown field {unknown[0]!r}; expected {', '.join(cls.__dataclass_fields__)}")
        return cls(**raw)


@dataclass(frozen=True)
class GuardOutcome:
    """What the guard found in one method run (stored in the run's record as ``guard``).

    Attributes:
        tolerance: The tolerance held to (a fraction of accuracy).
        passed: The returned model is within the tolerance on both probes.
        chosen: ``final`` (the method's own model), ``point`` (a kept state, ``chosen_point``) or
            ``blend`` (the final model blended towards the original, ``blend``). Where nothing
            passed (``passed`` false), the state closest to passing.
        chosen_point: Index of the kept state among ``points`` (None unless ``chosen`` is ``point``).
        points: Check points the method exposed.
        evaluated: Probe evaluations (the original's included).
        original_retain: The original's accuracy on the retain probe.
        original_val: ... on the validation probe (None without one).
        retain: The returned model's accuracy on the retain probe.
        val: ... on the validation probe (None without one).
        blend: The weight of the method's change kept in a blend (theta_0 + blend (theta - theta_0)), or None.
        compute: The guard's example passes (its probe evaluations), part of the run's compute.
        fit_gap: The original's retain-probe minus validation-probe accuracy: how much it memorises
            (None without a validation probe).
    """

    tolerance: float
    passed: bool
    chosen: str
    chosen_point: int | None
    points: int
    evaluated: int
    original_retain: float
    original_val: float | None
    retain: float
    val: float | None
    blend: float | None
    compute: float
    fit_gap: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "GuardOutcome":
        try:
            return cls(**{k: raw[k] for k in cls.__dataclass_fields__})
        except (KeyError, TypeError) as exc:
            raise InputError(f"guard outcome: missing or malformed field ({exc})") from None

    def summary(self) -> str:
        """One line for a log or an audit."""
        what = {"final": "the method's final model", "point": f"check point {self.chosen_point} of {self.points}",
                "blend": f"the final model blended towards the original (weight {self.blend})"}
        val = "" if self.val is None else f", validation {self.val:.3f} (original {self.original_val:.3f})"
        return (f"{'passed' if self.passed else 'FAILED'} at {100 * self.tolerance:g} points: {what[self.chosen]}; "
                f"retain probe {self.retain:.3f} (original {self.original_retain:.3f}){val}; "
                f"guard compute {self.compute:.0f} example passes")


class _Guard:
    """The state of one guarded run (lives across the method's guard_point calls)."""

    def __init__(self, cfg: GuardConfig) -> None:
        self.cfg = cfg
        self.states: list[tuple[int, dict[str, torch.Tensor]]] = []
        self.points = 0

    def keep(self, model: nn.Module) -> None:
        self.states.append((self.points, _state(model)))
        self.points += 1
        if len(self.states) > self.cfg.max_states:
            # Thin the older half (every other state), keep the latest ones: later means more unlearning.
            old, new = self.states[:-self.cfg.max_states // 2], self.states[-self.cfg.max_states // 2:]
            self.states = old[::2] + new


_ACTIVE: contextvars.ContextVar[_Guard | None] = contextvars.ContextVar("unlearnkit_guard", default=None)


def guard_point(model: nn.Module) -> None:
    """A check point of a method (the end of an epoch or phase): the guard keeps ``model``'s state.

    A no-op unless the method runs under a guard (``run_method(..., guard=...)``); costs no compute.
    """
    guard = _ACTIVE.get()
    if guard is not None:
        guard.keep(model)


class Probe:
    """Seeded probes of the retain set and of the validation split (``cfg``'s sizes), and which of their
    examples a model gets right; the regime rule (methods.regime) reads the original's from the same call."""

    def __init__(self, cfg: GuardConfig, retain: TensorSet, val: TensorSet, seed: int, runtime) -> None:
        if len(retain) == 0:
            raise InputError("the utility guard and the regime rule need a non-empty retain set to measure accuracy on "
                             "(run without them: --no-guard, or bench without --guard; --preset none)")
        self.runtime = runtime
        self.retain = retain.subset(torch.randperm(len(retain), generator=torch_generator(derive_seed(seed, "guard", "retain")))
                                    [:cfg.retain_probe])
        n_val = min(cfg.val_probe, len(val))
        self.val = (val.subset(torch.randperm(len(val), generator=torch_generator(derive_seed(seed, "guard", "val")))[:n_val])
                    if n_val else None)
        self.evaluated = 0

    def tolerance(self, tolerance: float) -> tuple[float, float]:
        """The accuracy each probe may lose: ``tolerance``, or one probe example where that is more
        (a probe of 16 validation examples cannot tell 2 points from 0)."""
        return (max(tolerance, 1 / len(self.retain)),
                max(tolerance, 1 / len(self.val)) if self.val is not None else tolerance)

    @property
    def cost(self) -> float:
        return FORWARD * (len(self.retain) + (len(self.val) if self.val is not None else 0))

    def __call__(self, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Which examples of (the retain probe, the validation probe or None) ``model`` gets right,
        the module modes left as they were."""
        modes = [m.training for m in model.modules()]
        try:
            right = tuple(None if part is None else predict(model, part, runtime=self.runtime).argmax(1) == part.y.cpu()
                          for part in (self.retain, self.val))
        finally:
            for m, mode in zip(model.modules(), modes):
                m.training = mode
        self.evaluated += 1
        return right


Right = tuple[torch.Tensor, "torch.Tensor | None"]


def accuracies(right: Right) -> tuple[float, float | None]:
    return tuple(None if r is None else float(r.float().mean()) for r in right)


def _shortfall(now: Right, base: Right, tolerance: tuple[float, float], margin: float) -> float:
    """How far ``now`` is below the tolerance (0 or less: it passes), the worse of the two probes.

    A probe's loss is the mean of the paired per-example differences (right before, wrong now minus
    the reverse), taken ``margin`` standard errors of that mean on the pessimistic side.
    """
    gaps = []
    for after, before, tol in zip(now, base, tolerance):
        if after is None or before is None:
            continue
        diff = before.float() - after.float()
        se = float(diff.std(unbiased=True)) / len(diff) ** 0.5 if len(diff) > 1 else 0.0
        gaps.append(float(diff.mean()) + margin * se - tol)
    return max(gaps)


def run_guarded(method: Callable[[], nn.Module], original: nn.Module, data, cfg: GuardConfig, *, seed: int,
                stopped: Callable[[], nn.Module | None], probe: Probe | None = None,
                base: Right | None = None) -> tuple[nn.Module, GuardOutcome, bool]:
    """Run ``method()`` under the guard ``cfg``; returns (the model kept, the outcome, whether a budget stopped it).

    Called by ``methods.base.run_method`` inside its compute count. The original's probe evaluation
    comes first; the method then runs under a cap that leaves room for one probe evaluation of its
    model, so that even a method stopped by the run's budget is checked.

    Args:
        method: Runs the method (raises BudgetSpent where a budget stops it).
        original: The model the method starts from (evaluated, never returned).
        data: The method's UnlearnData.
        cfg: The guard's settings.
        seed: The run's seed (draws the probes).
        stopped: The method's model where a budget stopped it (None before it made one).
        probe: The probes (None: drawn here from ``cfg`` and ``seed``).
        base: ``probe(original)`` where the caller has it already (the regime rule's measurement,
            counted there); None: evaluated here, as the guard's compute.
    """
    probe = probe if probe is not None else Probe(cfg, data.retain, data.val, seed, data.runtime)
    guard = _Guard(cfg)
    with count_compute() as spent:
        base = base if base is not None else probe(original)
    left = remaining_compute()
    cap = None if left is None else max(0.0, left - probe.cost)
    token = _ACTIVE.set(guard)
    was_stopped = False
    try:
        with count_compute(cap):
            try:
                model = method()
            except BudgetSpent:
                model, was_stopped = stopped(), True
    finally:
        _ACTIVE.reset(token)
    if model is None:
        raise BudgetSpent
    with count_compute() as counted:
        outcome = _choose(model, original, guard, probe, base, cfg)
    spent_total = spent.total + counted.total
    model, chosen, point, acc, weight = outcome
    base_acc, now = accuracies(base), accuracies(acc)
    return model, GuardOutcome(
        tolerance=cfg.tolerance, passed=_shortfall(acc, base, probe.tolerance(cfg.tolerance), cfg.margin) <= 0, chosen=chosen,
        chosen_point=point, points=guard.points, evaluated=probe.evaluated, original_retain=base_acc[0],
        original_val=base_acc[1], retain=now[0], val=now[1], blend=weight, compute=spent_total,
        fit_gap=None if base_acc[1] is None else base_acc[0] - base_acc[1]), was_stopped


def _fits(passes: float) -> bool:
    left = remaining_compute()
    return left is None or left >= passes


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _choose(model: nn.Module, original: nn.Module, guard: _Guard, probe: Probe, base, cfg: GuardConfig):
    """(model, chosen, chosen_point, accuracies, blend weight): the final model if it passes, else
    the latest kept state that does, else the final model blended towards the original as little
    as passes, else the state closest to passing."""
    tol = probe.tolerance(cfg.tolerance)
    final = probe(model)
    if _shortfall(final, base, tol, cfg.margin) <= 0:
        return model, "final", None, final, None
    final_state = best_state = _state(model)
    best = (_shortfall(final, base, tol, cfg.margin), "final", None, final)
    for index, state in reversed(guard.states):
        if all(torch.equal(v, final_state[k]) for k, v in state.items()):
            continue  # the final model itself (a method's last check point is often its end)
        if not _fits(probe.cost):
            break
        model.load_state_dict(state)
        acc = probe(model)
        short = _shortfall(acc, base, tol, cfg.margin)
        if short <= 0:
            return model, "point", index, acc, None
        if short < best[0]:
            best_state, best = state, (short, "point", index, acc)
    model.load_state_dict(best_state)
    if cfg.repair:
        # Blend the latest state (the method's final model) back towards the original.
        acc, weight = _blend(model, original, probe, base, cfg, final_state)
        if acc is not None:
            return model, "blend", None, acc, weight
        model.load_state_dict(best_state)
    return model, best[1], best[2], best[3], None


def _blend(model: nn.Module, original: nn.Module, probe: Probe, base, cfg: GuardConfig,
           state: dict[str, torch.Tensor]) -> tuple[Right | None, float | None]:
    """Bisect the weight ``a`` in (0, 1] of the method's change, theta = theta_0 + a (theta - theta_0),
    for the largest that passes, in ``cfg.repair_evals`` probe evaluations. Leaves ``model`` at it and
    returns (its accuracies, a), or (None, None) with ``model`` at ``state`` where none passed."""
    tol = probe.tolerance(cfg.tolerance)
    start = _state(original)
    if start.keys() != state.keys() or any(start[k].shape != v.shape for k, v in state.items()):
        return None, None  # a method that changed the architecture: no line between the two
    lo, hi, found = 0.0, 1.0, None
    for _ in range(cfg.repair_evals):
        if not _fits(probe.cost):
            break
        a = (lo + hi) / 2
        _mix(model, start, state, a)
        acc = probe(model)
        if _shortfall(acc, base, tol, cfg.margin) <= 0:
            lo, found = a, (acc, a)
        else:
            hi = a
    if found is None:
        model.load_state_dict(state)
        return None, None
    _mix(model, start, state, found[1])
    return found


def _mix(model: nn.Module, start: dict[str, torch.Tensor], end: dict[str, torch.Tensor], a: float) -> None:
    """``model`` at start + a (end - start), floating tensors only (integer buffers, such as batch-norm counters, from ``end``)."""
    mixed = {k: start[k] + a * (v - start[k]) if v.is_floating_point() else v for k, v in end.items()}
    model.load_state_dict(mixed)
