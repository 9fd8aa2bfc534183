"""scikit-learn's bundled digits as an ImageDataset."""

import numpy as np

from unlearnkit.data import DATASETS
from unlearnkit.data.digits import DigitsConfig, load_digits, probe_digits


def test_shapes_scaling_and_seeded_split():
    ds = load_digits(DigitsConfig(image_size=16, seed=1))
    assert ds.images.shape == (1797, 16, 16, 1) and ds.images.dtype == np.uint8
    assert ds.images.max() == 255 and ds.images.min() == 0
    assert ds.labels.dtype == np.int64 and set(ds.labels.tolist()) == set(range(10))
    assert ds.class_names == tuple("0123456789") and (ds.groups == -1).all()
    counts = np.bincount(ds.split, minlength=3)
    assert counts.tolist() == [1258, 180, 359]
    np.testing.assert_array_equal(ds.split, load_digits(DigitsConfig(image_size=8, seed=1)).split)
    assert not np.array_equal(ds.split, load_digits(DigitsConfig(image_size=8, seed=2)).split)


def test_native_size_keeps_the_scaled_pixels():
    from sklearn.datasets import load_digits as sklearn_digits

    ds = load_digits(DigitsConfig(image_size=8))
    expected = np.rint(sklearn_digits().images[0] * 255 / 16).astype(np.uint8)
    np.testing.assert_array_equal(ds.images[0, :, :, 0], expected)


def test_probe_and_registration():
    facts = probe_digits(DigitsConfig())
    assert facts["examples"] == 1797 and facts["root"].endswith("digits.csv.gz")
    assert DATASETS.get("digits") is load_digits
