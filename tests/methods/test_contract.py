"""The contract every registered method keeps, checked over the whole registry.

Special cases live on a method's registration (``METHODS.register(..., deterministic=True)`` for a
method with no randomness; ``tiny=...`` for the tiny config), never as name lists here.
"""

from __future__ import annotations

import copy
import inspect

import pytest
import torch

from conftest import make_tiny
from unlearnkit.methods import METHODS, method_config, run_method
from unlearnkit.methods.base import UnlearnData


def tiny_config(name: str):
    """The method's tiny test config: its registered ``tiny`` overrides on top of the defaults."""
    return method_config(name, METHODS.entry(name).meta.get("tiny", {}))


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", METHODS.names())
def test_method_contract(name, tiny_original, tiny_dataset):
    original, data = tiny_original
    before = state(original)
    cfg = tiny_config(name)

    first = run_method(name, original, data, cfg, seed=0)
    assert same(state(original), before), f"{name} modified its input model"
    assert type(first.model) is type(original)
    assert first.model.state_dict().keys() == original.state_dict().keys()
    for k, v in first.model.state_dict().items():
        assert v.shape == before[k].shape, f"{name} changed the shape of {k}"
    x = data.forget.inputs(slice(0, 8))
    with torch.no_grad():
        out = first.model(x)
    assert out.shape == (len(x), data.num_classes)
    assert torch.isfinite(out).all(), f"{name} produced non-finite outputs"
    assert first.cost.seconds > 0

    again = run_method(name, original, data, cfg, seed=0)
    assert same(state(again.model), state(first.model)), f"{name} is not reproducible under the same seed"
    if not METHODS.entry(name).meta.get("deterministic", False):
        other = run_method(name, original, data, cfg, seed=1)
        assert not same(state(other.model), state(first.model)), f"{name} ignores its seed"


def test_methods_never_see_the_test_split():
    fields = {f for f in UnlearnData.__dataclass_fields__}
    assert fields == {"retain", "forget", "val", "spec", "train_config", "runtime"}


@pytest.mark.parametrize("model_name", ["test_resnet18", "test_mlp"])
@pytest.mark.parametrize("name", METHODS.names())
def test_method_runs_on_every_architecture(name, model_name, tiny_dataset, tiny_forget):
    original, data = make_tiny(tiny_dataset, tiny_forget, model_name)
    before = copy.deepcopy(original.state_dict())
    result = run_method(name, original, data, tiny_config(name), seed=0)
    assert same(state(original), before)
    with torch.no_grad():
        assert torch.isfinite(result.model(data.retain.inputs(slice(0, 4)))).all()


@pytest.mark.parametrize("name", METHODS.names())
def test_method_is_documented(name):
    entry = METHODS.entry(name)
    doc = inspect.cleandoc(entry.obj.__doc__ or "")
    assert entry.summary and entry.meta.get("reference"), f"{name} needs a summary line and a reference"
    assert "References:" in doc, f"{name}'s docstring has no References section"
    tail = doc[doc.rfind("References:"):].splitlines()[1:]
    assert tail and all(not line.strip() or line.startswith(" ") for line in tail), f"{name}: References must come last"
