"""scikit-learn's bundled handwritten digits: real data that ships with a dependency, no download.

1,797 grayscale 8x8 images of the digits 0-9 (UCI optical recognition of handwritten digits, test
part). Pixel values 0..16 are scaled to 0..255 and the images resized to ``image_size``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np

from unlearnkit.data.base import DATASETS, ImageDataset, assign_split
from unlearnkit.data.cache import check_image_size, resize_images

N_EXAMPLES = 1797


@dataclass(frozen=True)
class DigitsConfig:
    """Image size and the seeded split of the 1,797 digits."""

    image_size: int = 32
    seed: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.2

    def __post_init__(self) -> None:
        check_image_size(self.image_size, "digits.")


def probe_digits(cfg: DigitsConfig) -> dict | None:
    """Where scikit-learn keeps the digits file, without reading it; None where it is missing."""
    path = resources.files("sklearn.datasets") / "data" / "digits.csv.gz"
    if not path.is_file():
        return None
    return {"root": str(path), "files": 1, "examples": N_EXAMPLES}


@DATASETS.register("digits", config=DigitsConfig, probe=probe_digits)
def load_digits(cfg: DigitsConfig) -> ImageDataset:
    """The scikit-learn digits as one-channel images, split at random by seed (no identities).

    References: Alpaydin and Kaynak, Optical Recognition of Handwritten Digits, UCI ML Repository, 1998.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    pixels = np.asarray(bunch.images, dtype=np.float64)
    images = np.rint(pixels * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[..., None]
    labels = np.asarray(bunch.target, dtype=np.int64)
    return ImageDataset(
        name="digits",
        images=resize_images(images, cfg.image_size),
        labels=labels,
        groups=np.full(len(labels), -1, dtype=np.int64),
        split=assign_split(
            len(labels), None, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, seed=cfg.seed
        ),
        class_names=tuple(str(d) for d in range(10)),
        source="sklearn.datasets.load_digits",
        meta={},
    )
