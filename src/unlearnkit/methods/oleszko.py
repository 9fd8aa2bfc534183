"""Oleszko: prune 99% of the weights, re-initialise them, fine-tune, quantise (competition #4)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unlearnkit.methods.base import METHODS, UnlearnData, clone, generator
from unlearnkit.methods.common import frozen_copy, sgd, steps_per_epoch
from unlearnkit.methods.guard import guard_point


@dataclass(frozen=True)
class OleszkoConfig:
    prune_fraction: float = 0.99     # share of conv+linear weights pruned, by one global |w| threshold
    epochs: float = 3.2              # fractional: the last epoch stops part-way
    lr: float = 5e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64
    class_weight_power: float = -0.1  # CE weight of class c = count_c ** power (counts over R)
    entropy_weight: float = 1.0      # weight of the MSE between the model's and f0's entropies
    fp16_round_trip: bool = True


def prunable_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def prune_and_reinit(model: nn.Module, fraction: float, gen: torch.Generator) -> list[torch.Tensor]:
    """Re-initialise the ``fraction`` of conv+linear weights smallest in |w| over the whole model.

    Exactly round(fraction * n) of the model's n conv and linear weight entries are chosen by one
    global ranking of |w| (stable on ties) and re-drawn from U(-b, b), b = 1/sqrt(fan_in): the bound
    of PyTorch's default (kaiming-uniform, a = sqrt(5)) initialisation of that layer. Biases are kept.

    Returns:
        The boolean masks of re-initialised entries, one per layer in ``prunable_layers`` order.
    """
    weights = [m.weight for m in prunable_layers(model)]
    if not weights:
        return []
    with torch.no_grad():
        flat = torch.cat([w.detach().abs().flatten().float() for w in weights])
        k = round(fraction * flat.numel())
        chosen = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
        chosen[torch.argsort(flat, stable=True)[:k]] = True
        masks, start = [], 0
        for w in weights:
            mask = chosen[start : start + w.numel()].view_as(w)
            start += w.numel()
            fan_in, _ = nn.init._calculate_fan_in_and_fan_out(w)
            bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            fresh = (torch.rand(w.shape, generator=gen) * 2 - 1) * bound
            w.copy_(torch.where(mask, fresh.to(w.device, w.dtype), w))
            masks.append(mask)
    return masks


def entropy(logits: torch.Tensor) -> torch.Tensor:
    log_p = F.log_softmax(logits.float(), dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


@METHODS.register(
    "oleszko",
    config=OleszkoConfig,
    strength=("prune_fraction",),  # methods.regime
    # not strong under its auto defaults: tests/methods/test_behaviour.py measured less than a quarter of the gap closed
    reference="Oleszko, 4th place, NeurIPS 2023 Machine Unlearning competition (Triantafillou et al. 2024)",
    tiny={"epochs": 1.5},
)
def oleszko(model: nn.Module, data: UnlearnData, cfg: OleszkoConfig, *, seed: int) -> nn.Module:
    """Prune 99% of weights by magnitude, re-initialise them, fine-tune 3.2 epochs, round to fp16.

    "Prune, re-init, mask, quantize": one global threshold over this model's conv and linear weights
    (classifier included) selects the 99% smallest |w|; those entries are re-drawn uniformly within
    PyTorch's default init bounds for their layer (see ``prune_and_reinit``). Then fine-tuning on R
    for ``epochs`` epochs, the last one fractional (round(3.2 * ceil(|R|/64)) steps in all), SGD
    lr 5e-4, momentum 0.9, wd 5e-4, constant lr. Loss = class-weighted CE (weight count_c^-0.1 over
    R's labels, torch's weighted mean) + MSE between the per-example predictive entropies of the model
    and of the frozen original f0. Finally every floating parameter and buffer is cast to fp16 and back.

    Choices:
        * The reference pruned biases too (zeroing them); the spec names weights only, so biases keep
          their values. Classes absent from R get CE weight 0.
        * The threshold is taken per model, over that one model's weights, never across seeds.
        * The "mask" of the name is the pruning mask; nothing is masked during fine-tuning (the
          reference code does not mask either).

    Defaults for small_cnn (--preset auto, methods/defaults.py, chosen by benchmarks/sweep_methods.py):
    prune_fraction 0.5, 0.1x the recipe's epochs, 5/3x its learning rate. No candidate closed a
    useful part of the gap within 20 % of a retrain's steps and the reference defaults damage the
    model, so this is the safe candidate that closed the most (over that budget). With 99% of the
    weights re-drawn, 3.2 epochs at lr 5e-4 leave the small CNN at 59% retain accuracy. An earlier
    one-seed sweep on the built-in dataset (seed 0, identity_skewed:0.05; original 0.960 / 0.976 /
    0.577, retrain 0.623 / 0.992 / 0.540; forget / retain / val) measured:

    ===========================  ======  ======  =====
    prune_fraction, lr           forget  retain  val
    ===========================  ======  ======  =====
    0.99, 5e-4 (reference)       0.404   0.591   0.318
    0.99, 5e-3                   0.562   0.916   0.476
    0.99, 1e-2                   0.508   0.857   0.484
    0.99, 2e-2                   0.572   0.927   0.449
    0.95, 5e-3                   0.640   0.941   0.512
    0.90, 5e-4                   0.859   0.933   0.486
    0.90, 5e-3                   0.795   0.961   0.537
    ===========================  ======  ======  =====

    Seed 1, 0.95, 5e-3: 0.630 / 0.957 / 0.543.

    Cost: round(3.2 * ceil(|R|/64)) steps: 3.2 epochs of R, 0.16x the examples of a 20-epoch retrain
    (plus f0's forward passes); on the synthetic small_cnn setting 269 steps = 0.32x retrain's 840.

    References:
        Oleszko's solution (4th place), NeurIPS 2023 Machine Unlearning competition, Kaggle.
        Triantafillou et al., Are we making progress in unlearning? Findings from the first NeurIPS
        unlearning competition, arXiv:2406.09073, 2024.
    """
    student = clone(model)
    teacher = frozen_copy(model)

    prune_and_reinit(student, cfg.prune_fraction, generator(seed, "reinit"))

    counts = torch.bincount(data.retain.y.cpu(), minlength=data.num_classes).float()
    weight = torch.where(counts > 0, counts.clamp(min=1) ** cfg.class_weight_power, torch.zeros_like(counts))
    weight = weight.to(data.runtime.device)

    opt = sgd(student.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay)
    total = round(cfg.epochs * steps_per_epoch(data.retain, cfg.batch_size))
    step, epoch = 0, 0
    student.train()
    while step < total:
        for x, y in data.batches(data.retain, cfg.batch_size, generator(seed, "ce", epoch)):
            if step >= total:
                break
            with data.runtime.autocast():
                logits = student(x)
                with torch.no_grad():
                    target_entropy = entropy(teacher(x))
                loss = F.cross_entropy(logits, y, weight=weight)
                loss = loss + cfg.entropy_weight * F.mse_loss(entropy(logits), target_entropy)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        epoch += 1
        guard_point(student)

    if cfg.fp16_round_trip:
        student.half().float()
    return student
