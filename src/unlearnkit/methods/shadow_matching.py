"""Shadow matching: move each forget example to what the prepared shadows that never saw it say, run k to its own draw."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from unlearnkit.engine.compute import BACKWARD, FORWARD, remaining_compute, spend
from unlearnkit.engine.tensors import TensorSet
from unlearnkit.engine.train import make_optimizer, predict
from unlearnkit.errors import InputError
from unlearnkit.methods.base import METHODS, UnlearnData, clone, generator
from unlearnkit.methods.common import cycled
from unlearnkit.metrics.efficiency import retrain_compute
from unlearnkit.models.base import model_parts
from unlearnkit.results.pool import ShadowPool, load_pool

# Confidences are clipped here before a level is fitted or averaged, as the score clips its own
# statistic, so that a few saturated examples cannot set a shadow's correction.
CONF_CLIP = 12.0
CORRECTIONS = ("none", "shift", "affine")


@dataclass(frozen=True)
class ShadowMatchingConfig:
    """The pool is found by ``pool`` (a folder ``unlearnkit prepare`` printed); costs are relative to a retrain's."""

    pool: str = ""                # the prepared pool's folder (CACHE/pools/KEY)
    shadows: int = 0              # use the pool's first this many shadows (0: all of them)
    correction: str = "affine"    # map each shadow's confidences onto the original's on the validation split: none | shift | affine
    shrink: float = 4.0           # pseudo-count of the pool-wide spread in each example's spread (0: the example's own)
    spread_scale: float = 1.0     # multiply the drawn spread (0: every run targets the location)
    budget: float = 0.09          # example passes, as a fraction of one retrain's compute (all of the run's work)
    lr_scale: float = 0.25        # the recipe's optimizer at this multiple of its learning rate, cosine-decayed
    forget_weight: float = 1.0    # weight of the forget examples' matching loss
    batch_size: int = 32          # retain examples per step (distilled to the original)
    forget_batch_size: int = 64   # forget examples per step
    without_pool: bool = False    # no pool: targets from the original on held-out examples (a stand-in for tests)
    head_fit: float = 30.0        # after the fine-tune, refit the head to the targets with this weight on retain (0: off)
    head_retain: int = 2048       # retain examples the head fit holds steady

    def __post_init__(self) -> None:
        if self.correction not in CORRECTIONS:
            raise InputError(f"method.shadow_matching.correction must be one of {', '.join(CORRECTIONS)}, got {self.correction!r}")
        if not 0 < self.budget <= 10:
            raise InputError(f"method.shadow_matching.budget must be in (0, 10] (a fraction of a retrain's compute), got {self.budget}")
        if self.shadows < 0 or self.shadows == 1:
            raise InputError(f"method.shadow_matching.shadows must be 0 (all) or at least 2, got {self.shadows}")
        if self.head_retain < 1:
            raise InputError(f"method.shadow_matching.head_retain must be at least 1, got {self.head_retain}")
        for name in ("shrink", "spread_scale", "lr_scale", "head_fit"):
            if getattr(self, name) < 0 or (name == "lr_scale" and self.lr_scale == 0):
                raise InputError(f"method.shadow_matching.{name} must be {'positive' if name == 'lr_scale' else 'non-negative'}, "
                                 f"got {getattr(self, name)}")


def confidence(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The score's statistic, log p_y - log(1 - p_y), in float64, clipped to +-CONF_CLIP."""
    logp = F.log_softmax(logits.double(), -1)
    own = logp.gather(-1, y.expand(*logp.shape[:-1]).unsqueeze(-1)).squeeze(-1)
    rest = torch.logsumexp(logp.masked_fill(F.one_hot(y, logp.shape[-1]).bool().expand_as(logp), -math.inf), -1)
    return (own - rest).clamp(-CONF_CLIP, CONF_CLIP)


def level_maps(shadow_val: torch.Tensor, original_val: torch.Tensor, correction: str,
               seen: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per shadow (a, b) so that a + b x maps a shadow's confidence x onto the original's level.

    Fitted on the validation split, which neither the shadows nor the original saw: there a shadow,
    trained on fewer examples, is less confident than the original, as it is on the forget examples
    it left out compared with a retrain on D minus S (which has almost all of D). ``shift`` matches
    the mean; ``affine`` the mean and the spread across examples (moments, not a regression, so that
    seed noise does not pull every target towards the mean). ``seen`` (bool [K, n_val]) restricts
    shadow k's fit to the validation examples of classes it trained on: a shadow that left a whole
    class out is not less sure of everything, only of that class, which is what it is for.
    """
    k = shadow_val.shape[0]
    if correction == "none":
        return torch.zeros(k, dtype=torch.float64), torch.ones(k, dtype=torch.float64)
    w = torch.ones_like(shadow_val) if seen is None else seen.to(shadow_val.dtype)
    n = w.sum(1).clamp_min(1)
    mu_s = (shadow_val * w).sum(1) / n
    mu_0 = (original_val * w).sum(1) / n
    if correction == "shift":
        return mu_0 - mu_s, torch.ones(k, dtype=torch.float64)
    sd_s = (((shadow_val - mu_s[:, None]) ** 2 * w).sum(1) / (n - 1).clamp_min(1)).sqrt()
    sd_0 = (((original_val - mu_0[:, None]) ** 2 * w).sum(1) / (n - 1).clamp_min(1)).sqrt()
    b = sd_0 / sd_s.clamp_min(1e-6)
    return mu_0 - b * mu_s, b


def seen_classes(out: torch.Tensor, y_train: torch.Tensor, num_classes: int) -> torch.Tensor:
    """bool [K, classes]: whether shadow k trained on any example of each class (its ``out`` row
    does not cover the whole class)."""
    onehot = F.one_hot(y_train, num_classes).double()            # [n_train, C]
    return ((~out).double() @ onehot) > 0


def _pooled_spread2(val: torch.Tensor, seen: torch.Tensor) -> float:
    """The pool-wide variance: across the shadows that trained on its class, per validation example
    (there every shadow is "out"), averaged over the examples."""
    w = seen.double()
    n = w.sum(0)
    mean = (val * w).sum(0) / n.clamp_min(1)
    var = ((val - mean) ** 2 * w).sum(0) / (n - 1).clamp_min(1)
    return float(var[n >= 2].mean())


@dataclass(frozen=True)
class ShadowTargets:
    """For each forget example: where the retrains should put it and how far they spread.

    Attributes:
        location: float64 [|S|]: the mean corrected confidence of its out-shadows.
        spread: float64 [|S|]: their standard deviation, shrunk towards the pool-wide one (the
            out-shadows' variance on the training examples they left out, averaged).
        others: float64 [|S|, classes]: the out-shadows' mean distribution over the other classes.
        outs: int [|S|]: how many shadows never saw each forget example.
    """

    location: torch.Tensor
    spread: torch.Tensor
    others: torch.Tensor
    outs: torch.Tensor


def shadow_targets(pool: ShadowPool, original_val: torch.Tensor, data: UnlearnData, cfg: ShadowMatchingConfig) -> ShadowTargets:
    """The per-example targets of ``data.forget`` from ``pool`` (see :class:`ShadowTargets`).

    Args:
        pool: The prepared pool.
        original_val: The original's logits on the validation split (in the pool's validation order).
        data: The request's data.
        cfg: The method's config.
    """
    rows = pool.rows(data.forget.index.cpu().numpy())
    y_train = torch.as_tensor(_labels_of(pool, data), dtype=torch.long)
    y_val = data.val.y.cpu()
    val_conf = confidence(torch.as_tensor(pool.val_logits), y_val)            # [K, n_val]
    out = torch.as_tensor(pool.out)                                            # [K, n_train]
    seen_by = seen_classes(out, y_train, pool.val_logits.shape[-1])            # [K, classes]
    seen = seen_by[:, y_val]                                                   # [K, n_val]
    a, b = level_maps(val_conf, confidence(original_val, y_val), cfg.correction, seen)
    conf = confidence(torch.as_tensor(pool.train_logits), y_train)              # [K, n_train]
    # A shadow that never saw an example's class is a retrain for the request that forgets that
    # class (a class pool): its confidence there is used as it is. The map is fitted on classes
    # it saw, whose confidences lie far from a left-out class's, and extrapolated there it moved a
    # whole class by up to 0.7 (digits class:2).
    corrected = torch.where(seen_by[:, y_train], a[:, None] + b[:, None] * conf, conf)
    m = out.sum(0).double()
    if (m[torch.as_tensor(rows)] < 1).any():
        raise InputError(f"pool {pool.folder}: some forget examples were seen by every one of the {pool.size} shadows used; "
                         "use more shadows (method.shadow_matching.shadows=0 for all)")
    mean = (corrected * out).sum(0) / m.clamp_min(1)
    dev2 = ((corrected - mean) ** 2 * out).sum(0)
    # The pool-wide spread: the out-shadows' variance on the examples they left out, averaged over
    # every training example that two or more shadows left out. It is the same kind of spread as an
    # example's own; for a class pool, of models that lack the whole class, which the validation
    # split's (models that saw its class) underrates: 0.82 of the references' spread against 1.05
    # on digits. Where no example is out of two shadows: across the shadows on the validation
    # split, where every shadow is "out".
    several = m >= 2
    pooled = (float((dev2[several] / (m[several] - 1)).mean()) if several.any()
              else _pooled_spread2(a[:, None] + b[:, None] * val_conf, seen))
    spread2 = (dev2 + cfg.shrink * pooled) / ((m - 1).clamp_min(0) + cfg.shrink).clamp_min(1e-12)
    spread2 = torch.where((m < 2) & (cfg.shrink == 0), torch.full_like(spread2, pooled), spread2)
    probs = F.softmax(torch.as_tensor(pool.train_logits[:, rows]).double(), -1)    # [K, |S|, C]
    w = out[:, rows].double()[..., None]
    others = (probs * w).sum(0) / w.sum(0)
    others = others.masked_fill(F.one_hot(y_train[rows], others.shape[-1]).bool(), 0)
    others = others / others.sum(-1, keepdim=True).clamp_min(1e-300)
    r = torch.as_tensor(rows)
    return ShadowTargets(mean[r], spread2[r].sqrt(), others, m[r].long())


def _labels_of(pool: ShadowPool, data: UnlearnData) -> np.ndarray:
    """Every training row's label, from the request's retain and forget sets (together: the training split)."""
    labels = np.full(len(pool.train_index), -1, dtype=np.int64)
    for part in (data.retain, data.forget):
        labels[pool.rows(part.index.cpu().numpy())] = part.y.cpu().numpy()
    if (labels < 0).any():
        raise InputError(f"pool {pool.folder}: {int((labels < 0).sum())} of its training examples are in neither the retain "
                         "nor the forget set; the pool was prepared on other data")
    return labels


def target_log_probs(targets: ShadowTargets, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Log-probabilities [|S|, classes] whose confidence at ``y`` is ``t``, the rest spread as the out-shadows do."""
    logp = F.logsigmoid(-t)[:, None] + targets.others.clamp_min(1e-30).log()
    logp = logp.scatter(1, y[:, None], F.logsigmoid(t)[:, None])
    return logp.float()


def _head_io(model: nn.Module, head: nn.Module, which: TensorSet, data: UnlearnData) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The head's inputs [n, d], its outputs and the model's logits [n, classes] on ``which``, float64 on the CPU."""
    inputs: list[torch.Tensor] = []
    outputs: list[torch.Tensor] = []

    def grab(_module, args, out) -> None:
        inputs.append(args[0].detach().double().flatten(1).cpu())
        outputs.append(out.detach().double().cpu())

    hook = head.register_forward_hook(grab)
    try:
        logits = predict(model, which, runtime=data.runtime).double()
    finally:
        hook.remove()
    return torch.cat(inputs), torch.cat(outputs), logits


# L-BFGS iterations of the head fit; each evaluates the objective at most 1.25 times (torch's max_eval).
HEAD_FIT_ITERATIONS = 200


def head_share(model: nn.Module, data: UnlearnData) -> float:
    """The classifier head's share of one forward pass's floating-point work (1.0 where it cannot be
    measured: then every head evaluation counts as a whole pass, erring on the side of counting)."""
    head = model_parts(model, data.spec).classifier
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(data.forget.inputs(slice(0, 1)))
        total = counter.get_total_flops()
    except Exception:  # noqa: BLE001 (a model the counter cannot trace: count whole passes)
        return 1.0
    finally:
        model.train(was_training)
    return min(1.0, 2 * head.in_features * head.out_features / total) if total > 0 else 1.0


def head_fit_passes(share: float) -> float:
    """Example passes the head fit counts per example it reads: one forward pass, and its L-BFGS
    evaluations (forward and backward through the head alone, at most 1.25 per iteration) at the
    head's ``share`` of a pass (:func:`head_share`)."""
    return FORWARD + 1.25 * HEAD_FIT_ITERATIONS * (FORWARD + BACKWARD) * share


def fit_head(student: nn.Module, data: UnlearnData, y: torch.Tensor, goal: torch.Tensor, cfg: ShadowMatchingConfig,
             seed: int, *, retain: int | None = None, share: float | None = None) -> bool:
    """Move ``student``'s classifier head so each forget example's confidence is its goal, holding retain outputs.

    The fine-tune follows its per-example targets only part of the way (docs/prepared_models.md:
    a slope of about 0.6). The head is linear in its input, so what is left can be solved for
    directly on fixed features: a change (dW, db) minimising the mean squared distance of the forget
    examples' confidences from their goals plus ``head_fit`` x the mean KL(before || after) on
    ``head_retain`` retain examples (and 1e-4 x its squared norm), by L-BFGS on the features read in
    one forward pass; ``retain`` (default ``head_retain``) says how many retain examples, ``share``
    the head's share of a pass (default: measured). Returns False, changing nothing, for a model whose
    logits are not its head's outputs (something runs after the head). The L-BFGS work is arithmetic
    on stored features, which the engine's hooks do not see; it is counted with ``spend`` at the
    head's share of a pass (:func:`head_fit_passes`).
    """
    head = model_parts(student, data.spec).classifier
    share = head_share(student, data) if share is None else share
    n_keep = cfg.head_retain if retain is None else retain
    keep = torch.randperm(len(data.retain), generator=generator(seed, "head"))[:n_keep]
    phi_r, out_r, z_r = _head_io(student, head, data.retain.subset(keep), data)
    phi_s, out_s, z_s = _head_io(student, head, data.forget, data)
    if not (torch.allclose(out_r, z_r, atol=1e-3) and torch.allclose(out_s, z_s, atol=1e-3)):
        return False
    bias = head.bias is not None
    if bias:
        phi_r = torch.cat([phi_r, torch.ones(len(phi_r), 1, dtype=phi_r.dtype)], 1)
        phi_s = torch.cat([phi_s, torch.ones(len(phi_s), 1, dtype=phi_s.dtype)], 1)
    delta = torch.zeros(z_s.shape[1], phi_s.shape[1], dtype=torch.float64, requires_grad=True)
    logp_r = F.log_softmax(z_r, 1)
    own = F.one_hot(y, z_s.shape[1]).bool()
    goal = goal.clamp(-CONF_CLIP, CONF_CLIP)
    n = len(phi_r) + len(phi_s)
    spend((head_fit_passes(share) - FORWARD) * n)
    opt = torch.optim.LBFGS([delta], max_iter=HEAD_FIT_ITERATIONS, line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        opt.zero_grad()
        zs = z_s + phi_s @ delta.T
        conf = zs[own] - torch.logsumexp(zs.masked_fill(own, -math.inf), 1)
        zr = z_r + phi_r @ delta.T
        kl = (logp_r.exp() * (logp_r - F.log_softmax(zr, 1))).sum(1).mean()
        loss = ((conf - goal) ** 2).mean() + cfg.head_fit * kl + 1e-4 * delta.pow(2).sum()
        loss.backward()
        return loss

    opt.step(objective)
    with torch.no_grad():
        d = delta.detach()
        head.weight += d[:, : head.weight.shape[1]].to(head.weight)
        if bias:
            head.bias += d[:, -1].to(head.bias)
    return True


def _by_position(which: TensorSet) -> TensorSet:
    """``which`` with each example's position in it as its label, so that batches say which examples they hold."""
    return TensorSet(which.x, torch.arange(len(which), device=which.device), which.index, which.mean, which.std)


def _fallback_targets(model: nn.Module, data: UnlearnData, y: torch.Tensor) -> ShadowTargets:
    """Without a pool: every forget example at the original's mean validation confidence and spread."""
    logits = predict(model, data.val, runtime=data.runtime)
    conf = confidence(logits, data.val.y.cpu())
    n, c = len(y), data.num_classes
    others = torch.full((n, c), 1.0 / max(c - 1, 1), dtype=torch.float64).masked_fill(F.one_hot(y, c).bool(), 0)
    return ShadowTargets(torch.full((n,), float(conf.mean()), dtype=torch.float64),
                         torch.full((n,), float(conf.std()) if len(conf) > 1 else 1.0, dtype=torch.float64),
                         others, torch.zeros(n, dtype=torch.long))


@METHODS.register(
    "shadow_matching",
    config=ShadowMatchingConfig,
    prepared=True,
    reference="unlearnkit (2026), docs/prepared_models.md",
    tiny={"without_pool": True, "budget": 0.5},
)
def shadow_matching(model: nn.Module, data: UnlearnData, cfg: ShadowMatchingConfig, *, seed: int) -> nn.Module:
    """Fine-tune the original so each forget example sits where shadows that never saw it put it, per run a new draw.

    The competition's score compares, example by example, the distribution of N unlearned models'
    confidence on a forget example with N retrained models'. Issue 10's diagnosis found the missing
    piece on identity-level forget sets to be placement: which example sits where. A model owner can
    measure placement before any request arrives. ``unlearnkit prepare`` trains a pool of K shadow
    models with the original's recipe, each on D minus a share of the people, structured so that
    each person is left out of a known set of shadows, and stores every shadow's logits on every
    training and validation example (runner/prepare.py). For a request S, each forget example's
    "out" shadows are the ones that never saw its person: their confidences on it are samples of
    what a model that never saw it says, as a retrain's are. A forget set of whole classes needs
    a pool of class leave-outs (``prepare --leave-out class``, found by a class request): each
    shadow is trained without one class, so an example's out-shadows are retrains for the request
    that forgets its class, and give what no group leave-out can, the level a class sinks to.

    Those shadows trained on fewer examples than a retrain, so they are less sure of everything.
    That level is corrected on the validation split, which neither the shadows nor the original
    saw: each shadow's confidences are mapped (``correction``: ``affine`` matches mean and spread,
    ``shift`` the mean) onto the original's on the same examples of the classes it trained on,
    since a retrain on D minus S has almost all of D; a class the shadow left out is not mapped
    (there the shadow is the retrain). An example's location is the mean of its
    out-shadows' corrected confidences; its spread is their standard deviation, shrunk towards the
    pool-wide one (the out-shadows' spread over every example they left out) with ``shrink``
    pseudo-examples (each example has only a few out-shadows). Run k draws its own target per
    example, location + ``spread_scale`` x spread x z (z standard normal from the run's seed),
    so the N runs spread like N retrains instead of all landing on one point; the target puts
    the confidence there and spreads the rest of the probability as the out-shadows do.

    Then, within ``budget`` x a retrain's compute (every pass counted: the original's outputs on the
    validation split and on the retain batches too), each step takes one retain batch and one forget
    batch through the student: KL(original || student) on retain (a retrain's behaviour on R is the
    original's), and ``forget_weight`` x KL(target || student) on forget, with the recipe's optimizer
    at ``lr_scale`` x its learning rate, cosine-decayed. The fine-tune follows its per-example targets
    only part of the way, and a heavier forget term costs retain accuracy (docs/prepared_models.md).
    So last (``head_fit`` > 0) the classifier head is solved for on fixed features: the change of
    its weights that brings each forget example's confidence to its drawn target while holding the
    outputs on ``head_retain`` retain examples (:func:`fit_head`); its one forward pass is counted in
    the budget. The shadows' outputs are read from the pool: a request runs no shadow. It never reads
    a bench's references, the ceiling or the test split.

    Without a pool it refuses, unless ``without_pool`` (for tests and a pool-less comparison):
    then every forget example targets the original's mean validation confidence, which places
    nothing. Design, ablation and measurements: docs/prepared_models.md.

    References:
        unlearnkit, docs/prepared_models.md (2026).
        Carlini et al., Membership Inference Attacks From First Principles, IEEE S&P 2022 (LiRA's out models).
        Georgiev et al., Attribute-to-Delete: Machine Unlearning via Datamodel Matching,
        arXiv:2410.23232, 2024 (oracle matching).
    """
    recipe = data.train_config
    y = data.forget.y.cpu()
    if cfg.pool:
        pool = load_pool(cfg.pool, cfg.shadows or None)
        if len(pool.val_index) != len(data.val) or not np.array_equal(pool.val_index, data.val.index.cpu().numpy()):
            raise InputError(f"pool {cfg.pool}: its validation split is not this setting's; the pool was prepared on other data")
        targets = shadow_targets(pool, predict(model, data.val, runtime=data.runtime), data, cfg)
    elif cfg.without_pool:
        targets = _fallback_targets(model, data, y)
    else:
        raise InputError("shadow_matching needs a prepared pool: run `unlearnkit prepare` on this model's data and "
                         "pass its folder as --set method.shadow_matching.pool=PATH")
    draw = torch.randn(len(y), generator=generator(seed, "draw"), dtype=torch.float64) * cfg.spread_scale
    aim = targets.location + targets.spread * draw
    goal = target_log_probs(targets, y, aim).to(data.runtime.device)
    student = clone(model)
    teacher = model
    per_step = (FORWARD + BACKWARD) * (cfg.batch_size + cfg.forget_batch_size) + FORWARD * cfg.batch_size
    # Both ways of finding targets predicted the validation split once.
    total = cfg.budget * retrain_compute(len(data.retain), len(data.val), recipe) - FORWARD * len(data.val)
    left = remaining_compute()
    if left is not None:
        total = min(total, left)
    head_keep, share = 0, 0.0
    if cfg.head_fit > 0:
        # The head fit may take up to half the run's budget: fewer retain examples where head_retain
        # would take more (a short recipe's retrain is cheap), none (no head fit) where S alone would.
        share = head_share(model, data)  # one one-example pass
        total -= FORWARD
        per = head_fit_passes(share)
        head_keep = max(0, min(cfg.head_retain, len(data.retain), int(total / 2 // per) - len(data.forget)))
        if head_keep:
            total -= per * (head_keep + len(data.forget))
    steps = max(0, int(total // per_step))  # none where the budget cannot pay for one step
    opt = make_optimizer(student.parameters(), replace(recipe, lr=cfg.lr_scale * recipe.lr))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    retain = cycled(data, data.retain, cfg.batch_size, seed, "retain")
    forget = cycled(data, _by_position(data.forget), cfg.forget_batch_size, seed, "forget")
    teacher_was = teacher.training
    teacher.eval()
    student.train()
    try:
        for _ in range(steps):
            (xr, _), (xf, i_f) = next(retain), next(forget)
            with torch.no_grad(), data.runtime.autocast():
                t_r = teacher(xr).float()
            with data.runtime.autocast():
                logits = student(torch.cat([xr, xf])).float()
            s_r, s_f = logits[: len(xr)], logits[len(xr):]
            loss_r = F.kl_div(F.log_softmax(s_r, 1), F.log_softmax(t_r, 1), reduction="batchmean", log_target=True)
            loss_f = F.kl_div(F.log_softmax(s_f, 1), goal[i_f], reduction="batchmean", log_target=True)
            loss = loss_r + cfg.forget_weight * loss_f
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    finally:
        teacher.train(teacher_was)
    if head_keep:
        fit_head(student, data, y, aim, cfg, seed, retain=head_keep, share=share)
    return student
