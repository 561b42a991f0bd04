"""The result types as one family: ``model`` on every type, ``len`` and numpy-style indexing
on the per-row types, JSON keys users rely on unchanged, older JSON still read, a frozen
``Analysis``."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable

import numpy as np
import pytest

from pixsight.core.errors import PixsightError
from pixsight.core.schema import validate_analysis_dict
from pixsight.core.types import (RESULT_TYPES, Analysis, Classification, Detections, Embedding, Faces,
                                 Segmentation, TextLines)


def _classification() -> Classification:
    return Classification(class_ids=[281, 285, 7], scores=[0.6, 0.3, 0.1], labels=["tabby", "Egyptian cat", "cock"],
                          model="efficientnet-lite0@1")


def _text_lines() -> TextLines:
    return TextLines(texts=["INVOICE 42", "total 9.99", "thank you"], scores=[0.95, 0.4, 0.8],
                     boxes=[[0, 0, 90, 10], [0, 20, 80, 30], [0, 40, 70, 50]], model="rapidocr-ppocrv6",
                     text="INVOICE 42\n\ntotal 9.99\nthank you")


def _faces() -> Faces:
    return Faces(boxes=[[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], scores=[0.9, 0.2, 0.6],
                 landmarks=np.arange(30, dtype=np.float32).reshape(3, 5, 2), embeddings=np.eye(3, 4),
                 data={"detector": ["hog-front", "mmod", "hog-left"]}, model="dlib-faces@1")


def _detections() -> Detections:
    return Detections(boxes=[[0, 0, 4, 4], [1, 1, 3, 3], [2, 2, 5, 5]], scores=[0.9, 0.5, 0.1], class_ids=[0, 1, 0],
                      labels=["circle", "square", "circle"], model="shapes@1")


ROW_TYPES: dict[str, Callable[[], Any]] = {
    "classify": _classification, "ocr": _text_lines, "faces": _faces, "detect": _detections,
}


@pytest.mark.parametrize("task", sorted(ROW_TYPES))
@pytest.mark.parametrize(("index", "rows"), [
    (0, [0]), (-1, [2]), (slice(1, None), [1, 2]), (slice(0, 0), []),
    (np.array([True, False, True]), [0, 2]), ([0, 2], [0, 2]),
])
def test_row_types_index_like_numpy_and_keep_the_model(task: str, index: Any, rows: list[int]) -> None:
    result = ROW_TYPES[task]()
    part = result[index]
    assert type(part) is type(result) and len(part) == len(rows)
    assert part.model == result.model
    assert np.array_equal(part.scores, result.scores[rows])
    if hasattr(result, "boxes"):
        assert np.array_equal(part.boxes, result.boxes[rows])


def test_row_types_filter_by_a_score_mask() -> None:
    faces = _faces()
    strong = faces[faces.scores >= 0.5]
    assert strong.scores.tolist() == pytest.approx([0.9, 0.6])
    assert np.array_equal(strong.landmarks, faces.landmarks[[0, 2]])
    assert np.array_equal(strong.embeddings, faces.embeddings[[0, 2]])
    assert strong.data == {"detector": ["hog-front", "hog-left"]}
    assert len(faces) == 3  # the original is untouched


def test_sliced_text_lines_join_their_own_text() -> None:
    lines = _text_lines()
    assert lines[lines.scores > 0.5].text == "INVOICE 42\nthank you"
    assert lines[:0].text == ""
    assert np.array_equal(lines[1:].polygons, lines.polygons[1:])


def test_a_classification_slice_is_still_sorted_best_first() -> None:
    assert _classification()[:2].labels == ["tabby", "Egyptian cat"]
    with pytest.raises(PixsightError, match="sorted"):
        _classification()[[2, 0]]  # an index array that reorders breaks the best-first rule


def test_indexing_past_the_end_is_an_index_error() -> None:
    with pytest.raises(IndexError):
        _faces()[3]


MODELS_BY_TASK = {
    "classify": _classification, "ocr": _text_lines, "faces": _faces, "detect": _detections,
    "embed": lambda: Embedding(vector=[0.6, 0.8], model="efficientnet-lite0-embed@1"),
}


@pytest.mark.parametrize("task", sorted(MODELS_BY_TASK))
def test_every_result_names_its_model_in_python_and_json(task: str) -> None:
    result = MODELS_BY_TASK[task]()
    d = json.loads(json.dumps(result.to_dict(with_vectors=True)))
    assert result.model and d["model"] == result.model
    back = RESULT_TYPES[task].from_dict(d)
    assert back.model == result.model and back.to_dict(with_vectors=True) == d
    assert result.scaled(2.0, 2.0).model == result.model


def test_segmentation_has_a_model_too() -> None:
    assert "model" in {f.name for f in dataclasses.fields(Segmentation)}


def test_json_keys_users_rely_on_are_unchanged() -> None:
    d = Analysis(path="a.jpg", sha256="ab" * 32, width=64, height=64,
                 results={"classify": _classification(), "ocr": _text_lines(), "faces": _faces()}).to_dict()
    validate_analysis_dict(d)
    assert set(d["classify"]["labels"][0]) == {"label", "class_id", "score"}
    assert d["ocr"]["text"].startswith("INVOICE 42") and set(d["ocr"]["lines"][0]) >= {"text", "score", "box"}
    assert d["ocr"]["engine"] == d["ocr"]["model"] == "rapidocr-ppocrv6"  # "engine" kept for older readers
    face = d["faces"]["faces"][0]
    assert set(face) >= {"box", "score", "landmarks"} and len(face["landmarks"]) == 5


@pytest.mark.parametrize(("task", "old"), [
    ("classify", {"labels": [{"label": "tabby", "class_id": 281, "score": 0.9}]}),
    ("ocr", {"text": "hi", "engine": "tesseract-eng", "lines": [{"text": "hi", "score": 0.9, "box": [0, 0, 5, 5]}]}),
    ("faces", {"faces": [{"box": [0, 0, 5, 5], "score": 0.9, "landmarks": []}]}),
])
def test_json_written_before_model_existed_is_read(task: str, old: dict[str, Any]) -> None:
    result = RESULT_TYPES[task].from_dict(old)
    assert len(result) == 1
    assert result.model == ("tesseract-eng" if task == "ocr" else "")


def test_text_lines_engine_is_the_former_name_of_model() -> None:
    assert TextLines.empty("tesseract-eng").engine == "tesseract-eng"


def test_faces_as_detections_of_one_class() -> None:
    det = _faces().as_detections()
    assert isinstance(det, Detections) and len(det) == 3
    assert det.labels == ["face"] * 3 and det.class_ids.tolist() == [0, 0, 0]
    assert det.model == "dlib-faces@1" and det.data == {"detector": ["hog-front", "mmod", "hog-left"]}
    assert np.array_equal(det.boxes, _faces().boxes)
    assert len(Faces.empty().as_detections()) == 0


def test_analysis_is_built_once() -> None:
    a = Analysis(path="a.jpg", width=8, height=8, results={"classify": _classification()})
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.needs_review = True  # type: ignore[misc]
    flagged = dataclasses.replace(a, needs_review=True, review_reasons=["low score"])
    assert flagged.needs_review and not a.needs_review
    assert flagged.results is a.results  # a shallow copy: results are frozen themselves
    with pytest.raises(PixsightError):
        dataclasses.replace(a, status="maybe")  # replace validates like the constructor
