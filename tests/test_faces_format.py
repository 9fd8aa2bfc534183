"""benchmarks/faces_celeba_format.py: AR-II faces written in the CelebA layout and read back by the loader."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from conftest import benchmark_script
from unlearnkit.data.celeba import CelebAConfig, load_celeba
from unlearnkit.data.splits import IdentityForget, select_identity

PEOPLE = 10
SHOTS = 14


@pytest.fixture(scope="module")
def faces_script():
    return benchmark_script("faces_celeba_format")


@pytest.fixture
def ar_mat(tmp_path):
    """A tiny AR_II.mat as the source stores it: x [h, w, n] uint8, label [n, 1], people one after another.

    Each image's grey level is its index, so the images differ.
    """
    person = np.repeat(np.arange(1, PEOPLE + 1), SHOTS)
    position = np.tile(np.arange(SHOTS), PEOPLE)
    x = np.empty((12, 9, PEOPLE * SHOTS), np.uint8)
    x[...] = ((person - 1) * SHOTS + position).astype(np.uint8)
    path = tmp_path / "AR_II.mat"
    scipy.io.savemat(path, {"x": x, "label": person[:, None].astype(np.uint8)})
    return path


def test_converted_faces_load_with_identities_attributes_and_a_split_by_person(faces_script, ar_mat, tmp_path):
    out = tmp_path / "faces"
    summary = faces_script.convert(ar_mat, out, seed=3, val=0.2, test=0.2)
    assert summary["people"] == PEOPLE and summary["images"] == PEOPLE * SHOTS
    assert summary["source"]["commit_read"] is None  # read from a plain file

    ds = load_celeba(CelebAConfig(root=str(out), label="Expression", crop=False, image_size=8,
                                  cache_dir=str(tmp_path / "cache")))
    assert ds.images.shape == (PEOPLE * SHOTS, 8, 8, 3)
    assert ds.groups.tolist() == np.repeat(np.arange(1, PEOPLE + 1), SHOTS).tolist()
    # AR's order within a person: neutral, smile, anger, scream, three lit shots; twice.
    per_person = [0, 1, 1, 1, 0, 0, 0] * 2
    assert ds.labels.tolist() == per_person * PEOPLE
    assert ds.class_names == ("not Expression", "Expression")
    smiling = load_celeba(CelebAConfig(root=str(out), label="Smiling", crop=False, image_size=8,
                                       cache_dir=str(tmp_path / "cache")))
    assert smiling.labels.tolist() == [0, 1, 0, 0, 0, 0, 0] * 2 * PEOPLE

    # CelebA splits by person: every person's 14 images share one partition, 6 / 2 / 2 people.
    split_of = {g: set(ds.split[ds.groups == g].tolist()) for g in np.unique(ds.groups)}
    assert all(len(s) == 1 for s in split_of.values())
    assert sorted(sum((list(s) for s in split_of.values()), [])) == [0] * 6 + [1] * 2 + [2] * 2

    forget = select_identity(ds, IdentityForget(fraction=0.2, seed=0))
    assert len(forget) == 1 * SHOTS  # 20 % of 6 train people rounds to 1, with all 14 of their images
    assert len(set(ds.groups[forget].tolist())) == 1 and (ds.split[forget] == 0).all()


def test_same_seed_same_output_and_no_silent_overwrite(faces_script, ar_mat, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    faces_script.convert(ar_mat, a)
    faces_script.convert(ar_mat, b)
    for name in ("identity_CelebA.txt", "list_attr_celeba.txt", "list_eval_partition.txt"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    with pytest.raises(ValueError, match="--force"):
        faces_script.convert(ar_mat, a)
    faces_script.convert(ar_mat, a, seed=1, force=True)
    assert (a / "list_eval_partition.txt").read_bytes() != (b / "list_eval_partition.txt").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporaries left


def test_a_person_with_a_wrong_number_of_shots_is_refused(faces_script, tmp_path):
    path = tmp_path / "bad.mat"
    scipy.io.savemat(path, {"x": np.zeros((4, 3, 15), np.uint8), "label": np.ones((15, 1), np.uint8)})
    with pytest.raises(ValueError, match="person 1 has 15 images; expected 14"):
        faces_script.convert(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_git_blob_id_is_gits(faces_script):
    # `printf hello | git hash-object --stdin`
    assert faces_script.git_blob_id(b"hello") == "b6fc4c620b67d95f953a5c1c1230aaab5db5a1b0"
