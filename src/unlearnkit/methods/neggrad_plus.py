"""NegGrad+: descend on the retain set while ascending on the forget set."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unlearnkit.errors import InputError
from unlearnkit.methods.base import METHODS, UnlearnData, clone, generator
from unlearnkit.methods.common import cycled, frozen_copy


@dataclass(frozen=True)
class NegGradPlusConfig:
    epochs: int = 10
    lr: float = 1e-2
    alpha: float = 0.95  # weight of the retain loss (and of the pull); the forget loss gets 1 - alpha
    momentum: float = 0.0
    l2_pull: float = 5e-4  # coefficient of (l2_pull / 2) * ||theta - theta_0||^2, added to the retain loss
    batch_size: int = 128
    forget_batch_size: int = 64

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise InputError(f"method.neggrad_plus.alpha = {self.alpha}: expected a weight in [0, 1]")
        if self.l2_pull < 0:
            raise InputError(f"method.neggrad_plus.l2_pull = {self.l2_pull}: expected a value >= 0")


def l2_pull(model: nn.Module, anchor: nn.Module) -> torch.Tensor:
    """Sum over all parameters of (theta - theta_0)^2, in fp32."""
    return sum(((p.float() - q.float()) ** 2).sum() for p, q in zip(model.parameters(), anchor.parameters()))


@METHODS.register(
    "neggrad_plus",
    config=NegGradPlusConfig,
    # not strong under its auto defaults: tests/methods/test_behaviour.py measured less than a quarter of the gap closed
    reference="Kurmanji et al. 2023, SCRUB's code (alpha 0.95, SGD lr 0.01, 10 epochs, eval mode, L2 pull)",
    tiny={"epochs": 1},
)
def neggrad_plus(model: nn.Module, data: UnlearnData, cfg: NegGradPlusConfig, *, seed: int) -> nn.Module:
    """Descend on the retain set while ascending on the forget set (NegGrad+), as SCRUB's code runs it.

    Each step takes one retain batch and the next batch of an endlessly reshuffled forget set and
    minimises ``alpha * (CE(R) + l2_pull / 2 * ||theta - theta_0||^2) - (1 - alpha) * CE(S)``, where
    theta_0 are the original weights; an epoch is one pass over R. As in the reference
    (``run_neggrad_epoch`` in SCRUB's ``small_scale_unlearning.ipynb``), the model stays in eval
    mode throughout, so batch norm normalises with the original's running statistics and never
    updates them (no drift towards the forget batches' statistics) and dropout is off; the
    optimizer is plain SGD (no momentum, no weight decay): the L2 pull towards the original weights
    takes weight decay's place. Retain batches of 128 and forget batches of 64, lr 0.01, alpha 0.95,
    10 epochs, as there. The reference takes the pull's coefficient from the original training
    run's weight decay; ``l2_pull`` defaults to 5e-4, the project recipes' weight decay.

    Defaults for small_cnn (--preset auto, methods/defaults.py, chosen by benchmarks/sweep_methods.py):
    alpha 0.98, 0.2x the recipe's epochs, 1x its learning rate. No candidate closed a useful part of
    the gap within 20 % of a retrain's steps and the reference defaults damage the model, so this is
    the safe candidate that closed the most (over that budget). An earlier one-seed sweep on the
    built-in dataset (16x16 synthetic, identity_skewed:0.05 forget set, seed 0; original forget /
    retain / test accuracy .997 / .997 / .319, retrain .263 / .978 / .302; steps relative to that
    retrain's 840) measured:

    =====================  ======  ======  =====  =====
    overrides              forget  retain  test   steps
    =====================  ======  ======  =====  =====
    (reference)            .411    .954    .253   0.50
    alpha .96              .458    .977    .293   0.50
    alpha .97              .741    .993    .323   0.50
    epochs 5               .471    .963    .311   0.25
    epochs 3               .859    .994    .325   0.15
    alpha .96, epochs 5    .865    .996    .334   0.25
    =====================  ======  ======  =====  =====

    Alpha .96 kept retain accuracy 2 points from the original's where the reference lost 4; epochs
    5 was the cheaper choice with about the same forgetting. Each step is a retain batch
    and a forget batch, so a step costs about 1.5 retrain steps. On the earlier 32x32 built-in
    dataset the reference ended at forget / retain .697 / .834, and the old train-mode port with
    weight decay collapsed to .000 / .238.

    References:
        Kurmanji, Triantafillou, Hayes & Triantafillou, Towards Unbounded Machine Unlearning,
        NeurIPS 2023 (code: github.com/meghdadk/SCRUB).
    """
    if len(data.forget) == 0:
        raise InputError("neggrad_plus needs a non-empty forget set")
    student = clone(model)
    anchor = frozen_copy(model)
    opt = torch.optim.SGD(student.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=0.0)
    forget = cycled(data, data.forget, cfg.forget_batch_size, seed, "forget")
    student.eval()
    for epoch in range(cfg.epochs):
        for x_r, y_r in data.batches(data.retain, cfg.batch_size, generator(seed, "retain", epoch)):
            x_f, y_f = next(forget)
            with data.runtime.autocast():
                retain_loss = F.cross_entropy(student(x_r), y_r)
                forget_loss = F.cross_entropy(student(x_f), y_f)
            pull = 0.5 * cfg.l2_pull * l2_pull(student, anchor) if cfg.l2_pull else 0.0
            loss = cfg.alpha * (retain_loss + pull) - (1 - cfg.alpha) * forget_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return student
