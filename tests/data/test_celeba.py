"""CelebA loader on a tiny folder in the official layout, with a partial image download."""

import numpy as np
import pytest
from PIL import Image

from unlearnkit.data import DATASETS, celeba
from unlearnkit.data.celeba import CelebAConfig, load_celeba, probe_celeba
from unlearnkit.errors import InputError

ATTRS = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair "
    "Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face "
    "Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair "
    "Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()

# (person, partition, Male, Gray_Hair, Chubby, Young) per listed image; images 10..12 are not downloaded.
ROWS = [
    (2880, 0, 1, 0, 0, 1), (2880, 0, 1, 0, 0, 1), (2937, 0, 0, 1, 1, 0), (2937, 0, 0, 1, 0, 0),
    (8692, 1, 1, 1, 1, 0), (8692, 1, 0, 0, 1, 1), (5805, 2, 1, 1, 0, 0), (5805, 2, 0, 0, 0, 1),
    (9152, 2, 1, 0, 1, 1), (9152, 0, 1, 1, 1, 1), (4990, 1, 0, 0, 0, 0), (4990, 1, 1, 1, 1, 1),
]
PRESENT = 9


def _name(i):
    return f"{i + 1:06d}.jpg"


def _face(path, value):
    """A 178x218 'aligned face': red outside the documented crop box, a grey square inside."""
    arr = np.zeros((218, 178, 3), np.uint8)
    arr[...] = (255, 0, 0)
    x0, y0, x1, y1 = celeba.CROP_BOX_PIXELS
    arr[y0:y1, x0:x1] = value
    Image.fromarray(arr).save(path, quality=95)


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "celeba"
    (root / "img_align_celeba").mkdir(parents=True)
    for i in range(PRESENT):
        _face(root / "img_align_celeba" / _name(i), 20 * i)
    (root / "identity_CelebA.txt").write_text("".join(f"{_name(i)} {r[0]}\n" for i, r in enumerate(ROWS)))
    (root / "list_eval_partition.txt").write_text("".join(f"{_name(i)} {r[1]}\n" for i, r in enumerate(ROWS)))
    lines = [str(len(ROWS)), " ".join(ATTRS) + " "]
    for i, (_, _, male, gray, chubby, young) in enumerate(ROWS):
        values = {a: -1 for a in ATTRS} | {"Male": 2 * male - 1, "Gray_Hair": 2 * gray - 1,
                                            "Chubby": 2 * chubby - 1, "Young": 2 * young - 1}
        lines.append(_name(i) + " " + " ".join(f"{values[a]:2d}" for a in ATTRS))  # "-1  1" double spaces
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    return root


def _cfg(root, tmp_path, **kw):
    return CelebAConfig(root=str(root), image_size=16, cache_dir=str(tmp_path / "cache"), **kw)


def test_young_labels_identities_official_split_and_partial_download(root, tmp_path):
    ds = load_celeba(_cfg(root, tmp_path))
    rows = ROWS[:PRESENT]
    assert ds.images.shape == (PRESENT, 16, 16, 3) and ds.images.dtype == np.uint8
    assert ds.labels.dtype == np.int64 and ds.groups.dtype == np.int64
    assert ds.labels.tolist() == [r[5] for r in rows]
    assert ds.class_names == ("not Young", "Young")
    assert ds.groups.tolist() == [r[0] for r in rows]
    assert ds.split.tolist() == [r[1] for r in rows]
    assert ds.meta["missing_images"] == len(ROWS) - PRESENT
    assert ds.meta["listed_images"] == len(ROWS)


def test_male_gray_chubby_code(root, tmp_path):
    ds = load_celeba(_cfg(root, tmp_path, label="male_gray_chubby"))
    assert ds.num_classes == 8
    assert ds.labels.tolist() == [4 * m + 2 * g + c for _, _, m, g, c, _ in ROWS[:PRESENT]]
    assert ds.class_names[0] == "female" and ds.class_names[7] == "male, gray hair, chubby"


def test_crop_keeps_the_face_box(root, tmp_path):
    cropped = load_celeba(_cfg(root, tmp_path))
    redness = cropped.images[..., 0].astype(int) - cropped.images[..., 1]
    assert np.abs(redness[:, 2:-2, 2:-2]).max() < 40  # grey; JPEG chroma may bleed at the very edge
    whole = load_celeba(_cfg(root, tmp_path, crop=False))
    assert (whole.images[:, 0, 0, 0] > 200).all()  # the red border is in the uncropped view
    assert whole.meta["crop_box_pixels"] is None and cropped.meta["crop_box_pixels"] == [25, 50, 153, 178]


def test_second_load_comes_from_the_cache(root, tmp_path, monkeypatch):
    first = load_celeba(_cfg(root, tmp_path))

    def fail(*args, **kwargs):
        raise AssertionError("decoded again despite a cache entry")

    monkeypatch.setattr(celeba, "decode_images", fail)
    second = load_celeba(_cfg(root, tmp_path, label="Male"))
    np.testing.assert_array_equal(first.images, second.images)
    # A new file changes the source fingerprint, so the cache misses.
    _face(root / "img_align_celeba" / _name(PRESENT), 7)
    with pytest.raises(AssertionError, match="decoded again"):
        load_celeba(_cfg(root, tmp_path))


def test_unknown_attribute_lists_the_valid_ones(root, tmp_path):
    with pytest.raises(InputError, match="unknown label 'Youngish'.*Smiling.*male_gray_chubby"):
        load_celeba(_cfg(root, tmp_path, label="Youngish"))


def test_corrupt_jpeg_is_named(root, tmp_path):
    (root / "img_align_celeba" / _name(3)).write_bytes(b"\xff\xd8\xff not a jpeg")
    with pytest.raises(InputError, match="000004.jpg"):
        load_celeba(_cfg(root, tmp_path))


def test_missing_folder_names_path_and_layout(tmp_path):
    with pytest.raises(InputError, match=r"nowhere does not exist.*img_align_celeba.*list_eval_partition.txt"):
        load_celeba(_cfg(tmp_path / "nowhere", tmp_path))


def test_missing_annotation_file_is_named(root, tmp_path):
    (root / "identity_CelebA.txt").unlink()
    with pytest.raises(InputError, match="lacks identity_CelebA.txt"):
        load_celeba(_cfg(root, tmp_path))


def test_malformed_attribute_line_names_its_number(root, tmp_path):
    path = root / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    lines[4] = lines[4].rsplit(" ", 1)[0] + " 7"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="list_attr_celeba.txt line 5"):
        load_celeba(_cfg(root, tmp_path))


def test_truncated_attribute_file_is_reported(root, tmp_path):
    path = root / "list_attr_celeba.txt"
    path.write_text("\n".join(path.read_text().splitlines()[:-2]) + "\n")
    with pytest.raises(InputError, match="announces 12 images but 10"):
        load_celeba(_cfg(root, tmp_path))


def test_malformed_identity_and_partition_lines(root, tmp_path):
    with open(root / "identity_CelebA.txt", "a") as f:
        f.write("000099.jpg somebody\n")
    with pytest.raises(InputError, match="identity_CelebA.txt line 13"):
        load_celeba(_cfg(root, tmp_path))
    (root / "identity_CelebA.txt").write_text("".join(f"{_name(i)} {r[0]}\n" for i, r in enumerate(ROWS)))
    (root / "list_eval_partition.txt").write_text("".join(f"{_name(i)} 3\n" for i in range(len(ROWS))))
    with pytest.raises(InputError, match="partition 3.*expected 0 \\(train\\)"):
        load_celeba(_cfg(root, tmp_path))


def test_probe(root, tmp_path, monkeypatch):
    facts = probe_celeba(CelebAConfig(root=str(root)))
    assert facts == {"root": str(root), "images": PRESENT, "listed": len(ROWS)}
    assert probe_celeba(CelebAConfig(root=str(tmp_path / "absent"))) is None
    monkeypatch.setenv("UNLEARNKIT_DATA_CELEBA", str(tmp_path / "absent"))
    assert probe_celeba(CelebAConfig()) is None
    assert DATASETS.entry("celeba").meta["probe"] is probe_celeba


# --- Real data as people have it: mirrors' headers, Kaggle's copy, torchvision's folder ---------


def test_identity_and_partition_files_may_start_with_a_header(root, tmp_path):
    expected = load_celeba(_cfg(root, tmp_path))
    for name, header in (("identity_CelebA.txt", "image identity"), ("list_eval_partition.txt", "image_id partition")):
        path = root / name
        path.write_text(f"{header}\n" + path.read_text())
    ds = load_celeba(_cfg(root, tmp_path))
    np.testing.assert_array_equal(ds.groups, expected.groups)
    np.testing.assert_array_equal(ds.split, expected.split)


@pytest.mark.parametrize(
    "text, line",
    [
        ("000001.jpg somebody\n", 1),         # an image with a bad id is no header
        ("name of the file\n", 1),            # three fields
        ("\n# comment\n", 2),                 # a header is "image identity", not any first line
        ("image identity\nimage identity\n", 2),  # only the first line may be a header
    ],
)
def test_a_header_is_recognised_not_any_bad_line(root, tmp_path, text, line):
    path = root / "identity_CelebA.txt"
    path.write_text(text + path.read_text())
    with pytest.raises(InputError, match=rf"identity_CelebA.txt line {line}: expected '<image> <person id>'"):
        load_celeba(_cfg(root, tmp_path))


def test_torchvision_root_is_the_parent_of_celeba(root, tmp_path):
    """torchvision.datasets.CelebA(root) keeps its files in root/celeba; that root works too."""
    assert root.name == "celeba"
    ds = load_celeba(_cfg(root.parent, tmp_path))
    assert ds.source == str(root) and len(ds.images) == PRESENT and ds.meta["layout"] == "official"
    assert probe_celeba(CelebAConfig(root=str(root.parent)))["root"] == str(root)


def _kaggle(root, dest, identity=False):
    """Kaggle's copy of the fixture: images one folder deeper, CSV annotations with header rows."""
    images = dest / "img_align_celeba" / "img_align_celeba"
    images.mkdir(parents=True)
    for jpg in (root / "img_align_celeba").iterdir():
        (images / jpg.name).write_bytes(jpg.read_bytes())
    attr_lines = (root / "list_attr_celeba.txt").read_text().splitlines()
    rows = [",".join(["image_id", *attr_lines[1].split()])] + [",".join(line.split()) for line in attr_lines[2:]]
    (dest / "list_attr_celeba.csv").write_text("\n".join(rows) + "\n")
    partition = [",".join(line.split()) for line in (root / "list_eval_partition.txt").read_text().splitlines()]
    (dest / "list_eval_partition.csv").write_text("\n".join(["image_id,partition", *partition]) + "\n")
    (dest / "list_bbox_celeba.csv").write_text("image_id,x_1,y_1,width,height\n")  # shipped, not used
    if identity:
        (dest / "identity_CelebA.txt").write_bytes((root / "identity_CelebA.txt").read_bytes())
    return dest


def test_kaggle_layout_serves_labels_and_splits_without_identities(root, tmp_path):
    from unlearnkit.data.splits import select_forget

    official = load_celeba(_cfg(root, tmp_path))
    kaggle = _kaggle(root, tmp_path / "celeba-dataset")
    ds = load_celeba(_cfg(kaggle, tmp_path, label="male_gray_chubby"))
    assert ds.meta["layout"] == "kaggle" and ds.source == str(kaggle)
    assert ds.labels.tolist() == [4 * m + 2 * g + c for _, _, m, g, c, _ in ROWS[:PRESENT]]
    np.testing.assert_array_equal(ds.split, official.split)
    np.testing.assert_array_equal(ds.images, official.images)
    assert (ds.groups == -1).all() and not ds.has_groups
    assert ds.meta["groups_file"] == str(kaggle / "identity_CelebA.txt")
    assert ds.meta["missing_images"] == len(ROWS) - PRESENT
    select_forget(ds, "random:0.3")  # the rest is served
    for spec in ("identity:0.5", "identity_skewed:0.5", "identities:2880"):
        with pytest.raises(
            InputError, match=r"dataset celeba .*identity forget sets on celeba need the identity file identity_CelebA.txt"
        ):
            select_forget(ds, spec)


def test_kaggle_layout_with_an_identity_file_added_uses_it(root, tmp_path):
    kaggle = _kaggle(root, tmp_path / "celeba-dataset", identity=True)
    ds = load_celeba(_cfg(kaggle, tmp_path))
    assert ds.groups.tolist() == [r[0] for r in ROWS[:PRESENT]] and "groups_file" not in ds.meta


def test_kaggle_flat_image_folder_is_accepted(root, tmp_path):
    kaggle = _kaggle(root, tmp_path / "k")
    nested = kaggle / "img_align_celeba" / "img_align_celeba"
    for jpg in list(nested.iterdir()):
        jpg.rename(kaggle / "img_align_celeba" / jpg.name)
    nested.rmdir()
    assert len(load_celeba(_cfg(kaggle, tmp_path)).images) == PRESENT


def test_kaggle_malformed_rows_are_named(root, tmp_path):
    kaggle = _kaggle(root, tmp_path / "k")
    path = kaggle / "list_attr_celeba.csv"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ",yes"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="list_attr_celeba.csv line 4: expected an image name and 40 values"):
        load_celeba(_cfg(kaggle, tmp_path))
    path.write_text("\n".join(lines[1:]) + "\n")  # no header row
    with pytest.raises(InputError, match="list_attr_celeba.csv line 1: expected a header row 'image_id,"):
        load_celeba(_cfg(kaggle, tmp_path))
    _kaggle(root, tmp_path / "k2")
    with open(tmp_path / "k2" / "list_eval_partition.csv", "a") as f:
        f.write("000099.jpg,two\n")
    with pytest.raises(InputError, match=r"list_eval_partition.csv line 14: expected '<image>,<partition>'"):
        load_celeba(_cfg(tmp_path / "k2", tmp_path))


def test_incomplete_folder_says_what_it_lacks(root, tmp_path):
    (root / "list_eval_partition.txt").unlink()
    for jpg in (root / "img_align_celeba").iterdir():
        jpg.unlink()
    (root / "img_align_celeba").rmdir()
    with pytest.raises(InputError, match=r"celeba: .*celeba lacks img_align_celeba/, list_eval_partition.txt"):
        load_celeba(_cfg(root, tmp_path))
    facts = probe_celeba(CelebAConfig(root=str(root)))
    assert facts == {"root": str(root), "listed": len(ROWS), "missing": "img_align_celeba/, list_eval_partition.txt"}
    assert probe_celeba(CelebAConfig(root=str(root.parent)))["missing"] == facts["missing"]


def test_probe_on_an_empty_image_folder_and_on_kaggle(root, tmp_path):
    kaggle = _kaggle(root, tmp_path / "k")
    assert probe_celeba(CelebAConfig(root=str(kaggle))) == {
        "root": str(kaggle), "layout": "kaggle", "images": PRESENT, "listed": len(ROWS),
        "identities": "none (no identity_CelebA.txt: no identity forget sets)",
    }
    (kaggle / "list_eval_partition.csv").unlink()
    for jpg in (kaggle / "img_align_celeba" / "img_align_celeba").iterdir():
        jpg.unlink()
    facts = probe_celeba(CelebAConfig(root=str(kaggle)))
    assert facts["images"] == 0
    assert facts["missing"] == "img_align_celeba/img_align_celeba/*.jpg, list_eval_partition.csv"
    (tmp_path / "unrelated").mkdir()
    assert probe_celeba(CelebAConfig(root=str(tmp_path / "unrelated"))) is None
    with pytest.raises(InputError, match="holds any CelebA file"):
        load_celeba(_cfg(tmp_path / "unrelated", tmp_path))
