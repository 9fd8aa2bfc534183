"""Fisher forgetting: Gaussian noise scaled by the inverse diagonal Fisher information of the retain set."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from unlearnkit.engine.compute import BACKWARD, FORWARD, remaining_compute, spend
from unlearnkit.engine.tensors import TensorSet
from unlearnkit.errors import InputError
from unlearnkit.methods.base import METHODS, UnlearnData, clone, generator


@dataclass(frozen=True)
class FisherConfig:
    alpha: float = 1e-6  # noise scale: var = alpha * min(1 / (F + eps), max_inverse)
    eps: float = 1e-8
    max_inverse: float = 1e3  # clamp on 1 / (F + eps), so the variance is at most alpha * max_inverse
    batch_size: int = 32  # examples per vmap call; memory ~ batch_size x parameters x 4 bytes

    def __post_init__(self) -> None:
        if self.alpha < 0 or self.eps <= 0 or self.max_inverse <= 0:
            raise InputError(f"method.fisher: alpha must be >= 0 and eps, max_inverse > 0, got alpha {self.alpha}, "
                             f"eps {self.eps}, max_inverse {self.max_inverse}")


def diagonal_fisher(model: nn.Module, data: UnlearnData, which: TensorSet, batch_size: int) -> list[torch.Tensor]:
    """The diagonal Fisher information of ``model`` on ``which`` under its own predictive distribution.

    F = mean over x of sum over classes c of p(c|x) * (d log p(c|x) / d theta)^2, with the model in
    eval mode (BatchNorm uses its running statistics, as at test time). Per-example gradients come
    from ``torch.func`` (``vmap`` over ``grad``), one class at a time: a batch of B examples costs
    C forward and backward passes and B x (number of parameters) floats of memory, so the whole
    computation costs about C times a per-example-gradient epoch over ``which``. Everything runs in
    float32, without the run's autocast: squared gradients want the precision, and bf16 autocast
    meets a dtype mismatch in BatchNorm under ``vmap``.
    """
    was_training = model.training
    model.eval()
    names = [n for n, _ in model.named_parameters()]
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def log_prob(p: dict[str, torch.Tensor], x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, (p, buffers), (x.unsqueeze(0),))
        return torch.log_softmax(logits, dim=1)[0, c]

    per_example = vmap(grad(log_prob), in_dims=(None, 0, None))
    total = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    for x, _ in data.batches(which, batch_size, None):
        x = x.float().contiguous()
        with torch.no_grad():
            probs = torch.softmax(model(x), dim=1)
        for c in range(probs.shape[1]):
            spend((FORWARD + BACKWARD) * len(x))  # one forward and backward per example, under vmap
            grads = per_example(params, x, torch.tensor(c, device=x.device))
            weight = probs[:, c]
            for n in names:
                g = grads[n].float()
                total[n].add_(torch.einsum("b,b...->...", weight, g * g))
    model.train(was_training)
    n = max(len(which), 1)
    return [total[name] / n for name in names]


def fisher_compute(examples: int, num_classes: int) -> float:
    """Example passes of ``diagonal_fisher`` on ``examples`` examples: a prediction, then a forward
    and backward pass per class."""
    return float(examples * (FORWARD + num_classes * (FORWARD + BACKWARD)))


def fisher_sample(data: UnlearnData, seed: int) -> TensorSet:
    """The retain examples the Fisher is estimated on: all of R, or, under a compute budget that
    R does not fit, a seeded random subsample of R that does (in its original order)."""
    left = remaining_compute()
    n = len(data.retain)
    if left is None or fisher_compute(n, data.num_classes) <= left:
        return data.retain
    fits = int(left // fisher_compute(1, data.num_classes))
    keep = torch.randperm(n, generator=generator(seed, "fisher-sample"))[:fits].sort().values
    return data.retain.subset(keep)


@METHODS.register(
    "fisher",
    config=FisherConfig,
    reference="Golatkar, Achille & Soatto 2020 (alpha 1e-6, inverse Fisher clamped to 1e3)",
    tiny={},
)
def fisher(model: nn.Module, data: UnlearnData, cfg: FisherConfig, *, seed: int) -> nn.Module:
    """Fisher forgetting: add Gaussian noise shaped by the inverse diagonal Fisher of the retain set.

    Computes the diagonal Fisher F on R (``diagonal_fisher``: per-example, per-class gradients
    under the model's own predictive distribution, eval mode), then sets every parameter to
    theta + sqrt(var) * N(0, 1) with var = alpha * min(1 / (F + eps), max_inverse): weights that
    matter little for R get the most noise (up to a standard deviation of sqrt(alpha * max_inverse),
    0.03 at the defaults), so what only S needed is drowned. The clamp is applied to 1 / (F + eps)
    before scaling by alpha, as in the reference code; the reference code's further heuristics
    (averaging the variance over each output row, x10 for the classifier and for 1-d parameters,
    an extra clamp for the classifier) are not used. Noise comes from ``generator(seed, "noise")``
    on the CPU, one parameter after another in ``named_parameters`` order. BatchNorm running
    statistics are left as they are.

    Cost: about ``num_classes`` per-example-gradient passes over R (see ``diagonal_fisher``); the
    most expensive method here by far on many classes, and memory grows with ``batch_size``. Under a
    compute budget (``run_method(max_compute=...)``) that cost would pass, the Fisher is estimated on
    a seeded random subsample of R sized to fit (``fisher_sample``); with room for no example at
    all, F is zero and every weight gets the largest noise (the prior, with nothing learned from R).

    References:
        Golatkar, Achille & Soatto, Eternal Sunshine of the Spotless Net: Selective Forgetting in
        Deep Networks, CVPR 2020.
    """
    if cfg.alpha < 0 or cfg.eps <= 0 or cfg.max_inverse <= 0:
        raise InputError(f"fisher: alpha must be >= 0 and eps, max_inverse > 0, got {cfg}")
    if cfg.batch_size < 1:
        raise InputError(f"fisher.batch_size must be at least 1, got {cfg.batch_size}")
    student = clone(model)
    fim = diagonal_fisher(student, data, fisher_sample(data, seed), cfg.batch_size)
    noise = generator(seed, "noise")
    with torch.no_grad():
        for p, f in zip(student.parameters(), fim):
            var = cfg.alpha * (1.0 / (f + cfg.eps)).clamp(max=cfg.max_inverse)
            z = torch.randn(p.shape, generator=noise, dtype=torch.float32).to(p.device)
            p.add_((var.sqrt() * z).to(p.dtype))
    return student
