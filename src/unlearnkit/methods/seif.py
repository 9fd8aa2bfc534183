"""Seif: blur the first layer with noise, then fine-tune with the retain set's majority class up-weighted (competition #3)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unlearnkit.models.base import model_parts
from unlearnkit.methods.base import METHODS, UnlearnData, clone, generator
from unlearnkit.methods.common import sgd
from unlearnkit.methods.guard import guard_point


@dataclass(frozen=True)
class SeifConfig:
    first_noise_std: float = 0.6     # added to the first layer's weights before training
    last_noise_std: float = 0.005    # added again before the last epoch
    epochs: int = 4
    lr: float = 7e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64
    majority_class_weight: float = 1.0  # CE weight of the retain set's most frequent class
    other_class_weight: float = 0.05    # CE weight of every other class


def dominant_class(labels: torch.Tensor, num_classes: int) -> int:
    """The most frequent label (the smallest one on a tie)."""
    return int(torch.bincount(labels.cpu(), minlength=num_classes).argmax())


def example_weighted_ce(logits: torch.Tensor, y: torch.Tensor, class_weight: torch.Tensor) -> torch.Tensor:
    """mean_i(w[y_i] * CE_i): each example's loss weighted by its class, averaged over the batch.

    Not torch's weighted CE (sum w_i l_i / sum w_i), which renormalises every batch to unit weight.
    """
    return (F.cross_entropy(logits.float(), y, reduction="none") * class_weight[y]).mean()


def add_noise(weight: torch.Tensor, std: float, gen: torch.Generator) -> None:
    """weight += N(0, std^2), drawn on the CPU from ``gen``."""
    with torch.no_grad():
        weight.add_(torch.randn(weight.shape, generator=gen).to(weight.device, weight.dtype) * std)


@METHODS.register(
    "seif",
    config=SeifConfig,
    strength=("first_noise_std", "last_noise_std"),  # methods.regime
    # not strong under its auto defaults: tests/methods/test_behaviour.py measured less than a quarter of the gap closed
    reference="Seif, 3rd place, NeurIPS 2023 Machine Unlearning competition (Triantafillou et al. 2024)",
    needs=("head",),
    tiny={"epochs": 2},
)
def seif(model: nn.Module, data: UnlearnData, cfg: SeifConfig, *, seed: int) -> nn.Module:
    """Add N(0, 0.6^2) to the first layer, fine-tune 4 epochs on R with R's majority class weighted up.

    The first layer (``model_parts(model).stem``: the first conv, or the MLP's first Linear) gets
    Gaussian noise of std ``first_noise_std``; then ``epochs`` epochs of class-weighted CE on R (SGD
    lr 7e-4, momentum 0.9, wd 5e-4, cosine annealed per epoch with T_max = epochs as in the
    reference). Before the last epoch the first layer gets noise again, std ``last_noise_std``
    (the reference's ``vision_confuser`` touches only the top-level "conv" layer, i.e. the stem).

    Class weights, as in the write-up (``class_weights = [1, w, ..., w]``, w = 0.05, where class 0
    was the majority class of the competition's retain set): ``majority_class_weight`` for the
    retain set's most frequent label, ``other_class_weight`` for every other class. The weights
    apply per example: the loss is ``mean_i(w[y_i] * CE_i)`` over the batch
    (``example_weighted_ce``), as the write-up describes. The public port of the code (in the
    ``munl`` benchmark) instead multiplies the batch-mean CE by the batch's mean weight, which only
    rescales each batch's step; torch's weighted CE (sum w_i l_i / sum w_i) would renormalise every
    batch to unit weight. Neither is the write-up's per-example weighting.

    Choices:
        * No second noise when ``epochs`` is 1 (the reference adds it after epoch ``epochs - 2``).

    Defaults for small_cnn (--preset auto, methods/defaults.py, chosen by benchmarks/sweep_methods.py):
    0.1x the recipe's epochs, 10/3x its learning rate, other_class_weight 1.0 (so no class
    weighting), first_noise_std 0.2 (the safe candidate within the budget that closed the most gap).
    At the reference lr the small CNN does not recover from the first-layer noise in 4 epochs, and
    weighting the other classes 0.05 wrecks it on the built-in dataset: R's majority class is 18 %
    of R and holds no example of S (S is 74 % class 1, 11 % of R), so the fine-tuning learns one
    class and forgets the rest. An earlier one-seed sweep on the built-in dataset (16x16 synthetic,
    identity_skewed:0.05, seed 0), forget / retain / test accuracy (original .997 / .997 / .319,
    retrain .263 / .978 / .302), measured:

    =====================================  ======  ======  =====
    overrides                              forget  retain  test
    =====================================  ======  ======  =====
    (reference)                            .229    .229    .169
    lr 7e-3, other weight 0.3              .525    .869    .244
    lr 7e-3, other weight 1                .734    .965    .248
    lr 1e-2, other weight 1                .737    .979    .264
    lr 7e-3, other weight 1, noise 0.3     .865    .992    .300
    =====================================  ======  ======  =====

    On the earlier 32x32 built-in dataset (original .960 / .976 / .485, retrain .623 / .992 /
    .510): reference .226 / .328 / .188; lr 7e-3, other weight 1 .811 / .977 / .500 (the setting
    chosen then, and the same before the weighting followed the write-up, since with all weights 1 the
    two weightings agree); without the first-layer noise forget accuracy stayed at 0.990.

    Cost: epochs * ceil(|R|/64) steps: 4 epochs of R, 0.2x the examples of a 20-epoch retrain; on the
    synthetic small_cnn setting 336 steps = 0.4x retrain's 840 (batch 64 vs 128).

    References:
        Seif's solution (3rd place), NeurIPS 2023 Machine Unlearning competition, Kaggle.
        Triantafillou et al., Are we making progress in unlearning? Findings from the first NeurIPS
        unlearning competition, arXiv:2406.09073, 2024.
    """
    student = clone(model)
    stem = model_parts(student, data.spec).stem
    add_noise(stem.weight, cfg.first_noise_std, generator(seed, "noise", "first"))

    weight = torch.full((data.num_classes,), cfg.other_class_weight)
    weight[dominant_class(data.retain.y, data.num_classes)] = cfg.majority_class_weight
    weight = weight.to(data.runtime.device)

    opt = sgd(student.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.epochs, 1))
    for epoch in range(cfg.epochs):
        if epoch > 0 and epoch == cfg.epochs - 1:
            add_noise(stem.weight, cfg.last_noise_std, generator(seed, "noise", "last"))
        student.train()
        for x, y in data.batches(data.retain, cfg.batch_size, generator(seed, "ce", epoch)):
            with data.runtime.autocast():
                loss = example_weighted_ce(student(x), y, weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        guard_point(student)
    return student
