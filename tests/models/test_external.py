"""A user's factory as a model (models/external.py) and the parts found from a forward pass (models/parts.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from unlearnkit.config import to_dict
from unlearnkit.engine.checkpoint import load_checkpoint, save_checkpoint, spec_from_dict, spec_to_dict
from unlearnkit.errors import InputError
from unlearnkit.models import MODELS, ModelSpec, build_model, model_parts
from unlearnkit.models.parts import discover_parts
from unlearnkit.runner.setting import make_setting_config, setting_from_dict, setting_to_dict

EXAMPLES = Path(__file__).parents[2] / "examples" / "architectures.py"


def names(model: nn.Module) -> dict[int, str]:
    return {id(m): n for n, m in model.named_modules()}


def test_a_factory_file_builds_with_its_settings():
    spec = ModelSpec(f"{EXAMPLES}:mobilenet", 7, 1, 16)
    assert to_dict(spec.config) == {"width": 16, "dropout": 0.0}
    wide = ModelSpec(spec.name, 7, 1, 16, MODELS.entry(spec.name).config(width=8))
    model = build_model(wide)
    assert model(torch.zeros(2, 1, 16, 16)).shape == (2, 7)
    assert model.features[0].out_channels == 8
    assert spec_from_dict(spec_to_dict(wide)) == wide


def test_a_factory_module_is_imported_from_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "my_nets.py").write_text(
        "from torch import nn\n"
        "def wide(num_classes, in_channels: int = 3, hidden: int = 12):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 16 * 16, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))\n")
    monkeypatch.chdir(tmp_path)
    cfg = make_setting_config(model="my_nets:wide", model_options={"hidden": "5"}, forget=None)
    assert to_dict(cfg.model_config) == {"hidden": 5}
    assert setting_from_dict(setting_to_dict(cfg)) == cfg
    spec = ModelSpec("my_nets:wide", 3, 3, 16, cfg.model_config)
    parts = model_parts(build_model(spec), spec)
    assert parts.classifier.out_features == 3 and parts.stem.out_features == 5


@pytest.mark.parametrize("text, expected", [
    ("def f(num_classes, depth):\n    pass\n", "parameter 'depth' has no default"),
    ("def f(num_classes, act: object = None):\n    pass\n", "settings must be int, float, bool or str"),
    ("X = 1\n", "has no function 'f'"),
])
def test_a_bad_factory_is_refused_naming_what_is_wrong(tmp_path, text, expected):
    path = tmp_path / "bad.py"
    path.write_text(text)
    with pytest.raises(InputError, match=expected):
        MODELS.entry(f"{path}:f")


def test_a_factory_that_returns_no_module_and_a_missing_file_are_refused(tmp_path):
    path = tmp_path / "none.py"
    path.write_text("def f(num_classes):\n    return 3\n")
    with pytest.raises(InputError, match="returned a int, not a torch.nn.Module"):
        build_model(ModelSpec(f"{path}:f", 3, 3, 16))
    with pytest.raises(InputError, match="does not exist"):
        MODELS.entry(f"{tmp_path}/missing.py:f")
    with pytest.raises(InputError, match="cannot import module 'no_such_module_here'"):
        MODELS.entry("no_such_module_here:f")


def test_an_external_checkpoint_round_trips(tmp_path):
    spec = ModelSpec(f"{EXAMPLES}:odd_head", 4, 3, 16)
    model = build_model(spec).eval()
    save_checkpoint(tmp_path / "m.safetensors", model, spec, {"kind": "original"})
    loaded, saved, _ = load_checkpoint(tmp_path / "m.safetensors")
    assert saved == spec
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


@pytest.mark.parametrize("name", ["small_cnn", "resnet18", "mlp"])
def test_found_parts_agree_with_the_declared_ones(name):
    spec = ModelSpec(name, 10, 3, 16)
    model = build_model(spec)
    declared, found = model.parts(), discover_parts(model, spec)
    assert found.classifier is declared.classifier and found.stem is declared.stem
    assert found.blocks[-1] is declared.classifier


@pytest.mark.parametrize("arch, stem, head, blocks", [
    ("mobilenet", "features.0", "classifier.1", ["features.0+features.1", "features.3", "features.4", "features.5",
                                                 "features.6", "classifier.1"]),
    ("tiny_vit", "patch_embed", "head", ["patch_embed", "blocks.0", "blocks.1", "blocks.2+norm", "head"]),
    ("odd_head", "embed", "decision.to_logits", ["embed", "body.0", "body.1", "body.2", "body.3", "body.4",
                                                 "decision.proj", "decision.to_logits"]),
])
def test_parts_are_found_from_the_forward_pass(arch, stem, head, blocks):
    spec = ModelSpec(f"{EXAMPLES}:{arch}", 10, 3, 16)
    model = build_model(spec)
    parts = model_parts(model, spec)
    n = names(model)
    assert n[id(parts.stem)] == stem and n[id(parts.classifier)] == head
    assert ["+".join(n[id(c)] for c in b) if id(b) not in n else n[id(b)] for b in parts.blocks] == blocks


def test_a_model_without_a_linear_head_says_so():
    class ConvHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 5, 3)

        def forward(self, x):
            return self.conv(x).mean(dim=(2, 3))

    spec = ModelSpec("small_cnn", 5, 3, 16)
    with pytest.raises(InputError, match="no nn.Linear with 5 outputs"):
        discover_parts(ConvHead(), spec)
    with pytest.raises(InputError, match="does not declare its parts"):
        model_parts(ConvHead())
