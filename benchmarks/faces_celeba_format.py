"""Real faces in the CelebA layout: the AR face database (AR-II subset) for identity-level benches.

    python benchmarks/faces_celeba_format.py /work/.mirror/yuzhounh+Face-databases/repo /work/data/faces_celeba
    unlearnkit bench --dataset celeba --data-root /work/data/faces_celeba --set dataset.crop=false \\
        --set dataset.label=Expression --forget identity:0.02 ...

Source: the MATLAB file ``faces/AR_II.mat`` of https://github.com/yuzhounh/Face-databases (MIT
License for the repository, 2024 Jing Wang), commit 75d3e1df261b9810cc4ce2ef8b80b696658a02d6, git
blob 0b8e33a2e4193767178f95d0ea53872ebdf00c45 (3,265,022 bytes). It holds ``x``, 1,386 grey faces of
60 x 43 pixels (height x width), and ``label``, the person (1..99), 14 images per person. The faces
are the AR face database's (A. M. Martinez and R. Benavente, *The AR Face Database*, CVC Technical
Report #24, 1998), cropped and aligned; the AR database is distributed for research by its authors,
who ask that it be cited.

The 14 images of a person are AR's unoccluded shots, in AR's own order, two sessions two weeks
apart: 1 neutral expression, 2 smile, 3 anger, 4 scream, 5 left light on, 6 right light on, 7 both
side lights on; then 8..14 the same in the second session (AR's images 14..20). The attributes are
read from that capture protocol, nothing else; a montage of the 99 people at each position
(``--montage``) is how the order was checked:

* ``Smiling``     the smile shots (2 of 14 per person);
* ``Angry``       the anger shots (2 of 14);
* ``Screaming``   the scream shots (2 of 14);
* ``Expression``  any of the three: a face that is not neutral (6 of 14, 43 %); lit shots are neutral;
* ``Side_Lit``    a side light on (6 of 14).

The AR database's gender labels are not in this file (its 99 people are not AR's 50 + 50 in a
known order), so there is no ``Male``.

The output is the official CelebA layout that ``unlearnkit.data.celeba`` reads: ``img_align_celeba/
000001.jpg ...`` (the source's pixels as grey-level RGB JPEGs, quality 95, 43 x 60, not resized;
load with ``dataset.crop=false``, which squeezes them to a square), ``identity_CelebA.txt``
(``000001.jpg 1``: the AR-II person), ``list_attr_celeba.txt`` and ``list_eval_partition.txt``. As
CelebA's, the partition is by person: a seeded permutation of the people puts 80 % in train (0),
10 % in val (1) and 10 % in test (2), so no person is in two splits. ``source.json`` records the
source, its commit and blob, the attribute rule and the split.

The output folder is built beside itself under a temporary name and renamed into place, so a
reader sees either no folder or a complete one; an existing output is replaced only with --force.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

SOURCE_REPO = "https://github.com/yuzhounh/Face-databases"
SOURCE_COMMIT = "75d3e1df261b9810cc4ce2ef8b80b696658a02d6"
SOURCE_PATH = "faces/AR_II.mat"
SOURCE_BLOB = "0b8e33a2e4193767178f95d0ea53872ebdf00c45"
SHOTS_PER_PERSON = 14
SESSION = 7  # shots per session; position p (0-based) is AR condition p % 7 of session p // 7
# AR condition (0-based within a session) -> the attributes it carries.
CONDITIONS = ("neutral", "smile", "anger", "scream", "left light", "right light", "both lights")
ATTRIBUTES = {
    "Smiling": (1,),
    "Angry": (2,),
    "Screaming": (3,),
    "Expression": (1, 2, 3),
    "Side_Lit": (4, 5, 6),
}


@dataclass(frozen=True)
class Faces:
    """Grey faces [n, h, w] uint8 with their person ids and 0-based position among the person's shots."""

    images: np.ndarray
    person: np.ndarray
    position: np.ndarray


def git_blob_id(data: bytes) -> str:
    """Git's object id of a file's bytes, to tie the file read to the recorded source."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def read_source(source: Path) -> tuple[bytes, str | None]:
    """The bytes of AR_II.mat from the .mat itself, a checkout, or a bare git directory (its HEAD).

    Returns:
        The file's bytes and the commit it was read at (None when read from a plain file).
    """
    if source.is_file():
        return source.read_bytes(), None
    if (source / SOURCE_PATH).is_file():
        return (source / SOURCE_PATH).read_bytes(), _git(source, "rev-parse", "HEAD")
    try:
        data = subprocess.run(
            ["git", f"--git-dir={source}", "show", f"HEAD:{SOURCE_PATH}"], capture_output=True, check=True
        ).stdout
    except subprocess.CalledProcessError as exc:
        raise ValueError(
            f"{source}: not {SOURCE_PATH}, a checkout holding it, or a git directory whose HEAD has it "
            f"({exc.stderr.decode(errors='replace').strip()}); expected a copy of {SOURCE_REPO}"
        ) from None
    return data, _git(source, "rev-parse", "HEAD", bare=True)


def _git(path: Path, *args: str, bare: bool = False) -> str | None:
    where = [f"--git-dir={path}"] if bare else ["-C", str(path)]
    done = subprocess.run(["git", *where, *args], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def parse_faces(data: bytes) -> Faces:
    """The faces of AR_II.mat, checked: every person has 14 shots, stored one person after another."""
    mat = scipy.io.loadmat(io.BytesIO(data))
    if "x" not in mat or "label" not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"expected variables x and label in {SOURCE_PATH}; found {found}")
    x, label = mat["x"], mat["label"].ravel().astype(np.int64)
    if x.ndim != 3 or x.shape[2] != label.size or x.dtype != np.uint8:
        raise ValueError(f"expected x as uint8 [h, w, n] with n = {label.size} labels; got {x.dtype} {x.shape}")
    people, first, counts = np.unique(label, return_index=True, return_counts=True)
    if (counts != SHOTS_PER_PERSON).any():
        bad = people[counts != SHOTS_PER_PERSON][0]
        raise ValueError(f"person {bad} has {counts[people == bad][0]} images; expected {SHOTS_PER_PERSON} each")
    position = np.arange(label.size) - first[np.searchsorted(people, label)]
    if position.max() >= SHOTS_PER_PERSON:
        raise ValueError("a person's images are not stored together; the AR order cannot be read")
    return Faces(images=np.moveaxis(x, 2, 0), person=label, position=position)


def attributes(position: np.ndarray) -> np.ndarray:
    """[n, len(ATTRIBUTES)] of -1 / 1 from each image's AR capture condition."""
    condition = position % SESSION
    return np.stack([np.where(np.isin(condition, c), 1, -1) for c in ATTRIBUTES.values()], axis=1)


def partition(person: np.ndarray, seed: int, val: float, test: float) -> np.ndarray:
    """CelebA's 0 / 1 / 2 per image, by person: a seeded permutation of the people, cut in three."""
    people = np.unique(person)
    order = np.random.default_rng(seed).permutation(people)
    n_val, n_test = round(val * len(people)), round(test * len(people))
    split_of = dict.fromkeys(order[: len(people) - n_val - n_test].tolist(), 0)
    split_of.update(dict.fromkeys(order[len(people) - n_val - n_test : len(people) - n_test].tolist(), 1))
    split_of.update(dict.fromkeys(order[len(people) - n_test :].tolist(), 2))
    return np.array([split_of[p] for p in person.tolist()], dtype=np.int64)


def write_layout(folder: Path, faces: Faces, split: np.ndarray, quality: int) -> list[str]:
    """Write the CelebA files into ``folder`` (which exists and is empty); return the image names."""
    images = folder / "img_align_celeba"
    images.mkdir()
    names = [f"{i + 1:06d}.jpg" for i in range(len(faces.person))]
    for name, img in zip(names, faces.images):
        Image.fromarray(img).convert("RGB").save(images / name, quality=quality)
    attrs = attributes(faces.position)
    rows = [f"{name} " + " ".join(f"{v:2d}" for v in row) for name, row in zip(names, attrs)]
    (folder / "list_attr_celeba.txt").write_text(f"{len(names)}\n{' '.join(ATTRIBUTES)}\n" + "\n".join(rows) + "\n")
    (folder / "identity_CelebA.txt").write_text("".join(f"{n} {p}\n" for n, p in zip(names, faces.person.tolist())))
    (folder / "list_eval_partition.txt").write_text("".join(f"{n} {s}\n" for n, s in zip(names, split.tolist())))
    return names


def convert(source: Path, out: Path, *, seed: int = 0, val: float = 0.1, test: float = 0.1,
            quality: int = 95, force: bool = False) -> dict:
    """Convert AR_II.mat at ``source`` into the CelebA layout at ``out``, atomically.

    Returns:
        The summary also written to ``out/source.json``.
    """
    if out.exists() and not force:
        raise ValueError(f"{out} exists; pass --force to replace it")
    data, commit = read_source(source)
    blob = git_blob_id(data)
    faces = parse_faces(data)
    split = partition(faces.person, seed, val, test)
    attrs = attributes(faces.position)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write_layout(tmp, faces, split, quality)
        summary = {
            "source": {"repository": SOURCE_REPO, "path": SOURCE_PATH, "commit_read": commit,
                       "commit_recorded": SOURCE_COMMIT, "blob": blob, "blob_matches_recorded": blob == SOURCE_BLOB,
                       "database": "AR face database, AR-II subset (Martinez and Benavente 1998)"},
            "people": int(len(np.unique(faces.person))),
            "images": int(len(faces.person)),
            "image_size_hw": list(faces.images.shape[1:]),
            "attributes": {name: {"conditions": [CONDITIONS[c] for c in cs], "positive": int((attrs[:, j] == 1).sum())}
                           for j, (name, cs) in enumerate(ATTRIBUTES.items())},
            "partition": {"seed": seed, "by": "person", **{
                label: {"people": len(np.unique(faces.person[split == s])), "images": int((split == s).sum())}
                for s, label in enumerate(("train", "val", "test"))
            }},
        }
        (tmp / "source.json").write_text(json.dumps(summary, indent=2) + "\n")
        os.chmod(tmp, 0o755)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


def montage(source: Path, path: Path) -> None:
    """A PNG with one row per shot position and one column per person, to check AR's order by eye."""
    faces = parse_faces(read_source(source)[0])
    people = np.unique(faces.person)
    rows = [
        np.concatenate([faces.images[(faces.person == p) & (faces.position == k)][0] for p in people], axis=1)
        for k in range(SHOTS_PER_PERSON)
    ]
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


def print_summary(summary: dict, out: Path) -> None:
    src = summary["source"]
    print(f"source   {src['repository']} {src['path']} @ {src['commit_read'] or '(plain file)'} "
          f"(recorded {src['commit_recorded'][:12]}; blob {src['blob'][:12]}, "
          f"{'matches' if src['blob_matches_recorded'] else 'DIFFERS FROM'} the recorded one)")
    print(f"output   {out}: {summary['people']} people, {summary['images']} images of "
          f"{summary['image_size_hw'][0]}x{summary['image_size_hw'][1]} (h x w)")
    for name, a in summary["attributes"].items():
        print(f"  {name:<11} {a['positive']:5d} positive / {summary['images']} "
              f"({a['positive'] / summary['images']:.1%})  = {', '.join(a['conditions'])}")
    for label in ("train", "val", "test"):
        p = summary["partition"][label]
        print(f"  {label:<5} {p['people']:3d} people {p['images']:5d} images")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("source", type=Path, help=f"AR_II.mat, or a checkout / bare git directory of {SOURCE_REPO}")
    ap.add_argument("out", type=Path, help="output folder (outside the repository), e.g. /work/data/faces_celeba")
    ap.add_argument("--seed", type=int, default=0, help="seed of the person-level partition")
    ap.add_argument("--val", type=float, default=0.1, help="share of people in val")
    ap.add_argument("--test", type=float, default=0.1, help="share of people in test")
    ap.add_argument("--quality", type=int, default=95, help="JPEG quality")
    ap.add_argument("--force", action="store_true", help="replace an existing output folder")
    ap.add_argument("--montage", type=Path, help="also write a PNG montage (rows: shot positions, columns: people)")
    args = ap.parse_args(argv)
    try:
        summary = convert(args.source, args.out, seed=args.seed, val=args.val, test=args.test,
                          quality=args.quality, force=args.force)
        if args.montage:
            montage(args.source, args.montage)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_summary(summary, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
