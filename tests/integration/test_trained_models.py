"""Trained runs through the real analyzer: catalog keys, EXIF orientation, exports, pictures."""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixsight.catalog.export import export_catalog
from pixsight.catalog.store import Catalog
from pixsight.core.config import AnalyzeConfig
from pixsight.core.types import Analysis
from pixsight.pipeline.analyzer import Analyzer
from pixsight.tasks import config_with_models
from pixsight.viz.annotate import draw_analysis
from pixsight.viz.report import write_report
from tests.unit.tasks.runs import make_run, squares_image


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {task: make_run(root, task) for task in ("detect", "segment")}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PIXSIGHT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def rotated_jpeg(path: Path) -> dict[str, list[int]]:
    """A JPEG stored sideways with EXIF orientation 6: it *displays* as the 200x120 squares image."""
    img, truth = squares_image(200, 120)
    stored = Image.fromarray(np.rot90(img, 1).copy())  # rotate CCW; orientation 6 rotates back CW
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path, "JPEG", quality=95, subsampling=0, exif=exif.tobytes())
    return truth


def test_analyzer_runs_trained_models_on_the_oriented_image(built: dict[str, Path], home: Path, tmp_path: Path) -> None:
    photo = tmp_path / "photos" / "sideways.jpg"
    photo.parent.mkdir()
    truth = rotated_jpeg(photo)
    config = config_with_models(AnalyzeConfig(parallel_stages=False), [str(built["detect"]), str(built["segment"])])
    got: list[Analysis] = []
    with Catalog(tmp_path / "c.sqlite") as catalog, Analyzer(config) as analyzer:
        summary = analyzer.run([str(photo)], catalog=catalog, on_result=lambda a, _: got.append(a))
        assert summary.ok == 1 and summary.reused == 0
        [a] = got
        assert (a.width, a.height) == (200, 120)
        dets = a.detections
        assert dets is not None and sorted(dets.labels) == ["red", "white"]
        for box, label in zip(dets.boxes, dets.labels):
            np.testing.assert_allclose(box, truth[label], atol=200 / 64 + 2)
        seg = a.segmentation
        assert seg is not None and (seg.height, seg.width) == (120, 200)
        assert seg.class_map()[60, 45] == 1 and seg.class_map()[70, 150] == 2  # white, red centres
        # stored and reused with the same model keys
        again = analyzer.run([str(photo)], catalog=catalog)
        assert again.reused == 1
        stored = catalog.load_analysis(a.sha256)
        assert stored is not None and stored.detections is not None and len(stored.detections) == 2
        assert stored.models["detect"] == dets.model
        np.testing.assert_array_equal(stored.segmentation.class_map(), seg.class_map())


def test_new_weights_mean_a_new_version_and_a_fresh_analysis(built: dict[str, Path], home: Path, tmp_path: Path) -> None:
    run = tmp_path / "runs" / "detect" / "x"
    shutil.copytree(built["detect"], run)
    img, _ = squares_image()
    Image.fromarray(img).save(tmp_path / "a.png")
    config = config_with_models(AnalyzeConfig(parallel_stages=False), [str(run)])
    with Catalog(tmp_path / "c.sqlite") as catalog:
        with Analyzer(config) as analyzer:
            old_key = analyzer.models["detect"]
            analyzer.run([str(tmp_path / "a.png")], catalog=catalog)
        onnx = run / "model.onnx"
        shutil.copy(make_run(tmp_path / "other", "detect", size=(96, 96)) / "model.onnx", onnx)  # "retrained"
        meta = (run / "model.json").read_text().replace("[64, 64]", "[96, 96]")
        (run / "model.json").write_text(meta)
        with Analyzer(config) as analyzer:
            assert analyzer.models["detect"] != old_key
            summary = analyzer.run([str(tmp_path / "a.png")], catalog=catalog)
        assert summary.reused == 0


def test_csv_export_report_and_overlay_show_trained_results(built: dict[str, Path], home: Path, tmp_path: Path) -> None:
    img, _ = squares_image()
    Image.fromarray(img).save(tmp_path / "a.png")
    config = config_with_models(AnalyzeConfig(parallel_stages=False), [str(built["detect"]), str(built["segment"])])
    analyses: list[Analysis] = []
    with Catalog(tmp_path / "c.sqlite") as catalog:
        with Analyzer(config) as analyzer:
            analyzer.run([str(tmp_path / "a.png")], catalog=catalog, on_result=lambda a, _: analyses.append(a))
        buf = io.StringIO()
        export_catalog(catalog, buf, format="csv")
    [row] = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert row["objects"] == "2" and set(row["object_labels"].split("|")) == {"white:1", "red:1"}
    assert row["segments"].startswith("red:0.1")
    overlay = np.asarray(draw_analysis(img, analyses[0]))
    assert overlay.shape == img.shape and not np.array_equal(overlay, img)
    # the mask tints the red square's inside; the background outside any box stays as it was
    assert not np.array_equal(overlay[70, 150], img[70, 150])
    assert np.array_equal(overlay[115, 100], img[115, 100])
    report = write_report([(analyses[0], img)], tmp_path / "r.html")
    html = report.read_text(encoding="utf-8")
    assert "Objects detected" in html and "red ×1" in html and "segments: red" in html
    assert os.path.getsize(report) > 1000
