"""Fine-tuning on the retain set: forgetting by catastrophic forgetting."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from unlearnkit.methods.base import METHODS, UnlearnData, clone
from unlearnkit.methods.common import cosine, cross_entropy_epoch, sgd, steps_per_epoch


@dataclass(frozen=True)
class FinetuneConfig:
    epochs: int = 1
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64
    cosine: bool = False


@METHODS.register(
    "finetune",
    config=FinetuneConfig,
    reference="Golatkar et al. 2020; the competition starting kit's baseline (1 epoch, SGD lr 1e-3)",
)
def finetune(model: nn.Module, data: UnlearnData, cfg: FinetuneConfig, *, seed: int) -> nn.Module:
    """Fine-tune on the retain set with cross-entropy, hoping the forget set fades.

    Defaults are the competition starting kit's (1 epoch, SGD lr 1e-3, momentum 0.9, wd 5e-4).

    References:
        Golatkar, Achille & Soatto, Eternal Sunshine of the Spotless Net, CVPR 2020.
        NeurIPS 2023 Machine Unlearning competition starting kit.
    """
    student = clone(model)
    opt = sgd(student.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay)
    sched = cosine(opt, cfg.epochs * steps_per_epoch(data.retain, cfg.batch_size)) if cfg.cosine else None
    for epoch in range(cfg.epochs):
        cross_entropy_epoch(student, data, data.retain, opt, batch_size=cfg.batch_size, seed=seed, epoch=epoch, scheduler=sched)
    return student
