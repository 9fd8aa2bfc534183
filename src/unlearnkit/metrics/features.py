"""Re-headed outputs: a fresh linear head fitted on a model's own penultimate features.

Every other metric reads a model's outputs, which the last layer alone can change. A fresh head,
fitted on the model's features of examples every model trained on (the bench's retain probe), reads
what the features still carry: a model that kept the original's features separates the forget
examples as the original memorised them, whatever its own head now says. The forget set's
re-headed logits, scored against the retrained references' re-headed logits with the competition's
(ε, δ) forgetting quality, are the leaderboard's ``feature_quality`` (docs/feature_forgetting.md).

The fit is deterministic, so a model with the same features has the same re-headed outputs: the
features are standardised with the probe features' mean and standard deviation, then a multinomial
logistic regression (sklearn, lbfgs) with a fixed L2 strength and iteration count is fitted.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from unlearnkit.errors import InputError

# Inverse L2 strength of the probe on standardised features (sklearn's default; part of the metric's
# definition, so fixed rather than tuned per model).
PROBE_C = 1.0
# lbfgs iterations. A fit that stops here is still a fixed function of the features, which is all
# the metric needs, so the convergence warning is not shown.
PROBE_MAX_ITER = 500
# Logit given to a class the probe set has no example of: far below any fitted logit, so such a
# class gets no probability, and still finite, as the forgetting statistic requires.
ABSENT_CLASS_LOGIT = -1e4


def reheaded_logits(
    probe_features,
    probe_labels,
    num_classes: int,
    *applied,
) -> list[np.ndarray]:
    """The logits [n, num_classes] of a linear head fitted on ``probe_features`` and applied to each of ``applied``.

    Args:
        probe_features: [P, d] features of the examples the head is fitted on (the retain probe).
        probe_labels: [P] their integer labels, in [0, num_classes).
        num_classes: The width of the logits.
        *applied: Feature arrays [n_i, d] to apply the fitted head to.

    Returns:
        One float32 array [n_i, num_classes] per array in ``applied``. Classes absent from
        ``probe_labels`` get :data:`ABSENT_CLASS_LOGIT`.

    Raises:
        InputError: non-finite features, mismatched shapes, labels out of range, or fewer than two
            classes among ``probe_labels``.
    """
    x = np.asarray(probe_features, dtype=np.float64)
    y = np.asarray(probe_labels)
    others = [np.asarray(a, dtype=np.float64) for a in applied]
    if x.ndim != 2 or y.shape != (len(x),) or any(a.ndim != 2 or a.shape[1] != x.shape[1] for a in others):
        raise InputError(f"probe features [P, d] with labels [P] and applied features [n, d] expected; got "
                         f"{x.shape}, {y.shape} and {[a.shape for a in others]}")
    if not (np.isfinite(x).all() and all(np.isfinite(a).all() for a in others)):
        raise InputError("features contain NaN or inf")
    if not np.issubdtype(y.dtype, np.integer) or (len(y) and (y.min() < 0 or y.max() >= num_classes)):
        raise InputError(f"probe labels must be integers in [0, {num_classes})")
    present = np.unique(y)
    if len(present) < 2:
        raise InputError(f"a linear head needs probe examples of at least two classes; got {len(present)}")
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std = np.where(std > 0, std, 1.0)  # a feature constant on the probe (a dead unit) carries nothing
    head = LogisticRegression(C=PROBE_C, max_iter=PROBE_MAX_ITER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        head.fit((x - mean) / std, y)
    out = []
    for a in others:
        scores = head.decision_function((a - mean) / std)
        if len(present) == 2:
            # A binary fit has one score, the log-odds of the second class; split it so that the
            # softmax of the pair is the fitted probability.
            scores = np.stack([-scores / 2, scores / 2], axis=1)
        logits = np.full((len(a), num_classes), ABSENT_CLASS_LOGIT)
        logits[:, present] = scores
        out.append(logits.astype(np.float32))
    return out
