"""Held-out matching: give each forget example the outputs of an unseen look-alike, distil the rest."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from unlearnkit.engine.compute import BACKWARD, FORWARD, remaining_compute
from unlearnkit.engine.tensors import TensorSet
from unlearnkit.engine.train import make_optimizer, predict
from unlearnkit.errors import InputError
from unlearnkit.methods.base import METHODS, UnlearnData, clone, generator
from unlearnkit.methods.cf_k import last_stages
from unlearnkit.methods.common import cycled
from unlearnkit.metrics.efficiency import retrain_steps
from unlearnkit.models.base import model_parts, reset_parameters


@dataclass(frozen=True)
class HeldoutMatchingConfig:
    """Every default is relative to the setting: steps to a retrain's, the learning rate to the recipe's."""

    budget: float = 0.06            # optimizer steps, as a fraction of one retrain's
    lr_scale: float = 1.0           # the recipe's optimizer at this multiple of its learning rate, cosine-decayed
    neighbours: int = 32            # held-out look-alikes per forget example; each seed draws one
    draw: bool = True               # False: every seed matches the mean of the look-alikes' distributions
    forget_weight: float = 3.0      # weight of the forget examples' matching loss
    distill: bool = True            # retain examples: KL to the original's outputs (False: cross-entropy on labels)
    same_class: bool = False        # True: look-alikes share the forget example's label where R still has that class
    perturb: float = 0.0            # shrink-perturb first: theta <- (1 - p) theta + p * a fresh initialisation
    reset: int = 0                  # re-initialise the last ``reset`` trunk stages and the head, and train only them
    batch_size: int = 128           # retain examples per step
    forget_batch_size: int = 64     # forget examples per step

    def __post_init__(self) -> None:
        if not 0 < self.budget <= 10:
            raise InputError(
                f"method.heldout_matching.budget must be in (0, 10] (a fraction of a retrain's steps), got {self.budget}"
            )
        if self.lr_scale <= 0:
            raise InputError(f"method.heldout_matching.lr_scale must be positive, got {self.lr_scale}")
        if self.reset < 0:
            raise InputError(f"method.heldout_matching.reset must be 0 (none) or a number of trailing stages, got {self.reset}")
        if not 0 <= self.perturb <= 1:
            raise InputError(f"method.heldout_matching.perturb must be in [0, 1], got {self.perturb}")


def features_and_logits(model: nn.Module, data: UnlearnData, which: TensorSet) -> tuple[torch.Tensor, torch.Tensor]:
    """The classifier's input features (L2-normalised) and the logits of ``model`` on ``which``."""
    captured: list[torch.Tensor] = []

    def grab(_module, args, _out) -> None:
        captured.append(args[0].detach().float().cpu())

    hook = model_parts(model, data.spec).classifier.register_forward_hook(grab)
    try:
        logits = predict(model, which, runtime=data.runtime)
    finally:
        hook.remove()
    feats = torch.cat(captured).flatten(1) if captured else torch.zeros(len(which), 0)
    return F.normalize(feats, dim=1), logits


def lookalike_targets(model: nn.Module, data: UnlearnData, cfg: HeldoutMatchingConfig, seed: int) -> torch.Tensor:
    """Log-probabilities [|S|, classes]: for each forget example, the original's on one held-out look-alike.

    The look-alikes of a forget example are its ``neighbours`` nearest validation examples in the
    original's feature space (cosine), among the classes the retain set keeps (a retrained model can
    only answer with those); with ``same_class``, among those with its label where R keeps it. The
    target is the original's distribution on the look-alike, read at the forget example's label by
    the loss. Each seed draws one of them per forget example (``draw``), or every seed takes the mean
    of their distributions.
    """
    val = data.val
    if len(val) == 0:
        raise InputError("heldout_matching needs held-out examples: the setting's validation split is empty")
    f_feat, _ = features_and_logits(model, data, data.forget)
    v_feat, v_logits = features_and_logits(model, data, val)
    sim = f_feat @ v_feat.T
    present = torch.bincount(data.retain.y.cpu(), minlength=data.num_classes) > 0
    fy, vy = data.forget.y.cpu(), val.y.cpu()
    allowed = present[vy][None, :].expand_as(sim).clone()
    if cfg.same_class:
        same = fy[:, None] == vy[None, :]
        has_same = (same & allowed).any(1)
        allowed = torch.where(has_same[:, None], same & allowed, allowed)
    if not allowed.any(1).all():
        raise InputError("heldout_matching: the validation split holds no example of a class the retain set keeps")
    sim = sim.masked_fill(~allowed, -math.inf)
    k = min(cfg.neighbours, int(allowed.sum(1).min()))
    nearest = sim.topk(k, dim=1).indices
    logp = F.log_softmax(v_logits.float(), dim=1)
    if not cfg.draw:
        return logp[nearest].exp().mean(1).log()
    pick = torch.randint(0, k, (len(fy),), generator=generator(seed, "lookalike"))
    return logp[nearest[torch.arange(len(fy)), pick]]


def _by_position(which: TensorSet) -> TensorSet:
    """``which`` with each example's position in it as its label, so that batches say which examples they hold."""
    return TensorSet(which.x, torch.arange(len(which), device=which.device), which.index, which.mean, which.std)


def shrink_perturb(student: nn.Module, p: float, seed: int) -> None:
    """theta <- (1 - p) * theta + p * theta_fresh, theta_fresh a default initialisation drawn from ``seed``."""
    fresh = copy.deepcopy(student)
    reset_parameters(fresh, generator(seed, "perturb"))
    with torch.no_grad():
        for mine, new in zip(student.parameters(), fresh.to(next(student.parameters()).device).parameters()):
            mine.mul_(1 - p).add_(new, alpha=p)


@METHODS.register(
    "heldout_matching",
    config=HeldoutMatchingConfig,
    strong=True,
    reference="unlearnkit (2026), docs/heldout_matching.md",
    needs=("head",),
    tiny={"budget": 0.5},
)
def heldout_matching(model: nn.Module, data: UnlearnData, cfg: HeldoutMatchingConfig, *, seed: int) -> nn.Module:
    """Match each forget example's outputs to the original's on a held-out look-alike; distil R.

    What the competition's score rewards is that, example by example, the N unlearned models'
    outputs on S are distributed like N retrained models' outputs. A retrained model has never seen
    S: to it a forget example is an unseen example like any other of its kind. The original has
    never seen the validation split either, so its outputs on validation examples that look like a
    forget example (nearest in the original's feature space) are a free stand-in for a retrained
    model's on that forget example, at a level of confidence and error set by examples the original
    did not memorise ("oracle matching" of Georgiev et al. 2024, with held-out look-alikes as the
    oracle). Drawing one of the ``neighbours`` (32) look-alikes per seed gives the N runs a spread
    like the N retrains', which a method started N times from one original otherwise lacks. The
    look-alikes may have any label R keeps: on the built-in dataset, restricting them to the forget
    example's label made the targets over-confident (docs/heldout_matching.md).

    Then, for ``budget`` x a retrain's optimizer steps (the recipe's optimizer at ``lr_scale`` x its
    learning rate, cosine-decayed), each step takes one retain batch and one forget batch through
    the student together: KL(original || student) on the retain batch (its behaviour on R is what a
    retrain also learns) and ``forget_weight`` x KL(look-alike target || student) on the forget
    batch. The original's retain outputs are computed once, in eval mode.

    Optionally (``perturb`` > 0) the weights are first shrunk towards a fresh initialisation drawn
    from the seed (Ash and Adams 2020), or (``reset`` = k) the last k trunk stages and the head are
    re-initialised from the seed and only they train, both other sources of seed-like diversity;
    the ablation (benchmarks/ablate.py --method heldout_matching) measures each part. The design, how the
    defaults were chosen (on forget seed 1 of the built-in dataset only) and its measurements are in
    docs/heldout_matching.md.

    Cost: ``budget`` x a retrain's steps, each a forward and backward pass over one retain and one
    forget batch, plus one forward pass over R, S and the validation split. Under a compute budget
    (``run_method(max_compute=...)``) it takes as many of those steps as the predictions leave room for.

    References:
        unlearnkit, docs/heldout_matching.md (2026).
        Georgiev et al., Attribute-to-Delete: Machine Unlearning via Datamodel Matching,
        arXiv:2410.23232, 2024 (oracle matching).
        Zhao et al., What makes unlearning hard and what to do about it, NeurIPS 2024.
        Ash and Adams, On Warm-Starting Neural Network Training, NeurIPS 2020 (shrink and perturb).
    """
    recipe = data.train_config
    targets = lookalike_targets(model, data, cfg, seed).to(data.runtime.device)
    teacher = predict(model, data.retain, runtime=data.runtime).to(data.runtime.device)
    student = clone(model)
    if cfg.perturb > 0:
        shrink_perturb(student, cfg.perturb, seed)
    trained = student
    if cfg.reset > 0:
        suffix = last_stages(student, cfg.reset, data.spec)
        for block in suffix:
            reset_parameters(block, generator(seed, "reset"))
        for p in student.parameters():
            p.requires_grad_(False)
        for block in suffix:
            for p in block.parameters():
                p.requires_grad_(True)
        trained = nn.ModuleList(suffix)
    steps = max(1, math.floor(cfg.budget * retrain_steps(len(data.retain), recipe.batch_size, recipe.epochs)))
    left = remaining_compute()
    if left is not None:
        # Under a compute budget: as many steps as what the predictions above left (a step's passes
        # are an upper bound; a pass's last batch may be short).
        steps = min(steps, int(left // ((FORWARD + BACKWARD) * (cfg.batch_size + cfg.forget_batch_size))))
    opt = make_optimizer(trained.parameters(), replace(recipe, lr=cfg.lr_scale * recipe.lr))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    retain = cycled(data, _by_position(data.retain), cfg.batch_size, seed, "retain")
    forget = cycled(data, _by_position(data.forget), cfg.forget_batch_size, seed, "forget")
    retain_y = data.retain.y.to(data.runtime.device)
    student.train()
    if cfg.reset > 0:
        for m in student.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters()):
                m.eval()  # the kept stages' batch norms keep their statistics
    for _ in range(steps):
        (xr, ir), (xf, i_f) = next(retain), next(forget)
        with data.runtime.autocast():
            logits = student(torch.cat([xr, xf])).float()
        lr_, lf = logits[: len(xr)], logits[len(xr):]
        if cfg.distill:
            loss_r = F.kl_div(F.log_softmax(lr_, 1), F.log_softmax(teacher[ir], 1),
                              reduction="batchmean", log_target=True)
        else:
            loss_r = F.cross_entropy(lr_, retain_y[ir])
        loss_f = F.kl_div(F.log_softmax(lf, 1), targets[i_f], reduction="batchmean", log_target=True)
        loss = loss_r + cfg.forget_weight * loss_f
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return student
