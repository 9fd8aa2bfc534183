"""Transposed: swap the spatial axes of every conv kernel, then fine-tune (half of competition #5's ensemble)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from unlearnkit.errors import InputError
from unlearnkit.models import ModelSpec
from unlearnkit.methods.base import METHODS, UnlearnData, clone
from unlearnkit.methods.common import cross_entropy_epoch, sgd, spatial_kernels


@dataclass(frozen=True)
class TransposedConfig:
    epochs: int = 3
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64
    # "sgd" is the reference's fine-tune (its original was trained with SGD); "adam" fine-tunes with
    # Adam at ``lr`` and ``weight_decay`` (L2), the optimizer family of a recipe that trains with Adam.
    optimizer: Literal["sgd", "adam"] = "sgd"

    def __post_init__(self) -> None:
        if self.optimizer not in ("sgd", "adam"):
            raise InputError(f"method.transposed.optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")


def transpose_kernels(model: nn.Module, spec: ModelSpec) -> int:
    """Swap the two spatial axes of every square conv kernel of ``model``, in place.

    With square kernels and equal stride/padding on both axes the transposed network computes
    ``f(x.transpose(-1, -2))``: it sees every image mirrored about its diagonal. A model without convs
    (the MLP) gets the same effect by permuting the input columns of its first Linear layer, which
    reads the flattened C x H x W image.

    Returns:
        How many weight tensors were transposed (non-square kernels are left alone).
    """
    weights = spatial_kernels(model, spec)
    with torch.no_grad():
        for w, shape in weights:
            w.copy_(w.reshape(shape).transpose(-1, -2).reshape(w.shape).clone())
    return len(weights)


@METHODS.register(
    "transposed",
    config=TransposedConfig,
    strong=True,  # moves forget accuracy towards retrain's on synthetic (tests/methods/test_behaviour.py)
    reference="5th place, NeurIPS 2023 Machine Unlearning competition, the transposed half of its ensemble (Triantafillou et al. 2024)",
    needs=("square_kernels",),
    tiny={"epochs": 1},
)
def transposed(model: nn.Module, data: UnlearnData, cfg: TransposedConfig, *, seed: int) -> nn.Module:
    """Transpose every conv kernel (the net now sees images mirrored on the diagonal), fine-tune on R.

    Every conv kernel's two spatial axes are swapped (``transpose_kernels``), which breaks the
    features' alignment with the data while keeping their statistics; then ``epochs`` epochs of CE
    on R re-align what R supports (SGD lr 1e-3, momentum 0.9, wd 5e-4, cosine annealed per epoch with
    T_max = epochs, as in the reference; or Adam, see below). The only randomness is the batch order.

    This is half of the 5th-place submission. That team ensembled two unlearned models, this
    transposed-kernel fine-tune and a second one trained with pseudo-labels; only the transposed
    half has public code (the port in the ``munl`` benchmark, ``KGLTop5``, which is what this
    follows), and an ensemble of two networks is not one model of the original architecture, which
    every method here must return. So the method is the transposed half alone, and its scores are
    those of half the team's solution, not of the submission that placed 5th.

    Choices:
        * Non-square kernels are left alone (transposing them would change the parameter's shape).
        * The MLP has no conv kernels. Rather than a no-op, its first Linear layer's input columns are
          permuted by the same H <-> W transposition, the exact analogue: like the transposed CNN, the
          MLP then computes f(x transposed). Other Linear layers are untouched (they have no spatial
          axes).

    Defaults for small_cnn (--preset auto, methods/defaults.py, chosen by benchmarks/sweep_methods.py):
    fine-tune with Adam, batch 128, 0.2x the recipe's epochs at 3x its learning rate. This is where
    our setting forces a change: the reference fine-tunes with SGD because its original was trained
    with SGD; small_cnn's recipe trains with Adam, and an SGD fine-tune of the transposed small CNN
    does not re-align within the budget. Every SGD setting the sweep tried (up to half a retrain's
    epochs, 1/30x to 10x the recipe's learning rate) loses more than 5 points of retain accuracy on
    some tuning setting (the least damaging, 0.15x epochs at 10/3x, lost 10.5 points on
    fashion_mnist at N = 16). With Adam, the chosen setting loses at most 3.3 points on the four
    tuning settings and closes 0.53 of the gap to the retrains there; in the N = 16 validation benches
    it keeps the built-in dataset's retain accuracy (0.989) and loses 6.9 points on fashion_mnist,
    at 18 % of a retrain's time (the sweep's median, 23 %, is marked over budget: it uses the whole
    20 % of a retrain's steps). ``optimizer="sgd"`` (``--preset none``) is the reference.

    Cost: epochs * ceil(|R|/batch_size) steps. The reference defaults, 3 epochs at batch 64, are 0.3x
    the steps of a 20-epoch retrain at batch 128 (252 of 840 on the synthetic small_cnn setting);
    ``auto``, 4 epochs at batch 128, is 0.2x.

    References:
        5th-place solution, NeurIPS 2023 Machine Unlearning competition, Kaggle.
        Triantafillou et al., Are we making progress in unlearning? Findings from the first NeurIPS
        unlearning competition, arXiv:2406.09073, 2024.
    """
    student = clone(model)
    transpose_kernels(student, data.spec)
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = sgd(student.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.epochs, 1))
    for epoch in range(cfg.epochs):
        cross_entropy_epoch(student, data, data.retain, opt, batch_size=cfg.batch_size, seed=seed, epoch=epoch)
        sched.step()
    return student
