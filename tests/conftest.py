"""Shared fixtures: tiny data and models, built in memory in a second."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from unlearnkit.data.splits import select_forget
from unlearnkit.data.synthetic import SyntheticConfig, load_synthetic
from unlearnkit.engine.train import TrainConfig, resolve_runtime, train_model
from unlearnkit.engine.tensors import tensor_set, train_stats
from unlearnkit.methods import make_unlearn_data
from unlearnkit.models import ModelSpec

torch.set_num_threads(min(2, torch.get_num_threads()))

TINY_TRAIN = TrainConfig(epochs=2, batch_size=32, lr=3e-3, precision="fp32", device="cpu")


@pytest.fixture(scope="session")
def tiny_dataset():
    """30 synthetic people, 4-6 images each, 16x16."""
    return load_synthetic(SyntheticConfig(people=30, min_images=4, max_images=6, image_size=16, seed=1))


@pytest.fixture(scope="session")
def tiny_forget(tiny_dataset):
    return select_forget(tiny_dataset, "identity:0.1")


def make_tiny(tiny_dataset, tiny_forget, model_name: str = "test_small_cnn", train: TrainConfig = TINY_TRAIN):
    """(original model, UnlearnData) for ``model_name`` on the tiny dataset."""
    spec = ModelSpec(model_name, tiny_dataset.num_classes, 3, 16)
    stats = train_stats(tiny_dataset)
    train_set = tensor_set(tiny_dataset, tiny_dataset.indices("train"), stats=stats)
    original = train_model(spec, train_set, None, dataclasses.replace(train, keep_best=False), seed=0).model
    data = make_unlearn_data(tiny_dataset, tiny_forget, spec, train, resolve_runtime(train))
    return original, data


@pytest.fixture(scope="session")
def tiny_original(tiny_dataset, tiny_forget):
    return make_tiny(tiny_dataset, tiny_forget)
