"""Trained models from the outside: `pixsight models add RUN`, `pixsight analyze --model/--tasks detect`."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixsight.core.schema import validate_analysis_dict
from tests.unit.tasks.runs import make_run, squares_image

from .conftest import jsonl, run_cli


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {task: make_run(root, task) for task in ("detect", "segment")}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"PIXSIGHT_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}


@pytest.fixture
def photos(tmp_path: Path) -> dict[str, dict[str, list[int]]]:
    """plain.png (200x120) and sideways.jpg (stored 120x200, EXIF orientation 6: shows as 200x120)."""
    d = tmp_path / "photos"
    d.mkdir()
    img, truth = squares_image(200, 120)
    Image.fromarray(img).save(d / "plain.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.rot90(img, 1).copy()).save(d / "sideways.jpg", "JPEG", quality=95, subsampling=0,
                                                   exif=exif.tobytes())
    return {"plain.png": truth, "sideways.jpg": truth}


def check_boxes(row: dict, truth: dict[str, list[int]]) -> None:
    dets = row["detect"]["detections"]
    assert sorted(d["label"] for d in dets) == ["red", "white"], row
    for d in dets:
        np.testing.assert_allclose(d["box"], truth[d["label"]], atol=200 / 64 + 2)


def test_add_list_show_then_analyze_by_task(built: dict[str, Path], env: dict[str, str], tmp_path: Path,
                                            photos: dict) -> None:
    add = run_cli("models", "add", str(built["detect"]), env=env)
    assert add.returncode == 0, add.stderr
    assert "tiny-detect@" in add.stdout and "white, red" in add.stdout
    listed = json.loads(run_cli("models", "list", "--task", "detect", "--json", env=env).stdout)
    assert [(r["name"], r["classes"], r["metric"]) for r in listed] == [("tiny-detect", ["white", "red"], "map_50 0.875")]
    show = run_cli("models", "show", "tiny-detect", env=env)
    assert show.returncode == 0 and "white, red" in show.stdout and "map_50 0.875" in show.stdout
    made_default = run_cli("models", "default", "tiny-detect", env=env)
    assert made_default.returncode == 0 and "default detect model" in made_default.stdout, made_default.stderr

    db = tmp_path / "c.sqlite"
    proc = run_cli("analyze", str(tmp_path / "photos"), "--tasks", "detect", "--db", str(db), "--jsonl", "-",
                   "--no-progress", "--annotate", str(tmp_path / "overlays"), "--report", str(tmp_path / "r.html"),
                   env=env)
    assert proc.returncode == 0, proc.stderr
    rows = {Path(r["path"]).name: r for r in jsonl(proc.stdout)}
    assert set(rows) == {"plain.png", "sideways.jpg"}
    for name, row in rows.items():
        validate_analysis_dict(row)
        assert (row["width"], row["height"]) == (200, 120)
        assert row["models"]["detect"].startswith("tiny-detect@")
        check_boxes(row, photos[name])
    assert len(list((tmp_path / "overlays").glob("*.jpg"))) == 2
    assert "Objects detected" in (tmp_path / "r.html").read_text(encoding="utf-8")

    shown = run_cli("show", str(tmp_path / "photos" / "sideways.jpg"), "--db", str(db), env=env)
    assert shown.returncode == 0, shown.stderr
    check_boxes(json.loads(shown.stdout), photos["sideways.jpg"])
    exported = run_cli("export", "--format", "csv", "--db", str(db), env=env)
    table = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [r["objects"] for r in table] == ["2", "2"]


def test_model_folder_runs_without_registering(built: dict[str, Path], env: dict[str, str], tmp_path: Path,
                                               photos: dict) -> None:
    proc = run_cli("analyze", str(tmp_path / "photos" / "plain.png"), "--model", str(built["detect"]),
                   "--model", str(built["segment"]), "--db", str(tmp_path / "c.sqlite"), "--jsonl", "-",
                   "--no-progress", env=env)
    assert proc.returncode == 0, proc.stderr
    [row] = jsonl(proc.stdout)
    validate_analysis_dict(row)
    assert set(row["models"]) == {"detect", "segment"}  # only the given models run
    check_boxes(row, photos["plain.png"])
    classes = {c["label"]: c["fraction"] for c in row["segment"]["classes"]}
    assert classes["red"] == pytest.approx(60 * 60 / (200 * 120), abs=0.02)
    listed = json.loads(run_cli("models", "list", "--task", "detect", "--json", env=env).stdout)
    assert listed == []


@pytest.mark.parametrize("args, words", [
    (["--tasks", "detect"], ["pixsight train detect", "pixsight models add"]),
    (["--model", "runs/nowhere/x"], ["neither a registered model nor a training run"]),
    (["--tasks", "segment,detect"], ["needs a model you trained"]),
])
def test_missing_trained_models_are_clear_usage_errors(env: dict[str, str], tmp_path: Path, photos: dict,
                                                        args: list[str], words: list[str]) -> None:
    proc = run_cli("analyze", str(tmp_path / "photos"), *args, "--db", str(tmp_path / "c.sqlite"), env=env)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    for w in words:
        assert w in proc.stderr


def test_add_refuses_a_folder_that_is_not_a_run(env: dict[str, str], tmp_path: Path, built: dict[str, Path]) -> None:
    proc = run_cli("models", "add", str(tmp_path), env=env)
    assert proc.returncode == 2 and "not a training run folder" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("models", "add", str(built["detect"]), "--labels", "x.txt", env=env)
    assert proc.returncode == 2 and "--labels" in proc.stderr


@pytest.mark.slow
def test_train_then_analyze_a_real_run(env: dict[str, str], tmp_path: Path) -> None:
    """The real thing: synth data, 1 epoch of `pixsight train detect`, then analyze with it, and the
    stage's detections equal the torch module's decoded through the same post-processing."""
    pytest.importorskip("torch")
    data, run = tmp_path / "synth", tmp_path / "runs" / "detect" / "real"
    synth = run_cli("data", "synth", str(data), "--task", "detect", "--n", "24", "--size", "96", env=env)
    assert synth.returncode == 0, synth.stderr
    train = run_cli("train", "detect", "--data", str(data / "train.json"), "--val", str(data / "val.json"),
                    "--out", str(run), "--epochs", "1", "--size", "96", "--batch-size", "8", "--no-pretrained", env=env)
    assert train.returncode == 0, train.stderr
    (run / "model.onnx").unlink()  # `models add` exports it again
    add = run_cli("models", "add", str(run), env=env)
    assert add.returncode == 0 and (run / "model.onnx").is_file(), add.stderr
    proc = run_cli("analyze", str(data / "images"), "--tasks", "detect", "--db", str(tmp_path / "c.sqlite"),
                   "--jsonl", "-", "--no-progress", env=env)
    assert proc.returncode == 0, proc.stderr
    rows = jsonl(proc.stdout)
    assert len(rows) == 24 and all(r["status"] == "ok" and "detect" in r for r in rows)

    import torch

    from pixsight.core.boxes import postprocess_dense
    from pixsight.core.image import load_image
    from pixsight.core.preprocess import prepare_input
    from pixsight.tasks.trained import load_trained_stage
    from pixsight.train.run import load_run

    loaded = load_run(run)
    module = loaded.build_model()
    post = loaded.postprocess
    stage = load_trained_stage(run, conf_threshold=post["score_threshold"])
    image = load_image(str(sorted((data / "images").rglob("*.jpg"))[0]))
    [dets] = stage.predict([image])
    x, lb = prepare_input(image.pixels, loaded.preprocess)
    with torch.no_grad():
        boxes, scores = module(torch.from_numpy(x.transpose(2, 0, 1)[None].copy()))
    b, s, c = postprocess_dense(boxes[0].numpy(), scores[0].numpy(), score_threshold=post["score_threshold"],
                                iou_threshold=post["iou_threshold"], max_detections=post["max_detections"])
    assert lb is not None
    np.testing.assert_allclose(dets.boxes, lb.to_image(b, image.width, image.height), atol=1e-2)
    np.testing.assert_allclose(dets.scores, s, atol=1e-4)
    assert dets.class_ids.tolist() == c.tolist()
