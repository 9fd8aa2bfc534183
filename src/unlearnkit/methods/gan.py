"""GAN unlearning: train the model so its outputs on the forget set pass for outputs on unseen data."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unlearnkit.errors import InputError
from unlearnkit.methods.base import METHODS, UnlearnData, clone, generator
from unlearnkit.methods.common import cycled
from unlearnkit.models.base import reset_parameters


@dataclass(frozen=True)
class GanConfig:
    epochs: int = 2  # passes over R; S and V are cycled alongside
    lr: float = 1e-3  # the model's SGD
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64  # retain batch
    forget_batch_size: int = 64  # forget and unseen (val) batches, equal so the discriminator sees balanced classes
    adv_weight: float = 1.0  # weight of the adversarial loss on S against CE on R
    disc_hidden: int = 64
    disc_lr: float = 1e-3  # the discriminator's Adam
    disc_steps: int = 1  # discriminator updates per model update
    disc_warmup: int = 20  # discriminator-only updates before the model's first update

    def __post_init__(self) -> None:
        if self.disc_steps < 1:
            raise InputError(f"method.gan.disc_steps = {self.disc_steps}: expected at least 1")


def confidences(logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's view of an output: the softmax probabilities sorted in descending order.

    Sorting makes the features label-free (as in shadow-model membership attacks), so the
    discriminator judges how confident an output looks, not which class it names.
    """
    return torch.softmax(logits.float(), dim=1).sort(dim=1, descending=True).values


def discriminator(num_classes: int, hidden: int) -> nn.Module:
    """A small MLP: sorted confidences -> one logit, positive for "was trained on" (S)."""
    return nn.Sequential(
        nn.Linear(num_classes, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1)
    )


@METHODS.register(
    "gan",
    config=GanConfig,
    reference="Chen, Huang & Wang 2021, Machine unlearning via GAN (no public code; designed from the idea)",
    tiny={"epochs": 1, "disc_warmup": 2},
)
def gan(model: nn.Module, data: UnlearnData, cfg: GanConfig, *, seed: int) -> nn.Module:
    """Adversarial unlearning: a discriminator tells forget outputs from unseen ones; the model fools it.

    The paper has no public code, so every detail here is a choice made from its idea:

    - Discriminator: a 2-hidden-layer MLP (``disc_hidden`` ReLU units) on the model's softmax
      probabilities sorted in descending order (``confidences``), label-free like a membership
      attack; its logit says "forget (member)" vs "unseen". Its initialisation is PyTorch's default
      drawn from ``generator(seed, "discriminator")``; Adam, lr ``disc_lr``.
    - Unseen data: the validation set V (held-out people or examples, never trained on).
    - Views: the discriminator is trained, and the model is attacked, on eval-mode outputs (BatchNorm
      running statistics), since that is the model that is deployed and attacked afterwards.
      BatchNorm statistics are updated only by the retain batches, in train mode.
    - Loop: an epoch is a pass over R (batch ``batch_size``) while S and V are cycled (batch
      ``forget_batch_size`` each, so the discriminator's two classes are balanced). Per step:
      ``disc_steps`` discriminator updates with binary cross-entropy (S = 1, V = 0) on detached
      outputs; then one model update minimising CE(R) + ``adv_weight`` * BCE(D(S outputs), 0),
      the non-saturating generator loss that pushes forget outputs to look unseen. Before the
      first model update the discriminator gets ``disc_warmup`` updates alone, so the model's
      first adversarial gradients come from a discriminator that already separates S from V.
    - The model: SGD with momentum 0.9, weight decay 5e-4, lr 1e-3 (the project's fine-tuning
      settings), 2 epochs ("a few"; each step costs three forward passes, so about the cost of six
      fine-tuning epochs).
    - Only the model is returned; the discriminator is discarded.

    References:
        Chen, Huang & Wang, Machine Unlearning via GAN, 2021 (arXiv:2111.11869).
        Shokri, Stronati, Song & Shmatikov, Membership Inference Attacks Against Machine Learning
        Models, IEEE S&P 2017 (sorted confidence vectors as attack features).
    """
    if len(data.forget) == 0 or len(data.val) == 0:
        raise InputError("gan needs a non-empty forget set and validation set (the unseen data)")
    student = clone(model)
    disc = discriminator(data.num_classes, cfg.disc_hidden)
    reset_parameters(disc, generator(seed, "discriminator"))
    disc = disc.to(data.runtime.device)
    opt = torch.optim.SGD(student.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    disc_opt = torch.optim.Adam(disc.parameters(), lr=cfg.disc_lr)
    forget = cycled(data, data.forget, cfg.forget_batch_size, seed, "forget")
    unseen = cycled(data, data.val, cfg.forget_batch_size, seed, "unseen")

    def disc_step() -> None:
        (xs, _), (xv, _) = next(forget), next(unseen)
        student.eval()
        with torch.no_grad(), data.runtime.autocast():
            fs, fv = confidences(student(xs)), confidences(student(xv))
        logits = disc(torch.cat([fs, fv])).squeeze(1)
        target = torch.cat([torch.ones(len(fs)), torch.zeros(len(fv))]).to(logits.device)
        loss = F.binary_cross_entropy_with_logits(logits, target)
        disc_opt.zero_grad(set_to_none=True)
        loss.backward()
        disc_opt.step()

    for _ in range(cfg.disc_warmup):
        disc_step()
    for epoch in range(cfg.epochs):
        for x, y in data.batches(data.retain, cfg.batch_size, generator(seed, "retain", epoch)):
            for _ in range(cfg.disc_steps):
                disc_step()
            xs, _ = next(forget)
            student.train()
            with data.runtime.autocast():
                retain_loss = F.cross_entropy(student(x), y)
            student.eval()
            with data.runtime.autocast():
                fool = disc(confidences(student(xs))).squeeze(1)
            adv_loss = F.binary_cross_entropy_with_logits(fool.float(), torch.zeros_like(fool, dtype=torch.float32))
            loss = retain_loss + cfg.adv_weight * adv_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()  # also leaves gradients on the discriminator; its next step clears them
            opt.step()
    return student
