"""Fashion-MNIST from its idx files (plain or gzipped).

Expected under ``root``: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each optionally with ``.gz``. Debian's
``dataset-fashion-mnist`` package installs exactly these (gzipped) under
``/usr/share/datasets/fashion-mnist``, which is the default root when it exists. torchvision's
``FashionMNIST(root, download=True)`` keeps them in ``root/FashionMNIST/raw``, which is found from
the same ``root``.

An idx file is a big-endian header (two zero bytes, a type code, the number of dimensions, then one
uint32 per dimension) followed by the values. Only unsigned bytes (type 0x08) are accepted.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unlearnkit.data.base import DATASETS, TRAIN, VAL, ImageDataset, assign_split
from unlearnkit.data.cache import check_image_size, resize_images, resolve_root, root_hint
from unlearnkit.errors import InputError

DEBIAN_ROOT = "/usr/share/datasets/fashion-mnist"
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions (n, rows, cols)
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension (n)
CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
TORCHVISION_DIR = Path("FashionMNIST", "raw")
LAYOUT = f"{', '.join(FILES.values())} (each optionally .gz), in root or root/{TORCHVISION_DIR.as_posix()}"


@dataclass(frozen=True)
class FashionMnistConfig:
    """Where the idx files are and how much of the training set to hold out for validation."""

    root: str = ""                # empty: $UNLEARNKIT_DATA_FASHION_MNIST, else Debian's path, else ~/data/fashion_mnist
    image_size: int = 32
    val_fraction: float = 0.1     # of the official training set, drawn with seed
    seed: int = 0
    train_size: int = 0           # >0: a seeded draw of this many official training images (before the val split)
    test_size: int = 0            # >0: a seeded draw of this many official test images

    def __post_init__(self) -> None:
        check_image_size(self.image_size, "fashion_mnist.")
        for name in ("train_size", "test_size"):
            if getattr(self, name) < 0:
                raise InputError(f"fashion_mnist.{name} must be 0 (all) or a positive count, got {getattr(self, name)}")


def probe_fashion_mnist(cfg: FashionMnistConfig) -> dict | None:
    """Example counts read from the idx headers alone.

    Returns:
        None where none of the four files is there; else ``root`` and ``files``, with
        ``train_examples`` and ``test_examples`` (or ``unreadable``, why not) where all four are,
        and ``missing`` where some are not.
    """
    base, files = _locate(resolve_root(cfg.root, "fashion_mnist", DEBIAN_ROOT))
    present = sum(path is not None for path in files.values())
    if not present:
        return None
    facts: dict = {"root": str(base), "files": present}
    absent = [FILES[key] for key, path in files.items() if path is None]
    if absent:
        facts["missing"] = ", ".join(absent)
        return facts
    try:
        facts["train_examples"], facts["test_examples"] = (
            _parse_header(files[key], _read(files[key], 16), IMAGES_MAGIC)[0] for key in ("train_images", "test_images")
        )
    except InputError as exc:
        facts["unreadable"] = str(exc)  # a probe reports; loading says the same
    return facts


@DATASETS.register("fashion_mnist", config=FashionMnistConfig, probe=probe_fashion_mnist)
def load_fashion_mnist(cfg: FashionMnistConfig) -> ImageDataset:
    """Fashion-MNIST as one-channel images with the official test set; validation comes from train.

    References: Xiao, Rasul and Vollgraf, Fashion-MNIST: a Novel Image Dataset for Benchmarking
    Machine Learning Algorithms, 2017.
    """
    root = resolve_root(cfg.root, "fashion_mnist", DEBIAN_ROOT)
    if not root.is_dir():
        raise InputError(
            f"fashion_mnist: folder {root} does not exist ({root_hint(cfg.root, 'fashion_mnist')}; "
            f"Debian's dataset-fashion-mnist installs to {DEBIAN_ROOT}); expected {LAYOUT}"
        )
    base, files = _locate(root)
    absent = [FILES[key] for key, path in files.items() if path is None]
    if absent:
        raise InputError(f"fashion_mnist: {base} lacks {', '.join(absent)}; expected {LAYOUT}")
    parts = []
    for part in ("train", "test"):
        images = read_idx(files[f"{part}_images"], IMAGES_MAGIC)
        labels = read_idx(files[f"{part}_labels"], LABELS_MAGIC)
        if len(images) != len(labels):
            raise InputError(
                f"fashion_mnist: {files[f'{part}_images']} has {len(images)} images but "
                f"{files[f'{part}_labels']} has {len(labels)} labels"
            )
        bad = np.flatnonzero(labels >= len(CLASS_NAMES))
        if bad.size:
            raise InputError(
                f"fashion_mnist: {files[f'{part}_labels']}: label {labels[bad[0]]} of example {bad[0]} "
                f"is out of range; expected 0..{len(CLASS_NAMES) - 1}"
            )
        parts.append((images, labels.astype(np.int64)))
    (train_x, train_y), (test_x, test_y) = (_draw(x, y, size, cfg.seed, part) for (x, y), size, part
                                            in zip(parts, (cfg.train_size, cfg.test_size), ("train", "test")))
    train_split = assign_split(len(train_y), None, val_fraction=cfg.val_fraction, test_fraction=0.0, seed=cfg.seed)
    split = np.concatenate([np.where(train_split == VAL, VAL, TRAIN), np.full(len(test_y), 2)]).astype(np.int8)
    images = np.concatenate([train_x, test_x])[..., None]
    return ImageDataset(
        name="fashion_mnist",
        images=resize_images(images, cfg.image_size),
        labels=np.concatenate([train_y, test_y]),
        groups=np.full(len(split), -1, dtype=np.int64),
        split=split,
        class_names=CLASS_NAMES,
        source=str(base),
        meta={},
    )


def _draw(x: np.ndarray, y: np.ndarray, size: int, seed: int, part: str) -> tuple[np.ndarray, np.ndarray]:
    """``size`` examples of one official split, drawn with ``seed`` (in file order); 0: all of them."""
    if size == 0:
        return x, y
    if size > len(y):
        raise InputError(f"fashion_mnist.{part}_size={size}, but the {part} files hold only {len(y)} images")
    keep = np.sort(np.random.default_rng([seed, ("train", "test").index(part)]).choice(len(y), size, replace=False))
    return x[keep], y[keep]


def read_idx(path: Path, magic: int) -> np.ndarray:
    """The uint8 array stored in an idx file, after checking its magic number and size.

    Args:
        path: A plain or gzipped idx file.
        magic: The expected magic number (IMAGES_MAGIC or LABELS_MAGIC).
    """
    data = _read(path)
    dims = _parse_header(path, data, magic)
    header = 4 + 4 * len(dims)
    expected = int(np.prod(dims))
    if len(data) - header != expected:
        raise InputError(
            f"{path}: header announces {' x '.join(map(str, dims))} = {expected} values "
            f"but {len(data) - header} bytes follow (truncated file?)"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _parse_header(path: Path, data: bytes, magic: int) -> tuple[int, ...]:
    """The dimensions an idx header announces, after checking its magic number."""
    found = int.from_bytes(data[:4], "big")
    if len(data) < 4 or found != magic:
        raise InputError(
            f"{path}: magic number 0x{found:08x} is not the expected 0x{magic:08x} "
            f"(an {'images' if magic == IMAGES_MAGIC else 'labels'} idx file of unsigned bytes)"
        )
    ndim = magic & 0xFF
    if len(data) < 4 + 4 * ndim:
        raise InputError(f"{path}: the idx header is truncated")
    return tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))


def _read(path: Path, limit: int = -1) -> bytes:
    """Up to ``limit`` bytes (all where -1) of a file, gunzipped where it starts with gzip's signature."""
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        with (gzip.open if gz else open)(path, "rb") as f:
            return f.read(limit)
    except (OSError, EOFError) as exc:
        raise InputError(f"{path} cannot be read: {exc}") from None


def _locate(root: Path) -> tuple[Path, dict[str, Path | None]]:
    """The folder holding the idx files (root, else torchvision's root/FashionMNIST/raw) and each file."""
    for base in (root, root / TORCHVISION_DIR):
        files = {key: _find(base, name) for key, name in FILES.items()}
        if any(path is not None for path in files.values()):
            return base, files
    return root, dict.fromkeys(FILES)


def _find(root: Path, name: str) -> Path | None:
    for candidate in (root / name, root / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None
