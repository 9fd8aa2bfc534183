"""Noise injection: reset the head, retrain random tensor subsets with noise, fine-tune (competition #7)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from unlearnkit.errors import InputError
from unlearnkit.models.base import model_parts, norm_parameters, reset_parameters
from unlearnkit.methods.base import METHODS, UnlearnData, clone, generator
from unlearnkit.methods.common import cross_entropy_epoch, sgd


@dataclass(frozen=True)
class NoiseInjectionConfig:
    tensors: int = 9                 # parameter tensors drawn per partial epoch (norm params always train)
    noisy_tensors: int = 6           # of those, how many get noise (in the noise epochs)
    noise_std: float = 0.04
    reset_epochs: int = 1            # partial epochs right after the classifier reset, no noise
    noise_epochs: int = 4            # partial epochs with noise
    lr: float = 2e-4                 # lr of the partial epochs
    fine_lrs: tuple[float, ...] = (2e-4, 2e-4, 2e-4, 1e-3)   # one full fine-tuning epoch per entry
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64

    def __post_init__(self) -> None:
        for name in ("tensors", "noisy_tensors"):
            if getattr(self, name) < 0:
                raise InputError(f"method.noise_injection.{name} must be non-negative, got {getattr(self, name)}")
        if self.noisy_tensors > self.tensors:
            raise InputError(
                f"method.noise_injection.noisy_tensors ({self.noisy_tensors}) must not exceed tensors ({self.tensors})"
            )


def tensor_pool(model: nn.Module) -> list[nn.Parameter]:
    """The model's parameter tensors that are not normalisation parameters, in registration order."""
    norms = {id(p) for p in norm_parameters(model)}
    return [p for p in model.parameters() if id(p) not in norms]


@METHODS.register(
    "noise_injection",
    config=NoiseInjectionConfig,
    reference="7th place, NeurIPS 2023 Machine Unlearning competition (Triantafillou et al. 2024)",
    needs=("head",),
    tiny={"noise_epochs": 1, "fine_lrs": (2e-4,)},
)
def noise_injection(model: nn.Module, data: UnlearnData, cfg: NoiseInjectionConfig, *, seed: int) -> nn.Module:
    """Reset the classifier; train random tensor subsets (some with added noise); then fine-tune all.

    The classifier (``model_parts``) is re-initialised. Then, with CE on R and SGD (momentum 0.9,
    wd 5e-4, a fresh optimizer each epoch, no schedule):
      * ``reset_epochs`` (1) epoch(s): draw ``tensors`` (9) random parameter tensors from the model's
        non-norm parameters; train only those plus all norm parameters, lr 2e-4;
      * ``noise_epochs`` (4) epochs: each draws 9 fresh tensors, adds N(0, 0.04^2) to ``noisy_tensors``
        (6) of them, and trains only those 9 plus the norm parameters, lr 2e-4;
      * one full fine-tuning epoch per entry of ``fine_lrs`` (2e-4, 2e-4, 2e-4, 1e-3).
    9 epochs in all by default. Tensor draws and noise come from explicit generators; a model with
    fewer than 9 candidate tensors (small_cnn has 5, the MLP 6) trains all of them.

    Choices:
        * The classifier is a candidate like any other tensor, so right after its reset it trains only
          in the epochs that draw it (as in the reference, which draws from all non-"bn" tensors).
        * Norm parameters are found by module type (``norm_parameters``), not by a "bn" name.
        * Each noise epoch perturbs ``noisy_tensors`` of its draw, as the spec says. The reference code
          skips tensors already drawn in an earlier epoch, which on a model with fewer than 9 tensors
          would mean never adding noise at all.
        * Frozen tensors take no weight decay (they are frozen, not merely excluded from the gradient).

    Defaults for small_cnn (--preset auto, methods/defaults.py, chosen by benchmarks/sweep_methods.py):
    reset_epochs 1, noise_epochs 1, lr 4/3x the recipe's learning rate, fine_lrs (4e-3, 4e-3, 4e-3,
    1e-2), noise_std 0.01. Every candidate the sweep tried loses more than 5 points of retain
    accuracy on some tuning setting; this one loses the least. At the reference lrs the reset
    classifier is not re-learnt in 9 epochs. An earlier one-seed sweep on the built-in dataset
    (seed 0, identity_skewed:0.05; original 0.960 / 0.976 / 0.577, retrain 0.623 / 0.992 / 0.540;
    forget / retain / val) measured:

    ====================================  ======  ======  =====
    lr, fine_lrs                          forget  retain  val
    ====================================  ======  ======  =====
    2e-4, (2e-4, 2e-4, 2e-4, 1e-3) (ref)  0.374   0.681   0.454
    2e-3, (2e-3, 2e-3, 2e-3, 1e-2)        0.572   0.903   0.524
    3e-3, (3e-3, 3e-3, 3e-3, 1e-2)        0.623   0.929   0.546
    4e-3, (4e-3, 4e-3, 4e-3, 1e-2)        0.737   0.957   0.572
    5e-3, (5e-3, 5e-3, 5e-3, 1e-2)        0.798   0.972   0.577
    ====================================  ======  ======  =====

    Seed 1, lr 4e-3: 0.889 / 0.976 / 0.531 (which tensors are drawn matters).

    Cost of the reference defaults: 9 * ceil(|R|/64) steps: 9 epochs of R (5 of them with most
    weights frozen), 0.45x the examples of a 20-epoch retrain; on the synthetic small_cnn setting
    756 steps = 0.9x retrain's 840 at batch 64 vs 128. The heaviest of the seven.

    References:
        7th-place solution, NeurIPS 2023 Machine Unlearning competition, Kaggle.
        Triantafillou et al., Are we making progress in unlearning? Findings from the first NeurIPS
        unlearning competition, arXiv:2406.09073, 2024.
    """
    student = clone(model)
    reset_parameters(model_parts(student, data.spec).classifier, generator(seed, "reset"))
    pool = tensor_pool(student)
    norms = norm_parameters(student)

    partial_epochs = cfg.reset_epochs + cfg.noise_epochs
    try:
        for epoch in range(partial_epochs):
            gen = generator(seed, "select", epoch)
            drawn = [pool[i] for i in sorted(torch.randperm(len(pool), generator=gen)[: cfg.tensors].tolist())]
            if epoch >= cfg.reset_epochs:
                noisy = torch.randperm(len(drawn), generator=gen)[: cfg.noisy_tensors].tolist()
                with torch.no_grad():
                    for i in sorted(noisy):
                        p = drawn[i]
                        p.add_(torch.randn(p.shape, generator=gen).to(p.device, p.dtype) * cfg.noise_std)
            trainable = drawn + norms
            if not trainable:
                continue
            chosen = {id(p) for p in trainable}
            for p in student.parameters():
                p.requires_grad_(id(p) in chosen)
            opt = sgd(trainable, cfg.lr, cfg.momentum, cfg.weight_decay)
            cross_entropy_epoch(student, data, data.retain, opt, batch_size=cfg.batch_size, seed=seed, epoch=epoch)
    finally:
        for p in student.parameters():
            p.requires_grad_(True)

    for i, lr in enumerate(cfg.fine_lrs):
        opt = sgd(student.parameters(), lr, cfg.momentum, cfg.weight_decay)
        cross_entropy_epoch(
            student, data, data.retain, opt, batch_size=cfg.batch_size, seed=seed, epoch=partial_epochs + i
        )
    return student
