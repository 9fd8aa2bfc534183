"""Every registered model builds, runs, declares its parts; resnet18 takes torchvision state dicts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unlearnkit.errors import InputError
from unlearnkit.models import MODELS, ModelSpec, build_model, model_parts
from unlearnkit.models.resnet import ResNet18Config


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("channels", [1, 3])
def test_every_model_runs_and_declares_its_parts(name, channels):
    model = build_model(ModelSpec(name, 7, channels, 16))
    out = model(torch.randn(2, channels, 16, 16))
    assert out.shape == (2, 7)
    parts = model_parts(model)
    assert isinstance(parts.classifier, nn.Linear) and parts.classifier.out_features == 7
    assert parts.blocks[-1] is parts.classifier
    assert isinstance(parts.stem, (nn.Conv2d, nn.Linear))
    names = {id(m) for m in model.modules()}
    assert all(id(b) in names for b in parts.blocks)


def torchvision_resnet18_shapes(num_classes: int = 1000) -> dict[str, tuple[int, ...]]:
    """The state-dict keys and shapes of torchvision.models.resnet18(), written out by hand."""
    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7)}

    def bn(prefix: str, c: int) -> None:
        for k in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{k}"] = (c,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    bn("bn1", 64)
    cin = 64
    for layer, cout in zip(range(1, 5), (64, 128, 256, 512)):
        for block in range(2):
            p = f"layer{layer}.{block}"
            first_in = cin if block == 0 else cout
            shapes[f"{p}.conv1.weight"] = (cout, first_in, 3, 3)
            bn(f"{p}.bn1", cout)
            shapes[f"{p}.conv2.weight"] = (cout, cout, 3, 3)
            bn(f"{p}.bn2", cout)
            if block == 0 and layer > 1:
                shapes[f"{p}.downsample.0.weight"] = (cout, cin, 1, 1)
                bn(f"{p}.downsample.1", cout)
        cin = cout
    shapes["fc.weight"] = (num_classes, 512)
    shapes["fc.bias"] = (num_classes,)
    return shapes


def test_resnet18_loads_a_torchvision_state_dict_strictly():
    shapes = torchvision_resnet18_shapes()
    assert len(shapes) == 122
    state = {k: torch.randn(s) if s else torch.tensor(0) for k, s in shapes.items()}
    model = build_model(ModelSpec("resnet18", 1000, 3, 224, ResNet18Config(stem="imagenet")))
    model.load_state_dict(state, strict=True)
    assert torch.equal(model.layer3[0].downsample[0].weight, state["layer3.0.downsample.0.weight"])


def test_cifar_stem_keeps_torchvision_names():
    imagenet = build_model(ModelSpec("resnet18", 10, 3, 32, ResNet18Config(stem="imagenet"))).state_dict()
    cifar = build_model(ModelSpec("resnet18", 10, 3, 32, ResNet18Config(stem="cifar"))).state_dict()
    assert imagenet.keys() == cifar.keys()
    assert cifar["conv1.weight"].shape == (64, 3, 3, 3)


def test_bad_model_inputs_are_named():
    with pytest.raises(InputError, match="unknown model 'resnet81'.*Did you mean 'resnet18'"):
        build_model(ModelSpec("resnet81", 10, 3, 32))
    with pytest.raises(InputError, match="num_classes"):
        ModelSpec("small_cnn", 1, 3, 32)
    with pytest.raises(InputError, match="in_channels"):
        ModelSpec("small_cnn", 10, 4, 32)
