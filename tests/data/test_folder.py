"""The CSV-described image folder loader."""

import numpy as np
import pytest
from PIL import Image

from unlearnkit.data import folder
from unlearnkit.data.folder import FolderConfig, load_folder, probe_folder
from unlearnkit.errors import InputError


def _write(root, rows, header="path,label,group"):
    """Write ``rows`` (tuples of cells) to root/labels.csv, creating each listed image."""
    root.mkdir(parents=True, exist_ok=True)
    for i, row in enumerate(rows):
        path = root / row[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            Image.new("RGB", (12, 9), (10 * i, 0, 0)).save(path)
    lines = [header] + [",".join(map(str, row)) for row in rows]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root / "labels.csv"


def _cfg(csv, tmp_path, **kw):
    return FolderConfig(csv=str(csv), image_size=8, cache_dir=str(tmp_path / "cache"), **kw)


def test_string_labels_and_groups_split_by_person(tmp_path):
    people = ["ann", "bob", "cat", "dan", "eve", "fay", "gus", "hal", "ivy", "jon"]
    rows = [(f"img/{p}_{k}.png", "smiling" if k else "neutral", p) for p in people for k in range(2)]
    csv = _write(tmp_path / "d", rows)
    ds = load_folder(_cfg(csv, tmp_path, val_fraction=0.2, test_fraction=0.2))
    assert ds.images.shape == (20, 8, 8, 3) and ds.images.dtype == np.uint8
    assert ds.class_names == ("neutral", "smiling")
    assert ds.labels.tolist() == [0, 1] * 10
    assert ds.meta["group_ids"] == sorted(people)
    assert ds.groups.tolist() == [i // 2 for i in range(20)]
    for g in range(10):
        assert len(set(ds.split[ds.groups == g].tolist())) == 1
    assert sorted(np.bincount(ds.split, minlength=3).tolist()) == [4, 4, 12]


def test_integer_labels_and_a_given_split(tmp_path):
    rows = [("a.png", 2, "7", "train"), ("b.png", 0, "7", "train"), ("c.png", 1, "", "VAL"), ("d.png", 2, "12", "test")]
    csv = _write(tmp_path / "d", rows, header="path,label,group,split")
    ds = load_folder(_cfg(csv, tmp_path, num_classes=4))
    assert ds.class_names == ("0", "1", "2", "3")
    assert ds.labels.tolist() == [2, 0, 1, 2]
    assert ds.split.tolist() == [0, 0, 1, 2]
    assert ds.groups.tolist() == [0, 0, -1, 1] and ds.meta["group_ids"] == ["7", "12"]
    assert ds.meta["groups_in_several_splits"] == 0


def test_without_group_column_groups_are_minus_one(tmp_path):
    csv = _write(tmp_path / "d", [(f"{i}.png", i % 3) for i in range(6)], header="path,label")
    ds = load_folder(_cfg(csv, tmp_path))
    assert (ds.groups == -1).all() and ds.num_classes == 3


def test_second_load_comes_from_the_cache(tmp_path, monkeypatch):
    csv = _write(tmp_path / "d", [(f"{i}.png", "x") for i in range(3)], header="path,label")
    first = load_folder(_cfg(csv, tmp_path))
    monkeypatch.setattr(folder, "decode_images", lambda *a, **k: pytest.fail("decoded again"))
    np.testing.assert_array_equal(load_folder(_cfg(csv, tmp_path)).images, first.images)


def test_missing_image_names_the_csv_line(tmp_path):
    csv = _write(tmp_path / "d", [("a.png", "x"), ("b.png", "y")], header="path,label")
    (tmp_path / "d" / "b.png").unlink()
    with pytest.raises(InputError, match=r"labels.csv line 3: image 'b.png' not found"):
        load_folder(_cfg(csv, tmp_path))


@pytest.mark.parametrize(
    "rows, header, kw, match",
    [
        ([("a.png", 0), ("b.png", 5)], "path,label", {"num_classes": 3}, r"line 3: label 5 is out of range; .* 0..2"),
        ([("a.png", 0), ("b.png", -1)], "path,label", {}, r"line 3: label -1 is out of range"),
        ([("a.png", 0, "later")], "path,label,split", {}, r"line 2: split 'later'; expected one of train, val, test"),
    ],
)
def test_bad_rows_are_named(tmp_path, rows, header, kw, match):
    csv = _write(tmp_path / "d", rows, header=header)
    with pytest.raises(InputError, match=match):
        load_folder(_cfg(csv, tmp_path, **kw))


def test_bad_header_wrong_field_count_and_missing_csv(tmp_path):
    csv = _write(tmp_path / "d", [("a.png", 0)], header="path,label")
    csv.write_text("file,label\na.png,0\n")
    with pytest.raises(InputError, match="line 1: header lacks column path; found file, label"):
        load_folder(_cfg(csv, tmp_path))
    csv.write_text("path,label\na.png,0,extra\n")
    with pytest.raises(InputError, match="line 2: 3 fields where the header has 2"):
        load_folder(_cfg(csv, tmp_path))
    with pytest.raises(InputError, match="nothing.csv does not exist"):
        load_folder(_cfg(tmp_path / "nothing.csv", tmp_path))
    with pytest.raises(InputError, match="csv is empty"):
        load_folder(FolderConfig())


def test_corrupt_image_is_named(tmp_path):
    csv = _write(tmp_path / "d", [("a.png", 0), ("b.jpg", 1)], header="path,label")
    (tmp_path / "d" / "b.jpg").write_bytes(b"not an image at all")
    with pytest.raises(InputError, match="b.jpg is corrupt"):
        load_folder(_cfg(csv, tmp_path))


def test_probe(tmp_path):
    csv = _write(tmp_path / "d", [("a.png", 0), ("b.png", 1)], header="path,label")
    assert probe_folder(FolderConfig(csv=str(csv))) == {"csv": str(csv), "rows": 2, "columns": ["path", "label"]}
    assert probe_folder(FolderConfig()) is None
    assert probe_folder(FolderConfig(csv=str(tmp_path / "absent.csv"))) is None


def test_probe_counts_listed_images_that_are_absent(tmp_path):
    csv = _write(tmp_path / "d", [("a.png", 0), ("sub/b.png", 1), ("c.png", 1)], header="path,label")
    (tmp_path / "d" / "sub" / "b.png").unlink()
    (tmp_path / "d" / "c.png").unlink()
    assert probe_folder(FolderConfig(csv=str(csv)))["missing"] == "2 of 3 listed images (first: sub/b.png)"


def test_forget_examples_can_name_the_listed_images(tmp_path):
    from unlearnkit.runner.forget import read_examples

    people = ["ann", "bob", "cat", "dan", "eve", "fay", "gus", "hal", "ivy", "jon"]
    rows = [(f"img/{p}_{k}.png", k % 2, p) for p in people for k in range(2)]
    ds = load_folder(_cfg(_write(tmp_path / "d", rows), tmp_path, val_fraction=0.2, test_fraction=0.2))
    train = [i for i in range(20) if ds.split[i] == 0][:2]
    names = tmp_path / "erase.txt"
    names.write_text(f"{rows[train[0]][0]}\n{rows[train[1]][0].split('/')[-1]}\n")
    assert read_examples(names, ds).tolist() == sorted(train)
