"""The contract every registered method keeps, checked over the whole registry.

Special cases live on a method's registration (``METHODS.register(..., deterministic=True)`` for a
method with no randomness; ``tiny=...`` for the tiny config), never as name lists here.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import re
import time

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from conftest import make_tiny
from unlearnkit.errors import InputError
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

    taken = []  # every optimizer step of the run, counted here independently of the method's cost
    handle = register_optimizer_step_post_hook(lambda *_: taken.append(1))
    start = time.perf_counter()
    try:
        first = run_method(name, original, data, cfg, seed=0)
    finally:
        handle.remove()
    wall = time.perf_counter() - start
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
    assert first.cost.steps == len(taken), f"{name}'s cost counts {first.cost.steps} optimizer steps; it took {len(taken)}"
    assert 0 < first.cost.seconds <= wall

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


def _impossible_values(config: type) -> dict[str, object]:
    """Values no method can run with, for the fields of ``config`` that every method names alike."""
    bad: dict[str, object] = {}
    for f in dataclasses.fields(config):
        if f.name == "lr" or f.name.endswith("_lr"):
            bad[f.name] = -0.01
        elif f.name == "batch_size" or f.name.endswith("_batch_size"):
            bad[f.name] = 0
        elif f.name == "epochs" and f.type in (int, "int"):
            bad[f.name] = -1
        elif f.name.endswith("fraction"):
            bad[f.name] = 1.5
    return bad


@pytest.mark.parametrize("name", METHODS.names())
def test_impossible_values_are_refused_when_the_config_is_built(name):
    config = METHODS.entry(name).config
    bad = _impossible_values(config)
    assert bad, f"{name}'s config has no learning rate, batch size, epochs or fraction to check"
    for field, value in bad.items():
        # From user input (--set, a config file) and built in code: the same refusal, naming the field and value.
        for build in (lambda: method_config(name, {field: str(value)}), lambda: config(**{field: value})):
            with pytest.raises(InputError, match=rf"method\.{name}\.{field}\b.*{re.escape(str(value))}"):
                build()
    floats = [f.name for f in dataclasses.fields(config) if f.type in (float, "float")]
    for field in floats:
        with pytest.raises(InputError, match=rf"{field}\b"):
            config(**{field: math.nan})
