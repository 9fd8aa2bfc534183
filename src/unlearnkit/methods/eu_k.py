"""EU-k: exact unlearning of the last k blocks, re-initialised and trained on the retain set."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from unlearnkit.errors import InputError
from unlearnkit.methods.base import METHODS, UnlearnData, clone, generator
from unlearnkit.methods.cf_k import last_blocks, train_last_blocks
from unlearnkit.models.base import reset_parameters


@dataclass(frozen=True)
class EUkConfig:
    k: int = 1  # number of trailing blocks re-initialised and trained (the classifier is the last block)
    epochs: int = 10
    lr: float = 1e-2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64


@METHODS.register(
    "eu_k",
    config=EUkConfig,
    reference="Goel et al. 2022 (k 1, SGD lr 0.01, 10 epochs)",
    tiny={"epochs": 1},
)
def eu_k(model: nn.Module, data: UnlearnData, cfg: EUkConfig, *, seed: int) -> nn.Module:
    """EU-k: re-initialise the last k blocks and train only them on the retain set.

    Blocks are ``model_parts(model).blocks`` with the classifier as the last one, so k = 1
    re-initialises and trains only the classifier on every architecture; k = 2 adds stage3 of
    small_cnn, layer4 of resnet18, or the last hidden layer of mlp. The re-initialisation is
    PyTorch's default for each layer (``reset_parameters`` with ``generator(seed, "reinit")``; it
    also resets BatchNorm statistics), not an architecture's own scheme (resnet18's kaiming-normal
    convs). The rest of the model stays exactly unchanged, BatchNorm statistics included, and the
    last k blocks are trained with CE on R exactly as in ``cf_k`` (``train_last_blocks``).

    References:
        Goel, Prabhu, Sanyal, Lim, Torr & Kumaraguru, Towards Adversarial Evaluation of Inexact
        Machine Unlearning, 2022 (arXiv:2201.06640).
    """
    if cfg.epochs < 0 or cfg.batch_size < 1:
        raise InputError(f"eu_k: epochs must be >= 0 and batch_size >= 1, got {cfg}")
    student = clone(model)
    blocks = last_blocks(student, cfg.k)
    reinit = generator(seed, "reinit")
    for block in blocks:
        reset_parameters(block, reinit)
    train_last_blocks(student, blocks, data, cfg, seed=seed)
    return student
