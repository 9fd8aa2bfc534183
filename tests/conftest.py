"""Shared fixtures: tiny data and models, built in memory in a second, through the runner's setting."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.nn.functional as F

from unlearnkit.config import to_dict
from unlearnkit.engine.train import TrainConfig, train_model
from unlearnkit.methods import clone
from unlearnkit.runner.setting import Setting, make_setting_config, resolve_setting

torch.set_num_threads(min(2, torch.get_num_threads()))

TINY_TRAIN = TrainConfig(epochs=2, batch_size=32, lr=3e-3, precision="fp32", device="cpu")
# 30 synthetic people, 4-6 images each, 16x16.
TINY_DATA = {"people": 30, "min_images": 4, "max_images": 6, "image_size": 16, "seed": 1}


def tiny_setting(model_name: str = "test_small_cnn", train: TrainConfig = TINY_TRAIN, forget: str = "identity:0.1") -> Setting:
    """The tiny setting every unit test shares, for ``model_name``."""
    return resolve_setting(make_setting_config(dataset_options=TINY_DATA, forget=forget, model=model_name,
                                               train_options=to_dict(train)))


@pytest.fixture(scope="session")
def tiny_dataset():
    return tiny_setting().dataset


@pytest.fixture(scope="session")
def tiny_forget(tiny_dataset):
    return tiny_setting().forget


def make_tiny(tiny_dataset, tiny_forget, model_name: str = "test_small_cnn", train: TrainConfig = TINY_TRAIN):
    """(original model, UnlearnData) for ``model_name`` on the tiny setting."""
    setting = tiny_setting(model_name, train)
    assert setting.dataset.fingerprint == tiny_dataset.fingerprint and setting.forget.fingerprint == tiny_forget.fingerprint
    original = train_model(setting.spec, setting.sets.train, None, dataclasses.replace(train, keep_best=False), seed=0).model
    return original, setting.unlearn_data


@pytest.fixture(scope="session")
def tiny_original(tiny_dataset, tiny_forget):
    return make_tiny(tiny_dataset, tiny_forget)


def assert_equals_plain_sgd(out, original, batches, *, lr: float, momentum: float, weight_decay: float,
                            loss=None, eval_mode: bool = False) -> None:
    """``out`` equals ``original`` trained by plain SGD over ``batches`` (a reference loop for method tests).

    Args:
        loss: ``loss(logits, y)``; default mean cross-entropy.
        eval_mode: Train with batch norm frozen (eval mode), as some references do.
    """
    ref = clone(original).train(not eval_mode)
    opt = torch.optim.SGD(ref.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    for x, y in batches:
        value = loss(ref(x), y) if loss is not None else F.cross_entropy(ref(x), y)
        opt.zero_grad()
        value.backward()
        opt.step()
    for a, b in zip(out.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def benchmark_script(name: str) -> ModuleType:
    """A script of benchmarks/ (not a package) loaded as a module, so that a test can call its parts.

    benchmarks/ goes on the import path, as it is when the script runs, for the siblings it imports.
    """
    folder = Path(__file__).parents[1] / "benchmarks"
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
