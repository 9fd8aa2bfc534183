"""Examples as in-memory tensors, and seeded batching.

Images stay uint8 until a batch is drawn, so CelebA at 32x32 costs 0.5 GB instead of 2 GB of floats,
and normalisation costs one fused op per batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from unlearnkit.data.base import ImageDataset


@dataclass(frozen=True, eq=False)
class TensorSet:
    """A set of examples: uint8 images [n, C, H, W], labels, their dataset indices, normalisation."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def device(self) -> torch.device:
        return self.x.device

    def subset(self, positions: torch.Tensor | np.ndarray) -> "TensorSet":
        """The examples at ``positions`` (positions within this set, not dataset indices)."""
        pos = torch.as_tensor(positions, dtype=torch.long, device=self.x.device)
        return TensorSet(self.x[pos], self.y[pos], self.index[pos], self.mean, self.std)

    def to(self, device: torch.device | str) -> "TensorSet":
        return TensorSet(*(t.to(device) for t in (self.x, self.y, self.index, self.mean, self.std)))

    def inputs(self, pos: torch.Tensor | slice, *, channels_last: bool = False) -> torch.Tensor:
        """Normalised float32 images at ``pos``."""
        x = self.x[pos].float().div_(255.0)
        x = (x - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    def batches(
        self,
        batch_size: int,
        *,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
        channels_last: bool = False,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(inputs, labels) batches; shuffled by ``generator`` when one is given, else in order."""
        n = len(self)
        order = torch.randperm(n, generator=generator).to(self.device) if generator is not None else None
        stop = n - n % batch_size if drop_last and n >= batch_size else n
        for start in range(0, stop, batch_size):
            pos = order[start : start + batch_size] if order is not None else slice(start, start + batch_size)
            yield self.inputs(pos, channels_last=channels_last), self.y[pos]


def channel_stats(images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 images [n, H, W, C], on the 0..1 scale."""
    x = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
    std = x.std(axis=0)
    return torch.tensor(x.mean(axis=0), dtype=torch.float32), torch.tensor(np.where(std > 0, std, 1.0), dtype=torch.float32)


def tensor_set(ds: ImageDataset, indices: np.ndarray, *, stats: tuple[torch.Tensor, torch.Tensor]) -> TensorSet:
    """The examples ``indices`` of ``ds`` as a TensorSet normalised with ``stats``."""
    idx = np.asarray(indices, dtype=np.int64)
    x = torch.from_numpy(np.ascontiguousarray(ds.images[idx].transpose(0, 3, 1, 2)))
    return TensorSet(x, torch.from_numpy(ds.labels[idx].astype(np.int64)), torch.from_numpy(idx), *stats)


def train_stats(ds: ImageDataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalisation statistics of the dataset's training split (at most 20,000 images sampled)."""
    idx = ds.indices("train")
    if len(idx) > 20_000:
        idx = np.sort(np.random.default_rng(0).choice(idx, 20_000, replace=False))
    return channel_stats(ds.images[idx])


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency class weights, scaled so that the average example weight is 1.

    Classes absent from ``labels`` get weight 0.
    """
    counts = torch.bincount(labels.cpu(), minlength=num_classes).double()
    present = int((counts > 0).sum())
    w = torch.where(counts > 0, counts.sum() / (present * counts.clamp(min=1)), torch.zeros_like(counts))
    return w.float()
