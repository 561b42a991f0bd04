"""`pixsight eval` from the outside: tables, --json, --report, --group-by, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .conftest import run_cli


def _coco_set(tmp: Path) -> tuple[Path, Path]:
    images, anns, results = [], [], []
    for i in range(4):
        Image.fromarray(np.zeros((50, 60, 3), np.uint8)).save(tmp / f"{i}.png")
        images.append({"id": 10 + i, "file_name": f"{i}.png", "width": 60, "height": 50,
                       "weather": "rain" if i % 2 else "sun"})
        anns.append({"id": i + 1, "image_id": 10 + i, "category_id": 7, "bbox": [5, 5, 20, 20], "area": 400,
                     "iscrowd": 0})
        bbox = [5, 5, 20, 20] if i % 2 == 0 else [30, 25, 10, 10]
        results.append({"image_id": 10 + i, "category_id": 7, "bbox": bbox, "score": 0.9 - 0.1 * (i % 2)})
    gt = tmp / "gt.json"
    gt.write_text(json.dumps({"images": images, "annotations": anns,
                              "categories": [{"id": 7, "name": "box"}]}), encoding="utf-8")
    pred = tmp / "pred.json"
    pred.write_text(json.dumps(results), encoding="utf-8")
    return gt, pred


def test_predictions_json_keys_and_groups(tmp_path):
    gt, pred = _coco_set(tmp_path)
    proc = run_cli("eval", "--predictions", str(pred), "--data", str(gt), "--json", "--group-by", "weather",
                   "--report", str(tmp_path / "r.html"))
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)  # exactly one JSON object
    for key in ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "per_class", "groups"):
        assert key in d
    assert d["map_50"] == pytest.approx(0.5, abs=0.02)
    assert d["groups"]["gaps"]["map_50"]["best"] == "sun" and d["groups"]["gaps"]["map_50"]["worst"] == "rain"
    assert (tmp_path / "r.html").is_file()


def test_predictions_table(tmp_path):
    gt, pred = _coco_set(tmp_path)
    proc = run_cli("eval", "--predictions", str(pred), "--data", str(gt))
    assert proc.returncode == 0, proc.stderr
    assert "map_50" in proc.stdout and "per class" in proc.stdout and "box" in proc.stdout


@pytest.mark.parametrize("mutate, message", [
    (lambda res: res[1].update(category_id=99), "results[1]: category_id 99"),
    (lambda res: res[2].update(image_id=12345), "results[2]: image_id 12345"),
    (lambda res: res[0].pop("bbox"), "results[0]: missing key 'bbox'"),
])
def test_bad_predictions_exit_2_with_file_and_record(tmp_path, mutate, message):
    gt, pred = _coco_set(tmp_path)
    res = json.loads(pred.read_text())
    mutate(res)
    pred.write_text(json.dumps(res), encoding="utf-8")
    proc = run_cli("eval", "--predictions", str(pred), "--data", str(gt), "--json")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert message in proc.stderr and str(pred) in proc.stderr and proc.stdout == ""


@pytest.mark.parametrize("args, message", [
    (["--data", "x"], "either a RUN_DIR/MODEL or --predictions"),
    (["--predictions", "nope.json", "--data", "gt.json"], "nope.json: file not found"),
    (["no-such-model-q", "--data", "gt.json"], "no-such-model-q"),
])
def test_usage_errors(tmp_path, args, message):
    _coco_set(tmp_path)
    proc = run_cli("eval", *args, cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_ocr_predictions(tmp_path):
    (tmp_path / "truth.json").write_text(json.dumps({"a.png": "abcd"}), encoding="utf-8")
    (tmp_path / "o.jsonl").write_text(json.dumps({"path": "a.png", "ocr": {"text": "abed"}}) + "\n", encoding="utf-8")
    proc = run_cli("eval", "--predictions", str(tmp_path / "o.jsonl"), "--data", str(tmp_path / "truth.json"),
                   "--task", "ocr", "--json")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["cer"] == 0.25 and d["wer"] == 1.0


@pytest.mark.slow
def test_run_dir(tmp_path):
    from tests.unit.tasks.runs import make_run, squares_image

    run = make_run(tmp_path / "runs", "detect")
    img, boxes = squares_image()
    Image.fromarray(img).save(tmp_path / "a.png")
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 200, "height": 120}],
           "annotations": [{"id": k + 1, "image_id": 1, "category_id": k + 1, "iscrowd": 0,
                            "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]} for k, b in enumerate(boxes.values())],
           "categories": [{"id": 1, "name": "white"}, {"id": 2, "name": "red"}]}
    (tmp_path / "gt.json").write_text(json.dumps(doc), encoding="utf-8")
    proc = run_cli("eval", str(run), "--data", str(tmp_path / "gt.json"), "--json")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["map_50"] == 1.0 and d["model"] == str(run.absolute())
