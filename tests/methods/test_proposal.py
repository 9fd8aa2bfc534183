"""Properties of the proposal's own methods (sachit3022/unlearning): orthogonal_surgery, activation_pruning."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import make_tiny
from unlearnkit.methods import method_config, run_method
from unlearnkit.methods.activation_pruning import masking_sites, pruning_schedule, stage_quantile
from unlearnkit.methods.base import clone, generator
from unlearnkit.methods.common import steps_per_epoch
from unlearnkit.methods.orthogonal_surgery import flat_grad, orthogonal_ascent


def flat_params(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_orthogonal_ascent_is_orthogonal_to_the_retain_gradient_and_ascends_the_forget_loss():
    g_f, g_r = torch.randn(50, dtype=torch.float64), torch.randn(50, dtype=torch.float64)
    step = orthogonal_ascent(g_f, g_r)  # the optimizer subtracts lr * step
    assert abs(float(step @ g_r)) < 1e-10
    assert float(step @ g_f) < 0
    assert torch.equal(orthogonal_ascent(g_f, torch.zeros(50, dtype=torch.float64)), -g_f)


def test_orthogonal_surgery_step_is_the_projected_forget_gradient(tiny_original):
    original, data = tiny_original
    # One full forget batch, no momentum, no repair: the model moves by lr * (g_f - proj_{g_r} g_f).
    overrides = {"forget_passes": 1, "forget_batch_size": 4096, "surgery_momentum": 0.0, "surgery_lr": 1e-2, "epochs": 0}
    cfg = method_config("orthogonal_surgery", overrides)
    out = run_method("orthogonal_surgery", original, data, cfg, seed=0).model

    ref = clone(original)
    x_f, y_f = data.forget.inputs(slice(None)), data.forget.y
    picks = torch.randint(len(data.retain), (len(y_f),), generator=generator(0, "surgery-retain", 0))
    g_f = flat_grad(ref, F.cross_entropy(ref(x_f), y_f))
    g_r = flat_grad(ref, F.cross_entropy(ref(data.retain.inputs(picks)), data.retain.y[picks]))
    expected = flat_params(original) + cfg.surgery_lr * (g_f - (g_f @ g_r) / (g_r @ g_r) * g_r)
    torch.testing.assert_close(flat_params(out), expected, rtol=1e-4, atol=1e-6)


def test_orthogonal_surgery_raises_the_forget_loss_and_counts_its_steps(tiny_original):
    original, data = tiny_original
    cfg = method_config("orthogonal_surgery", {"forget_batch_size": 8, "surgery_lr": 1e-2, "epochs": 2, "batch_size": 32})
    surgery = method_config("orthogonal_surgery", {"forget_batch_size": 8, "surgery_lr": 1e-2, "epochs": 0})
    res = run_method("orthogonal_surgery", original, data, cfg, seed=0)
    assert res.cost.steps == 3 * steps_per_epoch(data.forget, 8) + 2 * steps_per_epoch(data.retain, 32)
    cut = run_method("orthogonal_surgery", original, data, surgery, seed=0).model.eval()
    x, y = data.forget.inputs(slice(None)), data.forget.y
    with torch.no_grad():
        assert F.cross_entropy(cut(x), y) > F.cross_entropy(copy.deepcopy(original).eval()(x), y)


def test_pruning_schedule_spreads_each_batch_once():
    for r, f in ((21, 2), (5, 4), (1, 3), (10, 0), (0, 2), (7, 7)):
        schedule = pruning_schedule(r, f)
        assert len(schedule) == r + f and sum(schedule) == f
    assert pruning_schedule(21, 2) == [n in (0, 12) for n in range(23)]


def test_stage_quantiles_follow_the_reference_and_resample_by_depth():
    cfg = method_config("activation_pruning")
    assert [stage_quantile(s, 4, cfg) for s in (-1, 0, 1, 2, 3)] == [0.99, 0.975, 0.95, 0.925, 0.9]
    assert [stage_quantile(s, 2, cfg) for s in (0, 1)] == [0.975, 0.9]
    assert stage_quantile(0, 1, cfg) == 0.9


def kept_channels(site) -> torch.Tensor:
    """A masking site's kept channels, read back from the weights the method baked its mask into."""
    keep = None
    for layer in site.layers:
        w = layer.weight.detach()
        if site.before_relu:  # weight and bias of the layer before the ReLU are zero on pruned channels
            k = w.reshape(len(w), -1).ne(0).any(1)
            if layer.bias is not None:
                k |= layer.bias.detach().ne(0)
        else:  # the readers' input channels are zero on pruned channels
            k = w.transpose(0, 1).reshape(w.shape[1], -1).ne(0).any(1)
        keep = k if keep is None else keep | k
    return keep


def frozen_norm_statistics(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose batch norms never update their running statistics (momentum 0)."""
    out = copy.deepcopy(model)
    for m in out.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = 0.0
    return out


@pytest.mark.parametrize("model_name", ["test_small_cnn", "test_resnet18", "test_mlp"])
def test_activation_pruning_bakes_its_masks_exactly(model_name, tiny_dataset, tiny_forget):
    original, data = make_tiny(tiny_dataset, tiny_forget, model_name)
    # At lr 0 and with fixed norm statistics, only the masks can change the model.
    start = frozen_norm_statistics(original)
    cfg = method_config("activation_pruning", {"epochs": 1, "prune_epochs": 1, "lr": 0.0, "batch_size": 8})
    out = run_method("activation_pruning", start, data, cfg, seed=0).model
    assert type(out) is type(original) and not any(m._forward_hooks for m in out.modules())

    masks = [kept_channels(site) for site in masking_sites(out)]
    assert any(not bool(m.all()) for m in masks), "the test should prune some channels"
    if model_name == "test_resnet18":
        stage_outputs = [m for site, m in zip(masking_sites(out), masks) if not site.before_relu]
        assert any(not bool(m.all()) for m in stage_outputs)
    # The unpruned model with those masks on its activations computes what the returned model does.
    reference = copy.deepcopy(start).eval()
    for site, keep in zip(masking_sites(reference), masks):
        def hook(_module, _inputs, output, keep=keep):
            return output * keep.view((1, -1) + (1,) * (output.dim() - 2)).to(output.dtype)

        site.module.register_forward_hook(hook)
    x = data.retain.inputs(slice(0, 16))
    with torch.no_grad():
        torch.testing.assert_close(out.eval()(x), reference(x), rtol=1e-5, atol=1e-6)


def test_activation_pruning_prunes_the_channels_most_active_on_the_forget_set(tiny_original):
    original, data = tiny_original
    # One forget batch (all of S) comes first: the stem's mask is read off the original model.
    cfg = method_config("activation_pruning", {"epochs": 1, "prune_epochs": 1, "lr": 0.0, "batch_size": 4096})
    out = run_method("activation_pruning", original, data, cfg, seed=0).model
    model = copy.deepcopy(original).eval()
    seen = {}
    masking_sites(model)[0].module.register_forward_hook(lambda _m, _i, output: seen.setdefault("act", F.relu(output)))
    with torch.no_grad():
        model(data.forget.inputs(slice(None)))
    means = seen["act"].mean(dim=(0, 2, 3))
    expected = means <= torch.quantile(means, cfg.stem_quantile)
    kept = kept_channels(masking_sites(out)[0])
    assert not bool(expected.all())
    assert torch.equal(kept, expected)
