"""CIFAR-10 from the official python batches or from an image-folder tree.

Two layouts are recognised, and ``root`` may point at any of these folders:

* the python version: ``cifar-10-batches-py/`` holding ``data_batch_1`` .. ``data_batch_5``,
  ``test_batch`` and ``batches.meta`` (``root`` is that folder or the folder containing it, which
  is the root torchvision's ``CIFAR10(root, download=True)`` was given);
* an image folder: ``train/<class>/*.png|jpg`` and ``test/<class>/*.png|jpg``.

The batches are pickles. They are read with a restricted unpickler that builds only dicts, lists,
strings, bytes, numbers and numpy arrays, so a tampered file cannot run code.
"""

from __future__ import annotations

import functools
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unlearnkit.data.base import DATASETS, TRAIN, VAL, ImageDataset, assign_split
from unlearnkit.data.cache import (
    IMAGE_SUFFIXES,
    cached,
    check_image_size,
    decode_images,
    files_signature,
    list_images,
    resize_images,
    resolve_root,
    root_hint,
)
from unlearnkit.errors import InputError

BATCHES_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META_FILE = "batches.meta"
BATCH_FILES = (*TRAIN_BATCHES, TEST_BATCH, META_FILE)
ARCHIVE = "cifar-10-python.tar.gz"  # what torchvision downloads into root before extracting it
LAYOUTS = (
    f"expected one of: {BATCHES_DIR}/ (with {', '.join(TRAIN_BATCHES)}, {TEST_BATCH}, {META_FILE}) "
    f"inside root; root being {BATCHES_DIR} itself; or an image folder root/train/<class>/*.png|jpg "
    "plus root/test/<class>/*.png|jpg"
)


@dataclass(frozen=True)
class Cifar10Config:
    """Where CIFAR-10 is and how much of its training set to hold out for validation."""

    root: str = ""                # empty: $UNLEARNKIT_DATA_CIFAR10, else ~/data/cifar10
    image_size: int = 32
    cache_dir: str = ""           # for the image-folder layout; empty: $UNLEARNKIT_CACHE or ~/.cache/unlearnkit
    val_fraction: float = 0.1     # of the official training set, drawn with seed
    seed: int = 0

    def __post_init__(self) -> None:
        check_image_size(self.image_size, "cifar10.")


def probe_cifar10(cfg: Cifar10Config) -> dict | None:
    """The detected layout and file counts (nothing is decoded).

    Returns:
        None where no layout is even partly there; else ``root``, ``layout`` and ``files`` (plus
        ``train``/``test`` image counts for an image folder), and ``missing`` where it is incomplete.
    """
    root = resolve_root(cfg.root, "cifar10")
    layout, base, missing = _detect(root)
    if layout is None:
        return None
    if layout == "archive":
        facts: dict = {"root": str(base), "layout": layout, "files": 1}
    elif layout == "batches":
        facts = {"root": str(base), "layout": layout, "files": sum((base / n).is_file() for n in BATCH_FILES[:-1])}
    else:
        counts = {part: sum(len(list_images(d)) for d in _class_dirs(base / part)) for part in ("train", "test")}
        facts = {"root": str(base), "layout": layout, "files": counts["train"] + counts["test"], **counts}
    if missing:
        facts["missing"] = ", ".join(missing)
    return facts


@DATASETS.register("cifar10", config=Cifar10Config, probe=probe_cifar10)
def load_cifar10(cfg: Cifar10Config) -> ImageDataset:
    """CIFAR-10 with the official test set, and validation carved from the training set by seed.

    Images are resized to ``image_size`` when it differs from 32. There are no identities
    (groups are -1).

    References: Krizhevsky, Learning Multiple Layers of Features from Tiny Images, 2009.
    """
    root = resolve_root(cfg.root, "cifar10")
    layout, base, missing = _detect(root)
    if layout is None:
        where = f"{root} does not exist" if not root.exists() else f"{root} matches no CIFAR-10 layout"
        raise InputError(f"cifar10: {where} ({root_hint(cfg.root, 'cifar10')}); {LAYOUTS}")
    if layout == "batches" and missing:
        more = f" (and {', '.join(missing[1:])})" if len(missing) > 1 else ""
        raise InputError(f"cifar10: {base / missing[0]} is missing{more}; {LAYOUTS}")
    if missing:
        raise InputError(f"cifar10: {base} lacks {', '.join(missing)}; {LAYOUTS}")
    if layout == "batches":
        images, labels, is_test, class_names = _load_batches(base)
        images = resize_images(images, cfg.image_size)
    else:
        images, labels, is_test, class_names = _load_image_folder(base, cfg)
    split = np.full(len(labels), 2, dtype=np.int8)
    train = np.flatnonzero(~is_test)
    split[train] = np.where(
        assign_split(len(train), None, val_fraction=cfg.val_fraction, test_fraction=0.0, seed=cfg.seed) == VAL,
        VAL,
        TRAIN,
    )
    return ImageDataset(
        name="cifar10",
        images=images,
        labels=labels,
        groups=np.full(len(labels), -1, dtype=np.int64),
        split=split,
        class_names=class_names,
        source=str(base),
        meta={"layout": layout},
    )


def _detect(root: Path) -> tuple[str | None, Path, list[str]]:
    """The layout found under ``root``, the folder it lives in, and the parts it lacks.

    A complete layout wins over a partial one: ("batches", folder with the batch files),
    ("folder", image-folder root), ("archive", root) for torchvision's download not yet
    extracted, or (None, root, []) where nothing of CIFAR-10 is there.
    """
    found: list[tuple[str, Path, list[str]]] = []
    for candidate in (root / BATCHES_DIR, root):
        present = [name for name in BATCH_FILES if (candidate / name).is_file()]
        if present or (candidate != root and candidate.is_dir()):
            found.append(("batches", candidate, [name for name in BATCH_FILES if name not in present]))
    parts = [part for part in ("train", "test") if (root / part).is_dir()]
    if parts:
        found.append(("folder", root, [f"{part}/" for part in ("train", "test") if part not in parts]))
    if (root / ARCHIVE).is_file():
        found.append(("archive", root, [f"{BATCHES_DIR}/ (extract {ARCHIVE} here)"]))
    for layout in found:
        if not layout[2]:
            return layout
    return found[0] if found else (None, root, [])


class _RestrictedUnpickler(pickle.Unpickler):
    """Admits only the globals a CIFAR batch needs: numpy's array rebuilders and bytes encoding."""

    def find_class(self, module: str, name: str) -> object:
        allowed = _allowed_globals()
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")
        return allowed[(module, name)]


@functools.cache
def _allowed_globals() -> dict[tuple[str, str], object]:
    import _codecs

    try:  # numpy >= 2 moved the internals to numpy._core; old pickles still name numpy.core
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    out: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _codecs.encode,  # how protocol-2 pickles from Python 3 spell bytes
    }
    for mod in ("numpy.core", "numpy._core"):
        out[(f"{mod}.multiarray", "_reconstruct")] = multiarray._reconstruct
        out[(f"{mod}.numeric", "_frombuffer")] = numeric._frombuffer
    for builtin in ("builtins", "__builtin__"):
        for tp in (dict, list, bytes, str, int):
            out[(builtin, tp.__name__)] = tp
    return out


def _unpickle(path: Path) -> dict:
    """Read one batch file into a dict with str keys."""
    try:
        with open(path, "rb") as f:
            # encoding="bytes" reads the Python 2 originals: their str payloads stay bytes.
            obj = _RestrictedUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise InputError(f"cifar10: {path} is missing; {LAYOUTS}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise InputError(f"cifar10: {path} is not a valid CIFAR-10 batch: {exc}") from None
    if not isinstance(obj, dict):
        raise InputError(f"cifar10: {path} holds a {type(obj).__name__}; expected a dict")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _load_batches(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    meta = _unpickle(folder / META_FILE)
    names = meta.get("label_names")
    if not isinstance(names, list) or not names:
        raise InputError(f"cifar10: {folder / META_FILE} has no 'label_names' list")
    class_names = tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names)
    images, labels, is_test = [], [], []
    for name in (*TRAIN_BATCHES, TEST_BATCH):
        batch = _unpickle(folder / name)
        data, lab = batch.get("data"), batch.get("labels")
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
            raise InputError(f"cifar10: {folder / name}: 'data' must be a uint8 array [n, 3072], got {got}")
        if not isinstance(lab, list) or len(lab) != len(data):
            raise InputError(f"cifar10: {folder / name}: 'labels' must be a list of {len(data)} ints")
        lab = np.asarray(lab, dtype=np.int64)
        bad = np.flatnonzero((lab < 0) | (lab >= len(class_names)))
        if bad.size:
            raise InputError(
                f"cifar10: {folder / name}: label {lab[bad[0]]} of row {bad[0]} is out of range; "
                f"expected 0..{len(class_names) - 1}"
            )
        # Each row is 1024 red, then 1024 green, then 1024 blue values of a row-major 32x32 image.
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(lab)
        is_test.append(np.full(len(lab), name == TEST_BATCH))
    return (
        np.ascontiguousarray(np.concatenate(images)),
        np.concatenate(labels),
        np.concatenate(is_test),
        class_names,
    )


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def _load_image_folder(root: Path, cfg: Cifar10Config) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    class_names = tuple(p.name for p in _class_dirs(root / "train"))
    if not class_names:
        raise InputError(f"cifar10: {root / 'train'} has no class folders; {LAYOUTS}")
    test_classes = [p.name for p in _class_dirs(root / "test")]
    unknown = sorted(set(test_classes) - set(class_names))
    if unknown:
        raise InputError(
            f"cifar10: {root / 'test'} has class folder {unknown[0]!r} that {root / 'train'} lacks; "
            f"train classes: {', '.join(class_names)}"
        )
    paths: list[Path] = []
    labels: list[int] = []
    is_test: list[bool] = []
    for part in ("train", "test"):
        for index, name in enumerate(class_names):
            folder = root / part / name
            files = list_images(folder) if folder.is_dir() else []
            paths += files
            labels += [index] * len(files)
            is_test += [part == "test"] * len(files)
    if not paths:
        raise InputError(f"cifar10: no {'/'.join(IMAGE_SUFFIXES)} images under {root}/train or {root}/test")
    key = {"files": files_signature(paths, root), "image_size": cfg.image_size}
    arrays = cached("cifar10", key, lambda: {"images": decode_images(paths, cfg.image_size)}, cfg.cache_dir)
    return arrays["images"], np.asarray(labels, dtype=np.int64), np.asarray(is_test, dtype=bool), class_names
