"""Result types: validation, JSON round trips, geometry scaling and the published schema."""

from __future__ import annotations

import json
import math
from typing import Any

import jsonschema
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pixsight.core.errors import PixsightError
from pixsight.core.schema import validate_analysis_dict
from pixsight.core.types import RESULT_TYPES, Analysis, Classification, Embedding, Faces, TextLines

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def json_cycle(d: dict[str, Any]) -> dict[str, Any]:
    """What a reader of pixsight's JSON output sees (strict JSON: NaN/Infinity refused)."""
    return json.loads(json.dumps(d, allow_nan=False))


# -- strategies ------------------------------------------------------------------------------
scores_st = st.floats(0.0, 1.0, allow_nan=False)
coord_st = st.floats(0.0, 20000.0, allow_nan=False)
text_st = st.text(max_size=20)


@st.composite
def classifications(draw: st.DrawFn) -> Classification:
    n = draw(st.integers(0, 6))
    scores = sorted(draw(st.lists(scores_st, min_size=n, max_size=n)), reverse=True)
    return Classification(
        class_ids=np.array(draw(st.lists(st.integers(0, 21842), min_size=n, max_size=n)), dtype=np.int64),
        scores=np.array(scores),
        labels=draw(st.lists(text_st, min_size=n, max_size=n)),
        model=draw(st.sampled_from(["", "efficientnet-lite0@1"])),
    )


def _boxes(draw: st.DrawFn, n: int) -> np.ndarray:
    rows = []
    for _ in range(n):
        x1, x2 = sorted(draw(st.lists(coord_st, min_size=2, max_size=2)))
        y1, y2 = sorted(draw(st.lists(coord_st, min_size=2, max_size=2)))
        rows.append([x1, y1, x2, y2])
    return np.array(rows, dtype=np.float64).reshape(n, 4)


@st.composite
def text_lines(draw: st.DrawFn) -> TextLines:
    n = draw(st.integers(0, 5))
    boxes = _boxes(draw, n)
    polygons = None
    if draw(st.booleans()):
        polygons = np.array(draw(st.lists(st.lists(st.tuples(coord_st, coord_st), min_size=4, max_size=4),
                                          min_size=n, max_size=n)), dtype=np.float64).reshape(n, 4, 2)
    return TextLines(
        texts=draw(st.lists(text_st, min_size=n, max_size=n)),
        scores=np.array(draw(st.lists(scores_st, min_size=n, max_size=n))),
        boxes=boxes,
        polygons=polygons,
        model=draw(st.sampled_from(["", "rapidocr-ppocrv6", "tesseract-eng"])),
        text=draw(st.sampled_from(["", "given full text"])) if n else "",
    )


@st.composite
def faces(draw: st.DrawFn, with_embeddings: bool | None = None) -> Faces:
    n = draw(st.integers(0, 4))
    k = draw(st.sampled_from([0, 5]))
    landmarks = None
    if k or draw(st.booleans()):
        landmarks = np.array(draw(st.lists(st.tuples(coord_st, coord_st), min_size=n * k, max_size=n * k)),
                             dtype=np.float64).reshape(n, k, 2)
    if with_embeddings is None:
        with_embeddings = draw(st.booleans())
    embeddings = None
    if with_embeddings:
        dim = draw(st.integers(1, 8))
        embeddings = np.array(draw(st.lists(st.floats(-1, 1, width=32), min_size=n * dim, max_size=n * dim)),
                              dtype=np.float32).reshape(n, dim)
    keys = draw(st.lists(st.sampled_from(["detector", "identity", "track_id"]), unique=True, max_size=2))
    data: dict[str, Any] = {}
    for key in keys:
        values = st.integers(-1000, 1000) if key == "track_id" else text_st
        data[key] = draw(st.lists(values, min_size=n, max_size=n))
    return Faces(boxes=_boxes(draw, n), scores=np.array(draw(st.lists(scores_st, min_size=n, max_size=n))),
                 landmarks=landmarks, embeddings=embeddings, data=data,
                 model=draw(st.sampled_from(["", "dlib-faces@1"])))


@st.composite
def embeddings(draw: st.DrawFn) -> Embedding:
    dim = draw(st.integers(1, 64))
    v = np.array(draw(st.lists(st.floats(-1, 1, width=32), min_size=dim, max_size=dim)), dtype=np.float32)
    return Embedding(vector=v, model=draw(st.sampled_from(["efficientnet-lite0-embed@1", "clip@2"])))


@st.composite
def analyses(draw: st.DrawFn) -> Analysis:
    if draw(st.booleans()):
        return Analysis(
            path=draw(st.text(min_size=1, max_size=30)),
            sha256=draw(st.none() | st.text("0123456789abcdef", min_size=64, max_size=64)),
            status="error",
            error={"type": draw(st.sampled_from(["ImageDecodeError", "ImageTooLargeError"])), "message": draw(text_st)},
        )
    results: dict[str, Any] = {}
    if draw(st.booleans()):
        results["classify"] = draw(classifications())
    if draw(st.booleans()):
        results["ocr"] = draw(text_lines())
    if draw(st.booleans()):
        results["faces"] = draw(faces())
    if draw(st.booleans()):
        results["embed"] = draw(embeddings())
    reasons = draw(st.lists(text_st, max_size=3))
    return Analysis(
        path=draw(st.text(min_size=1, max_size=30)),
        sha256=draw(st.text("0123456789abcdef", min_size=64, max_size=64)),
        width=draw(st.integers(1, 20000)),
        height=draw(st.integers(1, 20000)),
        format=draw(st.sampled_from(["JPEG", "PNG", None])),
        bytes=draw(st.integers(0, 10**9)),
        needs_review=bool(reasons),
        review_reasons=reasons,
        timings_ms={t: draw(st.floats(0, 1e5)) for t in results},
        results=results,
        task_errors=draw(st.sampled_from([{}, {"ocr": {"type": "ModelUnavailableError", "message": "no engine"}}])),
        models={t: f"{t}-model@1" for t in results},
    )


# -- round trips -----------------------------------------------------------------------------
@SETTINGS
@given(classifications())
def test_classification_round_trip(c: Classification) -> None:
    d = json_cycle(c.to_dict())
    back = Classification.from_dict(d)
    assert back.to_dict() == d
    assert back.labels == c.labels
    assert np.array_equal(back.class_ids, c.class_ids)
    assert np.allclose(back.scores, c.scores, atol=1e-4)
    assert back.top_label == c.top_label


@SETTINGS
@given(text_lines())
def test_text_lines_round_trip(t: TextLines) -> None:
    d = json_cycle(t.to_dict())
    back = TextLines.from_dict(d)
    assert back.to_dict() == d
    assert back.texts == t.texts and back.text == t.text and back.model == t.model
    assert d["engine"] == d["model"] == t.model  # "engine" stays in the JSON for older readers
    assert np.allclose(back.boxes, t.boxes, atol=0.051)
    assert np.allclose(back.polygons, t.polygons, atol=0.051)
    assert np.allclose(back.scores, t.scores, atol=1e-4)


@SETTINGS
@given(faces())
def test_faces_round_trip_with_vectors_and_data(f: Faces) -> None:
    d = json_cycle(f.to_dict(with_vectors=True))
    back = Faces.from_dict(d)
    again = back.to_dict(with_vectors=True)
    assert again["faces"] == d["faces"]
    assert len(back) == len(f)
    if len(f):
        assert again == d
        assert np.allclose(back.boxes, f.boxes, atol=0.051)
        assert np.allclose(back.scores, f.scores, atol=1e-4)
        assert {k: list(v) for k, v in back.data.items()} == {k: list(v) for k, v in f.data.items()}
        if f.embeddings is not None:
            assert back.embeddings is not None
            assert np.allclose(back.embeddings, f.embeddings, atol=1e-6)
        else:
            assert back.embeddings is None


@SETTINGS
@given(faces(with_embeddings=True))
def test_faces_without_vectors_export_the_dimension_only(f: Faces) -> None:
    d = f.to_dict(with_vectors=False)
    assert all("embedding" not in face for face in d["faces"])
    assert d["embedding_dim"] == f.embeddings.shape[1]
    assert Faces.from_dict(d).embeddings is None


@SETTINGS
@given(embeddings())
def test_embedding_round_trip(e: Embedding) -> None:
    d = json_cycle(e.to_dict(with_vectors=True))
    back = Embedding.from_dict(d)
    assert back.model == e.model and back.dim == e.dim
    assert np.allclose(back.vector, e.vector, atol=1e-6)
    assert back.to_dict(with_vectors=True) == d
    assert e.to_dict() == {"dim": e.dim, "model": e.model}


def test_embedding_without_vector_cannot_be_rebuilt() -> None:
    with pytest.raises(PixsightError, match="vector"):
        Embedding.from_dict({"dim": 3, "model": "m"})


@SETTINGS
@given(analyses())
def test_analysis_round_trip_and_schema(a: Analysis) -> None:
    d = json_cycle(a.to_dict(with_vectors=True))
    validate_analysis_dict(d)
    validate_analysis_dict(json_cycle(a.to_dict(with_vectors=False)))
    back = Analysis.from_dict(d)
    again = back.to_dict(with_vectors=True)
    if "faces" in d and not d["faces"]["faces"]:
        d["faces"].pop("embedding_dim", None)  # no face, no vector to tell the dimension
    assert again == d
    assert set(back.results) == set(a.results)
    assert back.status == a.status and back.error == a.error and back.path == a.path


def test_analysis_without_vectors_drops_embedding_on_reload() -> None:
    a = Analysis(path="a.jpg", sha256="0" * 64, width=2, height=2,
                 results={"embed": Embedding(vector=[1.0, 0.0], model="m"),
                          "classify": Classification(class_ids=[1], scores=[0.5], labels=["x"])})
    back = Analysis.from_dict(json_cycle(a.to_dict()))
    assert set(back.results) == {"classify"}


# -- schema -------------------------------------------------------------------------------------
def _all_tasks() -> dict[str, Any]:
    return {
        "classify": Classification(class_ids=[281, 285], scores=[0.7, 0.2], labels=["tabby", "Egyptian cat"]),
        "ocr": TextLines(texts=["HELLO", "world"], scores=[0.99, 0.8], boxes=[[10, 10, 90, 30], [10, 40, 80, 60]],
                         model="rapidocr-ppocrv6"),
        "faces": Faces(boxes=[[5, 5, 50, 60]], scores=[0.93], landmarks=np.full((1, 5, 2), 20.0),
                       embeddings=np.full((1, 128), 0.1), data={"detector": ["hog"]}),
        "embed": Embedding(vector=np.full(16, 0.25), model="efficientnet-lite0-embed@1"),
    }


@pytest.mark.parametrize("with_vectors", [False, True])
def test_ok_analysis_with_all_four_tasks_matches_schema(with_vectors: bool) -> None:
    a = Analysis(path="photos/cat.jpg", sha256="ab" * 32, width=640, height=480, format="JPEG", bytes=12345,
                 needs_review=True, review_reasons=["classify: top-1 score 0.70 below 0.80 for tabby"],
                 timings_ms={"decode": 3.2, "classify": 12.0}, results=_all_tasks(),
                 task_errors={}, models={t: f"{t}@1" for t in ("classify", "ocr", "faces", "embed")})
    d = json_cycle(a.to_dict(with_vectors=with_vectors))
    validate_analysis_dict(d)
    assert {"classify", "ocr", "faces", "embed"} <= set(d)
    assert ("vector" in d["embed"]) is with_vectors
    assert ("embedding" in d["faces"]["faces"][0]) is with_vectors
    assert d["faces"]["embedding_dim"] == 128
    assert d["faces"]["faces"][0]["detector"] == "hog"


def test_ok_analysis_with_task_errors_matches_schema() -> None:
    a = Analysis(path="a.png", sha256="cd" * 32, width=10, height=10,
                 results={"classify": _all_tasks()["classify"]},
                 task_errors={"ocr": {"type": "ModelUnavailableError", "message": "no OCR engine installed"}})
    d = json_cycle(a.to_dict())
    validate_analysis_dict(d)
    assert d["task_errors"]["ocr"]["type"] == "ModelUnavailableError"


@pytest.mark.parametrize("sha256", [None, "ef" * 32])
def test_error_analysis_matches_schema(sha256: str | None) -> None:
    a = Analysis(path="bad.jpg", sha256=sha256, status="error",
                 error={"type": "ImageDecodeError", "message": "bad.jpg: file is truncated"})
    d = json_cycle(a.to_dict())
    validate_analysis_dict(d)
    assert d["status"] == "error" and d["width"] is None
    assert not any(task in d for task in RESULT_TYPES)


def test_empty_results_match_schema() -> None:
    a = Analysis(path="blank.png", sha256="01" * 32, width=1, height=1,
                 results={"classify": Classification(class_ids=[], scores=[], labels=[]),
                          "ocr": TextLines.empty("tesseract"), "faces": Faces.empty()})
    d = json_cycle(a.to_dict())
    validate_analysis_dict(d)
    assert d["ocr"] == {"text": "", "model": "tesseract", "engine": "tesseract", "lines": []}
    assert d["faces"] == {"model": "", "faces": []}
    assert d["classify"] == {"model": "", "labels": []}


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d["classify"]["labels"][0].__setitem__("score", 1.5),
        lambda d: d["ocr"]["lines"][0].__setitem__("box", [1, 2, 3]),
        lambda d: d.__setitem__("sha256", "XYZ"),
        lambda d: d.__setitem__("status", "maybe"),
        lambda d: d.pop("needs_review"),
        lambda d: d.__setitem__("width", 0),
        lambda d: d["faces"]["faces"][0].pop("landmarks"),
    ],
    ids=["score>1", "short-box", "bad-sha", "bad-status", "missing-key", "zero-width", "face-no-landmarks"],
)
def test_schema_rejects_broken_analyses(breakage: Any) -> None:
    a = Analysis(path="a.jpg", sha256="ab" * 32, width=640, height=480, results=_all_tasks())
    d = json_cycle(a.to_dict())
    validate_analysis_dict(d)
    breakage(d)
    with pytest.raises(jsonschema.ValidationError):
        validate_analysis_dict(d)


# -- validation ---------------------------------------------------------------------------------
BAD_RESULTS = {
    "classify-len-scores": lambda: Classification(class_ids=[1, 2], scores=[0.5], labels=["a", "b"]),
    "classify-len-labels": lambda: Classification(class_ids=[1, 2], scores=[0.5, 0.4], labels=["a"]),
    "classify-score>1": lambda: Classification(class_ids=[1], scores=[1.2], labels=["a"]),
    "classify-score<0": lambda: Classification(class_ids=[1], scores=[-0.1], labels=["a"]),
    "classify-nan": lambda: Classification(class_ids=[1], scores=[float("nan")], labels=["a"]),
    "classify-inf": lambda: Classification(class_ids=[1], scores=[math.inf], labels=["a"]),
    "classify-unsorted": lambda: Classification(class_ids=[1, 2], scores=[0.2, 0.7], labels=["a", "b"]),
    "classify-2d": lambda: Classification(class_ids=[[1]], scores=[[0.5]], labels=["a"]),
    "ocr-len-scores": lambda: TextLines(texts=["a", "b"], scores=[0.5], boxes=[[0, 0, 1, 1], [0, 0, 1, 1]]),
    "ocr-len-boxes": lambda: TextLines(texts=["a", "b"], scores=[0.5, 0.5], boxes=[[0, 0, 1, 1]]),
    "ocr-box-shape": lambda: TextLines(texts=["a"], scores=[0.5], boxes=[[0, 0, 1]]),
    "ocr-polygon-shape": lambda: TextLines(texts=["a"], scores=[0.5], boxes=[[0, 0, 1, 1]], polygons=[[[0, 0], [1, 1]]]),
    "ocr-polygon-len": lambda: TextLines(texts=["a"], scores=[0.5], boxes=[[0, 0, 1, 1]], polygons=np.zeros((2, 4, 2))),
    "ocr-nan": lambda: TextLines(texts=["a"], scores=[float("nan")], boxes=[[0, 0, 1, 1]]),
    "ocr-score>1": lambda: TextLines(texts=["a"], scores=[2.0], boxes=[[0, 0, 1, 1]]),
    "faces-len-scores": lambda: Faces(boxes=[[0, 0, 1, 1]], scores=[0.5, 0.4]),
    "faces-box-shape": lambda: Faces(boxes=[[0, 0, 1, 1, 1]], scores=[0.5]),
    "faces-nan": lambda: Faces(boxes=[[0, 0, 1, 1]], scores=[float("nan")]),
    "faces-score<0": lambda: Faces(boxes=[[0, 0, 1, 1]], scores=[-1.0]),
    "faces-landmarks-shape": lambda: Faces(boxes=[[0, 0, 1, 1]], scores=[0.5], landmarks=np.zeros((1, 5, 3))),
    "faces-landmarks-len": lambda: Faces(boxes=[[0, 0, 1, 1]], scores=[0.5], landmarks=np.zeros((2, 5, 2))),
    "faces-embeddings-len": lambda: Faces(boxes=[[0, 0, 1, 1]], scores=[0.5], embeddings=np.zeros((2, 8))),
    "faces-data-len": lambda: Faces(boxes=[[0, 0, 1, 1]], scores=[0.5], data={"identity": ["a", "b"]}),
    "faces-data-reserved-key": lambda: Faces(boxes=[[0, 0, 1, 1]], scores=[0.5], data={"score": ["high"]}),
    "embed-empty": lambda: Embedding(vector=[], model="m"),
    "embed-nan": lambda: Embedding(vector=[0.1, float("nan")], model="m"),
    "embed-inf": lambda: Embedding(vector=[math.inf], model="m"),
    "analysis-bad-status": lambda: Analysis(path="a", status="done"),
    "analysis-error-without-error": lambda: Analysis(path="a", status="error"),
}


@pytest.mark.parametrize("name", sorted(BAD_RESULTS))
def test_invalid_results_are_refused_with_a_pixsight_error(name: str) -> None:
    with pytest.raises(PixsightError) as info:
        BAD_RESULTS[name]()
    assert isinstance(info.value, ValueError)  # callers catching ValueError still work
    assert str(info.value)


def test_validation_messages_say_what_is_wrong() -> None:
    with pytest.raises(PixsightError, match="sorted"):
        BAD_RESULTS["classify-unsorted"]()
    with pytest.raises(PixsightError, match=r"\[0, 1\]"):
        BAD_RESULTS["classify-score>1"]()
    with pytest.raises(PixsightError, match="scores has 1 rows, expected 2"):
        BAD_RESULTS["classify-len-scores"]()


def test_equal_scores_and_boundary_scores_are_valid() -> None:
    c = Classification(class_ids=[1, 2, 3], scores=[1.0, 0.5, 0.5], labels=["a", "b", "c"])
    assert c.top_score == 1.0 and c.top_label == "a"
    assert len(Faces(boxes=[[0, 0, 1, 1]], scores=[0.0])) == 1


# -- geometry -----------------------------------------------------------------------------------
def test_text_lines_scaled_scales_boxes_and_polygons_only() -> None:
    t = TextLines(texts=["a"], scores=[0.5], boxes=[[10, 20, 30, 40]], model="e", text="a")
    s = t.scaled(2.0, 0.5)
    assert s.boxes.tolist() == [[20, 10, 60, 20]]
    assert s.polygons.tolist() == [[[20, 10], [60, 10], [60, 20], [20, 20]]]
    assert s.texts == ["a"] and s.model == "e" and s.text == "a"
    assert np.array_equal(s.scores, t.scores)
    assert t.boxes.tolist() == [[10, 20, 30, 40]]  # original untouched


def test_faces_scaled_scales_boxes_and_landmarks_but_not_embeddings() -> None:
    f = Faces(boxes=[[10, 20, 30, 40]], scores=[0.9], landmarks=[[[15, 25], [20, 30]]],
              embeddings=[[0.5, 0.5]], data={"detector": ["hog"]})
    s = f.scaled(3.0, 2.0)
    assert s.boxes.tolist() == [[30, 40, 90, 80]]
    assert s.landmarks.tolist() == [[[45, 50], [60, 60]]]
    assert s.embeddings.tolist() == [[0.5, 0.5]]
    assert s.data == {"detector": ["hog"]} and s.data is not f.data
    assert f.boxes.tolist() == [[10, 20, 30, 40]] and f.landmarks.tolist() == [[[15, 25], [20, 30]]]
    assert Faces(boxes=[[0, 0, 2, 2]], scores=[0.5]).scaled(2, 2).landmarks is None


def test_scaled_by_the_inverse_restores_geometry() -> None:
    t = TextLines(texts=["a", "b"], scores=[0.5, 0.6], boxes=[[1, 2, 3, 4], [5, 6, 7, 8]])
    back = t.scaled(7.8125, 7.8125).scaled(1 / 7.8125, 1 / 7.8125)
    assert np.allclose(back.boxes, t.boxes) and np.allclose(back.polygons, t.polygons)


def test_classification_and_embedding_do_not_change_when_scaled() -> None:
    c = Classification(class_ids=[1], scores=[0.5], labels=["a"])
    e = Embedding(vector=[1.0], model="m")
    assert c.scaled(2, 3) is c and e.scaled(2, 3) is e


# -- empty results and construction -----------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: TextLines.empty("tesseract"), {"text": "", "model": "tesseract", "engine": "tesseract", "lines": []}),
        (lambda: Faces.empty(), {"model": "", "faces": []}),
        (lambda: Classification(class_ids=[], scores=[], labels=[]), {"model": "", "labels": []}),
        (lambda: TextLines.from_dict({}), {"text": "", "model": "", "engine": "", "lines": []}),
        (lambda: Faces.from_dict({}), {"model": "", "faces": []}),
        (lambda: Classification.from_dict({}), {"model": "", "labels": []}),
    ],
)
def test_empty_results(make: Any, expected: dict[str, Any]) -> None:
    r = make()
    assert len(r) == 0
    assert r.to_dict(with_vectors=True) == expected
    assert r.scaled(2, 2).to_dict() == expected


def test_empty_classification_has_no_top_label() -> None:
    c = Classification(class_ids=[], scores=[], labels=[])
    assert c.top_label is None and c.top_score == 0.0


def test_text_is_joined_from_lines_unless_given() -> None:
    boxes = [[0, 0, 1, 1], [0, 2, 1, 3]]
    assert TextLines(texts=["a", "b"], scores=[0.5, 0.5], boxes=boxes).text == "a\nb"
    assert TextLines(texts=["a", "b"], scores=[0.5, 0.5], boxes=boxes, text="a b").text == "a b"


def test_default_polygons_are_box_corners_clockwise() -> None:
    t = TextLines(texts=["a"], scores=[0.5], boxes=[[1, 2, 3, 4]])
    assert t.polygons.shape == (1, 4, 2)
    assert t.polygons.tolist() == [[[1, 2], [3, 2], [3, 4], [1, 4]]]


def test_constructors_do_not_mutate_inputs() -> None:
    boxes = np.array([[1.5, 2.5, 3.5, 4.5]])
    scores = np.array([0.5])
    lm = np.zeros((1, 5, 2))
    Faces(boxes=boxes, scores=scores, landmarks=lm).scaled(2, 2)
    TextLines(texts=["a"], scores=scores, boxes=boxes).scaled(2, 2)
    assert boxes.tolist() == [[1.5, 2.5, 3.5, 4.5]] and boxes.dtype == np.float64
    assert scores.tolist() == [0.5] and not lm.any()


def test_faces_data_values_from_numpy_become_plain_json() -> None:
    f = Faces(boxes=[[0, 0, 1, 1], [1, 1, 2, 2]], scores=[0.5, 0.4],
              data={"identity": np.array(["ann", "bob"]), "track_id": np.array([3, 4])})
    d = json_cycle(f.to_dict())
    assert [x["identity"] for x in d["faces"]] == ["ann", "bob"]
    assert [x["track_id"] for x in d["faces"]] == [3, 4]


def test_result_types_registry_matches_task_names() -> None:
    assert {name: t.task for name, t in RESULT_TYPES.items()} == {n: n for n in RESULT_TYPES}
