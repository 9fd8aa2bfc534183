"""CASIA-SURF faces labelled by age group, as in the NeurIPS 2023 Machine Unlearning competition.

Expected under ``root``::

    Age_Gender.txt
    WBackground/<folders>/<person id>/real.rssdk/color/*.jpg

The competition's evaluation code reads ``WBackground/*/<person id>/real.rssdk/color/*.jpg``. This
loader walks ``WBackground`` to any depth and takes, for each ``real.rssdk`` folder, the nearest
enclosing folder whose name is an id of ``Age_Gender.txt`` as the person, so both that layout and
``WBackground/<person id>/<session>/real.rssdk/color`` work. Only live captures (``real.rssdk``)
are used, never the spoof-attack folders beside them. Images of folders that no line of
``Age_Gender.txt`` names are skipped and counted in ``meta["unlabelled_images"]``.

``Age_Gender.txt`` format accepted (the released file is ``<id> <age> <gender>`` with one space):

* UTF-8 text (a byte-order mark is allowed), LF or CRLF line ends;
* one person per line: ``<id> <age> <gender>``, fields separated by any run of spaces, tabs or
  commas; ``id`` is the person's folder name, ``age`` a whole number of years, ``gender`` one token
  (``M``/``F`` in the release; kept, not used for labels);
* blank lines and lines starting with ``#`` are ignored, and so is a header line first whose second
  field reads ``age`` (any case);
* an id may appear once.

Anything else raises InputError naming the line number.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unlearnkit.data.base import DATASETS, ImageDataset, assign_split
from unlearnkit.data.cache import (
    cached,
    check_image_size,
    decode_images,
    files_signature,
    list_images,
    resolve_root,
    root_hint,
)
from unlearnkit.errors import InputError

AGE_FILE = "Age_Gender.txt"
IMAGES_DIR = "WBackground"
LIVE_DIR = "real.rssdk"
COLOR_DIR = "color"
LAYOUT = f"{AGE_FILE} and {IMAGES_DIR}/.../<person id>/{LIVE_DIR}/{COLOR_DIR}/*.jpg (the CASIA-SURF release)"

_SEPARATORS = re.compile(r"[\s,]+")


@dataclass(frozen=True)
class SurfConfig:
    """Where CASIA-SURF is, how ages become classes, and how persons are split."""

    root: str = ""                  # empty: $UNLEARNKIT_DATA_SURF, else ~/data/surf
    image_size: int = 32
    age_min: int | None = None      # None: the youngest age in Age_Gender.txt, as the competition did
    age_max: int | None = None      # None: the oldest age in Age_Gender.txt
    n_groups: int = 10              # equal-width age groups over [age_min, age_max + 1)
    cache_dir: str = ""             # empty: $UNLEARNKIT_CACHE, else ~/.cache/unlearnkit
    seed: int = 0
    val_fraction: float = 0.1       # of persons, not of images
    test_fraction: float = 0.1

    def __post_init__(self) -> None:
        check_image_size(self.image_size, "surf.")
        if self.n_groups < 1:
            raise InputError(f"surf.n_groups={self.n_groups}: expected at least 1")
        if self.age_min is not None and self.age_max is not None and self.age_max < self.age_min:
            raise InputError(f"surf.age_max={self.age_max} is below surf.age_min={self.age_min}")


def probe_surf(cfg: SurfConfig) -> dict | None:
    """Counts of listed persons and of live colour images (none decoded).

    Returns:
        None where neither Age_Gender.txt nor WBackground/ is there; else ``root``, ``persons`` and
        ``images`` as far as present, and ``missing`` where one of the two is absent.
    """
    root = resolve_root(cfg.root, "surf")
    has_ages, has_images = (root / AGE_FILE).is_file(), (root / IMAGES_DIR).is_dir()
    if not (has_ages or has_images):
        return None
    facts: dict = {"root": str(root)}
    if has_ages:
        try:
            facts["persons"] = len(read_age_gender(root / AGE_FILE))
        except (InputError, UnicodeDecodeError):
            facts["persons"] = None  # a probe reports; loading says what is wrong
    if has_images:
        facts["images"] = sum(len(list_images(color)) for color in _live_color_dirs(root / IMAGES_DIR))
    missing = [name for present, name in ((has_ages, AGE_FILE), (has_images, f"{IMAGES_DIR}/")) if not present]
    if missing:
        facts["missing"] = ", ".join(missing)
    return facts


@DATASETS.register("surf", config=SurfConfig, probe=probe_surf)
def load_surf(cfg: SurfConfig) -> ImageDataset:
    """Live colour face images with the age group as label and the person as group.

    Age groups are ``n_groups`` equal-width bins over ``[age_min, age_max + 1)`` (numpy's
    ``linspace`` + ``digitize``, as the competition's code). The split keeps every person on one
    side; the competition itself split by image with its own seed.

    References: Zhang et al., A Dataset and Benchmark for Large-scale Multi-modal Face Anti-spoofing,
    CVPR 2019; Triantafillou et al., NeurIPS 2023 Machine Unlearning Challenge, 2023.
    """
    root = resolve_root(cfg.root, "surf")
    if not root.is_dir():
        raise InputError(f"surf: folder {root} does not exist ({root_hint(cfg.root, 'surf')}); expected {LAYOUT}")
    absent = [p for p in (AGE_FILE, IMAGES_DIR) if not (root / p).exists()]
    if absent:
        raise InputError(f"surf: {root} lacks {', '.join(absent)}; expected {LAYOUT}")
    people = read_age_gender(root / AGE_FILE)
    edges = _age_edges(people, cfg, root / AGE_FILE)

    paths: list[Path] = []
    owners: list[str] = []
    unlabelled: list[Path] = []
    live_dirs = 0
    for color in _live_color_dirs(root / IMAGES_DIR):
        live_dirs += 1
        files = list_images(color)
        person = next((p for p in reversed(color.relative_to(root / IMAGES_DIR).parts[:-2]) if p in people), None)
        if person is None:
            unlabelled += files
            continue
        paths += files
        owners += [person] * len(files)
    if not paths:
        if not live_dirs:
            raise InputError(f"surf: no {LIVE_DIR}/{COLOR_DIR} folders under {root / IMAGES_DIR}; expected {LAYOUT}")
        example = unlabelled[0].relative_to(root / IMAGES_DIR) if unlabelled else f"{live_dirs} folders"
        raise InputError(
            f"surf: no image under {root / IMAGES_DIR} belongs to a person of {root / AGE_FILE} "
            f"(e.g. {example}); the person's folder name must equal an id there, "
            f"such as {next(iter(people))!r}"
        )

    person_ids = sorted(set(owners))
    index = {p: i for i, p in enumerate(person_ids)}
    groups = np.array([index[p] for p in owners], dtype=np.int64)
    ages = np.array([people[p][0] for p in owners], dtype=np.int64)
    labels = np.digitize(ages, edges) - 1
    key = {"files": files_signature(paths, root), "image_size": cfg.image_size}
    arrays = cached("surf", key, lambda: {"images": decode_images(paths, cfg.image_size)}, cfg.cache_dir)
    return ImageDataset(
        name="surf",
        images=arrays["images"],
        labels=labels.astype(np.int64),
        groups=groups,
        split=assign_split(
            len(paths), groups, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, seed=cfg.seed
        ),
        class_names=tuple(f"age {_num(a)}-{_num(b)}" for a, b in zip(edges[:-1], edges[1:])),
        source=str(root),
        meta={
            "age_edges": [float(e) for e in edges],
            "persons": len(person_ids),
            "person_ids": person_ids,
            "unlabelled_images": len(unlabelled),
        },
    )


def read_age_gender(path: Path) -> dict[str, tuple[int, str, int]]:
    """Parse ``Age_Gender.txt`` in the format of the module docstring.

    Returns:
        id -> (age, gender, line number).
    """
    people: dict[str, tuple[int, str, int]] = {}
    seen_content = False
    with open(path, encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            fields = [x for x in _SEPARATORS.split(text) if x]
            first, seen_content = not seen_content, True
            if first and len(fields) >= 2 and fields[1].lower() == "age":
                continue
            if len(fields) != 3 or not fields[1].isdigit():
                raise InputError(
                    f"{path} line {lineno}: expected '<id> <age> <gender>' with a whole-number age, "
                    f"got {text[:80]!r}"
                )
            pid, age, gender = fields[0], int(fields[1]), fields[2]
            if pid in people:
                raise InputError(f"{path} line {lineno}: id {pid!r} already appears on line {people[pid][2]}")
            people[pid] = (age, gender, lineno)
    if not people:
        raise InputError(f"{path} lists no person; expected lines '<id> <age> <gender>'")
    return people


def _age_edges(people: dict[str, tuple[int, str, int]], cfg: SurfConfig, path: Path) -> np.ndarray:
    """The n_groups + 1 bin edges over [lo, hi + 1), checking every listed age lies inside."""
    ages = [age for age, _, _ in people.values()]
    lo = min(ages) if cfg.age_min is None else cfg.age_min
    hi = max(ages) if cfg.age_max is None else cfg.age_max
    if hi < lo:
        raise InputError(f"surf: age_max={hi} is below age_min={lo}")
    for pid, (age, _, lineno) in people.items():
        if not lo <= age <= hi:
            raise InputError(
                f"{path} line {lineno}: age {age} of {pid!r} is outside age_min..age_max = {lo}..{hi}; "
                "widen them or leave them unset to use the file's range"
            )
    return np.linspace(lo, hi + 1, cfg.n_groups + 1)


def _live_color_dirs(base: Path) -> list[Path]:
    """Every ``real.rssdk/color`` folder under ``base``, in sorted walk order."""
    found: list[Path] = []
    for dirpath, dirnames, _ in os.walk(base):
        dirnames.sort()
        if LIVE_DIR in dirnames and (Path(dirpath) / LIVE_DIR / COLOR_DIR).is_dir():
            found.append(Path(dirpath) / LIVE_DIR / COLOR_DIR)
        # Capture folders (live or spoof) hold only modality folders of images: no need to descend.
        dirnames[:] = [d for d in dirnames if not d.endswith(".rssdk")]
    return found


def _num(x: float) -> str:
    return f"{round(float(x), 1):g}"
