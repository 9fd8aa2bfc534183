"""Any images described by a CSV file: ``path,label`` and optional ``group`` and ``split`` columns.

* ``path``: the image file, relative to the CSV's folder (or absolute).
* ``label``: class names (any strings; classes are the sorted distinct names) or, where every value
  is a whole number, class indices 0..num_classes-1.
* ``group`` (optional): who the image shows (any string or number); rows with the same value are
  one person, kept on one side of the split. An empty cell means no group.
* ``split`` (optional): ``train``, ``val`` or ``test`` on every row, used as given (persons found on
  several sides are counted in ``meta["groups_in_several_splits"]``); without the column the split
  is drawn by seed, whole groups at a time.

Other columns are ignored. The whole image is resized to a square (its aspect ratio is not kept).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unlearnkit.data.base import DATASETS, SPLIT_NAMES, ImageDataset, assign_split
from unlearnkit.data.cache import cached, check_image_size, decode_images, files_signature
from unlearnkit.errors import InputError

_INT = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class FolderConfig:
    """The CSV that lists the images, and how to split them when it does not say."""

    csv: str = ""                 # the CSV file; image paths are relative to its folder
    image_size: int = 32
    num_classes: int = 0          # for integer labels: 0 means the largest label + 1; unused for names
    cache_dir: str = ""           # empty: $UNLEARNKIT_CACHE, else ~/.cache/unlearnkit
    seed: int = 0
    val_fraction: float = 0.1     # used only without a split column
    test_fraction: float = 0.1

    def __post_init__(self) -> None:
        check_image_size(self.image_size, "folder.")
        if self.num_classes < 0:
            raise InputError(f"folder.num_classes={self.num_classes}: expected 0 (from the labels) or more")


def probe_folder(cfg: FolderConfig) -> dict | None:
    """The CSV's row count and columns (no image is opened, only looked up).

    Returns:
        None where there is no CSV; else ``csv``, ``rows`` and ``columns``, and ``missing`` where
        some listed images are not on disk.
    """
    if not cfg.csv or not Path(cfg.csv).expanduser().is_file():
        return None
    path = Path(cfg.csv).expanduser()
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        rows = [row for row in reader if any(cell.strip() for cell in row)]
    facts: dict = {"csv": str(path), "rows": len(rows), "columns": header}
    lowered = [h.lower() for h in header]
    if "path" in lowered:
        column = lowered.index("path")
        listed = [row[column].strip() for row in rows if len(row) > column and row[column].strip()]
        absent = [name for name in listed if not (path.parent / name).is_file()]
        if absent:
            facts["missing"] = f"{len(absent)} of {len(rows)} listed images (first: {absent[0]})"
    return facts


@DATASETS.register("folder", config=FolderConfig, probe=probe_folder)
def load_folder(cfg: FolderConfig) -> ImageDataset:
    """Images listed in a CSV, with labels, optional persons and an optional fixed split."""
    if not cfg.csv:
        raise InputError("folder: csv is empty; expected the path of a CSV with columns path,label[,group][,split]")
    csv_path = Path(cfg.csv).expanduser()
    if not csv_path.is_file():
        raise InputError(f"folder: CSV file {csv_path} does not exist; expected columns path,label[,group][,split]")
    rows, columns = _read_rows(csv_path)
    base = csv_path.parent

    paths: list[Path] = []
    for lineno, row in rows:
        path = base / row["path"]
        if not path.is_file():
            raise InputError(f"{csv_path} line {lineno}: image {row['path']!r} not found (looked for {path})")
        paths.append(path)
    labels, class_names = _labels([(lineno, row["label"]) for lineno, row in rows], cfg.num_classes, csv_path)

    # The listed paths, so that a user can name the images to forget (`unlearnkit forget --examples`).
    meta: dict = {"csv": str(csv_path), "image_names": [row["path"] for _, row in rows]}
    if "group" in columns:
        groups, group_ids = _groups([row["group"] for _, row in rows])
        meta["group_ids"] = group_ids
    else:
        groups = np.full(len(rows), -1, dtype=np.int64)
    if "split" in columns:
        split = np.empty(len(rows), dtype=np.int8)
        for i, (lineno, row) in enumerate(rows):
            value = row["split"].lower()
            if value not in SPLIT_NAMES:
                raise InputError(
                    f"{csv_path} line {lineno}: split {row['split']!r}; expected one of {', '.join(SPLIT_NAMES)}"
                )
            split[i] = SPLIT_NAMES.index(value)
        # A given split is the user's to make; a person on several sides is reported, not refused.
        pairs = np.unique(np.stack([groups, split.astype(np.int64)])[:, groups >= 0], axis=1)
        meta["groups_in_several_splits"] = int(len(pairs[0]) - len(np.unique(pairs[0])))
    else:
        split = assign_split(
            len(rows), groups, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, seed=cfg.seed
        )

    key = {"files": files_signature(paths), "image_size": cfg.image_size}
    arrays = cached("folder", key, lambda: {"images": decode_images(paths, cfg.image_size)}, cfg.cache_dir)
    return ImageDataset(
        name="folder",
        images=arrays["images"],
        labels=labels,
        groups=groups,
        split=split,
        class_names=class_names,
        source=str(csv_path),
        meta=meta,
    )


def _read_rows(csv_path: Path) -> tuple[list[tuple[int, dict[str, str]]], list[str]]:
    """(line number, row) for every non-blank row, and the normalised column names."""
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip().lower() for h in next(reader, [])]
        missing = [c for c in ("path", "label") if c not in header]
        if missing:
            raise InputError(
                f"{csv_path} line 1: header lacks column {', '.join(missing)}; found {', '.join(header) or 'nothing'}; "
                "expected path,label[,group][,split]"
            )
        rows: list[tuple[int, dict[str, str]]] = []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise InputError(
                    f"{csv_path} line {reader.line_num}: {len(row)} fields where the header has {len(header)}"
                )
            record = {name: cell.strip() for name, cell in zip(header, row)}
            if not record["path"] or not record["label"]:
                raise InputError(f"{csv_path} line {reader.line_num}: empty path or label")
            rows.append((reader.line_num, record))
    if not rows:
        raise InputError(f"{csv_path} lists no images")
    return rows, header


def _labels(values: list[tuple[int, str]], num_classes: int, csv_path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """Integer labels where every value is a whole number, else sorted class names."""
    if all(_INT.fullmatch(v) for _, v in values):
        ints = [int(v) for _, v in values]
        k = num_classes or max(ints) + 1
        for (lineno, v), i in zip(values, ints):
            if not 0 <= i < k:
                raise InputError(
                    f"{csv_path} line {lineno}: label {v} is out of range; expected 0..{k - 1}"
                    + (f" (num_classes={num_classes})" if num_classes else "")
                )
        return np.asarray(ints, dtype=np.int64), tuple(str(i) for i in range(k))
    names = sorted({v for _, v in values})
    index = {name: i for i, name in enumerate(names)}
    return np.asarray([index[v] for _, v in values], dtype=np.int64), tuple(names)


def _groups(values: list[str]) -> tuple[np.ndarray, list[str]]:
    """Group ids 0..P-1 (numeric order where all are numbers) and the original values, -1 for empty."""
    distinct = {v for v in values if v}
    numeric = all(_INT.fullmatch(v) for v in distinct)
    ordered = sorted(distinct, key=(lambda v: (int(v), v)) if numeric else None)
    index = {v: i for i, v in enumerate(ordered)}
    return np.asarray([index.get(v, -1) for v in values], dtype=np.int64), ordered

