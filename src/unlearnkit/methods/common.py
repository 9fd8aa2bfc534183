"""Building blocks that several methods share: optimizers, schedules, epochs of cross-entropy."""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from unlearnkit.engine.tensors import TensorSet
from unlearnkit.methods.base import UnlearnData, generator
from unlearnkit.methods.guard import guard_point
from unlearnkit.models import ModelSpec
from unlearnkit.models.base import model_parts


def sgd(params: Iterable, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4) -> torch.optim.SGD:
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def cosine(opt: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total_steps, 1))


def spatial_kernels(model: nn.Module, spec: ModelSpec, min_size: int = 1) -> list[tuple[torch.Tensor, tuple[int, ...]]]:
    """The weights of ``model`` that act on image space, each with the shape that shows its two spatial axes last.

    Every square conv kernel of side at least ``min_size``, as it is; a model without convs (the MLP)
    has its first Linear layer's weight instead, its input columns read as a C x H x W image. For
    methods that transform kernels spatially (transposed, scramble_relearn).
    """
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if convs:
        return [(m.weight, tuple(m.weight.shape)) for m in convs
                if m.weight.shape[-1] == m.weight.shape[-2] >= min_size]
    stem = model_parts(model, spec).stem
    c, s = spec.in_channels, spec.image_size
    if isinstance(stem, nn.Linear) and stem.in_features == c * s * s:
        return [(stem.weight, (-1, c, s, s))]
    return []


def steps_per_epoch(data: TensorSet, batch_size: int) -> int:
    return -(-len(data) // batch_size)


def cross_entropy_epoch(
    model: nn.Module,
    data: UnlearnData,
    which: TensorSet,
    opt: torch.optim.Optimizer,
    *,
    batch_size: int,
    seed: int,
    epoch: int,
    weight: torch.Tensor | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    extra_loss: Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    before_step: Callable[[], None] | None = None,
    tag: str = "ce",
) -> None:
    """One shuffled epoch of (optionally weighted) cross-entropy on ``which``.

    Args:
        extra_loss: Added to the loss, called as ``extra_loss(model, x, y, logits)``.
        before_step: Called after backward and before the optimizer step (e.g. to mask gradients).
        tag: Names this phase, so that two phases of one method draw different batch orders.

    The epoch's end is a check point of the utility guard (methods.guard.guard_point).
    """
    model.train()
    for x, y in data.batches(which, batch_size, generator(seed, tag, epoch)):
        with data.runtime.autocast():
            logits = model(x)
            loss = F.cross_entropy(logits, y, weight=weight)
            if extra_loss is not None:
                loss = loss + extra_loss(model, x, y, logits)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if before_step is not None:
            before_step()
        opt.step()
        if scheduler is not None:
            scheduler.step()
    guard_point(model)


def cycled(data: UnlearnData, which: TensorSet, batch_size: int, seed: int, *purpose: str | int) -> Iterator:
    """Endless batches of ``which``, reshuffled on every pass (for "iterate R, cycle S" loops)."""

    def passes():
        n = 0
        while True:
            yield from data.batches(which, batch_size, generator(seed, *purpose, n))
            n += 1

    return passes()


def kl_to_teacher(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) at ``temperature``, scaled by T^2 (Hinton et al.)."""
    t = temperature
    return F.kl_div(
        F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1), reduction="batchmean", log_target=True
    ) * (t * t)



def frozen_copy(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` in eval mode (a teacher)."""
    out = copy.deepcopy(model).eval()
    for p in out.parameters():
        p.requires_grad_(False)
    return out


@contextmanager
def norm_stats_untracked(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Within the block, batch-norm layers normalise with batch statistics but do not track them.

    For passes over the forget set alone. The forward pass is the same as in train mode; only the
    running statistics (and their batch counter) stay as they are. Updated on S alone, they would
    drift to the forget set's statistics, which on a skewed forget set (a few people, one or two
    classes) wrecks the model for everything else even at a learning rate of zero.
    """
    norms = [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats
    ]
    if enabled:
        for m in norms:
            m.track_running_stats = False
    try:
        yield
    finally:
        for m in norms:
            m.track_running_stats = True


def freeze_norm_statistics(modules: Iterable[nn.Module]) -> None:
    """Put every normalisation layer with running statistics under ``modules`` in eval mode.

    Such a layer then normalises with its stored statistics and never updates them, even while the
    rest of the model is in train mode. Call it after every ``model.train()``.
    """
    for module in modules:
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._NormBase):
                m.eval()
