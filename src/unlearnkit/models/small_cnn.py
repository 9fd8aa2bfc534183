"""A small VGG-style CNN that trains fast on a CPU."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from unlearnkit.models.base import MODELS, ModelParts


@dataclass(frozen=True)
class SmallCNNConfig:
    width: int = 32
    dropout: float = 0.0


class SmallCNN(nn.Module):
    """Three conv-BN-ReLU-pool stages (width, 2*width, 4*width channels), global pooling, a linear head."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int, cfg: SmallCNNConfig):
        super().__init__()
        w = cfg.width

        def stage(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )

        self.stage1 = stage(in_channels, w)
        self.stage2 = stage(w, 2 * w)
        self.stage3 = stage(2 * w, 4 * w)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(cfg.dropout)
        self.fc = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage3(self.stage2(self.stage1(x)))
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))

    def parts(self) -> ModelParts:
        return ModelParts(
            stem=self.stage1[0], classifier=self.fc, blocks=(self.stage1, self.stage2, self.stage3, self.fc)
        )


@MODELS.register("small_cnn", config=SmallCNNConfig)
def small_cnn(num_classes: int, in_channels: int, image_size: int, cfg: SmallCNNConfig) -> nn.Module:
    """Small CNN (3 conv stages, ~0.1 M parameters at width 32): the fast CPU default."""
    return SmallCNN(num_classes, in_channels, image_size, cfg)


@MODELS.register("test_small_cnn", config=SmallCNNConfig, test=True)
def test_small_cnn(num_classes: int, in_channels: int, image_size: int, cfg: SmallCNNConfig) -> nn.Module:
    """Tiny small_cnn (width 4) for tests."""
    return SmallCNN(num_classes, in_channels, image_size, SmallCNNConfig(width=4, dropout=cfg.dropout))
