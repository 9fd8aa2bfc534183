"""Every method on three architectures the registry does not know (examples/architectures.py).

The registry's verdict (``methods.requirements.verdict``) is checked against what happens: a method
it says applies runs and returns a working model of the same architecture; one it says does not is
refused by ``run_method`` with the reason, before any work.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import make_tiny
from unlearnkit.errors import InputError
from unlearnkit.methods import METHODS, method_config, run_method
from unlearnkit.methods.activation_pruning import activation_pruning
from unlearnkit.methods.requirements import verdict

EXAMPLES = Path(__file__).parents[2] / "examples" / "architectures.py"
ARCHITECTURES = ("mobilenet", "tiny_vit", "odd_head")
# What the verdict must say on these three, so that a verdict that always says "applies" fails.
NOT_APPLICABLE = {
    "mobilenet": set(),
    "tiny_vit": {"activation_pruning"},
    "odd_head": {"activation_pruning", "scramble_relearn", "transposed"},
}


def external(arch: str) -> str:
    return f"{EXAMPLES}:{arch}"


@pytest.fixture(scope="module", params=ARCHITECTURES)
def arch_original(request, tiny_dataset, tiny_forget):
    original, data = make_tiny(tiny_dataset, tiny_forget, external(request.param))
    return request.param, original, data


def test_the_verdict_on_each_architecture(arch_original):
    arch, original, data = arch_original
    refused = {name for name, reasons in verdict(original, data.spec).items() if reasons}
    assert refused == NOT_APPLICABLE[arch]


@pytest.mark.parametrize("name", METHODS.names())
def test_the_verdict_matches_what_happens(name, arch_original):
    arch, original, data = arch_original
    reasons = verdict(original, data.spec, [name])[name]
    cfg = method_config(name, METHODS.entry(name).meta.get("tiny", {}))
    before = {k: v.clone() for k, v in original.state_dict().items()}
    if reasons:
        with pytest.raises(InputError, match=rf"method {name} does not apply to .*{arch}.*it needs"):
            run_method(name, original, data, cfg, seed=0)
        return
    result = run_method(name, original, data, cfg, seed=0)
    assert type(result.model) is type(original)
    assert all(torch.equal(v, before[k]) for k, v in original.state_dict().items()), f"{name} modified its input"
    x = data.forget.inputs(slice(0, 6))
    with torch.no_grad():
        out = result.model(x)
    assert out.shape == (len(x), data.num_classes) and torch.isfinite(out).all()
    assert result.cost.compute > 0


def test_a_refused_method_really_cannot_run(tiny_dataset, tiny_forget):
    # Not only declared: the method itself finds nothing to work on in a ViT.
    original, data = make_tiny(tiny_dataset, tiny_forget, external("tiny_vit"))
    cfg = method_config("activation_pruning")
    with pytest.raises(InputError, match="ReLU"):
        activation_pruning(original, data, cfg, seed=0)
