"""Fashion-MNIST loader on tiny idx files, plain and gzipped."""

import gzip

import numpy as np
import pytest

from unlearnkit.data import fashion_mnist
from unlearnkit.data.fashion_mnist import FashionMnistConfig, load_fashion_mnist, probe_fashion_mnist, read_idx
from unlearnkit.errors import InputError


def _idx(values, magic):
    dims = values.shape
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    return header + values.astype(np.uint8).tobytes()


def _write(root, n_train=10, n_test=4, gz=True):
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28)),
        "train_labels": np.arange(n_train) % 10,
        "test_images": rng.integers(0, 256, (n_test, 28, 28)),
        "test_labels": (np.arange(n_test) + 3) % 10,
    }
    for key, values in arrays.items():
        magic = fashion_mnist.IMAGES_MAGIC if key.endswith("images") else fashion_mnist.LABELS_MAGIC
        data = _idx(values, magic)
        name = fashion_mnist.FILES[key]
        if gz:
            (root / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (root / name).write_bytes(data)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_loads_official_split_and_labels(tmp_path, gz):
    arrays = _write(tmp_path, gz=gz)
    ds = load_fashion_mnist(FashionMnistConfig(root=str(tmp_path), image_size=28, val_fraction=0.2))
    assert ds.images.shape == (14, 28, 28, 1) and ds.images.dtype == np.uint8
    np.testing.assert_array_equal(ds.images[:10, :, :, 0], arrays["train_images"])
    assert ds.labels.tolist() == list(range(10)) + [3, 4, 5, 6]
    assert ds.split.tolist()[10:] == [2] * 4 and (ds.split[:10] == 1).sum() == 2
    assert ds.class_names[9] == "Ankle boot" and (ds.groups == -1).all()


def test_resize(tmp_path):
    _write(tmp_path)
    assert load_fashion_mnist(FashionMnistConfig(root=str(tmp_path))).images.shape == (14, 32, 32, 1)


def test_wrong_magic_names_the_file(tmp_path):
    _write(tmp_path, gz=False)
    labels = tmp_path / "train-labels-idx1-ubyte"
    images = tmp_path / "train-images-idx3-ubyte"
    labels.write_bytes(images.read_bytes())  # an images file where labels belong
    with pytest.raises(InputError, match=r"train-labels-idx1-ubyte: magic number 0x00000803 is not .* 0x00000801"):
        load_fashion_mnist(FashionMnistConfig(root=str(tmp_path)))


def test_truncated_file_and_count_mismatch(tmp_path):
    _write(tmp_path, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(InputError, match="t10k-images-idx3-ubyte: header announces 4 x 28 x 28"):
        read_idx(path, fashion_mnist.IMAGES_MAGIC)
    _write(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx(np.zeros(3), fashion_mnist.LABELS_MAGIC))
    with pytest.raises(InputError, match="has 4 images but .* has 3 labels"):
        load_fashion_mnist(FashionMnistConfig(root=str(tmp_path)))


def test_out_of_range_label(tmp_path):
    _write(tmp_path, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx(np.full(10, 12), fashion_mnist.LABELS_MAGIC))
    with pytest.raises(InputError, match="label 12 of example 0 is out of range"):
        load_fashion_mnist(FashionMnistConfig(root=str(tmp_path)))


def test_missing_folder_and_files(tmp_path):
    with pytest.raises(InputError, match=r"nowhere does not exist.*train-images-idx3-ubyte"):
        load_fashion_mnist(FashionMnistConfig(root=str(tmp_path / "nowhere")))
    _write(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(InputError, match="lacks t10k-labels-idx1-ubyte"):
        load_fashion_mnist(FashionMnistConfig(root=str(tmp_path)))


def test_probe(tmp_path, monkeypatch):
    _write(tmp_path)
    assert probe_fashion_mnist(FashionMnistConfig(root=str(tmp_path))) == {
        "root": str(tmp_path), "files": 4, "train_examples": 10, "test_examples": 4,
    }
    monkeypatch.setenv("UNLEARNKIT_DATA_FASHION_MNIST", str(tmp_path / "absent"))
    assert probe_fashion_mnist(FashionMnistConfig()) is None


def test_torchvision_layout_is_found_from_its_root(tmp_path):
    """torchvision's FashionMNIST(root) keeps the idx files (and their .gz) in root/FashionMNIST/raw."""
    raw = tmp_path / "FashionMNIST" / "raw"
    arrays = _write(raw, gz=False)
    _write(raw, gz=True)
    ds = load_fashion_mnist(FashionMnistConfig(root=str(tmp_path), image_size=28))
    assert ds.source == str(raw)
    np.testing.assert_array_equal(ds.images[:10, :, :, 0], arrays["train_images"])
    assert probe_fashion_mnist(FashionMnistConfig(root=str(tmp_path)))["root"] == str(raw)


def test_probe_of_an_incomplete_or_unreadable_folder(tmp_path):
    _write(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    (tmp_path / "train-images-idx3-ubyte.gz").unlink()
    assert probe_fashion_mnist(FashionMnistConfig(root=str(tmp_path))) == {
        "root": str(tmp_path), "files": 2, "missing": "train-images-idx3-ubyte, t10k-labels-idx1-ubyte",
    }
    _write(tmp_path, gz=False)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00")
    assert "magic number" in probe_fashion_mnist(FashionMnistConfig(root=str(tmp_path)))["unreadable"]
    (tmp_path / "empty").mkdir()
    assert probe_fashion_mnist(FashionMnistConfig(root=str(tmp_path / "empty"))) is None


def test_train_and_test_size_draw_seeded_subsets(tmp_path):
    arrays = _write(tmp_path, n_train=10, n_test=6)
    cfg = FashionMnistConfig(root=str(tmp_path), image_size=28, val_fraction=0.2, train_size=5, test_size=3)
    ds = load_fashion_mnist(cfg)
    assert len(ds.labels) == 8 and (ds.split == 2).sum() == 3 and (ds.split == 1).sum() == 1
    train = [next(i for i in range(10) if np.array_equal(arrays["train_images"][i], img)) for img in ds.images[:5, :, :, 0]]
    assert train == sorted(train) and ds.labels[:5].tolist() == [arrays["train_labels"][i] for i in train]
    again = load_fashion_mnist(cfg)
    np.testing.assert_array_equal(ds.images, again.images)
    other = load_fashion_mnist(FashionMnistConfig(root=str(tmp_path), image_size=28, val_fraction=0.2, train_size=5, test_size=3, seed=1))
    assert not np.array_equal(ds.images[:5], other.images[:5])


def test_sizes_beyond_the_files_or_negative_are_refused(tmp_path):
    _write(tmp_path, n_train=10, n_test=4)
    with pytest.raises(InputError, match=r"fashion_mnist.test_size=5, but the test files hold only 4 images"):
        load_fashion_mnist(FashionMnistConfig(root=str(tmp_path), test_size=5))
    with pytest.raises(InputError, match=r"fashion_mnist.train_size must be 0 \(all\) or a positive count, got -1"):
        FashionMnistConfig(train_size=-1)
