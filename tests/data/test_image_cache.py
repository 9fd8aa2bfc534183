"""The shared decode helpers and the on-disk cache of decoded images."""

import os

import numpy as np
import pytest
from PIL import Image

from unlearnkit.data import cache
from unlearnkit.errors import InputError


def _halves(path, size=(40, 20), fmt=None):
    """An image whose left half is red and right half blue."""
    arr = np.zeros((size[1], size[0], 3), np.uint8)
    arr[:, : size[0] // 2] = (255, 0, 0)
    arr[:, size[0] // 2 :] = (0, 0, 255)
    Image.fromarray(arr).save(path, format=fmt)
    return path


def test_decode_image_shape_dtype_and_crop(tmp_path):
    path = _halves(tmp_path / "a.png")
    img = cache.decode_image(path, 8)
    assert img.shape == (8, 8, 3) and img.dtype == np.uint8
    assert img[:, 0, 0].min() > 200 and img[:, -1, 2].min() > 200  # squeezed, both halves kept
    right = cache.decode_image(path, 8, crop_box=(0.5, 0.0, 1.0, 1.0))
    assert (right[..., 2] > 250).all() and (right[..., 0] < 5).all()


def test_decode_image_grayscale_becomes_rgb_and_jpeg_draft_keeps_size(tmp_path):
    Image.fromarray(np.full((300, 200), 128, np.uint8)).save(tmp_path / "g.jpg")
    img = cache.decode_image(tmp_path / "g.jpg", 16)
    assert img.shape == (16, 16, 3)
    assert np.abs(img.astype(int) - 128).max() <= 2


def test_decode_image_errors_name_the_file(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(InputError, match="broken.jpg"):
        cache.decode_image(bad, 8)
    with pytest.raises(InputError, match="nowhere.png.*does not exist"):
        cache.decode_image(tmp_path / "nowhere.png", 8)
    with pytest.raises(InputError, match="image_size"):
        cache.decode_image(_halves(tmp_path / "ok.png"), 0)
    with pytest.raises(InputError, match="crop_box"):
        cache.decode_image(tmp_path / "ok.png", 8, crop_box=(0.5, 0.0, 0.4, 1.0))


def test_truncated_jpeg_is_reported(tmp_path):
    path = _halves(tmp_path / "cut.jpg", size=(64, 64))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.jpg"):
        cache.decode_images([path], 8)


def test_decode_images_keeps_order(tmp_path):
    paths = []
    for i, value in enumerate((0, 100, 200)):
        Image.new("RGB", (5, 7), (value, value, value)).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    out = cache.decode_images(paths, 4)
    assert out.shape == (3, 4, 4, 3)
    assert [int(out[i].mean()) for i in range(3)] == [0, 100, 200]


def test_resize_images_one_and_three_channels():
    gray = np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8, 1)
    assert cache.resize_images(gray, 8) is gray
    assert cache.resize_images(gray, 16).shape == (2, 16, 16, 1)
    rgb = np.zeros((3, 4, 4, 3), np.uint8)
    assert cache.resize_images(rgb, 2).shape == (3, 2, 2, 3)


def test_cached_builds_once_then_reads(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return {"images": np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3), "names": np.array(["a"])}

    first = cache.cached("toy", {"files": "abc", "image_size": 2}, build, str(tmp_path))
    second = cache.cached("toy", {"files": "abc", "image_size": 2}, build, str(tmp_path))
    assert len(calls) == 1
    np.testing.assert_array_equal(first["images"], second["images"])
    assert second["names"].tolist() == ["a"]
    cache.cached("toy", {"files": "abc", "image_size": 4}, build, str(tmp_path))
    assert len(calls) == 2  # another key is another entry


def test_cached_rebuilds_a_damaged_entry(tmp_path):
    build = lambda: {"x": np.ones(3)}  # noqa: E731
    cache.cached("toy", {"k": 1}, build, str(tmp_path))
    (entry,) = (tmp_path / "toy").glob("*.npz")
    entry.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable"):
        out = cache.cached("toy", {"k": 1}, build, str(tmp_path))
    np.testing.assert_array_equal(out["x"], np.ones(3))


def test_cache_dir_default_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path / "c"))
    assert cache.resolve_cache_dir("") == tmp_path / "c"
    assert cache.resolve_cache_dir(str(tmp_path / "x")) == tmp_path / "x"


def test_files_signature_tracks_size_and_mtime(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"1234")
    before = cache.files_signature([path], tmp_path)
    assert cache.files_signature([path], tmp_path) == before
    path.write_bytes(b"12345")
    assert cache.files_signature([path], tmp_path) != before
    grown = cache.files_signature([path], tmp_path)
    os.utime(path, ns=(1, 1))
    assert cache.files_signature([path], tmp_path) != grown


def test_default_root_prefers_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNKIT_DATA_TOY", str(tmp_path / "env"))
    assert cache.resolve_root("", "toy", tmp_path) == tmp_path / "env"
    monkeypatch.delenv("UNLEARNKIT_DATA_TOY")
    assert cache.resolve_root("", "toy", tmp_path / "absent", tmp_path) == tmp_path
    assert cache.resolve_root(str(tmp_path / "given"), "toy") == tmp_path / "given"


@pytest.mark.parametrize("name", ["celeba", "cifar10", "surf", "folder", "digits", "fashion_mnist"])
def test_loader_configs_reject_a_bad_image_size(name):
    from unlearnkit.data import DATASETS

    with pytest.raises(InputError, match=f"{name}.image_size=0"):
        DATASETS.entry(name).config(image_size=0)
