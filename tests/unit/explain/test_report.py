"""cam_explainer: the Grad-CAM overlays the eval report adds to its worst examples."""

from __future__ import annotations

import numpy as np
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
