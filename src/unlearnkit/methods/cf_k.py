"""CF-k: catastrophic forgetting of the last k blocks, fine-tuned on the retain set with the rest frozen."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unlearnkit.errors import InputError
from unlearnkit.methods.base import METHODS, UnlearnData, clone, generator
from unlearnkit.methods.common import freeze_norm_statistics
from unlearnkit.models.base import model_parts


@dataclass(frozen=True)
class CFkConfig:
    k: int = 1  # number of trailing blocks trained (the classifier is the last block)
    epochs: int = 10
    lr: float = 1e-2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64


def last_blocks(model: nn.Module, k: int) -> tuple[nn.Module, ...]:
    """The last ``k`` of ``model_parts(model).blocks`` (the classifier is the last block)."""
    blocks = model_parts(model).blocks
    if not 1 <= k <= len(blocks):
        raise InputError(f"k must be between 1 and {len(blocks)} (the number of blocks of this model), got {k}")
    return blocks[-k:]


def train_last_blocks(
    model: nn.Module,
    blocks: tuple[nn.Module, ...],
    data: UnlearnData,
    cfg: CFkConfig,
    *,
    seed: int,
) -> None:
    """Train only ``blocks`` of ``model`` with CE on R; everything else stays exactly as it is.

    ``cfg`` is any config with ``epochs``, ``lr``, ``momentum``, ``weight_decay`` and
    ``batch_size`` (CF-k's or EU-k's).

    Parameters outside ``blocks`` get no gradient and are not given to the optimizer; normalisation
    layers outside ``blocks`` run in eval mode, so their running statistics are not touched either
    (the frozen trunk behaves as a fixed feature extractor). Dropout outside ``blocks`` stays in
    train mode.
    """
    trainable = {id(p) for b in blocks for p in b.parameters()}
    params = [p for p in model.parameters() if id(p) in trainable]
    for p in model.parameters():
        p.requires_grad_(id(p) in trainable)
    inside = {id(m) for b in blocks for m in b.modules()}
    frozen = [m for m in model.modules() if id(m) not in inside and not any(True for _ in m.children())]
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    for epoch in range(cfg.epochs):
        model.train()
        freeze_norm_statistics(frozen)
        for x, y in data.batches(data.retain, cfg.batch_size, generator(seed, "retain", epoch)):
            with data.runtime.autocast():
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    for p in model.parameters():
        p.requires_grad_(True)


@METHODS.register(
    "cf_k",
    config=CFkConfig,
    reference="Goel et al. 2022 (k 1, SGD lr 0.01, 10 epochs)",
    tiny={"epochs": 1},
)
def cf_k(model: nn.Module, data: UnlearnData, cfg: CFkConfig, *, seed: int) -> nn.Module:
    """CF-k: fine-tune only the last k blocks on the retain set; the rest stays exactly unchanged.

    Blocks are ``model_parts(model).blocks`` with the classifier as the last one, so k = 1 trains
    only the classifier on every architecture; k = 2 adds the last trunk stage before it: stage3
    of small_cnn, layer4 (two BasicBlocks) of resnet18, the last hidden Linear-ReLU layer of mlp.
    Everything outside the last k blocks (for resnet18 also the stem conv and its BatchNorm, which
    are no block) keeps its parameters and BatchNorm statistics bit for bit
    (``train_last_blocks``). CE on R, SGD with momentum 0.9 and weight decay 5e-4 (the paper's
    optimizer details are not pinned; these are the project's usual fine-tuning settings), batch 64.

    References:
        Goel, Prabhu, Sanyal, Lim, Torr & Kumaraguru, Towards Adversarial Evaluation of Inexact
        Machine Unlearning, 2022 (arXiv:2201.06640).
    """
    if cfg.epochs < 0 or cfg.batch_size < 1:
        raise InputError(f"cf_k: epochs must be >= 0 and batch_size >= 1, got {cfg}")
    student = clone(model)
    train_last_blocks(student, last_blocks(student, cfg.k), data, cfg, seed=seed)
    return student
