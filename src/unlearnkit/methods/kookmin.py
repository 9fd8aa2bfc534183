"""Kookmin: re-initialise the least forget-relevant conv weights, then fine-tune (competition #2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unlearnkit.errors import InputError
from unlearnkit.models.base import ModelSpec, model_parts
from unlearnkit.methods.base import METHODS, UnlearnData, clone, generator
from unlearnkit.methods.common import cross_entropy_epoch, sgd


@dataclass(frozen=True)
class KookminConfig:
    reinit_fraction: float = 0.3     # share of each layer's weights re-initialised (smallest |grad|)
    other_grad_scale: float = 0.1    # gradient multiplier for the kept weights of those layers
    epochs: int = 5
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise InputError(f"method.kookmin.epochs must be at least 1, got {self.epochs}")


def target_layers(model: nn.Module, spec: ModelSpec | None = None) -> list[nn.Module]:
    """Every Conv2d; for a model without convs (an MLP), every Linear layer but the classifier."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if convs:
        return convs
    classifier = model_parts(model, spec).classifier
    return [m for m in model.modules() if isinstance(m, nn.Linear) and m is not classifier]


def snip_gradients(
    model: nn.Module, data: UnlearnData, weights: list[torch.Tensor], *, batch_size: int, seed: int
) -> list[torch.Tensor]:
    """Summed batch gradients of CE on a random retain subset of |S| examples plus -CE on S."""
    grads = [torch.zeros_like(w) for w in weights]
    if not weights:
        return grads
    picks = torch.randperm(len(data.retain), generator=generator(seed, "subset"))[: len(data.forget)]
    subset = data.retain.subset(picks.to(data.retain.device))
    for which, sign in ((subset, 1.0), (data.forget, -1.0)):
        for x, y in data.batches(which, batch_size, None):
            with data.runtime.autocast():
                loss = sign * F.cross_entropy(model(x), y)
            for acc, g in zip(grads, torch.autograd.grad(loss, weights)):
                acc += g.float()
    return grads


def smallest_mask(scores: torch.Tensor, fraction: float) -> torch.Tensor:
    """Boolean mask of exactly round(fraction * n) entries with the smallest scores (stable ties)."""
    flat = scores.flatten()
    k = round(fraction * flat.numel())
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=scores.device)
    mask[torch.argsort(flat, stable=True)[:k]] = True
    return mask.view_as(scores)


def reinit_low_saliency(
    model: nn.Module, data: UnlearnData, cfg: KookminConfig, *, seed: int
) -> list[tuple[nn.Parameter, torch.Tensor]]:
    """Re-draw the smallest-|grad| weights of every target layer in place; (weight, mask) per layer."""
    weights = [m.weight for m in target_layers(model, data.spec)]
    was_training = model.training
    model.eval()
    grads = snip_gradients(model, data, weights, batch_size=cfg.batch_size, seed=seed)
    model.train(was_training)
    init_gen = generator(seed, "reinit")
    out = []
    with torch.no_grad():
        for w, g in zip(weights, grads):
            mask = smallest_mask(g.abs(), cfg.reinit_fraction)
            fresh = torch.empty(w.shape, dtype=w.dtype)
            nn.init.kaiming_normal_(fresh, mode="fan_out", nonlinearity="relu", generator=init_gen)
            w.copy_(torch.where(mask, fresh.to(w.device), w))
            out.append((w, mask))
    return out


@METHODS.register(
    "kookmin",
    config=KookminConfig,
    strength=("reinit_fraction",),  # methods.regime
    reference="Kookmin Univ., 2nd place, NeurIPS 2023 Machine Unlearning competition (Triantafillou et al. 2024)",
    tiny={"epochs": 1},
)
def kookmin(model: nn.Module, data: UnlearnData, cfg: KookminConfig, *, seed: int) -> nn.Module:
    """Re-initialise the 30% of conv weights that matter least to R-vs-S, then fine-tune on R.

    Gradients of CE on a random retain subset the size of S plus -CE on S are summed over batches of
    ``batch_size``. In every conv layer the ``reinit_fraction`` of weights with the smallest |grad|
    (exactly round(0.3 * n) per layer) are re-drawn from kaiming normal (fan_out, ReLU) with an
    explicit generator. Then ``epochs`` epochs of CE on R (SGD lr 1e-3, momentum 0.9, wd 5e-4) in
    which the loss gradient of the kept (not re-initialised) weights of those layers is multiplied by
    0.1; other parameters (norms, classifier) train normally; weight decay is applied unscaled. The
    learning rate warms up and decays linearly per epoch as in the reference: factors
    s/w for s <= w, else (E+1-s)/(E+1-w), s = 1..E, w = (E+1)//2 (1/3, 2/3, 1, 2/3, 1/3 for E = 5).

    Choices:
        * A model without convs (the MLP) gets the same treatment on its Linear layers except the
          classifier (kaiming fan_out = out_features).
        * The gradient pass runs in eval mode, so S never enters the BatchNorm running statistics;
          the reference left the mode to the harness.
        * The retain subset is drawn with the run's generator; batches are in order (a sum of
          gradients does not depend on the order).

    small_cnn keeps the reference defaults under --preset auto (benchmarks/sweep_methods.py: the best
    safe candidate within 20 % of a retrain's steps, 0.1x the recipe's epochs at 10x its learning
    rate, closed 0.237 of the gap, short of the quarter the procedure asks for; the reference
    defaults take about 40 % of a retrain's time, which the leaderboard marks).

    Cost: no optimizer steps for the gradient pass (2|S| examples forward and backward), then
    epochs * ceil(|R|/64) steps: 5 epochs of R, 0.25x the examples of a 20-epoch retrain; on the
    synthetic small_cnn setting 420 steps = 0.5x retrain's 840 (batch 64 vs 128).

    References:
        Kookmin Univ. team's solution (2nd place), NeurIPS 2023 Machine Unlearning competition, Kaggle.
        Triantafillou et al., Are we making progress in unlearning? Findings from the first NeurIPS
        unlearning competition, arXiv:2406.09073, 2024.
    """
    student = clone(model)
    masks = reinit_low_saliency(student, data, cfg, seed=seed)
    hooks = []
    for w, mask in masks:
        scale = torch.where(mask, 1.0, cfg.other_grad_scale).to(w.dtype)
        hooks.append(w.register_hook(lambda grad, scale=scale: grad * scale))

    opt = sgd(student.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay)
    warm = (cfg.epochs + 1) // 2
    try:
        for epoch in range(cfg.epochs):
            s = epoch + 1
            factor = s / warm if s <= warm else (cfg.epochs + 1 - s) / (cfg.epochs + 1 - warm)
            for group in opt.param_groups:
                group["lr"] = cfg.lr * factor
            cross_entropy_epoch(student, data, data.retain, opt, batch_size=cfg.batch_size, seed=seed, epoch=epoch)
    finally:
        for h in hooks:
            h.remove()
    return student
