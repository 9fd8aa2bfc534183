"""Forget-set selectors: sizes, identity purity, skew, fingerprints and refusals."""

from __future__ import annotations

import numpy as np
import pytest

from unlearnkit.data.splits import load_forget_set, retain_indices, select_forget
from unlearnkit.data.synthetic import SyntheticConfig, load_synthetic
from unlearnkit.errors import InputError


@pytest.fixture(scope="module")
def ds():
    return load_synthetic(SyntheticConfig(people=200, min_images=3, max_images=8, image_size=8, seed=3))


def test_synthetic_is_deterministic_and_split_by_person(ds):
    again = load_synthetic(SyntheticConfig(people=200, min_images=3, max_images=8, image_size=8, seed=3))
    assert again.fingerprint == ds.fingerprint
    assert load_synthetic(SyntheticConfig(people=200, min_images=3, max_images=8, image_size=8, seed=4)).fingerprint != ds.fingerprint
    persons = [set(ds.groups[ds.indices(s)]) for s in ("train", "val", "test")]
    assert not (persons[0] & persons[1]) and not (persons[0] & persons[2]) and not (persons[1] & persons[2])
    # Labels are tied to the person.
    for g in np.unique(ds.groups):
        assert len(np.unique(ds.labels[ds.groups == g])) == 1


def test_random_selects_a_fraction_of_train(ds):
    f = select_forget(ds, "random:0.1")
    train = ds.indices("train")
    assert len(f.indices) == round(0.1 * len(train))
    assert np.isin(f.indices, train).all()
    assert np.array_equal(np.sort(np.concatenate([f.indices, retain_indices(ds, f)])), train)


@pytest.mark.parametrize("spec", ["identity:0.05", "identity_skewed:0.05", "identities:"])
def test_identity_selectors_keep_each_person_on_one_side(ds, spec):
    if spec == "identities:":
        people = np.unique(ds.groups[ds.indices("train")])[:3]
        spec = "identities:" + ",".join(map(str, people))
    f = select_forget(ds, spec)
    retain = retain_indices(ds, f)
    assert not set(ds.groups[f.indices]) & set(ds.groups[retain])


def test_identity_fraction_counts_people(ds):
    f = select_forget(ds, "identity:0.05")
    train_people = np.unique(ds.groups[ds.indices("train")])
    assert len(np.unique(ds.groups[f.indices])) == round(0.05 * len(train_people))


def test_identity_skewed_draws_mostly_from_chosen_classes(ds):
    skewed = select_forget(ds, "identity_skewed:0.1", {"classes": [0, 1], "skew": 0.9})
    share = np.isin(ds.labels[skewed.indices], [0, 1]).mean()
    iid = select_forget(ds, "identity:0.1")
    assert share >= 0.75
    assert share > np.isin(ds.labels[iid.indices], [0, 1]).mean() + 0.3


def test_class_selector(ds):
    f = select_forget(ds, "class:3,5")
    assert set(ds.labels[f.indices]) == {3, 5}
    train = ds.indices("train")
    assert len(f.indices) == np.isin(ds.labels[train], [3, 5]).sum()


def test_same_spec_same_fingerprint_and_save_load(ds, tmp_path):
    a, b = select_forget(ds, "identity:0.05"), select_forget(ds, "identity:0.05")
    assert a.fingerprint == b.fingerprint
    assert select_forget(ds, "identity:0.05", {"seed": 1}).fingerprint != a.fingerprint
    a.save(tmp_path / "f.json")
    back = load_forget_set(tmp_path / "f.json", ds)
    assert np.array_equal(back.indices, a.indices) and back.fingerprint == a.fingerprint
    raw = (tmp_path / "f.json").read_text().replace('"size": ', '"size": 1')
    (tmp_path / "g.json").write_text(raw.replace("[\n", "[\n    0,\n", 1))
    with pytest.raises(InputError, match="fingerprint mismatch"):
        load_forget_set(tmp_path / "g.json", ds)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("random:0", "between 0 and 1"),
        ("random:1.5", "between 0 and 1"),
        ("class:0,1,2,3,4,5,6,7,8,9", "selects all"),
        ("class:12", "out of range"),
        ("identities:99999", "not among the"),
        ("identities", "needs ids"),
        ("randon:0.1", "Did you mean 'random'"),
        ("identity:abc", "expected a number"),
    ],
)
def test_bad_forget_specs_are_named(ds, spec, message):
    with pytest.raises(InputError, match=message):
        select_forget(ds, spec)


def test_identity_spec_on_a_dataset_without_people():
    from unlearnkit.data.digits import DigitsConfig, load_digits

    with pytest.raises(InputError, match="has none; use random or class"):
        select_forget(load_digits(DigitsConfig(image_size=8)), "identity:0.1")
