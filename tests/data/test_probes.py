"""The probe contract over the whole registry: None where nothing is there, facts where it is.

``unlearnkit datasets`` calls each dataset's registered ``probe(config)``; a dict holding ``missing``
means "incomplete" and is tested per loader, next to its fixtures.
"""

import dataclasses

import pytest

from unlearnkit.data import DATASETS

FILE_FIELDS = ("root", "csv")


def _file_field(entry):
    return next((f for f in FILE_FIELDS if f in {x.name for x in dataclasses.fields(entry.config)}), None)


@pytest.mark.parametrize("name", [entry.name for entry in DATASETS])
def test_every_dataset_registers_a_probe(name):
    assert callable(DATASETS.entry(name).meta.get("probe"))


@pytest.mark.parametrize("name", [entry.name for entry in DATASETS if _file_field(entry)])
@pytest.mark.parametrize("where", ["absent", "empty"])
def test_probe_is_none_where_nothing_of_the_dataset_is(tmp_path, name, where):
    entry = DATASETS.entry(name)
    path = tmp_path / where
    if where == "empty":
        path.mkdir()
        (path / "notes.txt").write_text("unrelated\n")
    value = str(path / "labels.csv") if _file_field(entry) == "csv" else str(path)
    assert entry.meta["probe"](entry.config(**{_file_field(entry): value})) is None


@pytest.mark.parametrize("name", [entry.name for entry in DATASETS if not _file_field(entry)])
def test_probe_of_a_dataset_without_files_reports_facts(name):
    entry = DATASETS.entry(name)
    facts = entry.meta["probe"](entry.config())
    assert isinstance(facts, dict) and facts and "missing" not in facts
