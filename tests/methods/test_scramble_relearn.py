"""scramble_relearn: the per-seed kernel scramble, the held-out level term and the final calibration."""

import copy
import dataclasses

import pytest
import torch
from torch import nn

from conftest import make_tiny
from unlearnkit.engine.train import predict
from unlearnkit.errors import InputError
from unlearnkit.methods import method_config, run_method
from unlearnkit.methods.base import generator
from unlearnkit.methods.scramble_relearn import (
    calibrate,
    level_gap,
    logit_confidence,
    mean_confidence,
    scramble_kernels,
    square_symmetry,
    temperature_to_match,
)
from unlearnkit.metrics.efficiency import retrain_steps
from unlearnkit.models.base import model_parts


def test_the_eight_square_symmetries_are_distinct_and_four_is_the_transpose():
    w = torch.randn(2, 3, 5, 5)
    images = [square_symmetry(w, k) for k in range(8)]
    assert torch.equal(images[0], w) and torch.equal(images[4], w.transpose(-1, -2))
    assert all(not torch.equal(images[i], images[j]) for i in range(8) for j in range(i))
    for k in range(8):  # each is a permutation of the kernel's entries
        assert torch.equal(images[k].flatten(2).sort(-1).values, w.flatten(2).sort(-1).values)


def test_scramble_turns_every_kernel_by_a_per_seed_symmetry(tiny_original):
    original, data = tiny_original
    convs = [m for m in original.modules() if isinstance(m, nn.Conv2d)]
    turned = {}
    for seed in (0, 1):
        student = copy.deepcopy(original)
        assert scramble_kernels(student, data.spec, generator(seed, "scramble")) == len(convs)
        ks = []
        for a, b in zip(convs, (m for m in student.modules() if isinstance(m, nn.Conv2d))):
            match = [k for k in range(8) if torch.equal(b.weight, square_symmetry(a.weight, k))]
            assert match and 0 not in match  # a non-identity symmetry of the original kernel
            ks.append(match[0])
        turned[seed] = ks
    assert turned[0] != turned[1]


def test_strength_mixes_and_one_shared_symmetry_is_allowed(tiny_original):
    original, data = tiny_original
    convs = [m.weight for m in original.modules() if isinstance(m, nn.Conv2d)]
    mixed = copy.deepcopy(original)
    scramble_kernels(mixed, data.spec, generator(3, "scramble"), strength=0.6)
    pure = copy.deepcopy(original)
    scramble_kernels(pure, data.spec, generator(3, "scramble"))
    for w, m, p in zip(convs, (m.weight for m in mixed.modules() if isinstance(m, nn.Conv2d)),
                       (m.weight for m in pure.modules() if isinstance(m, nn.Conv2d))):
        torch.testing.assert_close(m, 0.6 * p + 0.8 * w)
    shared = copy.deepcopy(original)
    scramble_kernels(shared, data.spec, generator(3, "scramble"), per_layer=False)
    ks = {next(k for k in range(8) if torch.equal(b.weight, square_symmetry(a, k)))
          for a, b in zip(convs, (m for m in shared.modules() if isinstance(m, nn.Conv2d)))}
    assert len(ks) == 1 and 0 not in ks


def test_the_mlp_gets_its_first_layer_turned(tiny_dataset, tiny_forget):
    original, data = make_tiny(tiny_dataset, tiny_forget, "test_mlp")
    student = copy.deepcopy(original)
    assert scramble_kernels(student, data.spec, generator(0, "scramble")) == 1
    stem, before = model_parts(student).stem, model_parts(original).stem
    assert not torch.equal(stem.weight, before.weight)
    assert torch.equal(stem.weight.sort(1).values, before.weight.sort(1).values)


def test_logit_confidence_is_log_odds_of_the_label():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    p = logits.softmax(1)[torch.arange(2), torch.tensor([0, 2])]
    torch.testing.assert_close(logit_confidence(logits, torch.tensor([0, 2])), (p / (1 - p)).log())


def test_temperature_reaches_the_goal_confidence():
    g = torch.Generator().manual_seed(0)
    logits, y = 3 * torch.randn(200, 5, generator=g), torch.randint(0, 5, (200,), generator=g)
    logits[torch.arange(150), y[:150]] += 4  # right more often than chance
    for goal in (-1.0, -0.3, 0.2):  # reachable: the mean peaks near 0.25 (clipping caps it at small T)
        t = temperature_to_match(logits, y, goal)
        assert float(mean_confidence(logits / t, y)) == pytest.approx(goal, abs=1e-3)
    # Unreachable: the closest value on the grid.
    t = temperature_to_match(logits, y, 5.0)
    assert float(mean_confidence(logits / t, y)) > 0.2


def test_calibration_matches_the_originals_held_out_confidence(tiny_original):
    original, data = tiny_original
    out = run_method("scramble_relearn", original, data, method_config("scramble_relearn", {"budget": 0.2}), seed=0).model
    y = data.val.y
    goal = float(mean_confidence(predict(original, data.val, runtime=data.runtime).float(), y))
    assert float(mean_confidence(predict(out, data.val, runtime=data.runtime).float(), y)) == pytest.approx(goal, abs=0.05)


def test_the_level_term_pulls_the_forget_set_to_the_held_out_level(tiny_original):
    original, data = tiny_original
    gaps = {}
    for weight in (0.0, 5.0):
        cfg = method_config("scramble_relearn", {"budget": 0.5, "scramble": False, "calibrate": False,
                                                 "level_weight": weight, "lr_scale": 0.3})
        out = run_method("scramble_relearn", original, data, cfg, seed=0).model
        f = float(mean_confidence(predict(out, data.forget, runtime=data.runtime).float(), data.forget.y))
        v = float(mean_confidence(predict(out, data.val, runtime=data.runtime).float(), data.val.y))
        gaps[weight] = abs(f - v)
    assert gaps[5.0] < 0.75 * gaps[0.0], gaps  # 0.15 against 0.25 on the tiny setting, either precision


def test_a_lacking_class_is_held_at_the_level_the_retain_batch_gives_it():
    kept = torch.tensor([True, True, False])
    retain, held = torch.randn(8, 3), torch.randn(6, 3)
    held_y = torch.tensor([0, 1, 0, 1, 0, 1])
    forget = torch.randn(4, 3)
    forget_y = torch.tensor([0, 2, 2, 1])
    conf = logit_confidence(forget, forget_y)
    target = torch.tensor([mean_confidence(held, held_y)] * 4)
    target[1:3] = mean_confidence(retain, torch.full((8,), 2))
    torch.testing.assert_close(level_gap(retain, forget, forget_y, held, held_y, kept), (conf - target).mean())


def test_calibration_keeps_a_lacking_classs_level_on_its_own_examples(tiny_original):
    original, data = tiny_original
    kept = torch.ones(data.num_classes, dtype=torch.bool)
    lacking = int(data.val.y[0])
    kept[lacking] = False
    student = copy.deepcopy(original)
    head = model_parts(student).classifier
    with torch.no_grad():  # three times too sure: calibration must undo it
        head.weight.mul_(3)
        head.bias.mul_(3)
    rows = data.val.y == lacking
    before = logit_confidence(predict(student, data.val, runtime=data.runtime).float()[rows], data.val.y[rows]).mean()
    t = calibrate(student, original, data, kept)
    after = predict(student, data.val, runtime=data.runtime).float()
    assert abs(t - 1) > 0.1  # the test is not vacuous: the head did change
    torch.testing.assert_close(logit_confidence(after[rows], data.val.y[rows]).mean(), before, atol=1e-3, rtol=0)


def test_the_utility_floor_relearns_on_only_while_below_it(tiny_original):
    original, data = tiny_original
    base = max(1, int(0.05 * retrain_steps(len(data.retain), data.train_config.batch_size, data.train_config.epochs)))
    cost = {}
    for floor in (1.0, 0.0):
        cfg = method_config("scramble_relearn", {"budget": 0.05, "retain_floor": floor})
        cost[floor] = run_method("scramble_relearn", original, data, cfg, seed=0).cost.steps
    assert cost[1.0] == base  # no floor: the budget exactly
    assert base < cost[0.0] <= 2 * base + max(1, -(-base // 10))  # below the original's accuracy: more, capped


@pytest.mark.parametrize("field, value", [("budget", 0.0), ("strength", 1.5), ("retain_floor", -0.1), ("lr_scale", -1.0), ("batch_size", 0),
                                          ("level_batch_size", 0), ("level_weight", -0.1)])
def test_bad_config_is_refused(field, value):
    with pytest.raises(InputError, match=f"scramble_relearn.{field}"):
        method_config("scramble_relearn", {field: value})


def test_an_empty_validation_split_is_refused(tiny_original):
    original, data = tiny_original
    empty = dataclasses.replace(data, val=data.val.subset(torch.arange(0)))
    with pytest.raises(InputError, match="validation split has none"):
        run_method("scramble_relearn", original, empty, method_config("scramble_relearn"), seed=0)
