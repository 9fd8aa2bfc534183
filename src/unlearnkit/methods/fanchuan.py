"""Fanchuan: push the forget set to uniform, then contrast it away from the retain set (competition #1)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unlearnkit.methods.base import METHODS, UnlearnData, clone, generator
from unlearnkit.methods.common import cross_entropy_epoch, sgd, steps_per_epoch


@dataclass(frozen=True)
class FanchuanConfig:
    epochs: int = 8
    batch_size: int = 256
    uniform_lr: float = 5e-3         # stage 1: KL to uniform on S
    uniform_momentum: float = 0.9
    forget_lr: float = 3e-4          # stage 2 (a): contrastive forget round, cosine-decayed
    forget_momentum: float = 0.9
    forget_eta_min: float = 1e-6
    temperature: float = 1.15
    retain_lr: float = 1e-3          # stage 2 (b): one epoch of CE on R, at retain_lr * batch_size / 64
    retain_momentum: float = 0.9
    retain_weight_decay: float = 1e-2


def uniform_kl(logits: torch.Tensor) -> torch.Tensor:
    """KL(uniform || softmax(logits)), batch mean: zero exactly when the prediction is uniform."""
    log_probs = F.log_softmax(logits.float(), dim=1)
    uniform = torch.full_like(log_probs, 1.0 / log_probs.shape[1])
    return F.kl_div(log_probs, uniform, reduction="batchmean")


def contrastive_forget_loss(
    forget_logits: torch.Tensor, retain_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """mean(-log_softmax(f(x_S) @ f(x_R).T / T)) with the retain logits held fixed.

    Minimised when every forget example is equally similar to every retain example, so no forget
    example keeps a distinctive (memorised) output.
    """
    sim = forget_logits.float() @ retain_logits.detach().float().T / temperature
    return -F.log_softmax(sim, dim=-1).mean()


@METHODS.register(
    "fanchuan",
    config=FanchuanConfig,
    strength=("uniform_lr", "forget_lr"),  # methods.regime
    reference="Fanchuan, 1st place, NeurIPS 2023 Machine Unlearning competition (Triantafillou et al. 2024)",
    tiny={"epochs": 1, "batch_size": 16},
)
def fanchuan(model: nn.Module, data: UnlearnData, cfg: FanchuanConfig, *, seed: int) -> nn.Module:
    """Uniform-ise the forget set, then alternate contrastive forget rounds with retain epochs.

    Stage 1: one pass over S minimising the KL divergence between the model's prediction and the
    uniform distribution (SGD lr 5e-3, momentum 0.9, no weight decay). Stage 2, ``epochs`` times:
    (a) a forget round: each S batch is paired with a batch of a freshly shuffled R and the loss is
    ``mean(-log_softmax(f(x_S) @ f(x_R).detach().T / T))`` (SGD lr 3e-4, momentum 0.9, no weight
    decay, cosine decay to 1e-6 over all forget steps of all epochs); (b) one epoch of cross-entropy
    on R (SGD, momentum 0.9, weight decay 1e-2, learning rate ``retain_lr * batch_size / 64``: the
    reference scales its base 1e-3 linearly with the batch, so 4e-3 at its batch of 256). Each of
    the three optimizers keeps its momentum across epochs, as in the reference.

    Choices where the spec is silent or loose:
        * The spec writes stage 1 as KL(softmax(f) || uniform); the reference code computes
          ``KLDivLoss(log_softmax(f), uniform)``, i.e. KL(uniform || softmax(f)). We follow the code;
          both are minimised by the uniform prediction.
        * Momentum 0.9, no weight decay and eta_min 1e-6 for the forget optimizer, and no weight decay
          for stage 1, are the reference code's values.
        * The retain CE is unweighted (the competition's criterion), not ``data.class_weights``.

    small_cnn keeps the reference defaults under --preset auto (benchmarks/sweep_methods.py: no
    candidate within 20 % of a retrain's steps closed a useful part of the gap, and the reference
    defaults, over that budget, lose at most 5 points of retain accuracy on every tuning setting).
    With the reference values the forget rounds barely move the model and the retain epochs raise
    forget accuracy; raising only the forget lr collapses the model unless the retain round can
    repair it. The contrastive loss acts on unnormalised logits and is brittle here: results vary
    with the seed (below), and every setting that forgets costs test accuracy. An earlier one-seed
    sweep on the built-in dataset (16x16 synthetic, identity_skewed:0.05, seed 0), forget / retain
    / test accuracy (original .997 / .997 / .319, retrain .263 / .978 / .302), measured (retain_lr
    2.5e-3 is a retain step of 1e-2 at batch 256):

    ===========================  ======  ======  =====
    forget_lr, retain_lr         forget  retain  test
    ===========================  ======  ======  =====
    3e-4, 1e-3 (reference)       .983    .999    .282
    1e-3, 2.5e-3                 .909    .996    .232
    2e-3, 2.5e-3                 .801    .983    .224
    2e-3, 1e-3                   .559    .898    .172
    ===========================  ======  ======  =====

    An earlier sweep on the 32x32 built-in dataset, measured before the retain lr was scaled with
    the batch (its retain lrs are given here in the scaled units, i.e. divided by 4), forget /
    retain / val accuracy (original 0.960 / 0.976 / 0.577, retrain 0.623 / 0.992 / 0.540):

    ===========================  ======  ======  =====
    forget_lr, retain_lr         forget  retain  val
    ===========================  ======  ======  =====
    3e-4, 2.5e-4                 0.980   0.984   0.524
    1e-3, 2.5e-4                 0.667   0.887   0.420
    3e-3, 2.5e-4                 0.384   0.353   0.192
    1e-2, 2.5e-4                 0.118   0.210   0.207
    1e-3, 2.5e-3                 0.899   0.989   0.523
    2e-3, 2.5e-3                 0.855   0.976   0.512
    3e-3, 2.5e-3                 0.673   0.947   0.522
    3e-3, 5e-3                   0.869   0.955   0.549
    ===========================  ======  ======  =====

    (Earlier sweep: batch_size 64 with the reference lrs 0.970 / 0.989 / 0.519; seeds 1 and 2 at
    forget_lr 2e-3, retain_lr 2.5e-3: 0.822 / 0.966 / 0.491 and 0.768 / 0.922 / 0.411; forget_lr
    3e-3 0.630 / 0.930 / 0.412 and 0.579 / 0.776 / 0.363, closer to retrain's forget accuracy but
    too costly on R. With the scaled reference retain lr on that dataset: reference 0.970 / 0.993,
    test 0.538; forget_lr 2e-3 0.781 / 0.946, test 0.468; forget_lr 2e-3 with retain_lr 2.5e-3
    0.855 / 0.976, test 0.510.)

    Cost: ceil(|S|/256) + epochs * (ceil(|S|/256) + ceil(|R|/256)) optimizer steps at batch 256,
    i.e. about 8 epochs' worth of R: 0.4x the examples of a 20-epoch retrain, and on the synthetic
    small_cnn setting (|R| 5338, |S| 297) 186 steps = 0.22x retrain's 20 * ceil(|R|/128) = 840.

    References:
        Fanchuan's solution (1st place), NeurIPS 2023 Machine Unlearning competition, Kaggle.
        Triantafillou et al., Are we making progress in unlearning? Findings from the first NeurIPS
        unlearning competition, arXiv:2406.09073, 2024.
    """
    student = clone(model)
    bs = cfg.batch_size

    stage1 = sgd(student.parameters(), cfg.uniform_lr, cfg.uniform_momentum, 0.0)
    student.train()
    for x, _ in data.batches(data.forget, bs, generator(seed, "uniform")):
        with data.runtime.autocast():
            loss = uniform_kl(student(x))
        stage1.zero_grad(set_to_none=True)
        loss.backward()
        stage1.step()

    forget_opt = sgd(student.parameters(), cfg.forget_lr, cfg.forget_momentum, 0.0)
    forget_sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        forget_opt, T_max=max(cfg.epochs * steps_per_epoch(data.forget, bs), 1), eta_min=cfg.forget_eta_min
    )
    retain_opt = sgd(student.parameters(), cfg.retain_lr * bs / 64, cfg.retain_momentum, cfg.retain_weight_decay)
    for epoch in range(cfg.epochs):
        student.train()
        pairs = zip(
            data.batches(data.forget, bs, generator(seed, "forget", epoch)),
            data.batches(data.retain, bs, generator(seed, "pair", epoch)),
        )
        for (xs, _), (xr, _) in pairs:
            with data.runtime.autocast():
                forget_logits = student(xs)
                with torch.no_grad():
                    retain_logits = student(xr)
                loss = contrastive_forget_loss(forget_logits, retain_logits, cfg.temperature)
            forget_opt.zero_grad(set_to_none=True)
            loss.backward()
            forget_opt.step()
            forget_sched.step()
        cross_entropy_epoch(student, data, data.retain, retain_opt, batch_size=bs, seed=seed, epoch=epoch, tag="retain")
    return student
