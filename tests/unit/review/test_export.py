"""Reviewed images -> COCO / class folders datasets that validate and hold the right labels."""

from __future__ import annotations

import json
import sqlite3

import pytest
from PIL import Image

from pixsight.catalog.store import Catalog
from pixsight.data.formats import read_dataset
from pixsight.data.validate import validate_dataset
from pixsight.review import queue
from pixsight.catalog.files import catalog_image
from pixsight.review.export import REJECTED_CLASS, export_reviewed
from pixsight.review.queue import ReviewError
from tests.unit.review import build_catalog


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory):
    """The catalog with one decision of each kind (and a later override)."""
    built = build_catalog(tmp_path_factory.mktemp("export"))
    db = built.db
    with Catalog(db) as cat:
        top = {p: cat.load_analysis(built.sha(p)).results["classify"].top_label for p in built.flagged[:3]}
    f = built.flagged
    queue.submit(db, built.sha(f[0]), "reject", "ann")
    queue.submit(db, built.sha(f[0]), "accept", "bob")                 # latest decision counts
    queue.submit(db, built.sha(f[1]), "relabel", "ann", labels=["striped thing", "zebra"])
    queue.submit(db, built.sha(f[2]), "reject", "ann")
    queue.submit(db, built.sha(built.exif), "fix", "ann",
                 boxes=[{"box": [1, 2, 30, 70], "label": "stripe"}, {"box": [0, 0, 40, 80], "label": "frame"}])
    queue.submit(db, built.sha(built.detected), "accept", "bob")
    return built, top


def _by_sha(ds):
    return {rec.attributes["sha256"]: rec for rec in ds.images}


def test_coco_export_validates_and_holds_the_decisions(reviewed, tmp_path):
    built, top = reviewed
    f = built.flagged
    summary = export_reviewed(built.db, tmp_path / "coco", format="coco")
    report = validate_dataset(tmp_path / "coco", fmt="coco")
    assert report.ok, [p.to_dict() for p in report.problems]
    ds = read_dataset(tmp_path / "coco")
    recs = _by_sha(ds)
    assert set(recs) == {built.sha(p) for p in (f[0], f[1], built.exif, built.detected)}
    assert summary.images == 4 and summary.skipped == [{"sha256": built.sha(f[2]), "reason": "rejected"}]
    assert summary.decisions == {"accept": 2, "relabel": 1, "fix": 1}
    assert recs[built.sha(f[0])].attributes["labels"] == [top[f[0]]]               # accept: model's top-1
    assert recs[built.sha(f[1])].attributes["labels"] == ["striped thing", "zebra"]
    fixed = recs[built.sha(built.exif)]
    assert (fixed.width, fixed.height) == (40, 80)                                 # oriented size
    assert sorted((ds.classes[a.class_id], a.box.tolist()) for a in fixed.annotations) == [
        ("frame", [0, 0, 40, 80]), ("stripe", [1, 2, 30, 70])]
    det = recs[built.sha(built.detected)]
    assert [(ds.classes[a.class_id], a.box.round(1).tolist()) for a in det.annotations] == [
        ("widget", [5, 5, 40, 30]), ("gadget", [50, 10, 89.5, 59.9])]
    assert {"frame", "stripe", "widget", "gadget", "striped thing", top[f[0]]} <= set(ds.classes)
    doc = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    assert len(doc["annotations"]) == summary.annotations == 4


def test_folders_export_validates_with_first_label_as_class(reviewed, tmp_path):
    built, top = reviewed
    f = built.flagged
    summary = export_reviewed(built.db, tmp_path / "folders", format="folders")
    assert validate_dataset(tmp_path / "folders", fmt="folders").ok
    ds = read_dataset(tmp_path / "folders", "folders")
    got = sorted((ds.classes[r.label], r.file_name.rsplit("/", 1)[-1][:16]) for r in ds.images)
    assert got == sorted([(top[f[0]], built.sha(f[0])[:16]), ("striped thing", built.sha(f[1])[:16])])
    reasons = {s["sha256"]: s["reason"] for s in summary.skipped}
    assert "class folders" in reasons[built.sha(built.exif)]                       # boxes cannot go there
    assert "no classify label" in reasons[built.sha(built.detected)]
    assert reasons[built.sha(f[2])] == "rejected"


def test_include_rejected(reviewed, tmp_path):
    built, _ = reviewed
    summary = export_reviewed(built.db, tmp_path / "f", format="folders", include_rejected=True)
    assert summary.decisions["reject"] == 1
    assert len(list((tmp_path / "f" / REJECTED_CLASS).iterdir())) == 1
    coco = export_reviewed(built.db, tmp_path / "c", format="coco", include_rejected=True)
    rec = _by_sha(read_dataset(tmp_path / "c"))[built.sha(built.flagged[2])]
    assert rec.annotations == [] and rec.attributes["review"] == "reject" and coco.images == 5


def test_copies_bytes_or_strips_metadata(reviewed, tmp_path):
    built, _ = reviewed
    export_reviewed(built.db, tmp_path / "raw", format="coco")
    export_reviewed(built.db, tmp_path / "clean", format="coco", strip_metadata=True)
    name = f"images/{built.sha(built.exif)[:16]}.jpg"
    assert (tmp_path / "raw" / name).read_bytes() == built.exif.read_bytes()
    with Image.open(tmp_path / "clean" / name) as img:
        assert img.size == (40, 80) and not img.getexif() and "exif" not in img.info


def test_changed_or_missing_files_are_skipped(reviewed, tmp_path):
    built, _ = reviewed
    db = tmp_path / "c.sqlite"
    src, dst = sqlite3.connect(built.db), sqlite3.connect(db)
    src.backup(dst)
    src.close()
    dst.close()
    con = sqlite3.connect(db)
    con.execute("UPDATE files SET path = ? WHERE sha256 = ?", (str(tmp_path / "gone.png"), built.sha(built.detected)))
    con.commit()
    con.close()
    assert catalog_image(db, built.sha(built.detected)) is None
    summary = export_reviewed(db, tmp_path / "out", format="coco")
    assert {"sha256": built.sha(built.detected), "reason": "no catalogued file has this content any more"} \
        in summary.skipped
    assert summary.images == 3


def test_user_mistakes(reviewed, tmp_path):
    built, _ = reviewed
    with pytest.raises(ReviewError, match="unknown export format"):
        export_reviewed(built.db, tmp_path / "x", format="yolo")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(ReviewError, match="not empty"):
        export_reviewed(built.db, tmp_path / "full", format="coco")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_nothing_reviewed_is_an_error(tmp_path):
    from pixsight.core.types import Analysis

    db = tmp_path / "c.sqlite"
    with Catalog(db) as cat:
        cat.save(Analysis(path="a.png", sha256="a" * 64, width=8, height=6, format="PNG"))
    with pytest.raises(ReviewError, match="nothing to export"):
        export_reviewed(db, tmp_path / "out", format="coco")
    assert not (tmp_path / "out").exists()
