"""The built-in dataset: synthetic "people" photographed many times, labelled by age group.

Nothing here is a real photograph. Each image is rendered from three parts:

* the person: a smooth, person-specific pattern of coloured blobs (their "face"), fixed per person;
* the age group: a class-specific texture and tint, shared by everyone in that group, added at a
  strength that makes age partly visible but weaker than identity;
* the shot: a random shift (pose), gain, offset and lighting gradient, plus pixel noise.

Labels are tied to the person (everyone has one age group) and imbalanced like face datasets, where
young adults dominate. A small CNN memorises the training people (train accuracy well above
accuracy on unseen people) while still learning some of the age texture: the regime in which
forgetting a person is measurable. Splits are by person, so val and test contain unseen people.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unlearnkit.data.base import DATASETS, ImageDataset, assign_split
from unlearnkit.errors import InputError

# Share of people in each of the 10 age groups (youngest first); skewed like CelebA's ages.
AGE_GROUP_SHARES = (0.06, 0.14, 0.20, 0.17, 0.13, 0.10, 0.08, 0.05, 0.04, 0.03)


@dataclass(frozen=True)
class SyntheticConfig:
    people: int = 400
    min_images: int = 8
    max_images: int = 32
    image_size: int = 16
    age_strength: float = 0.3
    noise: float = 0.10
    max_shift: int = 3
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.people < 10:
            raise InputError(f"synthetic.people must be at least 10, got {self.people}")
        if not 1 <= self.min_images <= self.max_images:
            raise InputError(
                f"synthetic.min_images={self.min_images}, max_images={self.max_images}: "
                "expected 1 <= min_images <= max_images"
            )
        if self.image_size < 8:
            raise InputError(f"synthetic.image_size must be at least 8, got {self.image_size}")


def _smooth_fields(rng: np.random.Generator, count: int, size: int, blobs: int, channels: int = 3) -> np.ndarray:
    """``count`` random smooth RGB fields [count, size, size, channels] built from Gaussian blobs."""
    grid = np.linspace(0.0, 1.0, size)
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    cy, cx = rng.uniform(0.1, 0.9, (2, count, blobs, 1, 1))
    width = rng.uniform(0.08, 0.25, (count, blobs, 1, 1))
    bumps = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * width**2))  # [count, blobs, H, W]
    colors = rng.normal(0.0, 1.0, (count, blobs, channels))
    return np.einsum("kbhw,kbc->khwc", bumps, colors)


def _age_textures(rng: np.random.Generator, person_class: np.ndarray, size: int) -> np.ndarray:
    """Each person's age texture: stripes whose frequency and tint follow the age group.

    Orientation, phase and a little of the frequency vary per person, so a model has to learn what
    the groups share rather than copy one template.
    """
    classes = len(AGE_GROUP_SHARES)
    class_tint = rng.normal(0.0, 1.0, (classes, 3))
    people = len(person_class)
    grid = np.arange(size) / size
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    freq = (2.0 + 0.8 * person_class) * rng.uniform(0.9, 1.1, people)
    angle = rng.uniform(0, np.pi, people)
    phase = rng.uniform(0, 2 * np.pi, people)
    proj = np.cos(angle)[:, None, None] * xx + np.sin(angle)[:, None, None] * yy
    wave = np.sin(2 * np.pi * freq[:, None, None] * proj + phase[:, None, None])
    return wave[..., None] * 0.7 + 0.5 * class_tint[person_class][:, None, None, :]


@DATASETS.register("synthetic", config=SyntheticConfig, probe=lambda cfg: {"root": "generated"})
def load_synthetic(cfg: SyntheticConfig) -> ImageDataset:
    """Synthetic people with age-group labels (built in, generated from a seed, no files)."""
    rng = np.random.default_rng(cfg.seed)
    classes = len(AGE_GROUP_SHARES)
    size = cfg.image_size
    person_class = rng.choice(classes, size=cfg.people, p=np.array(AGE_GROUP_SHARES) / sum(AGE_GROUP_SHARES))
    counts = rng.integers(cfg.min_images, cfg.max_images + 1, size=cfg.people)
    faces = _smooth_fields(rng, cfg.people, size + 2 * cfg.max_shift, blobs=6)
    faces /= faces.std(axis=(1, 2, 3), keepdims=True)
    ages = _age_textures(rng, person_class, size + 2 * cfg.max_shift)

    groups = np.repeat(np.arange(cfg.people), counts)
    n = len(groups)
    labels = person_class[groups]
    canvas = faces[groups] + cfg.age_strength * ages[groups]  # [n, S, S, 3], S = size + 2 * shift
    # Pose: a random crop of the padded canvas.
    dy, dx = rng.integers(0, 2 * cfg.max_shift + 1, (2, n))
    rows = dy[:, None] + np.arange(size)[None, :]
    cols = dx[:, None] + np.arange(size)[None, :]
    img = canvas[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    # Lighting: gain, offset and a linear gradient in a random direction.
    grid = np.linspace(-1.0, 1.0, size)
    gy, gx = rng.normal(0.0, 0.25, (2, n, 1, 1))
    light = gy * grid[None, :, None] + gx * grid[None, None, :]
    gain = rng.uniform(0.75, 1.25, (n, 1, 1, 1))
    img = gain * img + light[..., None] + rng.normal(0.0, 0.15, (n, 1, 1, 3))
    img = img + rng.normal(0.0, cfg.noise * 3, img.shape)
    pixels = np.clip(128 + 40 * img, 0, 255).astype(np.uint8)

    split = assign_split(n, groups, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, seed=cfg.seed)
    return ImageDataset(
        name="synthetic",
        images=pixels,
        labels=labels.astype(np.int64),
        groups=groups.astype(np.int64),
        split=split,
        class_names=tuple(f"age_group_{c}" for c in range(classes)),
        source="generated",
        meta={"seed": cfg.seed, "people": cfg.people},
    )
