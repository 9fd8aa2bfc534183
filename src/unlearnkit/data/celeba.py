"""CelebA from a local folder, in the official layout, torchvision's or Kaggle's.

The official layout (torchvision downloads the same files into ``<its root>/celeba``), under ``root``
or ``root/celeba``::

    img_align_celeba/000001.jpg ...   aligned 178x218 faces (any subset of them)
    identity_CelebA.txt               "000001.jpg 2880": image -> person id
    list_attr_celeba.txt              a count, the 40 attribute names, then "000001.jpg -1  1 ..." rows
    list_eval_partition.txt           "000001.jpg 0": 0 train, 1 val, 2 test

Kaggle's copy (jessicali9530/celeba-dataset) has the images one folder deeper,
``img_align_celeba/img_align_celeba/*.jpg``, and CSV annotations with a header row:
``list_attr_celeba.csv`` (``image_id,5_o_Clock_Shadow,...`` then ``000001.jpg,-1,1,...``) and
``list_eval_partition.csv`` (``image_id,partition``). It has no identity file, so it loads with
groups -1 and identity forget sets are refused, naming ``identity_CelebA.txt``; put that file next
to the CSVs and the identities are used.

``identity_CelebA.txt`` and ``list_eval_partition.txt`` may start with a header line whose first
field names the image column (``image identity``, ``image_id partition``), as some mirrors ship them.

Partial downloads are common, so only the images present are loaded and the number of listed
images that are missing is reported in ``meta["missing_images"]``.
"""

from __future__ import annotations

import os
import re
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
KAGGLE_ATTR_FILE = "list_attr_celeba.csv"
KAGGLE_PARTITION_FILE = "list_eval_partition.csv"
TORCHVISION_DIR = "celeba"  # torchvision.datasets.CelebA(root) keeps its files in root/celeba

LAYOUT = (
    f"{IMAGES_DIR}/*.jpg, {IDENTITY_FILE}, {ATTR_FILE} and {PARTITION_FILE} "
    f"(the official CelebA 'Align&Cropped' layout), in root or in root/{TORCHVISION_DIR} as torchvision "
    f"downloads it; or Kaggle's {IMAGES_DIR}/{IMAGES_DIR}/*.jpg, {KAGGLE_ATTR_FILE} and {KAGGLE_PARTITION_FILE}"
)
# Any one of these marks a folder as (part of) CelebA.
_MARKERS = (IMAGES_DIR, IDENTITY_FILE, ATTR_FILE, PARTITION_FILE, KAGGLE_ATTR_FILE, KAGGLE_PARTITION_FILE)
# A first line "<one of these> <column name>" is a header, not an image; anything else must be data.
_IMAGE_COLUMNS = frozenset({"image", "image_id", "image_name", "img", "file", "filename", "file_name", "name"})
_COLUMN_NAME = re.compile(r"[A-Za-z_]\w*")
_INTEGER = re.compile(r"[+-]?\d+")

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


@dataclass(frozen=True)
class _Layout:
    """Where each CelebA part was found (None: absent) and which layout the annotations follow."""

    kind: str                     # "official" (text annotations) or "kaggle" (CSV annotations)
    base: Path                    # root, or root/celeba
    images: Path                  # the image folder, whether or not it exists
    attr: Path | None
    partition: Path | None
    identity: Path | None

    @property
    def missing(self) -> list[str]:
        """The parts a load needs that are absent, as names relative to ``base``."""
        kaggle = self.kind == "kaggle"
        needed = (
            (self.images.is_dir(), f"{IMAGES_DIR}/"),
            (self.identity is not None or kaggle, IDENTITY_FILE),  # Kaggle's copy never has it
            (self.attr is not None, KAGGLE_ATTR_FILE if kaggle else ATTR_FILE),
            (self.partition is not None, KAGGLE_PARTITION_FILE if kaggle else PARTITION_FILE),
        )
        return [name for present, name in needed if not present]


def _find_layout(root: Path) -> _Layout | None:
    """The CelebA parts in ``root``, else in ``root/celeba``; None where neither holds any."""
    base = next((b for b in (root, root / TORCHVISION_DIR) if any((b / m).exists() for m in _MARKERS)), None)
    if base is None:
        return None
    nested = base / IMAGES_DIR / IMAGES_DIR  # Kaggle's zip holds the folder inside a folder of that name
    attr = _first_file(base, ATTR_FILE, KAGGLE_ATTR_FILE)
    partition = _first_file(base, PARTITION_FILE, KAGGLE_PARTITION_FILE)
    kaggle = any(p is not None and p.suffix == ".csv" for p in (attr, partition))
    return _Layout(
        kind="kaggle" if kaggle else "official",
        base=base,
        images=nested if nested.is_dir() else base / IMAGES_DIR,
        attr=attr,
        partition=partition,
        identity=_first_file(base, IDENTITY_FILE),
    )


def _first_file(base: Path, *names: str) -> Path | None:
    return next((base / name for name in names if (base / name).is_file()), None)


def probe_celeba(cfg: CelebAConfig) -> dict | None:
    """Quick facts about the CelebA folder (no image is decoded).

    Returns:
        None where no CelebA file is in root or root/celeba; else ``root``, ``images`` (present) and
        ``listed`` (in the attribute file), plus ``layout`` and ``identities`` for Kaggle's copy, and
        ``missing`` (what a load would lack) where the folder is incomplete.
    """
    layout = _find_layout(resolve_root(cfg.root, "celeba"))
    if layout is None:
        return None
    facts: dict = {"root": str(layout.base)}
    if layout.kind != "official":
        facts["layout"] = layout.kind
    missing = layout.missing
    if layout.images.is_dir():
        facts["images"] = sum(1 for e in os.scandir(layout.images) if e.name.lower().endswith(".jpg"))
        if not facts["images"]:
            missing.insert(0, f"{layout.images.relative_to(layout.base).as_posix()}/*.jpg")
    if layout.attr is not None:
        facts["listed"] = _count_listed(layout.attr)
    if layout.identity is None and layout.kind == "kaggle":
        facts["identities"] = f"none (no {IDENTITY_FILE}: no identity forget sets)"
    if missing:
        facts["missing"] = ", ".join(missing)
    return facts


def _count_listed(path: Path) -> int | None:
    """The image count the attribute file announces (text) or its rows below the header (CSV)."""
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        if path.suffix == ".csv":
            return max(sum(1 for line in f if line.strip()) - 1, 0)
        first = f.readline().strip()
    return int(first) if first.isdigit() else None


@DATASETS.register("celeba", config=CelebAConfig, probe=probe_celeba)
def load_celeba(cfg: CelebAConfig) -> ImageDataset:
    """CelebA faces with identities as groups and the official train/val/test partition.

    Labels are one attribute (class 0 = without it, 1 = with it), or for ``"male_gray_chubby"``
    the 8-class code ``4*Male + 2*Gray_Hair + Chubby`` of the research proposal. Decoded images are
    cached, so a second load reads one file. Without an identity file (Kaggle's copy) groups are -1
    and ``meta["groups_file"]`` names the file that would provide them.

    References: Liu et al., Deep Learning Face Attributes in the Wild, ICCV 2015.
    """
    root = resolve_root(cfg.root, "celeba")
    layout = _check_layout(root, cfg.root)
    base = layout.base
    names, attr_names, attrs = _read_attributes(layout.attr)
    labels_all, class_names = _labels(attrs, attr_names, cfg.label, layout.attr)
    identity = _read_two_columns(layout.identity, "person id") if layout.identity is not None else None
    partition = _read_two_columns(layout.partition, "partition")

    present = {e.name for e in os.scandir(layout.images) if e.is_file()}
    keep = np.array([name in present for name in names], dtype=bool)
    kept_names = [name for name, k in zip(names, keep) if k]
    missing = int(len(names) - len(kept_names))
    if not kept_names:
        raise InputError(
            f"celeba: none of the {len(names)} images listed in {layout.attr} is in "
            f"{layout.images}; expected {LAYOUT}"
        )
    for table, path in ((identity, layout.identity), (partition, layout.partition)):
        if table is None:
            continue
        absent = [name for name in kept_names if name not in table]
        if absent:
            raise InputError(
                f"celeba: {path} has no line for {absent[0]} "
                f"({len(absent)} present images are not listed there)"
            )
    if identity is None:
        groups = np.full(len(kept_names), -1, dtype=np.int64)
    else:
        groups = np.array([identity[name] for name in kept_names], dtype=np.int64)
    split = np.array([partition[name] for name in kept_names], dtype=np.int64)
    bad = np.flatnonzero((split < 0) | (split > 2))
    if bad.size:
        raise InputError(
            f"celeba: {layout.partition} gives partition {split[bad[0]]} for {kept_names[bad[0]]}; "
            "expected 0 (train), 1 (val) or 2 (test)"
        )

    crop_box = CROP_BOX if cfg.crop else None
    image_dir = os.fspath(layout.images)
    paths = [os.path.join(image_dir, name) for name in kept_names]  # str: 200k Paths cost seconds
    key = {"files": files_signature(paths, base), "image_size": cfg.image_size, "crop_box": crop_box}
    arrays = cached("celeba", key, lambda: {"images": decode_images(paths, cfg.image_size, crop_box)}, cfg.cache_dir)

    meta = {
        "label": cfg.label,
        "layout": layout.kind,
        "listed_images": len(names),
        "missing_images": missing,
        "crop_box_pixels": list(CROP_BOX_PIXELS) if cfg.crop else None,
        "image_names": list(kept_names),  # e.g. 000001.jpg, for `unlearnkit forget --examples`
    }
    if identity is None:
        meta["groups_file"] = str(base / IDENTITY_FILE)
    return ImageDataset(
        name="celeba",
        images=arrays["images"],
        labels=labels_all[keep].astype(np.int64),
        groups=groups,
        split=split.astype(np.int8),
        class_names=class_names,
        source=str(base),
        meta=meta,
    )


def _check_layout(root: Path, configured: str) -> _Layout:
    if not root.is_dir():
        raise InputError(f"celeba: folder {root} does not exist ({root_hint(configured, 'celeba')}); expected {LAYOUT}")
    layout = _find_layout(root)
    if layout is None:
        raise InputError(
            f"celeba: neither {root} nor {root / TORCHVISION_DIR} holds any CelebA file; expected {LAYOUT}"
        )
    absent = layout.missing
    if absent:
        raise InputError(f"celeba: {layout.base} lacks {', '.join(absent)}; expected {LAYOUT}")
    return layout


def _read_attributes(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """Parse list_attr_celeba.txt, or Kaggle's list_attr_celeba.csv (a header row, no count).

    Returns:
        Image names in file order, the attribute names, and an int8 array [n, n_attrs] of 0/1.
    """
    with open(path, encoding="utf-8-sig") as f:
        lines = f.read().splitlines()
    if path.suffix == ".csv":
        header = [h.strip() for h in lines[0].split(",")] if lines else []
        attr_names = header[1:]
        if not attr_names or any(not a or _INTEGER.fullmatch(a) for a in attr_names):
            raise InputError(
                f"{path} line 1: expected a header row 'image_id,<attribute>,...'; "
                f"got {lines[0][:60] if lines else 'an empty file'!r}"
            )
        first_row, sep, count = 2, ",", None
    else:
        if len(lines) < 2 or not lines[0].strip().isdigit():
            raise InputError(
                f"{path} line 1: expected the number of images, then a line of attribute names; "
                f"got {lines[0][:60] if lines else 'an empty file'!r}"
            )
        attr_names = lines[1].split()
        first_row, sep, count = 3, None, int(lines[0].strip())
    k = len(attr_names)
    # (line number, image name, its values as space-separated text, the line as written)
    body = []
    for lineno, line in enumerate(lines[first_row - 1 :], start=first_row):
        if line.strip():
            parts = line.strip().split(sep, 1)
            values = parts[1].replace(",", " ") if len(parts) == 2 else "x"
            body.append((lineno, parts[0].strip(), values, line))
    names = [name for _, name, _, _ in body]
    if count is not None and len(names) != count:
        raise InputError(f"{path}: line 1 announces {count} images but {len(names)} rows follow (truncated file?)")
    # One numpy parse of all values is ~3x faster than splitting 8 million tokens in Python; a
    # malformed row is then located by the slow check below.
    try:
        values = np.fromstring(" ".join(v for _, _, v, _ in body), dtype=np.int8, sep=" ")
    except ValueError:
        values = np.empty(0, dtype=np.int8)
    if values.size != len(body) * k or not np.isin(values, (-1, 0, 1)).all():
        for lineno, _, text, line in body:
            fields = text.split()
            if len(fields) != k or any(v not in ("-1", "0", "1") for v in fields):
                raise InputError(
                    f"{path} line {lineno}: expected an image name and {k} values of -1 or 1, "
                    f"got {line.strip()[:100]!r}"
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
    """Parse ``<image> <integer>`` lines (``<image>,<integer>`` in a .csv) into a dict.

    A first line such as ``image identity`` or ``image_id,partition`` is a header and skipped; any
    other malformed line raises InputError naming it.
    """
    sep = "," if path.suffix == ".csv" else None
    form = f"<image>,<{what}>" if sep else f"<image> <{what}>"
    out: dict[str, int] = {}
    seen_content = False
    with open(path, encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, start=1):
            fields = [x.strip() for x in line.split(sep)] if sep else line.split()
            if not any(fields):
                continue
            first, seen_content = not seen_content, True
            if first and _is_header(fields):
                continue
            if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
                raise InputError(f"{path} line {lineno}: expected '{form}', got {line.strip()[:80]!r}")
            out[fields[0]] = int(fields[1])
    return out


def _is_header(fields: list[str]) -> bool:
    """Whether a first line names the two columns (``image identity``) rather than an image and a value."""
    return len(fields) == 2 and fields[0].lower() in _IMAGE_COLUMNS and bool(_COLUMN_NAME.fullmatch(fields[1]))
