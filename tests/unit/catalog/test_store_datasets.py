"""The catalog's datasets table: upsert keeps created, old catalogs gain the table."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pixsight.catalog.store import Catalog


def _entry(**kw: object) -> dict:
    return {"name": "pets", "format": "coco", "path": "/data/pets.json", "task": "detect", "classes": ["cat"],
            "counts": {"images": 2, "instances": 3}, "fingerprint": "ab" * 32, **kw}


def test_put_get_list_delete(catalog: Catalog) -> None:
    with catalog as cat:
        assert cat.put_dataset(_entry()) is False
        first = cat.get_dataset("pets")
        assert first["classes"] == ["cat"] and first["counts"] == {"images": 2, "instances": 3}
        assert cat.put_dataset(_entry(format="yolo", name="pets")) is True
        second = cat.get_dataset("pets")
        assert second["format"] == "yolo" and second["created"] == first["created"]
        cat.put_dataset(_entry(name="birds"))
        assert [d["name"] for d in cat.list_datasets()] == ["birds", "pets"]
        assert cat.delete_dataset("birds") and not cat.delete_dataset("birds")
        assert cat.get_dataset("birds") is None and cat.integrity_ok()


def test_a_catalog_made_before_the_datasets_table_gains_it(catalog_db: Path) -> None:
    path = catalog_db
    with Catalog(path):
        pass
    db = sqlite3.connect(path)
    db.execute("DROP TABLE datasets")
    db.execute("UPDATE meta SET value='1' WHERE key='schema_version'")  # as such catalogs say
    db.commit()
    db.close()
    with Catalog(path) as cat:
        assert cat.put_dataset(_entry()) is False and cat.get_dataset("pets") is not None
