"""CASIA-SURF loader on a tiny tree in the competition's layout."""

import numpy as np
import pytest
from PIL import Image

from unlearnkit.data import surf
from unlearnkit.data.surf import SurfConfig, load_surf, probe_surf, read_age_gender
from unlearnkit.errors import InputError

# id -> age; ages span 20..69, so 10 equal-width groups are 5 years wide.
AGES = {
    "CLKJ_AS0001": 20, "CLKJ_AS0002": 24, "CLKJ_AS0003": 25, "CLKJ_AS0004": 33, "CLKJ_AS0005": 41,
    "CLKJ_CS0006": 47, "CLKJ_CS0007": 52, "CLKJ_CS0008": 58, "CLKJ_CS0009": 64, "CLKJ_CS0010": 69,
}
PER_PERSON = 2


def _jpg(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (24, 30), (value, 255 - value, 128)).save(path)


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "surf"
    root.mkdir()
    lines = [f"{pid} {age} {'M' if i % 2 else 'F'}" for i, (pid, age) in enumerate(AGES.items())]
    lines[3] = lines[3].replace(" ", "  ")  # a doubled space is tolerated
    (root / "Age_Gender.txt").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    for i, pid in enumerate(AGES):
        # The competition's layout WBackground/<batch>/<id>/real.rssdk/color, except one person stored
        # as WBackground/<id>/<session>/real.rssdk/color.
        person = root / "WBackground" / ("part2" if i % 2 else "part1") / pid
        if pid == "CLKJ_CS0010":
            person = root / "WBackground" / pid / "session1"
        for j in range(PER_PERSON):
            _jpg(person / "real.rssdk" / "color" / f"{j + 1}.jpg", 20 * i + j)
        _jpg(person / "04_en_b.rssdk" / "color" / "1.jpg", 0)  # a spoof attack: never loaded
    _jpg(root / "WBackground" / "part1" / "CLKJ_XX9999" / "real.rssdk" / "color" / "1.jpg", 0)  # unlisted
    return root


def _cfg(root, tmp_path, **kw):
    return SurfConfig(root=str(root), image_size=8, cache_dir=str(tmp_path / "cache"), **kw)


def test_age_groups_persons_and_identity_split(root, tmp_path):
    ds = load_surf(_cfg(root, tmp_path, val_fraction=0.2, test_fraction=0.2))
    n = len(AGES) * PER_PERSON
    assert ds.images.shape == (n, 8, 8, 3) and ds.images.dtype == np.uint8
    assert ds.num_classes == 10 and ds.class_names[0] == "age 20-25" and ds.class_names[-1] == "age 65-70"
    ages = np.array([AGES[ds.meta["person_ids"][g]] for g in ds.groups])
    np.testing.assert_array_equal(ds.labels, (ages - 20) // 5)
    assert ds.groups.dtype == np.int64 and len(np.unique(ds.groups)) == len(AGES)
    assert ds.meta["unlabelled_images"] == 1 and ds.meta["persons"] == len(AGES)
    for g in np.unique(ds.groups):
        assert len(np.unique(ds.split[ds.groups == g])) == 1  # nobody on two sides
    assert sorted(np.bincount(ds.split, minlength=3) // PER_PERSON) == [2, 2, 6]


def test_explicit_age_range_and_group_count(root, tmp_path):
    ds = load_surf(_cfg(root, tmp_path, age_min=0, age_max=99, n_groups=4))
    ages = np.array([AGES[ds.meta["person_ids"][g]] for g in ds.groups])
    np.testing.assert_array_equal(ds.labels, ages // 25)
    with pytest.raises(InputError, match=r"line 1: age 20 of 'CLKJ_AS0001' is outside age_min..age_max = 21..99"):
        load_surf(_cfg(root, tmp_path, age_min=21, age_max=99))
    with pytest.raises(InputError, match="n_groups=0"):
        load_surf(_cfg(root, tmp_path, n_groups=0))


def test_second_load_comes_from_the_cache(root, tmp_path, monkeypatch):
    first = load_surf(_cfg(root, tmp_path))
    monkeypatch.setattr(surf, "decode_images", lambda *a, **k: pytest.fail("decoded again"))
    np.testing.assert_array_equal(load_surf(_cfg(root, tmp_path, n_groups=3)).images, first.images)


def test_parser_accepts_header_comments_and_separators(tmp_path):
    path = tmp_path / "Age_Gender.txt"
    path.write_text("\ufeffID Age Gender\n# a comment\n\nA1 30 M\nA2,41,F\nA3\t5\tF\n")
    assert read_age_gender(path) == {"A1": (30, "M", 4), "A2": (41, "F", 5), "A3": (5, "F", 6)}


@pytest.mark.parametrize(
    "text, match",
    [
        ("A1 30 M\nA2 forty F\n", "line 2: expected '<id> <age> <gender>'"),
        ("A1 30 M\n\nA2 41\n", "line 3: expected"),
        ("A1 30 M\nA2 41 F extra\n", "line 2"),
        ("A1 30 M\nA1 31 M\n", "line 2: id 'A1' already appears on line 1"),
        ("# nothing\n", "lists no person"),
    ],
)
def test_malformed_age_file_names_the_line(tmp_path, text, match):
    path = tmp_path / "Age_Gender.txt"
    path.write_text(text)
    with pytest.raises(InputError, match=match):
        read_age_gender(path)


def test_missing_folder_and_missing_parts(tmp_path, root):
    with pytest.raises(InputError, match=r"nowhere does not exist.*Age_Gender.txt.*real.rssdk/color"):
        load_surf(_cfg(tmp_path / "nowhere", tmp_path))
    (root / "Age_Gender.txt").rename(root / "ages.txt")
    with pytest.raises(InputError, match="lacks Age_Gender.txt"):
        load_surf(_cfg(root, tmp_path))


def test_no_folder_matches_an_id(tmp_path, root):
    (root / "Age_Gender.txt").write_text("SOMEONE_ELSE 30 M\n")
    with pytest.raises(InputError, match="folder name must equal an id there, such as 'SOMEONE_ELSE'"):
        load_surf(_cfg(root, tmp_path))


def test_corrupt_image_is_named(tmp_path, root):
    bad = root / "WBackground" / "part1" / "CLKJ_AS0003" / "real.rssdk" / "color" / "2.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(InputError, match="CLKJ_AS0003/real.rssdk/color/2.jpg"):
        load_surf(_cfg(root, tmp_path))


def test_probe(root, tmp_path, monkeypatch):
    assert probe_surf(SurfConfig(root=str(root))) == {"root": str(root), "persons": len(AGES), "images": 21}
    monkeypatch.setenv("UNLEARNKIT_DATA_SURF", str(tmp_path / "absent"))
    assert probe_surf(SurfConfig()) is None


def test_probe_of_an_incomplete_folder(root, tmp_path):
    (root / "Age_Gender.txt").unlink()
    assert probe_surf(SurfConfig(root=str(root))) == {"root": str(root), "images": 21, "missing": "Age_Gender.txt"}
    (tmp_path / "ages_only").mkdir()
    (tmp_path / "ages_only" / "Age_Gender.txt").write_text("A1 30 M\n")
    assert probe_surf(SurfConfig(root=str(tmp_path / "ages_only")))["missing"] == "WBackground/"
