"""cam_explainer: the Grad-CAM overlays the eval report adds to its worst examples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pixsight.explain import ExplainableModel, cam_explainer

PRE = {"size": [16, 16], "mean": [127] * 3, "std": [128] * 3, "resize": "stretch"}


def tiny(task: str = "classify") -> ExplainableModel:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 2)).eval()
    return ExplainableModel(net, task=task, classes=["a", "b"], preprocess=PRE)


def test_overlay_at_the_image_size_with_the_method_name() -> None:
    overlay = cam_explainer(tiny(), "classify")
    assert overlay is not None
    picture, method = overlay(np.full((30, 40, 3), 200, np.uint8))
    assert picture.shape == (30, 40, 3) and picture.dtype == np.uint8 and method == "gradcam"


def test_no_overlays_for_other_tasks_or_models_that_cannot_load() -> None:
    assert cam_explainer(tiny(), "segment") is None
    assert cam_explainer("no-such-model", "classify") is None  # quietly: the report is still written


def test_an_image_that_fails_gives_none_not_an_error() -> None:
    overlay = cam_explainer(tiny(), "classify")
    assert overlay is not None and overlay(np.zeros((5, 5), np.uint8)) is None  # not RGB: refused, logged


@pytest.mark.slow
def test_pixsight_eval_report_shows_gradcam_of_the_worst_examples(tmp_path: Path) -> None:
    """The CLI wires the explain layer into the evaluate layer's report (explainer=cam_explainer)."""
    import json

    from PIL import Image
    from safetensors.torch import save_file

    from pixsight.cli.main import main
    from pixsight.models.runs import RUN_FORMAT
    from pixsight.train.run import load_run
    from pixsight.train.tasks import get_task

    task = get_task("classify")
    arch = task.arch({})
    torch.manual_seed(0)
    run = tmp_path / "runs" / "colours"
    (run / "weights").mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in task.build_model(arch, 2, pretrained=False).state_dict().items()},
              str(run / "weights" / "best.safetensors"))
    meta = {"format": RUN_FORMAT, "name": "colours", "task": "classify", "classes": ["white", "red"], "arch": arch,
            "preprocess": {**PRE, "size": [64, 64]}, "postprocess": None}
    (run / "model.json").write_text(json.dumps(meta))
    load_run(run).onnx_path()  # exported from the (untrained) weights
    for name, colour in (("white", (250, 250, 250)), ("red", (240, 20, 20))):
        (tmp_path / "val" / name).mkdir(parents=True)
        Image.fromarray(np.full((48, 80, 3), colour, np.uint8)).save(tmp_path / "val" / name / "0.png")
    report = tmp_path / "r.html"
    assert main(["eval", str(run), "--data", str(tmp_path / "val"), "--report", str(report)]) == 0
    html = report.read_text(encoding="utf-8")
    assert "<figcaption" in html and "gradcam of red/0.png" in html
