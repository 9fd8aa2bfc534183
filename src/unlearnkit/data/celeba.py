"""CelebA from a local folder in the official layout, with identities and the official split.

Expected under ``root``::

    img_align_celeba/000001.jpg ...   aligned 178x218 faces (any subset of them)
    identity_CelebA.txt               "000001.jpg 2880": image -> person id
    list_attr_celeba.txt              a count, the 40 attribute names, then "000001.jpg -1  1 ..." rows
    list_eval_partition.txt           "000001.jpg 0": 0 train, 1 val, 2 test

Partial downloads are common, so only the images present are loaded and the number of listed
images that are missing is reported in ``meta["missing_images"]``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unlearnkit.data.base import DATASETS, ImageDataset
from unlearnkit.data.cache import (
    cached,
    check_image_size,
    decode_images,
    files_signature,
    resolve_root,
    root_hint,
)
from unlearnkit.errors import InputError

IMAGES_DIR = "img_align_celeba"
IDENTITY_FILE = "identity_CelebA.txt"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"

LAYOUT = (
    f"{IMAGES_DIR}/*.jpg, {IDENTITY_FILE}, {ATTR_FILE} and {PARTITION_FILE} "
    "(the official CelebA 'Align&Cropped' layout)"
)

MALE_GRAY_CHUBBY = "male_gray_chubby"
_MGC_ATTRS = ("Male", "Gray_Hair", "Chubby")

# The aligned faces are 178x218 with the eyes near y = 111. This 128x128 square, x 25..153 and
# y 50..178 (pixels, right/bottom exclusive), keeps forehead and hair (Gray_Hair needs them) down to
# the chin, and drops the background band at the bottom. It is the crop BEGAN and many CelebA
# papers use. Stored as fractions so an image of another size is cut at the same framing.
CROP_BOX_PIXELS = (25, 50, 153, 178)
ALIGNED_SIZE = (178, 218)
CROP_BOX = (
    CROP_BOX_PIXELS[0] / ALIGNED_SIZE[0],
    CROP_BOX_PIXELS[1] / ALIGNED_SIZE[1],
    CROP_BOX_PIXELS[2] / ALIGNED_SIZE[0],
    CROP_BOX_PIXELS[3] / ALIGNED_SIZE[1],
)


@dataclass(frozen=True)
class CelebAConfig:
    """Where CelebA is and which label task to build from it."""

    root: str = ""                # empty: $UNLEARNKIT_DATA_CELEBA, else ~/data/celeba
    image_size: int = 32
    label: str = "Young"          # an attribute name (2 classes), or "male_gray_chubby" (8 classes)
    crop: bool = True             # cut the square face box CROP_BOX_PIXELS before resizing
    cache_dir: str = ""           # empty: $UNLEARNKIT_CACHE, else ~/.cache/unlearnkit

    def __post_init__(self) -> None:
        check_image_size(self.image_size, "celeba.")


def probe_celeba(cfg: CelebAConfig) -> dict | None:
    """Quick facts about the CelebA folder (no image is decoded), or None where it is absent."""
    root = resolve_root(cfg.root, "celeba")
    images = root / IMAGES_DIR
    if not (images.is_dir() and (root / ATTR_FILE).is_file()):
        return None
    present = sum(1 for e in os.scandir(images) if e.name.lower().endswith(".jpg"))
    with open(root / ATTR_FILE, encoding="utf-8", errors="replace") as f:
        first = f.readline().strip()
    return {"root": str(root), "images": present, "listed": int(first) if first.isdigit() else None}


@DATASETS.register("celeba", config=CelebAConfig, probe=probe_celeba)
def load_celeba(cfg: CelebAConfig) -> ImageDataset:
    """CelebA faces with identities as groups and the official train/val/test partition.

    Labels are one attribute (class 0 = without it, 1 = with it), or for ``"male_gray_chubby"``
    the 8-class code ``4*Male + 2*Gray_Hair + Chubby`` of the research proposal. Decoded images are
    cached, so a second load reads one file.

    References: Liu et al., Deep Learning Face Attributes in the Wild, ICCV 2015.
    """
    root = resolve_root(cfg.root, "celeba")
    _check_layout(root, cfg.root)
    names, attr_names, attrs = _read_attributes(root / ATTR_FILE)
    labels_all, class_names = _labels(attrs, attr_names, cfg.label, root / ATTR_FILE)
    identity = _read_two_columns(root / IDENTITY_FILE, "person id")
    partition = _read_two_columns(root / PARTITION_FILE, "partition")

    present = {e.name for e in os.scandir(root / IMAGES_DIR) if e.is_file()}
    keep = np.array([name in present for name in names], dtype=bool)
    kept_names = [name for name, k in zip(names, keep) if k]
    missing = int(len(names) - len(kept_names))
    if not kept_names:
        raise InputError(
            f"celeba: none of the {len(names)} images listed in {root / ATTR_FILE} is in "
            f"{root / IMAGES_DIR}; expected {LAYOUT}"
        )
    for table, path in ((identity, IDENTITY_FILE), (partition, PARTITION_FILE)):
        absent = [name for name in kept_names if name not in table]
        if absent:
            raise InputError(
                f"celeba: {root / path} has no line for {absent[0]} "
                f"({len(absent)} present images are not listed there)"
            )
    groups = np.array([identity[name] for name in kept_names], dtype=np.int64)
    split = np.array([partition[name] for name in kept_names], dtype=np.int64)
    bad = np.flatnonzero((split < 0) | (split > 2))
    if bad.size:
        raise InputError(
            f"celeba: {root / PARTITION_FILE} gives partition {split[bad[0]]} for {kept_names[bad[0]]}; "
            "expected 0 (train), 1 (val) or 2 (test)"
        )

    crop_box = CROP_BOX if cfg.crop else None
    image_dir = os.fspath(root / IMAGES_DIR)
    paths = [os.path.join(image_dir, name) for name in kept_names]  # str: 200k Paths cost seconds
    key = {"files": files_signature(paths, root), "image_size": cfg.image_size, "crop_box": crop_box}
    arrays = cached("celeba", key, lambda: {"images": decode_images(paths, cfg.image_size, crop_box)}, cfg.cache_dir)

    return ImageDataset(
        name="celeba",
        images=arrays["images"],
        labels=labels_all[keep].astype(np.int64),
        groups=groups,
        split=split.astype(np.int8),
        class_names=class_names,
        source=str(root),
        meta={
            "label": cfg.label,
            "listed_images": len(names),
            "missing_images": missing,
            "crop_box_pixels": list(CROP_BOX_PIXELS) if cfg.crop else None,
        },
    )


def _check_layout(root: Path, configured: str) -> None:
    if not root.is_dir():
        raise InputError(f"celeba: folder {root} does not exist ({root_hint(configured, 'celeba')}); expected {LAYOUT}")
    absent = [p for p in (IMAGES_DIR, IDENTITY_FILE, ATTR_FILE, PARTITION_FILE) if not (root / p).exists()]
    if absent:
        raise InputError(f"celeba: {root} lacks {', '.join(absent)}; expected {LAYOUT}")


def _read_attributes(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """Parse list_attr_celeba.txt.

    Returns:
        Image names in file order, the attribute names, and an int8 array [n, n_attrs] of 0/1.
    """
    with open(path, encoding="utf-8-sig") as f:
        lines = f.read().splitlines()
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise InputError(
            f"{path} line 1: expected the number of images, then a line of attribute names; "
            f"got {lines[0][:60] if lines else 'an empty file'!r}"
        )
    count = int(lines[0].strip())
    attr_names = lines[1].split()
    k = len(attr_names)
    body = [(lineno, line.split(None, 1)) for lineno, line in enumerate(lines[2:], start=3) if line.strip()]
    names = [parts[0] for _, parts in body]
    if len(names) != count:
        raise InputError(f"{path}: line 1 announces {count} images but {len(names)} rows follow (truncated file?)")
    # One numpy parse of all values is ~3x faster than splitting 8 million tokens in Python; a
    # malformed row is then located by the slow check below.
    text = " ".join(parts[1] if len(parts) == 2 else "x" for _, parts in body)
    try:
        values = np.fromstring(text, dtype=np.int8, sep=" ")
    except ValueError:
        values = np.empty(0, dtype=np.int8)
    if values.size != len(body) * k or not np.isin(values, (-1, 0, 1)).all():
        for lineno, parts in body:
            fields = parts[1].split() if len(parts) == 2 else []
            if len(fields) != k or any(v not in ("-1", "0", "1") for v in fields):
                raise InputError(
                    f"{path} line {lineno}: expected an image name and {k} values of -1 or 1, "
                    f"got {' '.join(parts)[:100]!r}"
                )
    values = values.reshape(len(body), k)
    return names, attr_names, (values == 1).astype(np.int8)


def _labels(
    attrs: np.ndarray, attr_names: list[str], label: str, path: Path
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class index per image and class names for the label task ``label``."""
    if label == MALE_GRAY_CHUBBY:
        missing = [a for a in _MGC_ATTRS if a not in attr_names]
        if missing:
            raise InputError(f"celeba label {label!r} needs attributes {', '.join(missing)}, which {path} lacks")
        male, gray, chubby = (attrs[:, attr_names.index(a)].astype(np.int64) for a in _MGC_ATTRS)
        class_names = tuple(
            ", ".join(
                ["male" if c & 4 else "female"] + (["gray hair"] if c & 2 else []) + (["chubby"] if c & 1 else [])
            )
            for c in range(8)
        )
        return 4 * male + 2 * gray + chubby, class_names
    if label not in attr_names:
        raise InputError(
            f"celeba: unknown label {label!r}; expected one attribute of {path.name} "
            f"({', '.join(attr_names)}) or {MALE_GRAY_CHUBBY!r}"
        )
    return attrs[:, attr_names.index(label)].astype(np.int64), (f"not {label}", label)


def _read_two_columns(path: Path, what: str) -> dict[str, int]:
    """Parse ``<image> <integer>`` lines into a dict, naming the line of any malformed one."""
    out: dict[str, int] = {}
    with open(path, encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
                raise InputError(f"{path} line {lineno}: expected '<image> <{what}>', got {line.strip()[:80]!r}")
            out[fields[0]] = int(fields[1])
    return out
