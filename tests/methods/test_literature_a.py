"""Method-specific properties of neggrad, neggrad_plus, random_label, l1_sparse, salun, scrub, bad_teacher."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from conftest import assert_equals_plain_sgd
from unlearnkit.methods import clone, method_config, run_method
from unlearnkit.methods.base import generator
from unlearnkit.methods.common import steps_per_epoch
from unlearnkit.methods.salun import saliency_mask


def norm_buffers(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if "running_" in k}



def test_salun_mask_keeps_the_most_salient_half_of_all_entries(tiny_original):
    original, data = tiny_original
    model = clone(original)
    masks = saliency_mask(model, data, 0.5, 256)
    total = sum(p.numel() for p in model.parameters())
    kept = sum(int(m.sum()) for m in masks)
    assert kept == int(0.5 * total)

    model.eval()
    model.zero_grad()
    F.cross_entropy(model(data.forget.inputs(slice(None))), data.forget.y, reduction="sum").backward()
    sal = torch.cat([p.grad.abs().flatten() for p in model.parameters()])
    chosen = torch.cat([m.flatten() for m in masks])
    # One threshold over the whole model, not per layer.
    assert sal[chosen].min() >= sal[~chosen].max() - 1e-6 * sal.max()
    assert any(m.float().mean() not in (0.0, 0.5, 1.0) for m in masks)


def test_salun_masked_out_weights_stay_exactly_at_their_original_values(tiny_original):
    original, data = tiny_original
    cfg = method_config("salun", {"epochs": 2, "lr": 0.05})
    masks = saliency_mask(clone(original), data, cfg.mask_ratio, cfg.batch_size)
    out = run_method("salun", original, data, cfg, seed=0).model
    moved = 0
    for p0, p1, m in zip(original.parameters(), out.parameters(), masks):
        assert torch.equal(p1[~m], p0[~m])
        moved += int((p1[m] != p0[m]).sum())
    assert moved > 0


def test_neggrad_untracked_norm_stats_stay_put_and_tracked_ones_move(tiny_original):
    original, data = tiny_original
    before = norm_buffers(original)
    cfg = method_config("neggrad", {"track_forget_norm_stats": False})
    after = norm_buffers(run_method("neggrad", original, data, cfg, seed=0).model)
    assert before and all(torch.equal(before[k], after[k]) for k in before)
    tracked = norm_buffers(run_method("neggrad", original, data, method_config("neggrad"), seed=0).model)
    assert not all(torch.equal(before[k], tracked[k]) for k in before)


def test_neggrad_ascends_the_forget_loss(tiny_original):
    original, data = tiny_original
    cfg = method_config("neggrad", {"lr": 1e-3, "track_forget_norm_stats": False})
    out = run_method("neggrad", original, data, cfg, seed=0).model.eval()
    x, y = data.forget.inputs(slice(None)), data.forget.y
    with torch.no_grad():
        assert F.cross_entropy(out(x), y) > F.cross_entropy(original.eval()(x), y)


def test_neggrad_plus_with_alpha_one_and_no_pull_is_plain_sgd_on_retain_in_eval_mode(tiny_original):
    original, data = tiny_original
    cfg = method_config("neggrad_plus", {"epochs": 2, "alpha": 1.0, "l2_pull": 0.0, "momentum": 0.9})
    out = run_method("neggrad_plus", original, data, cfg, seed=3).model
    batches = (b for epoch in range(cfg.epochs) for b in data.batches(data.retain, cfg.batch_size, generator(3, "retain", epoch)))
    assert_equals_plain_sgd(out, original, batches, lr=cfg.lr, momentum=cfg.momentum, weight_decay=0.0, eval_mode=True)


def test_neggrad_plus_runs_in_eval_mode_and_pulls_towards_the_original(tiny_original):
    original, data = tiny_original
    before = norm_buffers(original)
    free = run_method("neggrad_plus", original, data, method_config("neggrad_plus", {"epochs": 2, "l2_pull": 0.0}), seed=0).model
    after = norm_buffers(free)
    assert before and all(torch.equal(before[k], after[k]) for k in before)  # batch norm never tracks

    pulled = run_method("neggrad_plus", original, data, method_config("neggrad_plus", {"epochs": 2, "l2_pull": 20.0}), seed=0).model

    def distance(model):
        return sum(float(((p.detach() - q.detach()) ** 2).sum()) for p, q in zip(model.parameters(), original.parameters()))

    assert 0 < distance(pulled) < distance(free)


def test_scrub_runs_max_passes_only_in_the_first_msteps_epochs(tiny_original):
    original, data = tiny_original
    cfg = method_config("scrub", {"epochs": 3, "msteps": 2})
    steps = run_method("scrub", original, data, cfg, seed=0).cost.steps
    per_min = steps_per_epoch(data.retain, 128)
    per_max = steps_per_epoch(data.forget, 32)
    assert steps == 3 * per_min + 2 * per_max


def test_scrub_without_max_passes_or_distillation_is_cross_entropy_on_retain(tiny_original):
    original, data = tiny_original
    cfg = method_config("scrub", {"epochs": 1, "msteps": 0, "gamma": 1.0, "alpha": 0.0})
    out = run_method("scrub", original, data, cfg, seed=0).model
    assert_equals_plain_sgd(out, original, data.batches(data.retain, 128, generator(0, "min", 0)),
                            lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def test_random_label_passes_over_forget_then_retain(tiny_original):
    original, data = tiny_original
    cfg = method_config("random_label", {"epochs": 2, "batch_size": 8})
    steps = run_method("random_label", original, data, cfg, seed=0).cost.steps
    assert steps == 2 * (steps_per_epoch(data.forget, 8) + steps_per_epoch(data.retain, 8))


def test_l1_sparse_without_penalty_is_finetune_and_the_penalty_shrinks_weights(tiny_original):
    original, data = tiny_original
    shared = {"epochs": 2, "lr": 0.01, "batch_size": 16}
    plain_cfg = method_config("l1_sparse", {**shared, "alpha": 0.0})
    plain = run_method("l1_sparse", original, data, plain_cfg, seed=0).model
    ft = run_method("finetune", original, data, method_config("finetune", shared), seed=0).model
    for a, b in zip(plain.parameters(), ft.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    sparse_cfg = method_config("l1_sparse", {**shared, "alpha": 1e-2})
    sparse = run_method("l1_sparse", original, data, sparse_cfg, seed=0).model

    def l1(m):
        return sum(float(p.detach().abs().sum()) for p in m.parameters())

    assert l1(sparse) < l1(plain)


def test_bad_teacher_trains_on_forget_plus_a_fraction_of_retain(tiny_original):
    original, data = tiny_original
    cfg = method_config("bad_teacher", {"epochs": 2, "batch_size": 8})
    steps = run_method("bad_teacher", original, data, cfg, seed=0).cost.steps
    n = len(data.forget) + round(0.3 * len(data.retain))
    assert steps == 2 * -(-n // 8)


def test_bad_teacher_moves_forget_outputs_towards_the_incompetent_teacher(tiny_original):
    from unlearnkit.engine.seeding import derive_seed
    from unlearnkit.engine.train import init_model

    original, data = tiny_original
    cfg = method_config("bad_teacher", {"epochs": 5, "lr": 1e-2, "batch_size": 8})
    out = run_method("bad_teacher", original, data, cfg, seed=0).model.eval()
    bad = init_model(data.spec, derive_seed(0, "incompetent")).eval()
    x = data.forget.inputs(slice(None))

    def kl(student):
        with torch.no_grad():
            log_p = F.log_softmax(student(x), 1)
            return F.kl_div(log_p, F.log_softmax(bad(x), 1), reduction="batchmean", log_target=True)

    assert kl(out) < kl(copy.deepcopy(original).eval())
