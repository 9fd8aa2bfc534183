"""The compute counter: exact example passes, a cap that stops work before it runs, and the recipe's prediction."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from unlearnkit.engine.compute import BudgetSpent, count_compute, remaining_compute, spend
from unlearnkit.engine.ensemble import train_seeds
from unlearnkit.engine.tensors import tensor_set, train_stats
from unlearnkit.engine.train import TrainConfig, train_model
from unlearnkit.metrics.efficiency import measure, retrain_compute
from unlearnkit.models import ModelSpec

CFG = TrainConfig(epochs=2, batch_size=32, lr=3e-3, precision="fp32", device="cpu")


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 3)))


def test_counts_forward_and_backward_of_the_outermost_call_only():
    net, teacher = tiny_net(), tiny_net().requires_grad_(False)
    with count_compute() as c:
        net(torch.randn(5, 4)).sum().backward()  # 5 forward + 2 x 5 backward; the nested modules add nothing
        assert (c.forward, c.backward) == (5, 10)
        with torch.no_grad():
            net(torch.randn(7, 4))  # a prediction: forward only
        teacher(torch.randn(3, 4))  # frozen, grad on, but nothing flows back through it
        out = net(torch.randn(2, 4))  # a forward whose output is never backpropagated
    assert (c.forward, c.backward, c.total) == (17, 10, 27)
    out.sum().backward()  # after the block: still its work
    assert c.backward == 14


def test_calls_under_torch_func_are_counted_by_spend_not_by_the_hooks():
    net = tiny_net()
    params = {n: p.detach() for n, p in net.named_parameters()}

    def loss(p, x):
        return functional_call(net, p, (x.unsqueeze(0),)).sum()

    with count_compute() as outer, count_compute() as inner:
        vmap(grad(loss), in_dims=(None, 0))(params, torch.randn(6, 4))
        assert inner.total == 0
        spend(18)
    assert inner.total == outer.total == 18 and inner.spent == 18


def test_a_cap_stops_work_before_it_runs():
    net = tiny_net()
    with count_compute() as outer, count_compute(cap=20) as c:
        assert remaining_compute() == 20
        net(torch.randn(5, 4)).sum().backward()  # 15
        with pytest.raises(BudgetSpent):
            net(torch.randn(5, 4))  # grad on: 5 + 10 more would pass 20
        assert c.total == 15 and remaining_compute() == 5
        with torch.no_grad():
            net(torch.randn(5, 4))  # a prediction of 5 fits exactly
        with pytest.raises(BudgetSpent):
            spend(1)
        assert c.total == 20
    assert remaining_compute() is None
    # The stopped call left no module half-entered: a fresh block counts from the top again.
    with count_compute() as again:
        net(torch.randn(2, 4))
    assert again.forward == 2 and outer.total == 20


@pytest.fixture(scope="module")
def sets(tiny_dataset):
    stats = train_stats(tiny_dataset)
    return tuple(tensor_set(tiny_dataset, tiny_dataset.indices(s), stats=stats) for s in ("train", "val"))


def test_a_retrain_measures_what_the_recipe_predicts(sets):
    train, val = sets
    spec = ModelSpec("test_small_cnn", 10, 3, 16)
    with measure("cpu") as cost:
        result = train_model(spec, train, val, CFG, seed=3)
    predicted = retrain_compute(len(train), len(val), CFG)
    # every epoch: 3 passes per training example, 1 per validation example (best-epoch checkpoint)
    assert predicted == CFG.epochs * (3 * len(train) + len(val))
    assert result.compute == cost.compute == predicted
    no_val = train_model(spec, train, None, CFG, seed=3)
    assert no_val.compute == retrain_compute(len(train), 0, CFG) == CFG.epochs * 3 * len(train)


def test_ensemble_members_report_the_compute_of_a_model_trained_alone(sets):
    train, val = sets
    spec = ModelSpec("test_small_cnn", 10, 3, 16)
    alone = train_seeds(spec, train, val, CFG, [5], strategy="sequential")[0]
    with count_compute() as c:
        members = train_seeds(spec, train, val, CFG, [5, 6, 7], strategy="vmap")
    assert [m.compute for m in members] == [alone.compute] * 3
    assert c.total == 3 * alone.compute  # the stacked work is counted by whoever measures around it
