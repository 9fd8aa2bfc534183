"""Scramble and relearn: turn every conv kernel by a per-seed symmetry, relearn R, calibrate to held-out data."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from unlearnkit.engine.compute import BACKWARD, FORWARD, remaining_compute
from unlearnkit.engine.train import accuracy, make_optimizer, predict
from unlearnkit.errors import InputError
from unlearnkit.methods.base import METHODS, UnlearnData, clone, generator
from unlearnkit.methods.common import cycled, spatial_kernels
from unlearnkit.metrics.efficiency import retrain_steps
from unlearnkit.models import ModelSpec
from unlearnkit.models.base import model_parts

# Logit-scaled confidences are clipped here before they are averaged, so that a few saturated
# examples cannot dominate a mean (the forgetting-quality score clips its own statistic too).
CONF_CLIP = 10.0
# Retain examples on which the utility floor is checked (a subset: each check costs a forward pass).
PROBE = 1024


@dataclass(frozen=True)
class ScrambleRelearnConfig:
    """Every default is relative to the setting: steps to a retrain's, the learning rate to the recipe's."""

    budget: float = 0.25          # optimizer steps, as a fraction of one retrain's (counted at its batch size)
    lr_scale: float = 1.0         # the recipe's optimizer at this multiple of its learning rate, cosine-decayed
    batch_size: int = 64          # retain examples per step
    scramble: bool = True         # turn every square conv kernel by a symmetry of the square drawn per seed
    per_layer: bool = True        # a symmetry per layer; False: one for every layer (the function survives)
    strength: float = 1.0         # each kernel becomes strength x its turned self + sqrt(1 - strength^2) x itself
    level_weight: float = 0.01    # weight of (mean forget confidence - a retrain's level for them)^2 (level_gap)
    level_batch_size: int = 16    # forget and held-out examples per step for the level term
    calibrate: bool = True        # finally, scale the logits so held-out confidence matches the original's
    class_weighted: bool = False  # weight the relearning cross-entropy by inverse class frequency
    retain_floor: float = 0.10    # relearn on (up to the budget again) while retain accuracy is this far below the original's

    def __post_init__(self) -> None:
        if not 0 < self.budget <= 10:
            raise InputError(f"method.scramble_relearn.budget must be in (0, 10] (a fraction of a retrain's steps), got {self.budget}")
        if self.lr_scale <= 0:
            raise InputError(f"method.scramble_relearn.lr_scale must be positive, got {self.lr_scale}")
        if self.level_weight < 0:
            raise InputError(f"method.scramble_relearn.level_weight must be non-negative, got {self.level_weight}")
        if not 0 <= self.retain_floor <= 1:
            raise InputError(f"method.scramble_relearn.retain_floor must be in [0, 1] (1: no floor), got {self.retain_floor}")
        if not 0 <= self.strength <= 1:
            raise InputError(f"method.scramble_relearn.strength must be in [0, 1], got {self.strength}")
        for name in ("batch_size", "level_batch_size"):
            if getattr(self, name) < 1:
                raise InputError(f"method.scramble_relearn.{name} must be at least 1, got {getattr(self, name)}")


def square_symmetry(w: torch.Tensor, k: int) -> torch.Tensor:
    """``w`` under element ``k`` (0-7) of the symmetry group of the square, acting on its last two axes.

    k = 0-3: a rotation by k quarter turns; k = 4-7: the transpose, then k - 4 quarter turns.
    """
    if k >= 4:
        w = w.transpose(-1, -2)
    return torch.rot90(w, k % 4, dims=(-2, -1))


def scramble_kernels(model: nn.Module, spec: ModelSpec, g: torch.Generator, strength: float = 1.0, per_layer: bool = True) -> int:
    """Turn every square conv kernel of ``model`` by its own random non-identity square symmetry, in place.

    Each layer draws its own symmetry, so unlike one symmetry for the whole net (``per_layer=False``,
    or the transposed method: the net keeps its function, only on a transformed image), consecutive
    layers no longer fit together: the features break, while every kernel keeps its weights' values
    and each layer its statistics.
    With ``strength`` s < 1 a kernel w becomes s * turned(w) + sqrt(1 - s^2) * w, which keeps its
    scale where the two are uncorrelated and keeps a share of its old alignment. A model without
    convs (the MLP) gets the same on its first Linear layer's input columns, read as a C x H x W
    image. Returns how many weight tensors were turned.
    """
    keep = math.sqrt(1 - strength**2)
    weights = spatial_kernels(model, spec, min_size=2)
    shared = int(torch.randint(1, 8, (1,), generator=g)) if not per_layer else None
    with torch.no_grad():
        for w, shape in weights:
            k = shared if shared is not None else int(torch.randint(1, 8, (1,), generator=g))
            image = w.reshape(shape)
            w.copy_((strength * square_symmetry(image, k) + keep * image).reshape(w.shape).clone())
    return len(weights)


def logit_confidence(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log(p / (1 - p)) of each example's label, computed stably from log-probabilities."""
    logp = F.log_softmax(logits.float(), 1).gather(1, y[:, None])[:, 0]
    return logp - torch.log1p(-logp.exp().clamp(max=1 - 1e-7))


def mean_confidence(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return logit_confidence(logits, y).clamp(-CONF_CLIP, CONF_CLIP).mean()


def temperature_to_match(logits: torch.Tensor, y: torch.Tensor, goal: float) -> float:
    """The T in [1/20, 20] at which ``mean_confidence(logits / T, y)`` is closest to ``goal``.

    The mean clipped confidence need not be monotone in T (clipping caps the sharpest examples), so
    a grid of 64 log-spaced temperatures finds the crossing nearest to T = 1 (or, with none, the
    closest value) and bisection refines a crossing.
    """
    f = lambda log_t: float(mean_confidence(logits / math.exp(log_t), y)) - goal  # noqa: E731
    grid = torch.linspace(math.log(1 / 20), math.log(20.0), 64).tolist()
    values = [f(x) for x in grid]
    crossings = [i for i in range(63) if (values[i] > 0) != (values[i + 1] > 0)]
    if not crossings:
        return math.exp(grid[min(range(64), key=lambda i: abs(values[i]))])
    i = min(crossings, key=lambda i: abs(grid[i] + grid[i + 1]))
    lo, hi, above = grid[i], grid[i + 1], values[i] > 0
    for _ in range(30):
        mid = (lo + hi) / 2
        if (f(mid) > 0) == above:
            lo = mid
        else:
            hi = mid
    return math.exp((lo + hi) / 2)


@METHODS.register(
    "scramble_relearn",
    config=ScrambleRelearnConfig,
    strength=("strength",),  # methods.regime
    # Not ``strong``: it moves S towards a retrain's, but loses up to 10 points of retain accuracy
    # (its utility floor) where the behaviour test allows 5 (docs/scramble_relearn.md).
    reference="unlearnkit (2026), docs/scramble_relearn.md",
    needs=("square_kernels", "head"),
    tiny={"budget": 0.5},
)
def scramble_relearn(model: nn.Module, data: UnlearnData, cfg: ScrambleRelearnConfig, *, seed: int) -> nn.Module:
    """Scramble every conv kernel by a per-seed symmetry, relearn R, hold S at the held-out level, calibrate.

    The competition's score compares, example by example, the N unlearned models' outputs on S with
    N retrained models'. A retrained model never saw S, so on S it behaves as a fully trained model
    does on unseen data: its outputs are placed by what R teaches and spread by the training's
    randomness. The steps aim at that, in ``budget`` (25 %) of a retrain's optimizer steps (counted
    at the recipe's batch size; a step here takes ``batch_size`` (64) retain examples, plus the
    level term's):

    1. **Erase with seed-like diversity.** Each square conv kernel is turned by its own random
       non-identity symmetry of the square (a rotation or reflection) drawn from the seed
       (``scramble_kernels``; ``strength`` < 1 mixes in the kernel itself). The layers no longer fit
       together, so what the original learned, S's memorisation included, breaks everywhere, while
       every weight keeps its scale: relearning starts far from the original's function but from
       well-scaled weights. Each seed breaks it differently, which puts back the run-to-run spread
       a method started N times from one original otherwise lacks.
    2. **Relearn R.** Cross-entropy on R, batch ``batch_size`` (64), with the recipe's optimizer at
       ``lr_scale`` x its learning rate, cosine-decayed to zero: what is relearned is what R
       supports, as in a retrain.
    3. **Hold S at the held-out level.** What memorisation survives shows as forget examples
       answered more confidently than unseen ones. Each step also adds ``level_weight`` x (mean
       confidence on a forget batch - the level a retrain would give it)^2, the level detached
       (``level_gap``): the model's mean confidence on held-out examples of kept classes, or, for a
       class R lacks, its confidence in that class on the retain batch. S moves as a population;
       where each example sits within it is left to what R teaches.
    4. **Calibrate** (``calibrate``). A short relearn leaves the model less sure than a fully
       trained one, and the score reads confidences: the head is divided by the temperature at
       which the model's mean confidence on held-out examples of kept classes equals the
       original's there (a fully trained model's on unseen data). Predictions do not change.
    5. **Utility floor.** If retain accuracy on 1,024 retain examples ends more than
       ``retain_floor`` (10 points) below the original's, relearning goes on in chunks of a tenth
       of the budget at 0.3x the learning rate until it is within the floor or the budget is
       spent a second time.

    Every prediction here (the floor's check, the calibration's) runs a training batch at a time,
    so that none holds more activations than a training step (peak memory is part of the cost).
    Confidences are logit-scaled, log(p / (1 - p)) of the label, clipped to +-10, the statistic the
    score reads. The forget and held-out examples pass through the model with the retain batch, in
    training mode, so their batch statistics enter the batch norms (a third of each batch).

    The design, the measurements behind each choice (tuned on the built-in dataset's forget seeds
    1, 2, 4 and 5; the budget last: 0.25 beat 0.12-with-the-floor on all four, by 0.022 on average,
    and keeps retain accuracy within 4 points there) and the ablation (benchmarks/ablate.py) are in
    docs/scramble_relearn.md.

    Cost: ``budget`` x a retrain's steps (up to twice that with the floor), each a forward and
    backward pass over one retain batch and ``level_batch_size`` forget and held-out examples, plus
    forward passes over the validation split and the floor's retain probe. Under a compute budget
    (``run_method(max_compute=...)``) the calibration's predictions are set aside first, the floor's
    probe shrinks to at most a tenth of what is left, the relearning takes the rest, and the floor
    relearns a chunk only where the chunk, its check and the calibration still fit: the calibration
    always runs.

    References:
        unlearnkit, docs/scramble_relearn.md (2026).
        Triantafillou et al., Are we making progress in unlearning? Findings from the first NeurIPS
        unlearning competition, arXiv:2406.09073, 2024 ("erase, then repair"; the 5th place's
        transposed kernels).
        Georgiev et al., Attribute-to-Delete: Machine Unlearning via Datamodel Matching,
        arXiv:2410.23232, 2024 (matching a retrained model's outputs as the target).
        Guo et al., On Calibration of Modern Neural Networks, ICML 2017 (temperature scaling).
    """
    recipe = data.train_config
    kept = torch.bincount(data.retain.y.cpu(), minlength=data.num_classes) > 0
    held_out = data.val.subset(kept[data.val.y.cpu()].nonzero()[:, 0])
    if len(held_out) == 0 and (cfg.calibrate or cfg.level_weight > 0):
        raise InputError("scramble_relearn needs held-out examples of the classes the retain set keeps: the setting's "
                         "validation split has none (or set method.calibrate=false and method.level_weight=0)")
    student = clone(model)
    if cfg.scramble:
        scramble_kernels(student, data.spec, generator(seed, "scramble"), cfg.strength, cfg.per_layer)
    steps = max(1, math.floor(cfg.budget * retrain_steps(len(data.retain), recipe.batch_size, recipe.epochs)))
    level = cfg.level_weight > 0 and len(data.forget) > 0
    probe_size = min(PROBE, len(data.retain)) if cfg.retain_floor < 1 else 0
    # Example passes of one step (an upper bound: a pass's last batch may be short), and what the
    # calibration's two predictions over the validation split cost.
    step_cost = (FORWARD + BACKWARD) * (cfg.batch_size + (2 * cfg.level_batch_size if level else 0))
    calibration_cost = 2 * FORWARD * len(data.val) if cfg.calibrate else 0
    left = remaining_compute()
    if left is not None:
        # Under a compute budget the calibration comes first, then the floor's first check (the
        # original's and the student's accuracy on the probe, on at most a tenth of what is left),
        # and the relearning gets the rest, so that neither is cut off.
        probe_size = min(probe_size, int(0.1 * max(0.0, left - calibration_cost) / (2 * FORWARD)))
        steps = min(steps, max(0, int((left - calibration_cost - 2 * FORWARD * probe_size) // step_cost)))
    lr = cfg.lr_scale * recipe.lr
    opt = make_optimizer(student.parameters(), replace(recipe, lr=lr))
    weight = data.class_weights if cfg.class_weighted else None
    retain = cycled(data, data.retain, cfg.batch_size, seed, "retain")
    if level:
        forget = cycled(data, data.forget, cfg.level_batch_size, seed, "forget")
        held = cycled(data, held_out, cfg.level_batch_size, seed, "held-out")
        kept_dev = kept.to(data.runtime.device)

    def relearn(n: int, peak: float) -> None:
        """``n`` steps, the learning rate cosine-decayed from ``peak`` to zero."""
        for group in opt.param_groups:
            group["lr"] = peak
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=n)
        student.train()
        for _ in range(n):
            xr, yr = next(retain)
            (xf, yf), (xv, yv) = (next(forget), next(held)) if level else ((xr[:0], yr[:0]), (xr[:0], yr[:0]))
            with data.runtime.autocast():
                logits = student(torch.cat([xr, xf, xv])).float()
            lr_, lf, lv = logits[: len(xr)], logits[len(xr): len(xr) + len(xf)], logits[len(xr) + len(xf):]
            loss = F.cross_entropy(lr_, yr, weight=weight)
            if level:
                loss = loss + cfg.level_weight * level_gap(lr_, lf, yf, lv, yv, kept_dev).square()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()

    if steps:
        relearn(steps, lr)
    if probe_size:
        probe = data.retain.subset(torch.randperm(len(data.retain), generator=generator(seed, "probe"))[:probe_size])
        floor = accuracy(model, probe, runtime=data.runtime, batch_size=recipe.batch_size) - cfg.retain_floor
        chunk, extra = max(1, math.ceil(0.1 * steps)), 0

        def chunk_fits() -> bool:
            left = remaining_compute()
            return left is None or left - calibration_cost >= chunk * step_cost + FORWARD * probe_size

        while (extra < steps and accuracy(student, probe, runtime=data.runtime, batch_size=recipe.batch_size) < floor
               and chunk_fits()):
            relearn(chunk, 0.3 * lr)
            extra += chunk
    student.eval()
    if cfg.calibrate:
        calibrate(student, model, data, kept)
    return student


def calibrate(student: nn.Module, original: nn.Module, data: UnlearnData, kept: torch.Tensor) -> float:
    """Divide ``student``'s head by the temperature that gives it the original's held-out confidence.

    The goal is the original's mean logit-scaled confidence on the validation examples of the classes
    R keeps (it never trained on them). A class R lacks keeps the level it reached in relearning: its
    bias is shifted back so that its mean confidence on its own validation examples is what it was
    before the temperature (a class's logit-scaled confidence moves one for one with its bias).
    Returns the temperature.
    """
    batch = data.train_config.batch_size  # no more activations at once than a training step holds
    val_logits = predict(student, data.val, runtime=data.runtime, batch_size=batch).float().cpu()
    vy = data.val.y.cpu()
    on_kept = kept[vy]
    goal = float(mean_confidence(predict(original, data.val, runtime=data.runtime, batch_size=batch).float().cpu()[on_kept],
                                 vy[on_kept]))
    t = temperature_to_match(val_logits[on_kept], vy[on_kept], goal)
    head = model_parts(student, data.spec).classifier
    with torch.no_grad():
        head.weight.div_(t)
        if head.bias is not None:
            head.bias.div_(t)
            for c in (~kept).nonzero()[:, 0].tolist():
                rows = vy == c
                if rows.any():
                    before = logit_confidence(val_logits[rows], vy[rows]).mean()
                    after = logit_confidence(val_logits[rows] / t, vy[rows]).mean()
                    head.bias[c] += float(before - after)
    return t


def level_gap(retain_logits: torch.Tensor, forget_logits: torch.Tensor, forget_y: torch.Tensor,
              held_logits: torch.Tensor, held_y: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """Mean forget confidence minus the level a retrained model would give those examples (detached).

    For a forget example of a class R keeps, that level is the model's mean confidence on held-out
    examples (of kept classes): to a retrained model it is one more unseen example. For one of a
    class R lacks (a whole class forgotten), it is the model's confidence in that class on the
    retain batch: a retrained model never learnt the class, and gives it what it gives any input.
    """
    conf = logit_confidence(forget_logits, forget_y).clamp(-CONF_CLIP, CONF_CLIP)
    target = torch.empty_like(conf)
    has = kept[forget_y]
    if has.any():
        target[has] = mean_confidence(held_logits, held_y).detach()
    for c in forget_y[~has].unique():
        rows = forget_y == c
        as_c = torch.full((len(retain_logits),), int(c), dtype=forget_y.dtype, device=forget_y.device)
        target[rows] = mean_confidence(retain_logits, as_c).detach()
    return (conf - target).mean()
