"""Properties the specs demand of ssd, fisher, boundary_shrink, cf_k, eu_k and gan."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from conftest import make_tiny
from unlearnkit.errors import InputError
from unlearnkit.methods import method_config, run_method
from unlearnkit.methods.base import clone, generator
from unlearnkit.methods.boundary_shrink import fgsm
from unlearnkit.methods.cf_k import last_stages
from unlearnkit.methods.fisher import diagonal_fisher
from unlearnkit.methods.gan import confidences
from unlearnkit.methods.ssd import concat, importances
from unlearnkit.models.base import model_parts, reset_parameters


def block_keys(model: torch.nn.Module, k: int) -> set[str]:
    """State-dict keys of the last k trunk stages of ``model`` and its classifier."""
    names = {id(m): n for n, m in model.named_modules()}
    keys = set()
    for block in last_stages(model, k):
        prefix = names[id(block)]
        keys |= {f"{prefix}.{key}" for key in block.state_dict()}
    return keys


def test_ssd_dampens_exactly_where_forget_importance_dominates(tiny_original):
    original, data = tiny_original
    cfg = method_config("ssd", {"alpha": 2.0, "dampening": 0.5})
    out = run_method("ssd", original, data, cfg, seed=0).model
    probe = clone(original)
    i_s = importances(probe, data, data.forget, cfg.batch_size)
    i_d = importances(probe, data, concat(data.retain, data.forget), cfg.batch_size)
    selected_any = False
    for p0, p1, s, d in zip(original.parameters(), out.parameters(), i_s, i_d):
        selected = s > cfg.alpha * d
        selected_any |= bool(selected.any())
        assert torch.equal(p1[~selected], p0[~selected])
        factor = (cfg.dampening * d / s).clamp(max=1.0)
        torch.testing.assert_close(p1[selected], p0[selected] * factor[selected])
        assert (p1.abs() <= p0.abs()).all()
    assert selected_any, "the test should select some weights"


@pytest.mark.parametrize("model_name", ["test_small_cnn", "test_mlp"])
def test_ssd_importances_are_mean_squared_per_example_gradients_in_fp32(model_name, tiny_dataset, tiny_forget):
    original, data = make_tiny(tiny_dataset, tiny_forget, model_name)
    few = data.retain.subset(torch.arange(7))
    model = copy.deepcopy(original).eval()
    params = list(model.parameters())
    expected = [torch.zeros_like(p) for p in params]
    for i in range(len(few)):
        loss = F.cross_entropy(model(few.inputs(slice(i, i + 1))), few.y[i : i + 1])
        for e, g in zip(expected, torch.autograd.grad(loss, params)):
            e.add_(g * g)
    expected = [e / len(few) for e in expected]
    bf16 = dataclasses.replace(data, runtime=dataclasses.replace(data.runtime, bf16=True))
    # Per example, so independent of the batch size; fp32, so independent of the run's autocast.
    for d, batch_size in ((data, 3), (data, 7), (bf16, 2)):
        got = importances(clone(original), d, few, batch_size)
        for g, e in zip(got, expected):
            torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-10)


def test_ssd_buffers_untouched(tiny_original):
    original, data = tiny_original
    out = run_method("ssd", original, data, method_config("ssd"), seed=0).model
    buffers = dict(out.named_buffers())
    for name, b in original.named_buffers():
        assert torch.equal(buffers[name], b)


@pytest.mark.parametrize("model_name", ["test_small_cnn", "test_mlp"])
def test_fisher_matches_a_per_example_per_class_loop(model_name, tiny_dataset, tiny_forget):
    original, data = make_tiny(tiny_dataset, tiny_forget, model_name)
    few = data.retain.subset(torch.arange(5))
    fim = diagonal_fisher(clone(original), data, few, batch_size=3)
    model = copy.deepcopy(original).eval()
    params = list(model.parameters())
    expected = [torch.zeros_like(p) for p in params]
    for i in range(len(few)):
        x = few.inputs(slice(i, i + 1))
        log_p = F.log_softmax(model(x), dim=1)[0]
        for c in range(data.num_classes):
            grads = torch.autograd.grad(log_p[c], params, retain_graph=True)
            for e, g in zip(expected, grads):
                e.add_(log_p[c].exp().detach() * g * g)
    for f, e in zip(fim, expected):
        torch.testing.assert_close(f, e / len(few), rtol=1e-4, atol=1e-9)


def test_fisher_noise_is_scaled_by_the_inverse_fisher(tiny_original):
    original, data = tiny_original
    same = run_method("fisher", original, data, method_config("fisher", {"alpha": 0.0}), seed=0).model
    for p0, p1 in zip(original.parameters(), same.parameters()):
        assert torch.equal(p0, p1)
    cfg = method_config("fisher", {"alpha": 1e-4})
    noisy = run_method("fisher", original, data, cfg, seed=0).model
    max_std = (cfg.alpha * cfg.max_inverse) ** 0.5
    for p0, p1 in zip(original.parameters(), noisy.parameters()):
        assert (p1 - p0).abs().max() <= 6 * max_std


def test_fgsm_stays_within_the_pixel_bound_and_on_the_8bit_grid(tiny_original):
    original, data = tiny_original
    x, y = data.forget.inputs(slice(0, 8)), data.forget.y[:8]
    mean, std = data.forget.mean.view(1, -1, 1, 1), data.forget.std.view(1, -1, 1, 1)
    attacked = copy.deepcopy(original).eval()
    for p in attacked.parameters():
        p.grad = None
    adv = fgsm(attacked, x, y, 0.1, data.forget.mean, data.forget.std)
    pixels, adv_pixels = x * std + mean, adv * std + mean
    assert (adv_pixels - pixels).abs().max() <= 0.1 + 1e-5
    assert (adv_pixels - pixels).abs().max() >= 0.09  # the step is taken (25/255)
    assert adv_pixels.min() >= -1e-5 and adv_pixels.max() <= 1 + 1e-5
    levels = adv_pixels * 255
    torch.testing.assert_close(levels, levels.round(), atol=1e-3, rtol=0)
    assert all(p.grad is None for p in attacked.parameters())


def test_boundary_shrink_frozen_norm_stats_keep_buffers(tiny_original):
    original, data = tiny_original
    cfg = method_config("boundary_shrink", {"epochs": 1, "freeze_norm_stats": True})
    out = run_method("boundary_shrink", original, data, cfg, seed=0).model
    buffers = dict(out.named_buffers())
    for name, b in original.named_buffers():
        assert torch.equal(buffers[name], b)


@pytest.mark.parametrize(
    "model_name, k", [("test_small_cnn", 1), ("test_small_cnn", 2), ("test_resnet18", 1), ("test_resnet18", 2), ("test_mlp", 1)]
)
def test_cf_k_changes_only_the_last_k_stages_and_the_head(model_name, k, tiny_dataset, tiny_forget):
    original, data = make_tiny(tiny_dataset, tiny_forget, model_name)
    out = run_method("cf_k", original, data, method_config("cf_k", {"k": k, "epochs": 1}), seed=0).model
    trained = block_keys(original, k)
    before, after = original.state_dict(), out.state_dict()
    for key in before:
        if key not in trained:
            assert torch.equal(before[key], after[key]), f"cf_k k={k} changed {key} outside the last k stages"
    names = {id(m): n for n, m in original.named_modules()}
    parts = model_parts(original)
    head = f"{names[id(parts.classifier)]}.weight"
    assert not torch.equal(before[head], after[head]), "the classifier should have been trained"
    # k = 1 is the last trunk stage with the head (as in the references), not the head alone.
    stage = names[id(parts.blocks[-2])]
    assert any(not torch.equal(before[key], after[key]) for key in before if key.startswith(f"{stage}."))


@pytest.mark.parametrize("model_name", ["test_small_cnn", "test_resnet18", "test_mlp"])
def test_cf_k_head_only_trains_the_classifier_alone(model_name, tiny_dataset, tiny_forget):
    original, data = make_tiny(tiny_dataset, tiny_forget, model_name)
    out = run_method("cf_k", original, data, method_config("cf_k", {"head_only": True, "epochs": 1}), seed=0).model
    names = {id(m): n for n, m in original.named_modules()}
    head = names[id(model_parts(original).classifier)]
    before, after = original.state_dict(), out.state_dict()
    changed = {key for key in before if not torch.equal(before[key], after[key])}
    assert changed and all(key.startswith(f"{head}.") for key in changed), changed


@pytest.mark.parametrize("model_name", ["test_small_cnn", "test_resnet18"])
@pytest.mark.parametrize("k", [1, 2])
def test_eu_k_reinitialises_the_last_k_stages_and_the_head(model_name, k, tiny_dataset, tiny_forget):
    original, data = make_tiny(tiny_dataset, tiny_forget, model_name)
    fresh = run_method("eu_k", original, data, method_config("eu_k", {"k": k, "epochs": 0}), seed=3).model
    expected = copy.deepcopy(original)
    reinit = generator(3, "reinit")
    for block in last_stages(expected, k):
        reset_parameters(block, reinit)
    assert all(torch.equal(a, b) for a, b in zip(expected.state_dict().values(), fresh.state_dict().values()))
    reset = block_keys(original, k)
    assert any(not torch.equal(original.state_dict()[key], fresh.state_dict()[key]) for key in reset)

    trained = run_method("eu_k", original, data, method_config("eu_k", {"k": k, "epochs": 1}), seed=3).model
    for key, value in original.state_dict().items():
        if key not in reset:
            assert torch.equal(value, trained.state_dict()[key]), f"eu_k changed {key} outside the last k stages"


def test_k_out_of_range_raises(tiny_original):
    original, data = tiny_original
    stages = len(model_parts(original).blocks) - 1
    for name in ("cf_k", "eu_k"):
        with pytest.raises(InputError, match=rf"method\.{name}\.k = 0"):  # refused when the config is built
            method_config(name, {"k": 0, "epochs": 1})
        # How many stages a model has is known only once it is built.
        with pytest.raises(InputError, match="k must be between 1"):
            run_method(name, original, data, method_config(name, {"k": stages + 1, "epochs": 1}), seed=0)


def test_gan_confidences_are_sorted_and_label_free():
    logits = torch.randn(4, 6)
    conf = confidences(logits)
    assert (conf[:, :-1] >= conf[:, 1:]).all()
    torch.testing.assert_close(conf.sum(1), torch.ones(4))
    torch.testing.assert_close(confidences(logits[:, torch.randperm(6)]), conf)
