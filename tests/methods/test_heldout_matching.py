"""heldout_matching's look-alike targets: drawn per seed, from held-out examples of classes R keeps."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from unlearnkit.engine.train import predict
from unlearnkit.errors import InputError
from unlearnkit.methods import method_config
from unlearnkit.methods.heldout_matching import lookalike_targets


def test_each_seed_draws_its_own_lookalikes_and_the_mean_is_seed_free(tiny_original):
    original, data = tiny_original
    cfg = method_config("heldout_matching", {"neighbours": 4})
    a, b = lookalike_targets(original, data, cfg, 0), lookalike_targets(original, data, cfg, 1)
    assert a.shape == (len(data.forget), data.num_classes) and torch.isfinite(a).all()
    assert not torch.equal(a, b)
    assert torch.equal(a, lookalike_targets(original, data, cfg, 0))
    mean = dataclasses.replace(cfg, draw=False)
    assert torch.equal(lookalike_targets(original, data, mean, 0), lookalike_targets(original, data, mean, 1))


def test_every_target_is_the_original_on_a_validation_example_of_a_kept_class(tiny_original):
    original, data = tiny_original
    val_logp = F.log_softmax(predict(original, data.val, runtime=data.runtime).float(), 1)
    kept = set(data.retain.y.tolist())
    for same_class in (False, True):
        cfg = method_config("heldout_matching", {"neighbours": 3, "same_class": same_class})
        targets = lookalike_targets(original, data, cfg, 7)
        for i, t in enumerate(targets):
            match = [j for j in range(len(val_logp)) if torch.allclose(val_logp[j], t)]
            assert match and all(int(data.val.y[j]) in kept for j in match)
            if same_class and int(data.forget.y[i]) in kept and (data.val.y == data.forget.y[i]).any():
                assert any(int(data.val.y[j]) == int(data.forget.y[i]) for j in match)


def test_an_empty_validation_split_is_refused(tiny_original):
    original, data = tiny_original
    empty = dataclasses.replace(data, val=data.val.subset(torch.arange(0)))
    with pytest.raises(InputError, match="validation split is empty"):
        lookalike_targets(original, empty, method_config("heldout_matching"), 0)
