"""Retraining from scratch on the retain set: the exact (and expensive) oracle."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from unlearnkit.engine.train import train_model
from unlearnkit.methods.base import METHODS, UnlearnData


@dataclass(frozen=True)
class RetrainConfig:
    """Retrain replays the original recipe (``data.train_config``); it has no knobs of its own."""


@METHODS.register("retrain", config=RetrainConfig, strong=True, reference="A_M(D \\ S): the oracle every method approximates")
def retrain(model: nn.Module, data: UnlearnData, cfg: RetrainConfig, *, seed: int) -> nn.Module:
    """Train from scratch on the retain set with the original recipe (the exact oracle).

    The input model is ignored except for its architecture, which ``data.spec`` carries.

    References:
        The NeurIPS 2023 Machine Unlearning competition's reference A_M(D \\ S).
    """
    return train_model(data.spec, data.retain, data.val, data.train_config, seed=seed).model
