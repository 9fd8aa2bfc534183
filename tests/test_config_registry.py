"""The registry and the config machinery that every component relies on."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from unlearnkit.config import from_dict, load_file, parse_overrides, replace
from unlearnkit.errors import InputError
from unlearnkit.registry import Registry


@dataclass(frozen=True)
class Inner:
    lr: float = 0.1
    classes: tuple[int, ...] = (0,)


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    epochs: int = 3
    flag: bool = False
    inner: Inner = Inner()
    maybe: float | None = None


def test_registry_rejects_duplicates_and_suggests():
    reg: Registry = Registry("thing")
    reg.register("alpha")(lambda: 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("alpha")(lambda: 2)
    with pytest.raises(InputError, match="unknown thing 'alpa'. Did you mean 'alpha'"):
        reg.get("alpa")


def test_from_dict_coerces_and_checks():
    cfg = from_dict(Outer, {"epochs": "5", "flag": "true", "inner": {"lr": "0.5", "classes": "1,2"}, "maybe": "none"})
    assert cfg == Outer(epochs=5, flag=True, inner=Inner(lr=0.5, classes=(1, 2)), maybe=None)
    with pytest.raises(InputError, match="unknown field epoch for Outer"):
        from_dict(Outer, {"epoch": 3})
    with pytest.raises(InputError, match="inner.lr: expected a number, got 'fast'"):
        from_dict(Outer, {"inner": {"lr": "fast"}})
    with pytest.raises(InputError, match="expected an integer"):
        from_dict(Outer, {"epochs": 2.5})


def test_overrides_and_files(tmp_path):
    over = parse_overrides(["inner.lr=0.01", "epochs=7", "inner.classes=[1, 3]"])
    assert replace(Outer(), over) == Outer(epochs=7, inner=Inner(lr=0.01, classes=(1, 3)))
    with pytest.raises(InputError, match="expected KEY=VALUE"):
        parse_overrides(["lr"])
    (tmp_path / "c.toml").write_text("[train]\nepochs = 2\n")
    (tmp_path / "c.yaml").write_text("train:\n  epochs: 2\n")
    assert load_file(tmp_path / "c.toml") == load_file(tmp_path / "c.yaml") == {"train": {"epochs": 2}}
    (tmp_path / "bad.toml").write_text("[train\n")
    with pytest.raises(InputError, match="not valid TOML"):
        load_file(tmp_path / "bad.toml")
    with pytest.raises(InputError, match="does not exist"):
        load_file(tmp_path / "missing.yaml")


def test_atomic_writes_leave_no_temporary_and_normal_permissions(tmp_path):
    import os

    from unlearnkit.io import read_json, write_json

    write_json(tmp_path / "a" / "r.json", {"x": 1})
    assert read_json(tmp_path / "a" / "r.json") == {"x": 1}
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["r.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a" / "r.json").stat().st_mode & 0o777 == 0o666 & ~umask
