"""Reading predictions files: COCO results, analyze JSONL, PNG class maps, text truth, pairs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixsight.core.errors import DatasetFormatError
from pixsight.data.dataset import Annotation, Dataset, ImageRecord
from pixsight.evaluate.predictions import guess_task, load_predictions, read_analyze_jsonl, read_coco_results
from pixsight.evaluate.truth import read_pairs, read_text_truth


def _det_gt(with_ids: bool = True, category_ids: list[int] | None = None) -> Dataset:
    recs = [ImageRecord(f"img/{i}.jpg", 100, 80, [Annotation(i % 2, [10, 10, 50, 40])], id=(40 + i) if with_ids else None)
            for i in range(3)]
    attrs = {"category_ids": category_ids} if category_ids else {}
    return Dataset("/data", ["cat", "dog"], recs, "detect", attrs)


def _write(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def test_coco_results_by_image_id_and_category_id(tmp_path):
    gt = _det_gt(category_ids=[3, 9])
    f = _write(tmp_path / "res.json", [
        {"image_id": 41, "category_id": 9, "bbox": [10, 10, 40, 30], "score": 0.8},
        {"image_id": 41, "category_id": 3, "bbox": [0, 0, 5, 5], "score": 0.1},
    ])
    preds = read_coco_results(f, gt)
    assert preds.task == "detect" and len(preds.items) == 3
    boxes, scores, cls = preds.items[1]
    assert boxes.tolist() == [[10, 10, 50, 40], [0, 0, 5, 5]] and cls.tolist() == [1, 0]
    assert len(preds.items[0][0]) == 0  # an image without results: no detections


def test_coco_results_by_file_name_when_gt_has_no_ids(tmp_path):
    gt = _det_gt(with_ids=False)
    f = _write(tmp_path / "res.json", [{"file_name": "/abs/path/img/2.jpg", "category_id": 2,
                                         "bbox": [1, 2, 3, 4], "score": 0.5}])
    boxes, _, cls = read_coco_results(f, gt).items[2]
    assert boxes.tolist() == [[1, 2, 4, 6]] and cls.tolist() == [1]  # no category ids: class index + 1
    f2 = _write(tmp_path / "res2.json", [{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5}])
    with pytest.raises(DatasetFormatError, match=r"res2.json: results\[0\]: .*no image ids.*file_name"):
        read_coco_results(f2, gt)


@pytest.mark.parametrize("record, message", [
    ({"image_id": 7, "category_id": 3, "bbox": [0, 0, 1, 1], "score": 0.5}, r"results\[1\]: image_id 7 is not"),
    ({"image_id": 40, "category_id": 4, "bbox": [0, 0, 1, 1], "score": 0.5}, r"results\[1\]: category_id 4 .*known: \[3, 9\]"),
    ({"image_id": 40, "category_id": 3, "bbox": [0, 0, 1], "score": 0.5}, r"results\[1\]: bbox must be"),
    ({"image_id": 40, "category_id": 3, "bbox": [0, 0, -1, 1], "score": 0.5}, r"results\[1\]: bbox has a negative"),
    ({"image_id": 40, "category_id": 3, "bbox": [0, 0, 1, 1]}, r"results\[1\]: missing key 'score'"),
    ({"image_id": 40, "category_id": 3, "bbox": [0, 0, 1, 1], "score": "high"}, r"results\[1\]: score must be"),
    ({"file_name": "nope.jpg", "category_id": 3, "bbox": [0, 0, 1, 1], "score": 0.5}, r"results\[1\]: file_name 'nope.jpg'"),
])
def test_coco_results_errors_name_file_and_record(tmp_path, record, message):
    ok = {"image_id": 40, "category_id": 3, "bbox": [0, 0, 1, 1], "score": 0.5}
    f = _write(tmp_path / "res.json", [ok, record])
    with pytest.raises(DatasetFormatError, match=message) as info:
        read_coco_results(f, _det_gt(category_ids=[3, 9]))
    assert str(f) in str(info.value)


def test_not_json_and_wrong_top_level(tmp_path):
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(DatasetFormatError, match="bad.json: not valid JSON"):
        read_coco_results(tmp_path / "bad.json", _det_gt())
    with pytest.raises(DatasetFormatError, match="COCO results list"):
        read_coco_results(_write(tmp_path / "o.json", {"a": 1}), _det_gt())


def _cls_gt() -> Dataset:
    recs = [ImageRecord(f"{c}/{i}.jpg", 32, 32, label=k) for k, c in enumerate(["cat", "dog", "eel"]) for i in range(2)]
    return Dataset("/data/val", ["cat", "dog", "eel"], recs, "classify")


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_analyze_jsonl_classification_matches_paths_and_labels(tmp_path):
    rows = [{"path": "/mnt/photos/val/dog/1.jpg", "classify": {"labels": [
                {"label": "dog", "class_id": 5, "score": 0.7}, {"label": "cat", "class_id": 1, "score": 0.2}]}},
            {"path": "cat/0.jpg", "classify": {"labels": [{"label": "eel", "class_id": 0, "score": 0.5}]}},
            {"path": "other/x.jpg", "classify": {"labels": [{"label": "cat", "class_id": 0, "score": 0.9}]}},
            {"path": "eel/1.jpg", "status": "error", "error": {"type": "ImageDecodeError", "message": "bad"}}]
    preds = read_analyze_jsonl(_jsonl(tmp_path / "a.jsonl", rows), _cls_gt(), task="classify")
    dog = preds.items[3]
    assert dog.argmax() == 1 and dog[1] == pytest.approx(0.7) and dog[0] == pytest.approx(0.2)
    assert dog[2] == pytest.approx(0.1)  # the rest of the mass
    cat0 = preds.items[0]
    assert cat0.argmax() == 2  # the top label stays the argmax even when the rest is large
    assert preds.unmatched == ["other/x.jpg"] and preds.missing == 4


def test_analyze_jsonl_errors(tmp_path):
    bad_label = [{"path": "cat/0.jpg", "classify": {"labels": [{"label": "zebra", "class_id": 0, "score": 0.5}]}}]
    with pytest.raises(DatasetFormatError, match=r"a.jsonl: line 1: top label 'zebra' is not a class"):
        read_analyze_jsonl(_jsonl(tmp_path / "a.jsonl", bad_label), _cls_gt(), task="classify")
    (tmp_path / "b.jsonl").write_text('{"path": "cat/0.jpg"}\n[1, 2\n', encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=r"b.jsonl: line 2: not valid JSON"):
        read_analyze_jsonl(tmp_path / "b.jsonl", _cls_gt(), task="classify")
    _jsonl(tmp_path / "c.jsonl", [{"classify": {}}])
    with pytest.raises(DatasetFormatError, match=r"c.jsonl: line 1: missing key 'path'"):
        read_analyze_jsonl(tmp_path / "c.jsonl", _cls_gt(), task="classify")


def test_analyze_jsonl_detections_and_segmentation(tmp_path):
    from pixsight.core.types import Segmentation

    gt = Dataset("/d", ["cat", "dog"], [ImageRecord("a.png", 6, 4)], "segment")
    class_map = np.zeros((4, 6), np.uint8)
    class_map[1:3, 2:5] = 1  # model class 0 = "dog" (model order differs from the dataset's)
    seg = Segmentation.from_class_map(class_map, ["dog", "cat"]).to_dict()
    det = {"model": "m", "detections": [{"box": [1, 1, 3, 3], "score": 0.9, "class_id": 0, "label": "dog"}]}
    f = _jsonl(tmp_path / "p.jsonl", [{"path": "x/a.png", "segment": seg, "detect": det}])
    got = read_analyze_jsonl(f, gt, task="segment").items[0]
    assert got[1, 2] == 2 and got[0, 0] == 0  # dog is dataset class 1 -> value 2
    boxes, scores, cls = read_analyze_jsonl(f, gt, task="detect").items[0]
    assert cls.tolist() == [1] and boxes.tolist() == [[1, 1, 3, 3]]
    with pytest.raises(DatasetFormatError, match="results for detect, segment; pass --task"):
        guess_task(f)
    assert guess_task(_jsonl(tmp_path / "s.jsonl", [{"path": "a.png", "segment": seg}])) == "segment"


def test_png_class_map_folder(tmp_path):
    gt = Dataset("/d", ["a", "b"], [ImageRecord("sub/x.jpg", 5, 4), ImageRecord("y.jpg", 5, 4),
                                    ImageRecord("z.jpg", 5, 4)], "segment")
    (tmp_path / "sub").mkdir()
    Image.fromarray(np.full((4, 5), 2, np.uint8)).save(tmp_path / "sub" / "x.png")
    Image.fromarray(np.ones((4, 5), np.uint8)).save(tmp_path / "y.png")
    preds = load_predictions(tmp_path, gt)
    assert preds.items[0].max() == 2 and preds.items[1].max() == 1 and preds.items[2] is None
    Image.fromarray(np.ones((3, 5), np.uint8)).save(tmp_path / "y.png")
    with pytest.raises(DatasetFormatError, match=r"y.png: class map is 5x3 but the image is 5x4"):
        load_predictions(tmp_path, gt)
    Image.fromarray(np.ones((4, 5, 3), np.uint8)).save(tmp_path / "y.png")
    with pytest.raises(DatasetFormatError, match="single-channel"):
        load_predictions(tmp_path, gt)


def test_text_truth_and_pairs(tmp_path):
    assert read_text_truth(_write(tmp_path / "t.json", [{"file_name": "a.png", "text": "x"}])) == {"a.png": "x"}
    with pytest.raises(DatasetFormatError, match=r"t2.json: \[0\]: missing key 'text'"):
        read_text_truth(_write(tmp_path / "t2.json", [{"file_name": "a.png"}]))
    with pytest.raises(DatasetFormatError, match=r"must be relative"):
        read_text_truth(_write(tmp_path / "t3.json", {"../etc/passwd": "x"}))
    (tmp_path / "p.csv").write_text("image_a,image_b,same\na.jpg,b.jpg,yes\na.jpg,c.jpg,maybe\n", encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=r"p.csv: row 3: same must be"):
        read_pairs(tmp_path / "p.csv")
    (tmp_path / "q.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(DatasetFormatError, match="header row with columns image_a, image_b, same"):
        read_pairs(tmp_path / "q.csv")
