"""evaluate_predictions end to end per task: metrics, subgroups, worst examples, HTML report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixsight.core.errors import ConfigError, DatasetFormatError
from pixsight.data.dataset import Annotation, Dataset, ImageRecord
from pixsight.data.formats.coco import write_coco
from pixsight.evaluate.evaluator import evaluate_predictions

EVIL = "<script>alert(1)</script>"
EVIL_FILE = "<img src=x onerror=alert(1)>"


def _detection_set(tmp_path: Path) -> tuple[Path, Path]:
    """6 images, one square each; day images predicted well, night images badly."""
    recs = []
    results = []
    for i in range(6):
        img = np.full((64, 96, 3), 40, np.uint8)
        img[10:40, 20:50] = 230
        name = f"{EVIL_FILE}{i}.png" if i == 5 else f"im{i}.png"
        Image.fromarray(img).save(tmp_path / name)
        site = "day" if i < 3 else "night"
        recs.append(ImageRecord(name, 96, 64, [Annotation(0, [20, 10, 50, 40])], id=i + 1, attributes={"site": site}))
        box = [20, 10, 30, 30] if site == "day" else [60, 40, 30, 20]
        results.append({"image_id": i + 1, "category_id": 1, "bbox": box, "score": 0.9})
    gt = write_coco(Dataset(tmp_path, [EVIL, "dog"], recs, "detect"), tmp_path / "gt.json", copy_images=False)
    pred = tmp_path / "res.json"
    pred.write_text(json.dumps(results), encoding="utf-8")
    return pred, gt


def test_detection_groups_gap_and_report(tmp_path):
    pred, gt = _detection_set(tmp_path)
    report = tmp_path / "out" / "report.html"
    r = evaluate_predictions(pred, gt, group_by="site", report=report)
    d = r.to_dict()
    assert d["task"] == "detect" and d["images"] == 6 and d["evaluated"] == 6
    assert d["map_50"] == pytest.approx(0.5, abs=0.02)  # 3 of 6 found, all scored alike
    g = d["groups"]
    assert g["values"]["day"]["map_50"] == pytest.approx(1.0) and g["values"]["night"]["map_50"] == 0.0
    assert g["gaps"]["map_50"] == {"gap": pytest.approx(1.0), "best": "day", "worst": "night"}
    assert {w["file_name"] for w in d["worst"]} == {"im3.png", "im4.png", f"{EVIL_FILE}5.png"}
    assert "curves" not in d
    json.dumps(d, allow_nan=False)
    html = report.read_text(encoding="utf-8")
    assert EVIL not in html and "&lt;script&gt;" in html  # class names are escaped
    assert EVIL_FILE not in html and "&lt;img src=x onerror=alert(1)&gt;5.png" in html  # and file names
    assert "Content-Security-Policy" in html and "<script" not in html
    assert len(re.findall(r'src="data:image/jpeg', html)) == 3  # the three worst examples are drawn
    assert "By site" in html and "Precision-recall" in html


def test_group_by_unknown_field_is_a_clear_error(tmp_path):
    pred, gt = _detection_set(tmp_path)
    with pytest.raises(ConfigError, match="no image has the attribute 'weather'.*site"):
        evaluate_predictions(pred, gt, group_by="weather")


def test_classification_from_analyze_jsonl(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for k, c in enumerate(["cat", "dog"]):
        (tmp_path / "val" / c).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "val" / c / f"{i}.png")
            label = c if i < 4 else ["dog", "cat"][k]  # one mistake per class
            rows.append({"path": str(tmp_path / "val" / c / f"{i}.png"),
                         "classify": {"labels": [{"label": label, "class_id": 0, "score": 0.9}]}})
    pred = tmp_path / "a.jsonl"
    pred.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    r = evaluate_predictions(pred, tmp_path / "val", report=tmp_path / "r.html")
    d = r.to_dict()
    assert d["task"] == "classify" and d["accuracy"] == pytest.approx(0.8) and d["macro_f1"] == pytest.approx(0.8)
    assert d["ece"] == pytest.approx(0.1)  # all at 0.9 confidence, 80% right
    assert d["confusion"] == [[4, 1], [1, 4]]
    assert len(d["worst"]) == 2 and all("predicted" in w["why"] for w in d["worst"])
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Calibration" in html and "Confusion matrix" in html and "Thresholds for precision" in html


def test_segmentation_png_folder(tmp_path):
    recs = [ImageRecord(f"{i}.png", 8, 6, [Annotation(0, [0, 0, 4, 6])]) for i in range(2)]
    for rec in recs:
        Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(tmp_path / rec.file_name)
    gt = write_coco(Dataset(tmp_path, ["leaf"], recs, "detect"), tmp_path / "gt.json", copy_images=False)
    maps = tmp_path / "maps"
    maps.mkdir()
    good = np.zeros((6, 8), np.uint8)
    good[:, :4] = 1
    half = np.zeros((6, 8), np.uint8)
    half[:, :2] = 1
    Image.fromarray(good).save(maps / "0.png")
    Image.fromarray(half).save(maps / "1.png")
    r = evaluate_predictions(maps, gt, task="segment", report=tmp_path / "s.html")
    d = r.to_dict()
    # leaf: tp 24+12, fn 12 -> 36/48; background: tp 48, fn 0, fp 12 -> 48/60
    assert d["miou"] == pytest.approx((36 / 48 + 48 / 60) / 2)
    assert d["pixel_accuracy"] == pytest.approx(84 / 96)
    assert d["worst"][0]["file_name"] == "1.png"


def test_ocr_and_faces(tmp_path):
    truth = tmp_path / "truth.csv"
    truth.write_text("file_name,text\nr/1.png,TOTAL 12.50\nr/2.png,hello\nr/3.png,unseen\n", encoding="utf-8")
    pred = tmp_path / "ocr.jsonl"
    pred.write_text(json.dumps({"path": "/scans/r/1.png", "ocr": {"text": "TOTAL 12.5O"}}) + "\n"
                    + json.dumps({"path": "r/2.png", "ocr": {"text": "hello"}}) + "\n", encoding="utf-8")
    d = evaluate_predictions(pred, truth, task="ocr").to_dict()
    assert d["cer"] == pytest.approx(1 / 16) and d["wer"] == pytest.approx(1 / 3)
    assert d["evaluated"] == 2 and d["missing"] == 1 and d["worst"][0]["file_name"] == "r/1.png"

    rng = np.random.default_rng(1)
    people = {p: rng.normal(size=16) for p in "abcd"}
    rows, pairs = [], ["image_a,image_b,same"]
    for p, v in people.items():
        for k in range(2):
            emb = (v + 0.2 * rng.normal(size=16)).tolist()
            rows.append({"path": f"f/{p}{k}.jpg", "faces": {"faces": [{"box": [0, 0, 1, 1], "score": 0.9,
                                                                        "landmarks": [], "embedding": emb}]}})
        pairs.append(f"f/{p}0.jpg,f/{p}1.jpg,1")
    pairs += ["f/a0.jpg,f/b0.jpg,0", "f/c1.jpg,f/d0.jpg,0", "f/a1.jpg,f/c0.jpg,0", "f/a0.jpg,f/zz.jpg,0"]
    (tmp_path / "faces.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "pairs.csv").write_text("\n".join(pairs) + "\n", encoding="utf-8")
    r = evaluate_predictions(tmp_path / "faces.jsonl", tmp_path / "pairs.csv", task="faces", report=tmp_path / "f.html")
    d = r.to_dict()
    assert d["roc_auc"] == 1.0 and d["eer"] == 0.0 and d["skipped_pairs"] == 1 and d["evaluated"] == 7
    assert "TPR @ FPR" in (tmp_path / "f.html").read_text(encoding="utf-8")


def test_predictions_for_another_dataset_is_an_error(tmp_path):
    (tmp_path / "val" / "cat").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "val" / "cat" / "0.png")
    pred = tmp_path / "a.jsonl"
    pred.write_text(json.dumps({"path": "elsewhere.png", "classify": {"labels": []}}) + "\n", encoding="utf-8")
    with pytest.raises(DatasetFormatError, match="no prediction matches any of the 1 ground-truth images"):
        evaluate_predictions(pred, tmp_path / "val", task="classify")
    with pytest.raises(ConfigError, match="task must be one of"):
        evaluate_predictions(pred, tmp_path / "val", task="caption")


def test_segmentation_crowd_regions_are_not_scored():
    from pixsight.evaluate.scoring import score

    rec = ImageRecord("a.png", 8, 6, [Annotation(0, [0, 0, 4, 6]), Annotation(0, [4, 0, 8, 6], iscrowd=True)])
    gt = Dataset(".", ["leaf"], [rec], "segment")
    pred = np.zeros((6, 8), np.int64)
    pred[:, :4] = 1  # the crowd half is predicted as background: not an error
    assert score("segment", gt, [pred])["miou"] == 1.0
