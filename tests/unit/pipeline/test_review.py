"""Review thresholds for trained detectors: configuration decides what a human sees."""

from __future__ import annotations

import numpy as np
import pytest

from pixsight.core.config import ReviewThresholds
from pixsight.core.types import Classification, Detections
from pixsight.pipeline.review import review_reasons


def _dets(scores: list[float], labels: list[str]) -> Detections:
    boxes = [[i, i, i + 4, i + 4] for i in range(len(scores))]
    return Detections(boxes=boxes, scores=scores, class_ids=[0] * len(scores), labels=labels)


@pytest.mark.parametrize(
    ("thresholds", "expected"),
    [
        (ReviewThresholds(), ["detect: 2 of 3 objects below their review threshold (2 cat)"]),
        (ReviewThresholds(detect_conf_threshold=0.3), []),
        (ReviewThresholds(detect_per_class={"cat": 0.4}), ["detect: 1 of 3 objects below their review threshold (1 cat)"]),
        (ReviewThresholds(detect_per_class={"dog": 0.95}, detect_conf_threshold=0.3),
         ["detect: 1 of 3 objects below their review threshold (1 dog)"]),
    ],
)
def test_detections_below_their_threshold_need_review(thresholds: ReviewThresholds, expected: list[str]) -> None:
    d = _dets([0.35, 0.9, 0.45], ["cat", "dog", "cat"])
    assert review_reasons({"detect": d}, thresholds) == expected


def test_no_detections_is_not_doubtful_and_inputs_are_not_mutated() -> None:
    empty = Detections.empty()
    cls = Classification(class_ids=np.array([0]), scores=np.array([0.9]), labels=["x"])
    results = {"detect": empty, "classify": cls}
    assert review_reasons(results, ReviewThresholds()) == []
    assert results == {"detect": empty, "classify": cls}
