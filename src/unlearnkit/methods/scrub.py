"""SCRUB: a student that moves away from its teacher on the forget set and stays close on the rest."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unlearnkit.methods.base import METHODS, UnlearnData, clone, generator
from unlearnkit.methods.common import frozen_copy, kl_to_teacher, norm_stats_untracked, sgd


@dataclass(frozen=True)
class ScrubConfig:
    epochs: int = 3
    msteps: int = 2  # epochs (the first ones) that start with a max pass over S
    lr: float = 5e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    temperature: float = 4.0
    gamma: float = 0.99  # weight of CE on R in the min pass
    alpha: float = 1e-3  # weight of KL_T(teacher || student) on R in the min pass
    batch_size: int = 128  # retain batch
    forget_batch_size: int = 32
    track_forget_norm_stats: bool = True  # False: batch norm's running statistics ignore S batches


@METHODS.register(
    "scrub",
    config=ScrubConfig,
    # not strong: on identity_skewed:0.05 its reference defaults overshoot (forget 0.03) and lose 22 points of retain accuracy
    reference="Kurmanji et al. 2023 (SGD lr 5e-4, 3 epochs, msteps 2, T 4, gamma 0.99, alpha 0.001)",
    tiny={"epochs": 1, "msteps": 1},
)
def scrub(model: nn.Module, data: UnlearnData, cfg: ScrubConfig, *, seed: int) -> nn.Module:
    """SCRUB: alternate max passes (diverge from the teacher on S) and min passes (match it on R).

    The student starts as a copy of the original and the teacher is the frozen original. Epoch e
    (0-based) runs, if ``e < msteps``, one "max" pass over S minimising ``-KL_T(teacher || student)``
    (forget batch 32), then one "min" pass over R minimising ``gamma * CE + alpha * KL_T(teacher ||
    student)`` (retain batch 128). KL_T is at temperature T and scaled by T^2. One SGD optimizer
    (momentum 0.9, weight decay 5e-4) serves both passes, as in the reference code; its learning-rate
    decay steps and SGDA smoothing are not used. ``track_forget_norm_stats=False`` (not in the
    reference) stops batch norm's running statistics from tracking the max-pass batches.

    small_cnn keeps the reference defaults under --preset auto (benchmarks/sweep_methods.py: no
    candidate within 20 % of a retrain's steps closed a useful part of the gap, and the reference
    defaults, over that budget, lose at most 5 points of retain accuracy on every tuning setting).
    An earlier one-seed sweep on the built-in dataset (identity_skewed:0.05 forget set, seed 0;
    original forget/retain/val accuracy .960/.976/.577, retrain .623/.992/.540), where the default
    overshot and cost retain accuracy and two more min passes repaired it, measured:

        epochs  msteps  forget batch  norm stats on S   forget  retain  val
        3       2       32            tracked (ref)     .350    .872    .437
        3       2       32            untracked         .350    .872    .437
        3       1       32            untracked         .875    .986    .480
        3       2       64            tracked           .838    .979    .495
        5       2       32            tracked           .663    .973    .484

    References:
        Kurmanji, Triantafillou, Hayes & Triantafillou, Towards Unbounded Machine Unlearning,
        NeurIPS 2023.
    """
    student = clone(model)
    teacher = frozen_copy(model)
    opt = sgd(student.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay)
    t = cfg.temperature

    def step(loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for epoch in range(cfg.epochs):
        student.train()
        if epoch < cfg.msteps:
            for x, _ in data.batches(data.forget, cfg.forget_batch_size, generator(seed, "max", epoch)):
                with data.runtime.autocast(), norm_stats_untracked(student, not cfg.track_forget_norm_stats):
                    with torch.no_grad():
                        target = teacher(x)
                    loss = -kl_to_teacher(student(x), target, t)
                step(loss)
        for x, y in data.batches(data.retain, cfg.batch_size, generator(seed, "min", epoch)):
            with data.runtime.autocast():
                with torch.no_grad():
                    target = teacher(x)
                logits = student(x)
                loss = cfg.gamma * F.cross_entropy(logits, y) + cfg.alpha * kl_to_teacher(logits, target, t)
            step(loss)
    return student
