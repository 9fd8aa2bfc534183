"""What the real-data loaders share: finding data on disk, decoding images, and an on-disk cache.

Decoding a few hundred thousand JPEGs takes minutes; every later load of the same files at the same
size should take seconds. :func:`cached` stores the decoded arrays in an ``.npz`` file named by a
fingerprint of the source files (paths, sizes, modification times) and of the decode settings, so a
changed, added or removed file, or a new ``image_size``, builds a fresh entry instead of serving
stale pixels.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageOps

from unlearnkit.errors import InputError
from unlearnkit.io import fingerprint, read_npz, write_npz

# Bump when decoding changes (filter, crop arithmetic, channel order), so old cache entries miss.
CACHE_FORMAT = 1

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

# PIL decodes and resizes with the GIL released, so threads give a real speed-up on several cores.
_MAX_WORKERS = 8
_CHUNK = 256
_EXIF_ORIENTATION = 0x0112


def default_root(name: str, *fallbacks: str | Path) -> Path:
    """Where a dataset lives when its config leaves ``root`` empty.

    The environment variable ``UNLEARNKIT_DATA_<NAME>`` wins; otherwise the first of ``fallbacks``
    that exists, else ``~/data/<name>``. The path need not exist: loaders report it when it does not.
    """
    env = os.environ.get(f"UNLEARNKIT_DATA_{name.upper()}")
    if env:
        return Path(env).expanduser()
    for candidate in fallbacks:
        if Path(candidate).exists():
            return Path(candidate)
    return Path("~/data").expanduser() / name


def resolve_root(root: str, name: str, *fallbacks: str | Path) -> Path:
    """``root`` as a path, or :func:`default_root` when it is empty."""
    return Path(root).expanduser() if root else default_root(name, *fallbacks)


def root_hint(root: str, name: str) -> str:
    """How the user can point a loader elsewhere, for error messages."""
    if root:
        return f"set root to the folder holding {name}"
    return f"root was empty, so the default was used; set root or UNLEARNKIT_DATA_{name.upper()}"


def resolve_cache_dir(cache_dir: str) -> Path:
    """``cache_dir``, or ``$UNLEARNKIT_CACHE``, or ``~/.cache/unlearnkit``."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    env = os.environ.get("UNLEARNKIT_CACHE")
    return Path(env).expanduser() if env else Path("~/.cache/unlearnkit").expanduser()


def files_signature(paths: Sequence[str | Path], base: str | Path | None = None) -> str:
    """A digest of each file's path, size and modification time (contents are not read).

    Args:
        paths: The source files, in the order the loader uses them.
        base: Paths are hashed relative to it where given, so the digest names the layout rather
            than where it happens to be mounted.
    """
    h = hashlib.sha256()
    prefix = os.path.join(os.fspath(base), "") if base is not None else ""
    for path in paths:
        # Plain strings and os.stat: over CelebA's 200k files pathlib's overhead would dominate.
        name = os.fspath(path)
        st = os.stat(name)
        if prefix and name.startswith(prefix):
            name = name[len(prefix) :]
        h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def cached(
    name: str,
    key: dict,
    build: Callable[[], dict[str, np.ndarray]],
    cache_dir: str,
) -> dict[str, np.ndarray]:
    """The arrays ``build()`` returns, computed once per ``key`` and then read from disk.

    Args:
        name: The dataset name; entries live under ``<cache_dir>/<name>/``.
        key: Everything the arrays depend on (a source-files signature and the decode settings);
            JSON-able values only.
        build: Produces the arrays on a miss. Arrays must be plain (no object dtype).
        cache_dir: The cache folder; empty means ``$UNLEARNKIT_CACHE`` or ``~/.cache/unlearnkit``.

    Returns:
        The arrays, by name.
    """
    path = resolve_cache_dir(cache_dir) / name / f"{fingerprint(CACHE_FORMAT, name, key)}.npz"
    if path.is_file():
        try:
            return read_npz(path)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            # A damaged entry (disk full, killed copy) is rebuilt, not fatal.
            warnings.warn(f"cache file {path} is unreadable ({exc}); rebuilding it", stacklevel=2)
    arrays = build()
    try:
        write_npz(path, **arrays)
    except OSError as exc:
        # A read-only or full cache folder costs speed, not the run.
        warnings.warn(f"could not write cache file {path} ({exc}); continuing without it", stacklevel=2)
    return arrays


def check_image_size(image_size: int, where: str = "") -> None:
    """Raise InputError unless ``image_size`` is a positive integer; ``where`` prefixes the field name."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise InputError(f"{where}image_size={image_size!r}: expected a positive integer (pixels per side)")


def decode_image(
    path: str | Path,
    image_size: int,
    crop_box: tuple[float, float, float, float] | None = None,
) -> np.ndarray:
    """Decode one image file to RGB and resize it to ``image_size`` x ``image_size``.

    The resize is PIL's bilinear filter, which widens its support when shrinking (an area-style,
    antialiased downscale). JPEGs are first reduced in the DCT domain (``Image.draft``) by the
    largest power of two that still leaves at least ``image_size`` pixels in the crop, which is
    several times faster for large photos. EXIF orientation is applied. The aspect ratio is not
    kept: a non-square region is squeezed to a square.

    Args:
        path: The image file (any format PIL reads).
        image_size: Pixels per side of the output.
        crop_box: ``(left, top, right, bottom)`` as fractions of the image's width and height
            (0..1), cut out (rounded to whole pixels) before resizing; None keeps the whole image.
            Fractions let one box serve any resolution of the same framing.

    Returns:
        uint8 array [image_size, image_size, 3].
    """
    check_image_size(image_size)
    left, top, right, bottom = crop_box or (0.0, 0.0, 1.0, 1.0)
    if not (0 <= left < right <= 1 and 0 <= top < bottom <= 1):
        raise InputError(
            f"crop_box={crop_box}: expected fractions with 0 <= left < right <= 1 and 0 <= top < bottom <= 1"
        )
    need = math.ceil(image_size / min(right - left, bottom - top))
    try:
        with Image.open(path) as img:
            img.draft("RGB", (need, need))
            if img.getexif().get(_EXIF_ORIENTATION, 1) != 1:
                img = ImageOps.exif_transpose(img)
            rgb = img.convert("RGB")
    except FileNotFoundError:
        raise InputError(f"image file {path} does not exist") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InputError(f"image file {path} is corrupt or not an image: {exc}") from None
    if crop_box is not None:
        # A real crop (rounded to whole pixels): resize(box=...) would let the filter reach outside.
        w, h = rgb.size
        rgb = rgb.crop((round(left * w), round(top * h), round(right * w), round(bottom * h)))
    return np.asarray(rgb.resize((image_size, image_size), Image.Resampling.BILINEAR), dtype=np.uint8)


def decode_images(
    paths: Sequence[str | Path],
    image_size: int,
    crop_box: tuple[float, float, float, float] | None = None,
) -> np.ndarray:
    """:func:`decode_image` over many files on a small thread pool.

    Returns:
        uint8 array [len(paths), image_size, image_size, 3] in the order of ``paths``.
    """
    check_image_size(image_size)
    out = np.empty((len(paths), image_size, image_size, 3), dtype=np.uint8)

    def work(start: int) -> None:
        for i in range(start, min(start + _CHUNK, len(paths))):
            out[i] = decode_image(paths[i], image_size, crop_box)

    _run_chunks(work, len(paths))
    return out


def resize_images(images: np.ndarray, image_size: int) -> np.ndarray:
    """Resize decoded uint8 images [n, h, w, c] (c = 1 or 3) to ``image_size``, as decode does.

    Returns:
        uint8 array [n, image_size, image_size, c]; the input itself when it already has that size.
    """
    check_image_size(image_size)
    n, h, w, c = images.shape
    if (h, w) == (image_size, image_size):
        return images
    out = np.empty((n, image_size, image_size, c), dtype=np.uint8)

    def work(start: int) -> None:
        for i in range(start, min(start + _CHUNK, n)):
            img = Image.fromarray(images[i, :, :, 0] if c == 1 else images[i])
            resized = np.asarray(img.resize((image_size, image_size), Image.Resampling.BILINEAR))
            out[i] = resized.reshape(image_size, image_size, c)

    _run_chunks(work, n)
    return out


def _run_chunks(work: Callable[[int], None], n: int) -> None:
    """Call ``work(start)`` for each chunk start on a thread pool; the first error cancels the rest."""
    starts = range(0, n, _CHUNK)
    workers = min(_MAX_WORKERS, os.cpu_count() or 1, len(starts))
    if workers <= 1:
        for start in starts:
            work(start)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(work, start) for start in starts]
        try:
            for future in futures:
                future.result()
        finally:
            # After a failure, chunks not yet started are dropped instead of decoded for nothing.
            pool.shutdown(wait=True, cancel_futures=True)


def list_images(folder: Path) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name."""
    return sorted(
        Path(e.path) for e in os.scandir(folder) if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES)
    )
