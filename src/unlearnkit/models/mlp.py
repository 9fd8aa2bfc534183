"""A multilayer perceptron on flattened pixels."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from unlearnkit.models.base import MODELS, ModelParts


@dataclass(frozen=True)
class MLPConfig:
    hidden: tuple[int, ...] = (512, 256)
    dropout: float = 0.0


class MLP(nn.Module):
    """Flatten, then Linear-ReLU layers, then a linear head."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int, cfg: MLPConfig):
        super().__init__()
        sizes = (in_channels * image_size * image_size, *cfg.hidden)
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Linear(a, b), nn.ReLU(inplace=True), nn.Dropout(cfg.dropout))
            for a, b in zip(sizes[:-1], sizes[1:])
        )
        self.fc = nn.Linear(sizes[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        for layer in self.layers:
            x = layer(x)
        return self.fc(x)

    def parts(self) -> ModelParts:
        stem = self.layers[0][0] if len(self.layers) else self.fc
        return ModelParts(stem=stem, classifier=self.fc, blocks=(*self.layers, self.fc))


@MODELS.register("mlp", config=MLPConfig)
def mlp(num_classes: int, in_channels: int, image_size: int, cfg: MLPConfig) -> nn.Module:
    """MLP on flattened pixels (two hidden layers of 512 and 256 units)."""
    return MLP(num_classes, in_channels, image_size, cfg)


@MODELS.register("test_mlp", config=MLPConfig, test=True)
def test_mlp(num_classes: int, in_channels: int, image_size: int, cfg: MLPConfig) -> nn.Module:
    """Tiny MLP (one hidden layer of 16 units) for tests."""
    return MLP(num_classes, in_channels, image_size, MLPConfig(hidden=(16,), dropout=cfg.dropout))
