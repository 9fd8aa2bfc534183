"""Three classifiers that unlearnkit does not register, to bring with ``--model examples/architectures.py:NAME``.

Each is a factory as ``unlearnkit.models.external`` expects: it takes ``num_classes`` (and
``in_channels``, ``image_size`` where it needs them) from the dataset, and every other parameter
is a model setting (``--set model.width=24``). They differ from the registered models where
methods are most likely to trip:

* ``mobilenet``: depthwise-separable convolutions with batch norm and ReLU6, the trunk one
  ``features`` Sequential, the head inside a ``classifier`` Sequential after dropout;
* ``tiny_vit``: a vision transformer (patch embedding, class token, position embedding, pre-norm
  blocks in a ModuleList, no convolution but the patch embedding, no batch norm);
* ``odd_head``: a residual net with factorised 3x1 / 1x3 kernels (no square kernel wider than
  1x1), group norm, SiLU, and its classifier named ``to_logits`` inside a ``decision`` module.

    unlearnkit methods --model examples/architectures.py:odd_head
    unlearnkit bench --model examples/architectures.py:mobilenet --seeds 8 --out runs/mobilenet
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _separable(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.ReLU6(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    )


class MobileNet(nn.Module):
    """A MobileNet-v1-style net: a conv stem, depthwise-separable blocks, global pooling, dropout, a linear head."""

    def __init__(self, num_classes: int, in_channels: int, width: int, dropout: float):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU6(inplace=True),
            _separable(w, 2 * w, 2),
            _separable(2 * w, 2 * w, 1),
            _separable(2 * w, 4 * w, 2),
            _separable(4 * w, 4 * w, 1),
        )
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * w, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


def mobilenet(num_classes: int, in_channels: int = 3, width: int = 16, dropout: float = 0.0) -> nn.Module:
    """MobileNet-style: depthwise-separable convolutions with batch norm (~25 k parameters at width 16)."""
    return MobileNet(num_classes, in_channels, width, dropout)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // self.heads), dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """A pre-norm vision transformer: patches, a class token, learned positions, blocks, a final norm, a head."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int, patch: int, dim: int, depth: int, heads: int):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"tiny_vit: image_size {image_size} is not a multiple of patch {patch}")
        self.patch_embed = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, (image_size // patch) ** 2 + 1, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])


def tiny_vit(num_classes: int, in_channels: int = 3, image_size: int = 16, patch: int = 4, dim: int = 32,
             depth: int = 3, heads: int = 2) -> nn.Module:
    """A small ViT: 4x4 patches, 3 pre-norm blocks of width 32 (~40 k parameters)."""
    return TinyViT(num_classes, in_channels, image_size, patch, dim, depth, heads)


class Factorised(nn.Module):
    """A residual unit of 3x1 and 1x3 convolutions with group norm and SiLU."""

    def __init__(self, c: int):
        super().__init__()
        self.tall = nn.Conv2d(c, c, (3, 1), padding=(1, 0), bias=False)
        self.wide = nn.Conv2d(c, c, (1, 3), padding=(0, 1), bias=False)
        self.norm = nn.GroupNorm(4, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.silu(self.norm(self.wide(self.tall(x))))


class Decision(nn.Module):
    def __init__(self, c: int, hidden: int, num_classes: int):
        super().__init__()
        self.proj = nn.Linear(c, hidden)
        self.to_logits = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_logits(F.silu(self.proj(x)))


class OddHead(nn.Module):
    """A 1x1 stem, factorised residual units between strided 1x1 convs, and a two-layer ``decision`` head."""

    def __init__(self, num_classes: int, in_channels: int, width: int):
        super().__init__()
        w = width
        self.embed = nn.Conv2d(in_channels, w, 1)
        self.body = nn.Sequential(Factorised(w), nn.Conv2d(w, 2 * w, 1, stride=2), Factorised(2 * w),
                                  nn.Conv2d(2 * w, 2 * w, 1, stride=2), Factorised(2 * w))
        self.decision = Decision(2 * w, 2 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decision(self.body(F.silu(self.embed(x))).mean(dim=(2, 3)))


def odd_head(num_classes: int, in_channels: int = 3, width: int = 16) -> nn.Module:
    """Factorised 3x1/1x3 kernels, group norm, and a classifier named ``decision.to_logits``."""
    return OddHead(num_classes, in_channels, width)
