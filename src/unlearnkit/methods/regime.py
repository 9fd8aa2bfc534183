"""Regime-aware defaults: how hard a method strikes depends on whether the original memorises.

A method's defaults were chosen where the original memorises its training data (retain accuracy
about 1, far above validation accuracy). There a forget example sits far from where a retrain puts
it, and a method must move the model a long way: prune 99 % of the weights, add noise of 0.6 to
the first layer, scramble every kernel. Where the original underfits (a short recipe, a hard
dataset, a small model) a forget example already looks much like unseen data to it, a retrain
moves it little, and the same strike destroys utility that the method's short repair cannot
restore (issue 20: on a 2-epoch digits MLP, oleszko's default left retain accuracy at 0.10).

The rule, measured on the original before a method runs (counted in the run's compute):

* the original's error on a probe of the retain set R and on a probe of the validation split (the
  utility guard's probes, ``methods.guard.Probe``: a guarded run evaluates the original once for both);
* it **memorises** where its retain error is at most :data:`MEMORISES` (a quarter) of its
  validation error: the training data is fitted far better than unseen data;
* otherwise every *strength* field the method declares (``METHODS.register(..., strength=...)``:
  the knobs that set how far its destructive step moves the model, such as a pruned share, a noise
  scale or a forgetting learning rate) is multiplied by the method's factor in
  :data:`UNDERFIT_SCALE`; fields the user set are left alone, and so is every method that declares
  none or has no factor (1): ``runner.jobs.regime_fields`` gives those no rule, so they do not pay
  for the probe.

The factors were chosen by ``benchmarks/regime_sweep.py`` on the tuning settings recorded in
``benchmarks/results/tuning_log.md``, per method, among 1, 1/2 and 1/4 (docs/guard.md,
"Regime-aware defaults"); the threshold separates every setting measured there.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# The original memorises where its retain error is at most this share of its validation error.
MEMORISES = 0.25
# Each method's strength fields x this where the original does not memorise (benchmarks/regime_sweep.py;
# a method absent here keeps its strength).
UNDERFIT_SCALE: dict[str, float] = {"kookmin": 0.5, "oleszko": 0.5, "scramble_relearn": 0.25, "seif": 0.5}


@dataclass(frozen=True)
class Regime:
    """What the rule measured on the original and what it changed (a run's record holds it as ``regime``).

    Attributes:
        retain: The original's accuracy on the retain probe.
        val: ... on the validation probe (None where there is no validation split).
        memorises: Retain error <= MEMORISES x validation error (True without a validation split:
            nothing says otherwise, so the swept defaults stand).
        scale: The factor applied to the strength fields (1.0 where it memorises).
        scaled: Each changed field and its new value.
    """

    retain: float
    val: float | None
    memorises: bool
    scale: float
    scaled: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        fit = f"retain {self.retain:.3f}" + ("" if self.val is None else f", validation {self.val:.3f}")
        if self.memorises:
            return f"the original memorises ({fit}): the swept defaults stand"
        changed = ", ".join(f"{k}={v:.4g}" for k, v in self.scaled.items()) or "no strength field to scale"
        return f"the original does not memorise ({fit}): strength x {self.scale:g} ({changed})"


def memorises(retain: float, val: float | None) -> bool:
    """The rule: retain error at most :data:`MEMORISES` x validation error."""
    return val is None or (1 - retain) <= MEMORISES * (1 - val)


def apply_regime(cfg: Any, method: str, fields: tuple[str, ...], retain: float, val: float | None) -> tuple[Any, Regime]:
    """``cfg`` of ``method`` with the rule applied to ``fields`` (its strength fields the user did not set)."""
    if memorises(retain, val):
        return cfg, Regime(retain, val, True, 1.0, {})
    scale = UNDERFIT_SCALE.get(method, 1.0)
    scaled = {name: getattr(cfg, name) * scale for name in fields} if scale != 1.0 else {}
    return dataclasses.replace(cfg, **scaled), Regime(retain, val, False, scale, scaled)
