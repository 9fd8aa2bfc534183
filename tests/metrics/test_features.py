"""Penultimate features found generically, and the re-headed outputs read from them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from conftest import make_tiny, tiny_setting
from unlearnkit.engine.features import features_and_logits, penultimate
from unlearnkit.engine.train import predict
from unlearnkit.errors import InputError
from unlearnkit.methods import method_config, run_method
from unlearnkit.metrics.features import ABSENT_CLASS_LOGIT, reheaded_logits
from unlearnkit.models import build_model
from unlearnkit.models.base import model_parts


@pytest.mark.parametrize("model_name", ["test_small_cnn", "test_mlp", "test_resnet18"])
def test_penultimate_is_the_input_of_the_registered_models_head(model_name):
    setting = tiny_setting(model_name)
    torch.manual_seed(0)
    model = build_model(setting.spec).eval()
    data = setting.sets.retain_probe
    head = model_parts(model).classifier
    seen = []
    handle = head.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    logits = predict(model, data, batch_size=16)
    handle.remove()
    features = penultimate(model, data, batch_size=16)
    assert features.dtype == torch.float32 and features.shape == (len(data), head.in_features)
    assert torch.equal(features, torch.cat(seen))
    # The logits come from the same pass, bit for bit predict()'s.
    assert torch.equal(features_and_logits(model, data, batch_size=16)[1], logits)


class OddHead(nn.Module):
    """A head named neither fc nor classifier, with a class-wide Linear called before it."""

    def __init__(self, inputs: int, classes: int):
        super().__init__()
        self.embed = nn.Linear(inputs, 8)
        self.project = nn.Linear(8, classes)  # as wide as the output, but not the head
        self.mix = nn.Linear(classes, 6)
        self.decide = nn.Linear(6, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.mix(torch.relu(self.project(self.embed(torch.flatten(x, 1))))))
        return self.decide(h)


class ConvHead(nn.Module):
    """A classifier whose head is a 1x1 convolution: no Linear produces the classes."""

    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.body = nn.Conv2d(channels, 5, 3, padding=1)
        self.out = nn.Conv2d(5, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.body(x))).mean(dim=(2, 3))


def test_a_user_model_with_an_unusual_head_name_gives_the_last_class_wide_linear_input():
    setting = tiny_setting()
    spec, data = setting.spec, setting.sets.forget
    torch.manual_seed(0)
    model = OddHead(spec.in_channels * spec.image_size**2, spec.num_classes)
    seen = []
    model.decide.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    features = penultimate(model, data)
    assert features.shape == (len(data), 6) and torch.equal(features, torch.cat(seen))
    # Naming the module gives the same features, and can pick another one.
    assert torch.equal(penultimate(model, data, head="decide"), features)
    assert penultimate(model, data, head="mix").shape == (len(data), spec.num_classes)


def test_a_model_without_a_linear_head_is_refused_by_name():
    setting = tiny_setting()
    model = ConvHead(setting.spec.in_channels, setting.spec.num_classes)
    with pytest.raises(InputError, match="ConvHead: no nn.Linear with 10 outputs"):
        penultimate(model, setting.sets.forget)
    assert penultimate(model, setting.sets.forget, head="out").shape == (len(setting.sets.forget), 5 * 16 * 16)
    with pytest.raises(InputError, match="ConvHead has no module 'head'"):
        penultimate(model, setting.sets.forget, head="head")


def _reheaded(model, setting):
    sets = setting.sets
    probe, forget, test = (penultimate(model, s) for s in (sets.retain_probe, sets.forget, sets.test))
    return probe, reheaded_logits(probe.numpy(), sets.retain_probe.y.numpy(), setting.spec.num_classes,
                                  forget.numpy(), test.numpy())


def test_a_head_only_fine_tune_keeps_the_originals_features_and_re_headed_outputs(tiny_dataset, tiny_forget):
    original, data = make_tiny(tiny_dataset, tiny_forget)
    setting = tiny_setting()
    head_only = run_method("cf_k", original, data, method_config("cf_k", {"head_only": True, "epochs": 2, "lr": 0.1}),
                           seed=0).model
    # Its outputs moved (the head was trained), its features and so its re-headed outputs did not.
    assert not torch.equal(predict(head_only, setting.sets.forget), predict(original, setting.sets.forget))
    before, (forget_before, test_before) = _reheaded(original, setting)
    after, (forget_after, test_after) = _reheaded(head_only, setting)
    assert torch.equal(before, after)
    np.testing.assert_array_equal(forget_after, forget_before)
    np.testing.assert_array_equal(test_after, test_before)
    # A model that trained its last stage too has other features.
    deeper = run_method("cf_k", original, data, method_config("cf_k", {"k": 1, "epochs": 2, "lr": 0.1}), seed=0).model
    assert not torch.equal(penultimate(deeper, setting.sets.retain_probe), before)


def test_reheaded_logits_fit_a_deterministic_multinomial_head():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (3, 4))
    y = np.repeat([0, 1, 3], 30)  # class 2 has no probe example
    x = (centres[np.repeat([0, 1, 2], 30)] + rng.normal(0, 1, (90, 4))) * 5 + 100  # off-centre and spread: standardised
    on_probe, _ = reheaded_logits(x, y, 4, x, x[:5] + 1)
    assert on_probe.shape == (90, 4) and on_probe.dtype == np.float32
    assert (on_probe[:, 2] == ABSENT_CLASS_LOGIT).all()
    assert (on_probe.argmax(1) == y).mean() > 0.8
    again, _ = reheaded_logits(x, y, 4, x, x[:5] + 1)
    np.testing.assert_array_equal(again, on_probe)
    # Two classes: one log-odds split into a pair whose softmax is the fitted probability.
    (binary,) = reheaded_logits(x[:60], y[:60], 2, x[:60])
    assert np.allclose(binary.sum(1), 0, atol=1e-5) and (binary.argmax(1) == y[:60]).mean() > 0.8


@pytest.mark.parametrize("bad, match", [
    (lambda x, y: (x[:, :1].ravel(), y), r"probe features \[P, d\]"),
    (lambda x, y: (np.where(x > 0, np.nan, x), y), "NaN or inf"),
    (lambda x, y: (x, y + 5), r"integers in \[0, 4\)"),
    (lambda x, y: (x, np.zeros_like(y)), "at least two classes"),
])
def test_reheaded_logits_refuse_bad_input(bad, match):
    x, y = np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2
    x, y = bad(x, y)
    with pytest.raises(InputError, match=match):
        reheaded_logits(x, y, 4, np.zeros((2, 3)))
