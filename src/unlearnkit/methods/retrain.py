"""Retraining from scratch on the retain set: the exact (and expensive) oracle."""

from __future__ import annotations

from dataclasses import dataclass, replace

from torch import nn

from unlearnkit.engine.train import train_model
from unlearnkit.errors import InputError
from unlearnkit.methods.base import METHODS, UnlearnData


@dataclass(frozen=True)
class RetrainConfig:
    """Retrain replays the original recipe (``data.train_config``).

    Attributes:
        fraction: The share of the recipe's epochs to train for, rounded to whole epochs (at least
            one), its learning-rate schedule compressed to fit. 1.0 is the exact oracle; less is a
            shortened retrain, the baseline that asks what an unlearning method's time buys when
            spent on retraining itself.
    """

    fraction: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.fraction <= 1:
            raise InputError(f"method.retrain.fraction must be in (0, 1] (a share of the recipe's epochs), got {self.fraction}")


@METHODS.register("retrain", config=RetrainConfig, strong=True, reference="A_M(D \\ S): the oracle every method approximates")
def retrain(model: nn.Module, data: UnlearnData, cfg: RetrainConfig, *, seed: int) -> nn.Module:
    """Train from scratch on the retain set with the original recipe (the exact oracle).

    The input model is ignored except for its architecture, which ``data.spec`` carries. With
    ``fraction`` < 1 it trains for that share of the recipe's epochs: what the exact algorithm
    achieves within an unlearning method's budget.

    References:
        The NeurIPS 2023 Machine Unlearning competition's reference A_M(D \\ S).
    """
    recipe = data.train_config
    if cfg.fraction < 1:
        recipe = replace(recipe, epochs=max(1, round(cfg.fraction * recipe.epochs)))
    return train_model(data.spec, data.retain, data.val, recipe, seed=seed).model
