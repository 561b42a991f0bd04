"""Detections and Segmentation: validation, slicing, JSON round trips, scaling and the schema."""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pixsight.core.errors import ModelUnavailableError, PixsightError
from pixsight.core.schema import validate_analysis_dict
from pixsight.core.types import RESULT_TYPES, Analysis, Detections, Segmentation

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def json_cycle(d: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(d, allow_nan=False))


@st.composite
def detections(draw: st.DrawFn) -> Detections:
    n = draw(st.integers(0, 6))
    rows = []
    for _ in range(n):
        x1, x2 = sorted(draw(st.lists(st.floats(0, 5000, allow_nan=False), min_size=2, max_size=2)))
        y1, y2 = sorted(draw(st.lists(st.floats(0, 5000, allow_nan=False), min_size=2, max_size=2)))
        rows.append([x1, y1, x2, y2])
    class_ids = draw(st.lists(st.integers(0, 90), min_size=n, max_size=n))
    data = {"track": draw(st.lists(st.integers(0, 9), min_size=n, max_size=n))} if draw(st.booleans()) else {}
    return Detections(
        boxes=np.array(rows, dtype=np.float64).reshape(n, 4),
        scores=np.array(draw(st.lists(st.floats(0, 1, allow_nan=False), min_size=n, max_size=n))),
        class_ids=np.array(class_ids, dtype=np.int64),
        labels=[f"class {c}" for c in class_ids],
        model=draw(st.sampled_from(["", "shapes@0123456789ab"])),
        data=data,
    )


@st.composite
def class_maps(draw: st.DrawFn) -> tuple[np.ndarray, list[str]]:
    h, w = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    k = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**16))
    cmap = np.random.default_rng(seed).integers(0, k + 1, size=(h, w)).astype(np.uint8)
    return cmap, [f"c{i}" for i in range(k)]


@SETTINGS
@given(detections())
def test_detections_round_trip_through_json(d: Detections) -> None:
    back = Detections.from_dict(json_cycle(d.to_dict()))
    assert len(back) == len(d)
    np.testing.assert_allclose(back.boxes, d.boxes, atol=0.06)
    np.testing.assert_allclose(back.scores, d.scores, atol=1e-4)
    assert back.class_ids.tolist() == d.class_ids.tolist()
    assert back.labels == d.labels and back.model == d.model
    assert back.data == (d.data if len(d) else {})  # JSON rows carry the data; no rows, no keys


@SETTINGS
@given(class_maps())
def test_segmentation_round_trips_the_class_map_exactly(case: tuple[np.ndarray, list[str]]) -> None:
    cmap, labels = case
    seg = Segmentation.from_class_map(cmap, labels, model="seg@1")
    back = Segmentation.from_dict(json_cycle(seg.to_dict()))
    np.testing.assert_array_equal(back.class_map(), cmap)
    present = sorted(set(cmap.ravel().tolist()) - {0})
    assert back.class_ids.tolist() == [v - 1 for v in present]
    assert back.labels == [labels[v - 1] for v in present]
    for cid, frac in zip(back.class_ids, back.fractions):
        assert frac == pytest.approx((cmap == cid + 1).mean(), abs=1e-6)


@SETTINGS
@given(detections(), st.booleans())
def test_analysis_with_trained_results_matches_the_schema(d: Detections, with_seg: bool) -> None:
    results: dict[str, Any] = {"detect": d}
    if with_seg:
        results["segment"] = Segmentation.from_class_map(np.array([[0, 1], [2, 2]], np.uint8), ["a", "b"], model="s@1")
    a = Analysis(path="x.jpg", sha256="a" * 64, width=5000, height=5000, results=results,
                 models={t: "m@1" for t in results})
    data = json_cycle(a.to_dict())
    validate_analysis_dict(data)
    back = Analysis.from_dict(data)
    assert back.detections is not None and len(back.detections) == len(d)
    assert (back.segmentation is not None) == with_seg


def test_analysis_properties_are_none_when_the_task_did_not_run() -> None:
    a = Analysis(path="x.jpg")
    assert a.detections is None and a.segmentation is None
    assert RESULT_TYPES["detect"] is Detections and RESULT_TYPES["segment"] is Segmentation


def test_schema_rejects_a_detection_without_a_label() -> None:
    import jsonschema

    d = Analysis(path="x.jpg", sha256="a" * 64, width=10, height=10, results={
        "detect": Detections(boxes=[[0, 0, 1, 1]], scores=[0.5], class_ids=[0], labels=["a"])}).to_dict()
    del d["detect"]["detections"][0]["label"]
    with pytest.raises(jsonschema.ValidationError):
        validate_analysis_dict(d)


@pytest.mark.parametrize("kwargs, words", [
    ({"boxes": [[0, 0, 1]]}, "shape"),
    ({"scores": [1.5]}, "[0, 1]"),
    ({"class_ids": [-1]}, ">= 0"),
    ({"labels": []}, "labels"),
    ({"boxes": [[5, 0, 1, 1]]}, "x2 >= x1"),
    ({"boxes": [[0, 0, np.inf, 1]]}, "finite"),
    ({"data": {"score": [1]}}, "clashes"),
    ({"data": {"track": [1, 2]}}, "data['track']"),
])
def test_invalid_detections_say_what_is_wrong(kwargs: dict[str, Any], words: str) -> None:
    base = {"boxes": [[0, 0, 1, 1]], "scores": [0.5], "class_ids": [0], "labels": ["a"]}
    with pytest.raises(PixsightError, match=None) as info:
        Detections(**{**base, **kwargs})
    assert words in str(info.value)


def test_detections_slice_filter_and_count_like_numpy() -> None:
    d = Detections(boxes=[[0, 0, 2, 2], [1, 1, 3, 3], [2, 2, 4, 4]], scores=[0.9, 0.2, 0.5],
                   class_ids=[0, 1, 0], labels=["cat", "dog", "cat"], data={"track": [7, 8, 9]})
    assert d[0].labels == ["cat"] and len(d[1:]) == 2
    assert d[[2, 0]].data == {"track": [9, 7]}
    kept = d.filter(conf_threshold=0.5)
    assert kept.scores.tolist() == pytest.approx([0.9, 0.5]) and kept.labels == ["cat", "cat"]
    assert d.counts() == {"cat": 2, "dog": 1}
    assert len(Detections.empty("m@1")) == 0 and Detections.empty("m@1").to_dict() == {"model": "m@1", "detections": []}


def test_detections_scaled_maps_boxes_only() -> None:
    d = Detections(boxes=[[10, 20, 30, 40]], scores=[0.5], class_ids=[3], labels=["x"], model="m@1")
    s = d.scaled(2.0, 0.5)
    assert s.boxes.tolist() == [[20, 10, 60, 20]] and s.class_ids.tolist() == [3] and s.model == "m@1"


def test_segmentation_scaled_resizes_the_map_nearest() -> None:
    cmap = np.zeros((10, 20), np.uint8)
    cmap[:, 10:] = 2
    seg = Segmentation.from_class_map(cmap, ["a", "b"]).scaled(3.0, 3.0)
    assert (seg.height, seg.width) == (30, 60)
    full = seg.class_map()
    assert set(np.unique(full[:, :30]).tolist()) == {0} and set(np.unique(full[:, 30:]).tolist()) == {2}
    assert seg.coverage() == {"b": pytest.approx(0.5)}


def test_segmentation_empty_and_invalid_maps() -> None:
    empty = Segmentation.empty(4, 5, model="m@1")
    assert len(empty) == 0 and empty.class_map().shape == (4, 5) and not empty.class_map().any()
    with pytest.raises(PixsightError, match="no label"):
        Segmentation.from_class_map(np.array([[3]]), ["a"])
    with pytest.raises(PixsightError, match="2-D"):
        Segmentation.from_class_map(np.zeros((2, 2, 3), np.uint8), ["a"])
    with pytest.raises(PixsightError, match="size"):
        Segmentation(height=4, width=4, class_ids=[0], labels=["a"], rles=[{"size": [2, 2], "counts": "04"}])


def test_many_classes_use_a_uint16_map() -> None:
    cmap = np.array([[0, 300]], np.uint16)
    seg = Segmentation.from_class_map(cmap, [f"c{i}" for i in range(300)])
    assert seg.class_map().dtype == np.uint16 and seg.class_map().tolist() == [[0, 300]]


def test_missing_pycocotools_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    monkeypatch.setitem(sys.modules, "pycocotools.mask", None)
    with pytest.raises(ModelUnavailableError, match=r"pip install 'pixsight\[data\]'"):
        Segmentation.from_class_map(np.array([[0, 1]]), ["a"])
