"""ResNet-18 with torchvision's parameter names, so torchvision state dicts load with strict=True."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from unlearnkit.models.base import MODELS, ModelParts


@dataclass(frozen=True)
class ResNet18Config:
    stem: Literal["cifar", "imagenet"] = "cifar"
    width: int = 64


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18 (He et al. 2016).

    The "imagenet" stem is torchvision's (7x7 stride-2 conv, max-pool); the "cifar" stem is the
    usual 32x32 variant (3x3 stride-1 conv, no pooling). Both keep torchvision's parameter names.
    """

    def __init__(self, num_classes: int, in_channels: int, image_size: int, cfg: ResNet18Config):
        super().__init__()
        w = cfg.width
        if cfg.stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, w, 7, 2, 3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, 2, 1)
        else:
            self.conv1 = nn.Conv2d(in_channels, w, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(BasicBlock(w, w, 1), BasicBlock(w, w, 1))
        self.layer2 = nn.Sequential(BasicBlock(w, 2 * w, 2), BasicBlock(2 * w, 2 * w, 1))
        self.layer3 = nn.Sequential(BasicBlock(2 * w, 4 * w, 2), BasicBlock(4 * w, 4 * w, 1))
        self.layer4 = nn.Sequential(BasicBlock(4 * w, 8 * w, 2), BasicBlock(8 * w, 8 * w, 1))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8 * w, num_classes)
        # torchvision's initialisation, so a model built here trains like torchvision's.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def parts(self) -> ModelParts:
        return ModelParts(
            stem=self.conv1,
            classifier=self.fc,
            blocks=(self.layer1, self.layer2, self.layer3, self.layer4, self.fc),
        )


@MODELS.register("resnet18", config=ResNet18Config)
def resnet18(num_classes: int, in_channels: int, image_size: int, cfg: ResNet18Config) -> nn.Module:
    """ResNet-18 (11 M parameters), torchvision-compatible names; CIFAR or ImageNet stem."""
    return ResNet18(num_classes, in_channels, image_size, cfg)


@MODELS.register("test_resnet18", config=ResNet18Config, test=True)
def test_resnet18(num_classes: int, in_channels: int, image_size: int, cfg: ResNet18Config) -> nn.Module:
    """Tiny resnet18 (width 4) for tests."""
    return ResNet18(num_classes, in_channels, image_size, ResNet18Config(stem=cfg.stem, width=4))
