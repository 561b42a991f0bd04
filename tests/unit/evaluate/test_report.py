"""The HTML eval report: Grad-CAM overlays come only through the explainer it is given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixsight.data.dataset import Dataset, ImageRecord
from pixsight.evaluate.evaluator import EvalResult
from pixsight.evaluate.report import write_eval_report


@pytest.fixture
def result(tmp_path: Path) -> EvalResult:
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(tmp_path / "0.png")
    ds = Dataset(tmp_path, ["a", "b"], [ImageRecord("0.png", 30, 20, label=1)], "classify")
    worst = [{"index": 0, "file_name": "0.png", "why": "true b, predicted a"}]
    return EvalResult("classify", {"accuracy": 0.0}, "m", str(tmp_path), 1, worst=worst, dataset=ds,
                      items=[np.array([0.9, 0.1])], model="runs/classify/m")


def test_overlays_come_from_the_explainer(result: EvalResult, tmp_path: Path) -> None:
    calls: list[tuple[str, str]] = []

    def explainer(model: str, task: str):
        calls.append((model, task))
        return lambda pixels: (np.zeros((*pixels.shape[:2], 3), np.uint8), "gradcam")

    html = write_eval_report(result, tmp_path / "r.html", explainer=explainer).read_text(encoding="utf-8")
    assert calls == [("runs/classify/m", "classify")]
    assert "<figcaption" in html and "gradcam of 0.png" in html


@pytest.mark.parametrize("explainer", [None, lambda model, task: None, lambda model, task: lambda pixels: None])
def test_no_explainer_or_no_overlay_still_writes_the_report(result: EvalResult, tmp_path: Path, explainer) -> None:
    html = write_eval_report(result, tmp_path / "r.html", explainer=explainer).read_text(encoding="utf-8")
    assert "0.png" in html and "<figcaption" not in html


def test_predictions_files_are_never_explained(result: EvalResult, tmp_path: Path) -> None:
    result.model = None
    write_eval_report(result, tmp_path / "r.html", explainer=lambda model, task: pytest.fail("called"))
