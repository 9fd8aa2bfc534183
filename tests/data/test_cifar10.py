"""CIFAR-10 loader on tiny python batches (real pickles of CIFAR's structure) and image folders."""

import os
import pickle

import numpy as np
import pytest
from PIL import Image

from unlearnkit.data import cifar10
from unlearnkit.data.cifar10 import Cifar10Config, load_cifar10, probe_cifar10
from unlearnkit.errors import InputError

NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
PER_BATCH = 4


def _batch(index, n=PER_BATCH):
    """A batch dict as CIFAR stores it: row = 1024 red, 1024 green, 1024 blue values."""
    data = np.empty((n, 3072), np.uint8)
    for row in range(n):
        data[row, :1024], data[row, 1024:2048], data[row, 2048:] = index * 10 + row, 100 + row, 200
    return {
        b"batch_label": f"batch {index}".encode(),
        b"labels": [(index + row) % 10 for row in range(n)],
        b"data": data,
        b"filenames": [f"img_{index}_{row}.png".encode() for row in range(n)],
    }


def _write_batches(folder, protocol=pickle.HIGHEST_PROTOCOL, **overrides):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate((*cifar10.TRAIN_BATCHES, cifar10.TEST_BATCH), start=1):
        with open(folder / name, "wb") as f:
            pickle.dump(overrides.get(name, _batch(i)), f, protocol=protocol)
    with open(folder / cifar10.META_FILE, "wb") as f:
        pickle.dump({b"label_names": NAMES, b"num_cases_per_batch": PER_BATCH, b"num_vis": 3072}, f, protocol=protocol)
    return folder


def _cfg(root, tmp_path, **kw):
    return Cifar10Config(root=str(root), cache_dir=str(tmp_path / "cache"), **kw)


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_batches_from_the_parent_folder(tmp_path, protocol):
    _write_batches(tmp_path / "cifar-10-batches-py", protocol=protocol)
    ds = load_cifar10(_cfg(tmp_path, tmp_path))
    n = 6 * PER_BATCH
    assert ds.images.shape == (n, 32, 32, 3) and ds.images.dtype == np.uint8
    assert ds.class_names[0] == "airplane" and ds.num_classes == 10
    # Channel planes land in the right place: batch 2, row 1 has red 21, green 101, blue 200.
    np.testing.assert_array_equal(ds.images[PER_BATCH + 1, 5, 7], [21, 101, 200])
    assert ds.labels.tolist() == [(b + r) % 10 for b in range(1, 7) for r in range(PER_BATCH)]
    assert (ds.split[-PER_BATCH:] == 2).all() and not (ds.split[:-PER_BATCH] == 2).any()
    assert (ds.split == 1).sum() == round(0.1 * 5 * PER_BATCH)
    assert (ds.groups == -1).all() and ds.meta["layout"] == "batches"


def test_root_may_be_the_batches_folder_and_val_is_seeded(tmp_path):
    folder = _write_batches(tmp_path / "cifar-10-batches-py")
    a = load_cifar10(_cfg(folder, tmp_path, val_fraction=0.25, seed=3))
    b = load_cifar10(_cfg(folder, tmp_path, val_fraction=0.25, seed=3))
    c = load_cifar10(_cfg(folder, tmp_path, val_fraction=0.25, seed=4))
    np.testing.assert_array_equal(a.split, b.split)
    assert (a.split == 1).sum() == 5
    assert not np.array_equal(a.split, c.split)


def test_resized_batches(tmp_path):
    _write_batches(tmp_path / "cifar-10-batches-py")
    ds = load_cifar10(_cfg(tmp_path, tmp_path, image_size=16))
    assert ds.images.shape == (6 * PER_BATCH, 16, 16, 3)


def test_a_pickle_calling_anything_else_is_refused(tmp_path):
    folder = _write_batches(tmp_path / "cifar-10-batches-py")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(folder / "data_batch_3", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f)
    with pytest.raises(InputError, match="data_batch_3.*not allowed"):
        load_cifar10(_cfg(tmp_path, tmp_path))
    assert not marker.exists()


def test_out_of_range_label_and_bad_data_are_named(tmp_path):
    bad = _batch(2)
    bad[b"labels"][1] = 10
    _write_batches(tmp_path / "cifar-10-batches-py", data_batch_2=bad)
    with pytest.raises(InputError, match="data_batch_2: label 10 of row 1 is out of range"):
        load_cifar10(_cfg(tmp_path, tmp_path))
    short = _batch(1)
    short[b"data"] = short[b"data"][:, :100]
    _write_batches(tmp_path / "cifar-10-batches-py", data_batch_1=short)
    with pytest.raises(InputError, match=r"data_batch_1: 'data' must be a uint8 array \[n, 3072\]"):
        load_cifar10(_cfg(tmp_path, tmp_path))


def test_missing_batch_is_named(tmp_path):
    folder = _write_batches(tmp_path / "cifar-10-batches-py")
    (folder / "data_batch_4").unlink()
    with pytest.raises(InputError, match="data_batch_4 is missing"):
        load_cifar10(_cfg(tmp_path, tmp_path))


def _png(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 32), (value, value, 255 - value)).save(path)


def _image_folder(root):
    for part, per_class in (("train", 4), ("test", 2)):
        for c, name in enumerate(("dog", "cat", "bird")):
            for i in range(per_class):
                _png(root / part / name / f"{i}.png", 40 * c + i)
    return root


def test_image_folder_layout_and_cache(tmp_path, monkeypatch):
    root = _image_folder(tmp_path / "cifar_png")
    ds = load_cifar10(_cfg(root, tmp_path))
    assert ds.class_names == ("bird", "cat", "dog")
    assert ds.images.shape == (18, 32, 32, 3) and ds.meta["layout"] == "folder"
    assert (ds.split == 2).sum() == 6 and (ds.split == 1).sum() == 1
    bird = ds.images[ds.labels == 0]
    assert int(bird[0, 0, 0, 0]) == 80  # bird folder images have value 40 * 2 + i
    monkeypatch.setattr(cifar10, "decode_images", lambda *a, **k: pytest.fail("decoded again"))
    again = load_cifar10(_cfg(root, tmp_path))
    np.testing.assert_array_equal(ds.images, again.images)


def test_image_folder_corrupt_file_and_unknown_test_class(tmp_path):
    root = _image_folder(tmp_path / "cifar_png")
    (root / "train" / "cat" / "1.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(InputError, match="cat/1.png"):
        load_cifar10(_cfg(root, tmp_path))
    _png(root / "test" / "zebra" / "0.png", 1)
    with pytest.raises(InputError, match="'zebra'"):
        load_cifar10(_cfg(root, tmp_path))


def test_no_layout_names_the_expected_ones(tmp_path):
    with pytest.raises(InputError, match=r"nowhere does not exist.*cifar-10-batches-py.*train/<class>"):
        load_cifar10(_cfg(tmp_path / "nowhere", tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="matches no CIFAR-10 layout"):
        load_cifar10(_cfg(tmp_path / "empty", tmp_path))


def test_probe(tmp_path, monkeypatch):
    _write_batches(tmp_path / "cifar-10-batches-py")
    assert probe_cifar10(Cifar10Config(root=str(tmp_path)))["files"] == 6
    root = _image_folder(tmp_path / "cifar_png")
    assert probe_cifar10(Cifar10Config(root=str(root))) == {
        "root": str(root), "layout": "folder", "files": 18, "train": 12, "test": 6,
    }
    monkeypatch.setenv("UNLEARNKIT_DATA_CIFAR10", str(tmp_path / "absent"))
    assert probe_cifar10(Cifar10Config()) is None


def test_python2_module_names_are_understood(tmp_path):
    """The released batches come from Python 2 and name numpy.core.multiarray, not numpy._core."""
    folder = _write_batches(tmp_path / "cifar-10-batches-py", protocol=2)
    for name in cifar10.TRAIN_BATCHES:
        raw = (folder / name).read_bytes()
        (folder / name).write_bytes(raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))
    assert b"numpy.core.multiarray\n" in (folder / "data_batch_1").read_bytes()
    ds = load_cifar10(_cfg(tmp_path, tmp_path))
    np.testing.assert_array_equal(ds.images[0, 0, 0], [10, 100, 200])


def test_incomplete_batches_say_what_they_lack(tmp_path):
    folder = _write_batches(tmp_path / "cifar-10-batches-py")
    (folder / "data_batch_2").unlink()
    (folder / "batches.meta").unlink()
    assert probe_cifar10(Cifar10Config(root=str(tmp_path))) == {
        "root": str(folder), "layout": "batches", "files": 5, "missing": "data_batch_2, batches.meta",
    }
    with pytest.raises(InputError, match=r"data_batch_2 is missing \(and batches.meta\)"):
        load_cifar10(_cfg(tmp_path, tmp_path))
    empty = tmp_path / "other" / "cifar-10-batches-py"
    empty.mkdir(parents=True)
    assert probe_cifar10(Cifar10Config(root=str(empty.parent)))["missing"].startswith("data_batch_1, data_batch_2")


def test_an_unextracted_torchvision_download_is_named(tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b not really")
    facts = probe_cifar10(Cifar10Config(root=str(tmp_path)))
    assert facts["missing"] == "cifar-10-batches-py/ (extract cifar-10-python.tar.gz here)"
    with pytest.raises(InputError, match=r"lacks cifar-10-batches-py/ \(extract cifar-10-python.tar.gz here\)"):
        load_cifar10(_cfg(tmp_path, tmp_path))


def test_image_folder_without_test_is_incomplete_and_a_complete_layout_wins(tmp_path):
    root = _image_folder(tmp_path / "cifar_png")
    (root / "cifar-10-batches-py").mkdir()  # an empty leftover does not hide the complete folder layout
    assert "missing" not in probe_cifar10(Cifar10Config(root=str(root)))
    assert load_cifar10(_cfg(root, tmp_path)).meta["layout"] == "folder"
    (root / "cifar-10-batches-py").rmdir()
    for png in (root / "test").rglob("*.png"):
        png.unlink()
    for d in sorted((root / "test").iterdir()):
        d.rmdir()
    (root / "test").rmdir()
    assert probe_cifar10(Cifar10Config(root=str(root))) == {
        "root": str(root), "layout": "folder", "files": 12, "train": 12, "test": 0, "missing": "test/",
    }
    with pytest.raises(InputError, match="cifar_png lacks test/"):
        load_cifar10(_cfg(root, tmp_path))
