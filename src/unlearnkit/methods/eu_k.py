"""EU-k: exact unlearning of the last k trunk stages and the head, re-initialised and trained on R."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from unlearnkit.methods.base import METHODS, UnlearnData, clone, generator
from unlearnkit.methods.cf_k import last_stages, train_last_blocks
from unlearnkit.models.base import reset_parameters


@dataclass(frozen=True)
class EUkConfig:
    k: int = 1  # number of trailing trunk stages re-initialised and trained, with the classifier head
    epochs: int = 10
    lr: float = 1e-2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64


@METHODS.register(
    "eu_k",
    config=EUkConfig,
    reference="Goel et al. 2022; SCRUB's code (k 1 = last stage and head, SGD lr 0.01, 10 epochs)",
    needs=("stages",),
    tiny={"epochs": 1},
)
def eu_k(model: nn.Module, data: UnlearnData, cfg: EUkConfig, *, seed: int) -> nn.Module:
    """EU-k: re-initialise the last k trunk stages and the head, and train only them on R.

    k counts trunk stages from the end with the classifier head going with the last one, as in
    ``cf_k`` (see there for why: k = 1 is the last stage and the head, as SCRUB's code runs EU-k;
    Goel et al.'s code counts single layers, its K = 1 being the head alone, which on our models
    forgets nothing: forget accuracy 0.983 against the original's 0.976 on the earlier 32x32
    built-in bench). The re-initialisation is PyTorch's default for each layer
    (``reset_parameters`` with ``generator(seed, "reinit")``; it also resets BatchNorm
    statistics), not an architecture's own scheme (resnet18's kaiming-normal convs); SCRUB's code copies the weights of the original's initialisation instead, which a
    method here does not have. The rest of the model stays exactly unchanged, BatchNorm statistics
    included, and the re-initialised part is trained with CE on R exactly as in ``cf_k``
    (``train_last_blocks``): SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 64, 10 epochs (the
    references train it for as many epochs as the original was trained; 10 is the spec's budget).

    small_cnn keeps the reference defaults under --preset auto (benchmarks/sweep_methods.py: no
    candidate within 20 % of a retrain's steps closed a useful part of the gap, and the reference
    defaults, over that budget, lose at most 5 points of retain accuracy on every tuning setting).
    The reference k 1 already lowers forget accuracy; an earlier one-seed sweep on the built-in
    dataset (16x16 synthetic, identity_skewed:0.05, seed 0), forget / retain / test accuracy
    (original .997 / .997 / .319, retrain .263 / .978 / .302), found that with the second-to-last
    stage re-initialised as well it reaches the retrained model's, retain and test accuracy intact:

    ======================  ======  ======  =====
    overrides               forget  retain  test
    ======================  ======  ======  =====
    (reference, k 1)        .818    1.000   .330
    k 2                     .300    1.000   .371
    ======================  ======  ======  =====

    On the earlier 32x32 built-in dataset: k 1 .774 / .998 / .517, k 2 .394 / .981 / .444
    (original .960 / .976 / .485, retrain .623 / .992 / .510).

    References:
        Goel, Prabhu, Sanyal, Lim, Torr & Kumaraguru, Towards Adversarial Evaluation of Inexact
        Machine Unlearning, 2022 (arXiv:2201.06640; code: github.com/shash42/Evaluating-Inexact-Unlearning).
        Kurmanji, Triantafillou, Hayes & Triantafillou, Towards Unbounded Machine Unlearning,
        NeurIPS 2023 (code: github.com/meghdadk/SCRUB).
    """
    student = clone(model)
    blocks = last_stages(student, cfg.k, data.spec)
    reinit = generator(seed, "reinit")
    for block in blocks:
        reset_parameters(block, reinit)
    train_last_blocks(student, blocks, data, cfg, seed=seed)
    return student
