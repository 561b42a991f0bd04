"""COCO validation: every problem once, with its record; safe fixes that leave a clean file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from pixsight.data.formats import read_dataset
from pixsight.data.validate import fix_coco, validate_coco


def _bad_coco(root: Path) -> Path:
    """One of each problem, each on its own record."""
    root.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), (90, 120, 60)).save(root / "a.png")
    Image.new("RGB", (40, 30)).save(root / "b.png")
    Image.new("RGB", (50, 50)).save(root / "wrong_size.png")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    ann = lambda aid, bbox, **kw: {"id": aid, "image_id": 1, "category_id": 1, "bbox": bbox,  # noqa: E731
                                   "area": 1.0, "iscrowd": 0, **kw}
    doc = {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 40, "height": 30},
            {"id": 2, "file_name": "b.png", "width": 40, "height": 30},
            {"id": 2, "file_name": "b.png", "width": 40, "height": 30},            # images[2]: duplicate id
            {"id": 3, "file_name": "missing.png", "width": 40, "height": 30},      # images[3]: missing file
            {"id": 4, "file_name": "broken.png", "width": 40, "height": 30},       # images[4]: unreadable
            {"id": 5, "file_name": "wrong_size.png", "width": 40, "height": 30},   # images[5]: size mismatch
            {"id": 6, "file_name": "a.png", "height": 30},                         # images[6]: missing width
            {"id": "7", "file_name": "a.png", "width": 40, "height": 30},          # images[7]: id wrong type
        ],
        "categories": [{"id": 1, "name": "cat"}, {"id": 1, "name": "dog"}],       # categories[1]: duplicate
        "annotations": [
            ann(10, [5, 5, 10, 10]),                         # 0: fine
            ann(11, [30, 20, 20, 20]),                       # 1: outside -> clip
            ann(12, [5, 5, 0, 10]),                          # 2: zero size -> drop
            ann(13, [5, 5, -3, 10]),                         # 3: negative size -> drop
            ann(14, [5, float("nan"), 10, 10]),              # 4: NaN -> drop
            ann(15, [5, "5", 10, 10]),                       # 5: non-numeric
            ann(16, [5, 5, 10, 10], category_id=99),         # 6: unknown category -> drop
            ann(17, [5, 5, 10, 10], image_id=99),            # 7: unknown image -> drop
            ann(10, [1, 1, 2, 2]),                           # 8: duplicate annotation id
            {"id": 18, "image_id": 1, "category_id": 1},     # 9: missing bbox
            ann(19, [50, 40, 5, 5]),                         # 10: entirely outside -> drop
        ],
    }
    path = root / "labels.json"
    path.write_text(json.dumps(doc))  # json writes NaN as a bare NaN, as sloppy exporters do
    return path


EXPECTED = [  # (record, words in the message, fix)
    ("images[2] (id 2)", "duplicate image id 2", None),
    ("images[3] (id 3)", "image file not found", None),
    ("images[4] (id 4)", "unreadable image broken.png", None),
    ("images[5] (id 5)", "size in JSON is 40x30 but wrong_size.png is 50x50", None),
    ("images[6] (id 6)", "missing key 'width'", None),
    ("images[7]", "id must be an int", None),
    ("categories[1] (id 1)", "duplicate category id 1", None),
    ("annotations[1] (id 11)", "outside the 40x30 image", "clip"),
    ("annotations[2] (id 12)", "zero or negative size", "drop"),
    ("annotations[3] (id 13)", "zero or negative size", "drop"),
    ("annotations[4] (id 14)", "non-finite", "drop"),
    ("annotations[5] (id 15)", "bbox must be [x, y, width, height] numbers", None),
    ("annotations[6] (id 16)", "category_id 99 is not in categories", "drop"),
    ("annotations[7] (id 17)", "image_id 99 is not in images", "drop"),
    ("annotations[8] (id 10)", "duplicate annotation id 10", None),
    ("annotations[9] (id 18)", "missing key 'bbox'", None),
    ("annotations[10] (id 19)", "nothing left inside", "drop"),
]


def test_every_problem_is_reported_once_with_its_record(tmp_path: Path) -> None:
    report = validate_coco(_bad_coco(tmp_path))
    got = sorted((p.record, p.message, p.fix) for p in report.problems)
    assert len(got) == len(EXPECTED), "\n".join(map(str, got))
    for record, words, fix in EXPECTED:
        hits = [g for g in got if g[0] == record and words in g[1]]
        assert len(hits) == 1, (record, words, got)
        assert hits[0][2] == fix
    assert all(p.severity == "error" and p.file == str(tmp_path / "labels.json") for p in report.problems)
    assert (report.images, report.annotations, report.categories) == (8, 11, 2)
    assert not report.ok


def test_no_image_check_skips_the_files(tmp_path: Path) -> None:
    report = validate_coco(_bad_coco(tmp_path), check_images=False)
    records = {p.record for p in report.problems}
    assert not records & {"images[3] (id 3)", "images[4] (id 4)", "images[5] (id 5)"}
    assert "annotations[1] (id 11)" in records


@pytest.mark.parametrize(("content", "message"), [
    (None, "file not found"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"images": {}, "categories": []}', "'images' must be a list"),
])
def test_a_broken_file_is_one_problem_not_a_crash(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "x.json"
    if content is not None:
        path.write_text(content)
    report = validate_coco(path)
    assert [message in p.message for p in report.problems].count(True) == 1


def test_a_clean_synth_dataset_has_no_problems(tmp_path: Path) -> None:
    from pixsight.data.synth import synth_dataset

    synth_dataset(tmp_path / "s", task="segment", n=8, seed=1, image_size=(48, 48))
    report = validate_coco(tmp_path / "s" / "train.json")
    assert report.ok and report.problems == [] and report.images > 0 and report.annotations > 0


def test_fix_clips_and_drops_and_the_result_is_clean_and_loads(tmp_path: Path) -> None:
    src = _bad_coco(tmp_path)
    before = src.read_bytes()
    images_before = {p.name: p.read_bytes() for p in tmp_path.glob("*.png")}
    report = validate_coco(src, check_images=False)
    out = tmp_path / "fixed.json"
    summary = fix_coco(src, out, report)
    assert src.read_bytes() == before  # the source is untouched when out differs
    assert {p.name: p.read_bytes() for p in tmp_path.glob("*.png")} == images_before
    assert summary.clipped == ["annotations[1] (id 11)"]
    assert sorted(summary.dropped) == sorted(["annotations[2] (id 12)", "annotations[3] (id 13)",
                                              "annotations[4] (id 14)", "annotations[6] (id 16)",
                                              "annotations[7] (id 17)", "annotations[10] (id 19)"])
    doc = json.loads(out.read_text())
    clipped = next(a for a in doc["annotations"] if a["id"] == 11)
    assert clipped["bbox"] == [30.0, 20.0, 10.0, 10.0] and clipped["area"] == 100.0
    after = validate_coco(out, check_images=False)
    assert not any(p.fixable for p in after.problems)
    # what is left is exactly what --fix may not touch (records renumber after the drops)
    assert sorted(p.message for p in after.problems) == sorted(p.message for p in report.unfixable)


def test_fixed_file_of_an_otherwise_good_dataset_validates_clean_and_loads(tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    from pixsight.data.synth import synth_dataset

    synth_dataset(tmp_path, task="detect", n=6, seed=2, image_size=(48, 48))
    path = tmp_path / "train.json"
    doc = json.loads(path.read_text())
    anns = doc["annotations"]
    anns[0]["bbox"] = [40, 40, 30, 30]                       # pokes out -> clipped
    anns[1]["bbox"] = [1, 1, 0, 5]                           # empty -> dropped
    anns[2]["category_id"] = 999                             # unknown -> dropped
    path.write_text(json.dumps(doc))
    report = validate_coco(path)
    assert len(report.problems) == 3 and all(p.fixable for p in report.problems)
    summary = fix_coco(path, path, report)  # in place
    assert len(summary.clipped) == 1 and len(summary.dropped) == 2
    assert validate_coco(path).ok
    coco = COCO(str(path))
    assert len(coco.getAnnIds()) == len(anns) - 2
    assert len(read_dataset(path).images) == len(doc["images"])
