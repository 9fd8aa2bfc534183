"""What a model keeps and what it gives away, from its outputs: accuracy, confidence, membership attacks.

Every function here reads logits and labels (never a model), so the same numbers come out of a
bench's stored outputs, ``unlearnkit unlearn``'s sidecars and ``unlearnkit forget``'s audit. Accuracy
is computed in :func:`accuracy_of` and nowhere else.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from unlearnkit.errors import InputError
from unlearnkit.metrics.mia import loss_mia, svc_mia

# Sets :func:`utility_measures` needs logits of.
MEASURED_SETS = ("retain", "forget", "test", "retain_probe")


def accuracy_of(logits: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> float:
    """Top-1 accuracy of ``logits`` [n, classes] against ``labels`` [n]; nan for an empty set."""
    logits, labels = torch.as_tensor(logits), torch.as_tensor(labels).cpu()
    if len(labels) == 0:
        return float("nan")
    return float((logits.cpu().argmax(1) == labels).float().mean())


def true_class_confidence(logits: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> np.ndarray:
    """The softmax probability each example's true class gets, [n] float64."""
    logits, labels = torch.as_tensor(logits).cpu().double(), torch.as_tensor(labels).cpu().long()
    if len(labels) == 0:
        return np.zeros(0)
    return torch.softmax(logits, 1)[torch.arange(len(labels)), labels].numpy()


def forgotten_classes(forget_labels: np.ndarray, train_labels: np.ndarray) -> tuple[int, ...]:
    """The classes every training example of which is in the forget set (a whole-class erasure).

    A model that never saw such a class scores 0 % on it, whatever its accuracy on unseen data of
    the other classes; the audit's target for those examples is therefore not a test-set level.
    """
    forget_counts = np.bincount(forget_labels, minlength=int(train_labels.max(initial=0)) + 1)
    train_counts = np.bincount(train_labels, minlength=len(forget_counts))
    return tuple(int(c) for c in np.flatnonzero((forget_counts > 0) & (forget_counts == train_counts[:len(forget_counts)])))


def utility_measures(logits: Mapping[str, torch.Tensor], labels: Mapping[str, torch.Tensor], *,
                     classes: Sequence[int] = ()) -> dict[str, Any]:
    """One model's accuracies, mean true-class confidences and membership attacks.

    Args:
        logits, labels: Per set (``retain``, ``forget``, ``test``, ``retain_probe``).
        classes: Classes erased as a whole (see :func:`forgotten_classes`); ``test_kept`` is the
            test accuracy on the other classes, what the model should keep.

    Returns:
        ``accuracy`` and ``confidence`` per set (None for an empty one), ``test_kept`` accuracy,
        ``loss_mia`` (forget vs test), ``svc_mia_efficacy`` and ``svc_mia_baseline``, where an attack
        cannot run its ``*_why_not``, and the per-example forget-set arrays ``_forget_correct``,
        ``_forget_confidence`` and ``_forget_logits``.
    """
    y = {k: torch.as_tensor(labels[k]).cpu().long() for k in MEASURED_SETS}
    lg = {k: torch.as_tensor(logits[k]).cpu().float() for k in MEASURED_SETS}
    conf = {k: true_class_confidence(lg[k], y[k]) for k in MEASURED_SETS}
    kept = ~np.isin(y["test"].numpy(), list(classes))
    out: dict[str, Any] = {
        "accuracy": {k: _or_none(accuracy_of(lg[k], y[k])) for k in ("retain", "test", "forget")},
        "confidence": {k: float(conf[k].mean()) if len(conf[k]) else None for k in ("retain", "test", "forget")},
        "test_kept": _or_none(accuracy_of(lg["test"][kept], y["test"][kept])),
        "_forget_correct": (lg["forget"].argmax(1) == y["forget"]).double().numpy() if len(y["forget"]) else np.zeros(0),
        "_forget_confidence": conf["forget"], "_forget_logits": lg["forget"].numpy(),
    }
    try:
        losses = {k: F.cross_entropy(lg[k], y[k], reduction="none").numpy() for k in ("forget", "test")}
        out["loss_mia"] = loss_mia(losses["forget"], losses["test"], seed=0).accuracy
    except InputError as exc:  # too few forget or test examples for 5-fold cross-validation
        out["loss_mia"], out["loss_mia_why_not"] = None, str(exc)
    probs = {k: torch.softmax(lg[k].double(), 1).numpy() for k in ("retain_probe", "test", "forget")}
    try:
        svc = svc_mia(probs["retain_probe"], y["retain_probe"].numpy(), probs["test"], y["test"].numpy(),
                      probs["forget"], y["forget"].numpy(), seed=0)
        out["svc_mia_efficacy"], out["svc_mia_baseline"] = svc.efficacy, svc.baseline
    except InputError as exc:
        out["svc_mia_efficacy"], out["svc_mia_baseline"], out["svc_mia_why_not"] = None, None, str(exc)
    return out


def _or_none(value: float) -> float | None:
    return None if np.isnan(value) else value
