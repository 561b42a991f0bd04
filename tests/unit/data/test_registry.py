"""Datasets registered by name: register, re-register, list, show status, open by name."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pixsight.core.errors import DatasetFormatError
from pixsight.data.formats import write_dataset
from pixsight.data.ops import dataset_fingerprint
from pixsight.data.registry import (UnknownDatasetError, dataset_status, get_dataset, list_datasets, register_dataset,
                                    remove_dataset)
from pixsight.data.resolve import open_dataset, resolve_dataset

from .test_validate_formats import base_dataset, edit


@pytest.fixture()
def coco(tmp_path: Path) -> Path:
    return write_dataset(base_dataset(tmp_path / "src"), tmp_path / "coco", "coco")


def test_register_records_what_the_dataset_is(tmp_path: Path, coco: Path) -> None:
    db = tmp_path / "c.sqlite"
    entry, updated = register_dataset("pets", coco, db=db)
    assert not updated
    assert (entry.name, entry.format, entry.task, entry.classes) == ("pets", "coco", "detect", ["cat", "dog"])
    assert (entry.images, entry.instances, entry.class_counts) == (2, 3, {"cat": 2, "dog": 1})
    assert entry.path == str(coco.resolve())
    assert entry.fingerprint == dataset_fingerprint(base_dataset(tmp_path / "src"))
    d = get_dataset("pets", db=db).to_dict()
    assert d["fingerprint"] == entry.fingerprint and d["created"].endswith("Z")
    assert [e.name for e in list_datasets(db=db)] == ["pets"]


def test_re_registering_updates_and_keeps_created(tmp_path: Path, coco: Path) -> None:
    db = tmp_path / "c.sqlite"
    first, _ = register_dataset("pets", coco, db=db)
    time.sleep(0.01)
    yolo = write_dataset(base_dataset(tmp_path / "src"), tmp_path / "yolo", "yolo")
    second, updated = register_dataset("pets", yolo, db=db)
    assert updated and second.format == "yolo" and second.path == str(yolo.resolve())
    assert second.created == first.created and second.updated > first.updated
    assert second.fingerprint == first.fingerprint  # same labels in another format
    assert len(list_datasets(db=db)) == 1


def test_status_reports_changed_and_missing_files(tmp_path: Path, coco: Path) -> None:
    db = tmp_path / "c.sqlite"
    register_dataset("pets", coco, db=db)
    assert dataset_status(get_dataset("pets", db=db)).state == "ok"
    edit(coco, '"bbox": [5.0, 5.0, 10.0, 10.0]', '"bbox": [5.0, 5.0, 11.0, 10.0]')
    status = dataset_status(get_dataset("pets", db=db))
    assert status.state == "changed" and status.fingerprint and "changed since registration" in status.message
    coco.unlink()
    assert dataset_status(get_dataset("pets", db=db)).state == "missing"


def test_open_dataset_resolves_a_name_and_a_path_wins(tmp_path: Path, coco: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "c.sqlite"
    register_dataset("pets", coco, db=db)
    resolved = resolve_dataset("pets", db=db)
    assert resolved.name == "pets" and resolved.format == "coco" and len(resolved.dataset.images) == 2
    monkeypatch.setenv("PIXSIGHT_DB", str(db))  # the default catalog, as the CLI's --db
    assert len(open_dataset("pets").images) == 2
    monkeypatch.chdir(tmp_path)
    write_dataset(base_dataset(tmp_path / "src"), tmp_path / "pets", "yolo")  # a folder named like the dataset
    assert resolve_dataset("pets").format == "yolo"


@pytest.mark.parametrize(("spec", "message"), [
    ("pest", "no dataset registered as 'pest' in .*; did you mean pets"),
    ("../nope", "no such file or folder"),
])
def test_unknown_names_say_what_exists(tmp_path: Path, coco: Path, spec: str, message: str) -> None:
    db = tmp_path / "c.sqlite"
    register_dataset("pets", coco, db=db)
    with pytest.raises(DatasetFormatError, match=message):
        open_dataset(spec, db=db)


def test_names_are_checked_and_a_missing_catalog_is_not_created(tmp_path: Path, coco: Path) -> None:
    with pytest.raises(DatasetFormatError, match="must be 1-64 letters"):
        register_dataset("../evil", coco, db=tmp_path / "c.sqlite")
    with pytest.raises(UnknownDatasetError, match="does not exist"):
        get_dataset("pets", db=tmp_path / "none.sqlite")
    assert not (tmp_path / "none.sqlite").exists() and list_datasets(db=tmp_path / "none.sqlite") == []
    with pytest.raises(DatasetFormatError, match="no such file"):
        register_dataset("pets", tmp_path / "missing", db=tmp_path / "c.sqlite")


def test_remove(tmp_path: Path, coco: Path) -> None:
    db = tmp_path / "c.sqlite"
    register_dataset("pets", coco, db=db)
    assert remove_dataset("pets", db=db) and not remove_dataset("pets", db=db)
    assert coco.exists() and list_datasets(db=db) == []
