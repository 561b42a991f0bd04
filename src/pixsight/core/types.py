"""Result types: one per task, plus :class:`Analysis` for one image.

Every type is a dataclass over numpy arrays, validated on construction, with
``to_dict()`` / ``from_dict()`` for JSON. Boxes are absolute ``xyxy`` floats in the
coordinates of the *oriented* image; scores are floats in [0, 1]. :class:`Detections` and
:class:`Segmentation` (trained models) live in :mod:`pixsight.core.spatial`, re-exported here.

>>> c = Classification(class_ids=np.array([281]), scores=np.array([0.9]), labels=["tabby"])
>>> c.to_dict()
{'labels': [{'label': 'tabby', 'class_id': 281, 'score': 0.9}]}
>>> Classification.from_dict(c.to_dict()).top_label
'tabby'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ._results import ResultValidationError, _as_array, _check_len, _check_scores, _r
from .spatial import Detections, Segmentation

__all__ = [
    "Classification",
    "TextLines",
    "Faces",
    "Embedding",
    "Detections",
    "Segmentation",
    "Analysis",
    "ResultValidationError",
    "TaskResult",
    "RESULT_TYPES",
]


@dataclass(frozen=True)
class Classification:
    """Top-k labels, best first."""

    task: ClassVar[str] = "classify"
    class_ids: np.ndarray
    scores: np.ndarray
    labels: list[str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_ids", _as_array(self.class_ids, np.int64, (), "class_ids"))
        object.__setattr__(self, "scores", _as_array(self.scores, np.float32, (), "scores"))
        object.__setattr__(self, "labels", list(self.labels))
        _check_len(len(self.class_ids), "Classification", self.scores, "scores")
        _check_len(len(self.class_ids), "Classification", self.labels, "labels")
        _check_scores(self.scores, "Classification")
        if len(self.scores) > 1 and np.any(np.diff(self.scores) > 1e-6):
            raise ResultValidationError("Classification: scores must be sorted best first")

    def __len__(self) -> int:
        return len(self.class_ids)

    @property
    def top_label(self) -> str | None:
        return self.labels[0] if self.labels else None

    @property
    def top_score(self) -> float:
        return float(self.scores[0]) if len(self.scores) else 0.0

    def scaled(self, sx: float, sy: float) -> Classification:
        return self

    def to_dict(self, *, with_vectors: bool = False) -> dict[str, Any]:
        return {
            "labels": [
                {"label": lab, "class_id": int(cid), "score": _r(s)}
                for lab, cid, s in zip(self.labels, self.class_ids, self.scores)
            ]
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Classification:
        items = d.get("labels", [])
        return cls(
            class_ids=np.array([i["class_id"] for i in items], dtype=np.int64),
            scores=np.array([i["score"] for i in items], dtype=np.float32),
            labels=[i["label"] for i in items],
        )


@dataclass(frozen=True)
class TextLines:
    """OCR output: lines with text, score, box (xyxy) and polygon (4 corner points).

    ``text`` is the full text in reading order (lines joined by newlines).
    """

    task: ClassVar[str] = "ocr"
    texts: list[str]
    scores: np.ndarray
    boxes: np.ndarray
    polygons: np.ndarray | None = None
    engine: str = ""
    text: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "texts", [str(t) for t in self.texts])
        n = len(self.texts)
        object.__setattr__(self, "scores", _as_array(self.scores, np.float32, (), "scores"))
        object.__setattr__(self, "boxes", _as_array(self.boxes, np.float32, (4,), "boxes"))
        if self.polygons is None:
            b = self.boxes
            poly = np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [2, 3]], b[:, [0, 3]]], axis=1)
            object.__setattr__(self, "polygons", poly.astype(np.float32))
        else:
            object.__setattr__(self, "polygons", _as_array(self.polygons, np.float32, (4, 2), "polygons"))
        _check_len(n, "TextLines", self.scores, "scores")
        _check_len(n, "TextLines", self.boxes, "boxes")
        _check_len(n, "TextLines", self.polygons, "polygons")
        _check_scores(self.scores, "TextLines")
        if not self.text and n:
            object.__setattr__(self, "text", "\n".join(self.texts))

    def __len__(self) -> int:
        return len(self.texts)

    @classmethod
    def empty(cls, engine: str = "") -> TextLines:
        return cls(texts=[], scores=np.zeros(0), boxes=np.zeros((0, 4)), engine=engine)

    def scaled(self, sx: float, sy: float) -> TextLines:
        return TextLines(
            texts=self.texts,
            scores=self.scores,
            boxes=self.boxes * np.array([sx, sy, sx, sy], dtype=np.float32),
            polygons=self.polygons * np.array([sx, sy], dtype=np.float32),
            engine=self.engine,
            text=self.text,
        )

    def to_dict(self, *, with_vectors: bool = False) -> dict[str, Any]:
        return {
            "text": self.text,
            "engine": self.engine,
            "lines": [
                {
                    "text": t,
                    "score": _r(s),
                    "box": [_r(v, 1) for v in b],
                    "polygon": [[_r(x, 1), _r(y, 1)] for x, y in p],
                }
                for t, s, b, p in zip(self.texts, self.scores, self.boxes, self.polygons)
            ],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TextLines:
        lines = d.get("lines", [])
        polys = [ln.get("polygon") for ln in lines]
        return cls(
            texts=[ln["text"] for ln in lines],
            scores=np.array([ln["score"] for ln in lines], dtype=np.float32),
            boxes=np.array([ln["box"] for ln in lines], dtype=np.float32),
            polygons=np.array(polys, dtype=np.float32) if lines and all(p is not None for p in polys) else None,
            engine=d.get("engine", ""),
            text=d.get("text", ""),
        )


_FACE_KEYS = frozenset({"box", "score", "landmarks", "embedding"})


@dataclass(frozen=True)
class Faces:
    """Detected faces: boxes, scores, landmarks (N, K, 2) and optional embeddings (N, D).

    ``data`` holds parallel per-face arrays that do not fit elsewhere
    (for example ``detector`` names or ``identity`` strings).
    """

    task: ClassVar[str] = "faces"
    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "boxes", _as_array(self.boxes, np.float32, (4,), "boxes"))
        n = len(self.boxes)
        object.__setattr__(self, "scores", _as_array(self.scores, np.float32, (), "scores"))
        _check_len(n, "Faces", self.scores, "scores")
        _check_scores(self.scores, "Faces")
        if self.landmarks is not None:
            lm = np.asarray(self.landmarks, dtype=np.float32)
            if lm.size == 0:
                lm = lm.reshape((n, 0, 2))
            if lm.ndim != 3 or lm.shape[2] != 2:
                raise ResultValidationError(f"Faces: landmarks must be (N, K, 2), got {lm.shape}")
            _check_len(n, "Faces", lm, "landmarks")
            object.__setattr__(self, "landmarks", lm)
        if self.embeddings is not None:
            emb = np.asarray(self.embeddings, dtype=np.float32)
            if emb.ndim != 2:
                emb = emb.reshape((n, -1))
            _check_len(n, "Faces", emb, "embeddings")
            object.__setattr__(self, "embeddings", emb)
        for key, values in self.data.items():
            if key in _FACE_KEYS:  # to_dict() would overwrite the face's own field with it
                raise ResultValidationError(f"Faces: data key {key!r} clashes with a face field {sorted(_FACE_KEYS)}")
            _check_len(n, "Faces", list(values), f"data[{key!r}]")

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls) -> Faces:
        return cls(boxes=np.zeros((0, 4)), scores=np.zeros(0), landmarks=np.zeros((0, 0, 2)))

    def scaled(self, sx: float, sy: float) -> Faces:
        lm = None if self.landmarks is None else self.landmarks * np.array([sx, sy], dtype=np.float32)
        return Faces(
            boxes=self.boxes * np.array([sx, sy, sx, sy], dtype=np.float32),
            scores=self.scores,
            landmarks=lm,
            embeddings=self.embeddings,
            data=dict(self.data),
        )

    def to_dict(self, *, with_vectors: bool = False) -> dict[str, Any]:
        faces = []
        for i in range(len(self)):
            face: dict[str, Any] = {
                "box": [_r(v, 1) for v in self.boxes[i]],
                "score": _r(self.scores[i]),
                "landmarks": [] if self.landmarks is None else [[_r(x, 1), _r(y, 1)] for x, y in self.landmarks[i]],
            }
            for key, values in self.data.items():
                v = values[i]
                face[key] = v.item() if isinstance(v, np.generic) else v
            if with_vectors and self.embeddings is not None:
                face["embedding"] = [_r(v, 6) for v in self.embeddings[i]]
            faces.append(face)
        out: dict[str, Any] = {"faces": faces}
        if self.embeddings is not None:
            out["embedding_dim"] = int(self.embeddings.shape[1])
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Faces:
        faces = d.get("faces", [])
        if not faces:
            return cls.empty()
        extra_keys = sorted({k for f in faces for k in f} - _FACE_KEYS)
        lms = [f.get("landmarks") or [] for f in faces]
        k = max(len(x) for x in lms)
        landmarks = np.array([x if len(x) == k else [[np.nan, np.nan]] * k for x in lms], dtype=np.float32)
        emb = None
        if all("embedding" in f for f in faces):
            emb = np.array([f["embedding"] for f in faces], dtype=np.float32)
        return cls(
            boxes=np.array([f["box"] for f in faces], dtype=np.float32),
            scores=np.array([f["score"] for f in faces], dtype=np.float32),
            landmarks=landmarks.reshape(len(faces), k, 2),
            embeddings=emb,
            data={key: [f.get(key) for f in faces] for key in extra_keys},
        )


@dataclass(frozen=True)
class Embedding:
    """One L2-normalised image embedding produced by ``model``."""

    task: ClassVar[str] = "embed"
    vector: np.ndarray
    model: str

    def __post_init__(self) -> None:
        v = np.asarray(self.vector, dtype=np.float32).reshape(-1)
        if v.size == 0 or not np.all(np.isfinite(v)):
            raise ResultValidationError("Embedding: vector must be non-empty and finite")
        object.__setattr__(self, "vector", v)

    @property
    def dim(self) -> int:
        return int(self.vector.shape[0])

    def scaled(self, sx: float, sy: float) -> Embedding:
        return self

    def to_dict(self, *, with_vectors: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"dim": self.dim, "model": self.model}
        if with_vectors:
            out["vector"] = [_r(x, 6) for x in self.vector]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Embedding:
        if "vector" not in d:
            raise ResultValidationError("Embedding.from_dict: the dict has no 'vector' (exported without vectors)")
        return cls(vector=np.asarray(d["vector"], dtype=np.float32), model=d["model"])


TaskResult = Classification | TextLines | Faces | Embedding | Detections | Segmentation

RESULT_TYPES: dict[str, type] = {
    "classify": Classification,
    "ocr": TextLines,
    "faces": Faces,
    "embed": Embedding,
    "detect": Detections,
    "segment": Segmentation,
}


@dataclass
class Analysis:
    """Everything pixsight found in one image.

    ``results`` maps a task name (``classify``, ``ocr``, ...) to its result. ``status`` is
    ``"ok"`` or ``"error"``; on error, ``error`` is ``{"type", "message"}``. Task results
    that failed individually are listed in ``task_errors`` while the rest are kept.
    """

    path: str
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    status: str = "ok"
    error: dict[str, str] | None = None
    needs_review: bool = False
    review_reasons: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    task_errors: dict[str, dict[str, str]] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    bytes: int | None = None
    format: str | None = None

    def __post_init__(self) -> None:
        if self.status not in ("ok", "error"):
            raise ResultValidationError(f"Analysis: status must be 'ok' or 'error', got {self.status!r}")
        if self.status == "error" and not self.error:
            raise ResultValidationError("Analysis: status 'error' needs an error {type, message}")

    @property
    def detections(self) -> Detections | None:
        """The ``detect`` result (a trained detector's boxes), or ``None`` when it did not run."""
        result = self.results.get("detect")
        return result if isinstance(result, Detections) else None

    @property
    def segmentation(self) -> Segmentation | None:
        """The ``segment`` result (a trained segmenter's class map), or ``None`` when it did not run."""
        result = self.results.get("segment")
        return result if isinstance(result, Segmentation) else None

    def to_dict(self, *, with_vectors: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "path": self.path,
            "sha256": self.sha256,
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "bytes": self.bytes,
            "status": self.status,
            "error": self.error,
            "needs_review": self.needs_review,
            "review_reasons": list(self.review_reasons),
            "timings_ms": {k: round(float(v), 2) for k, v in self.timings_ms.items()},
            "models": dict(self.models),
        }
        if self.task_errors:
            d["task_errors"] = dict(self.task_errors)
        for task, result in self.results.items():
            d[task] = result.to_dict(with_vectors=with_vectors)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Analysis:
        results: dict[str, Any] = {}
        for task, rtype in RESULT_TYPES.items():
            if task in d and d[task] is not None:
                if rtype is Embedding and "vector" not in d[task]:
                    continue
                results[task] = rtype.from_dict(d[task])
        return cls(
            path=d["path"],
            sha256=d.get("sha256"),
            width=d.get("width"),
            height=d.get("height"),
            status=d.get("status", "ok"),
            error=d.get("error"),
            needs_review=bool(d.get("needs_review", False)),
            review_reasons=list(d.get("review_reasons", [])),
            timings_ms=dict(d.get("timings_ms", {})),
            results=results,
            task_errors=dict(d.get("task_errors", {})),
            models=dict(d.get("models", {})),
            bytes=d.get("bytes"),
            format=d.get("format"),
        )
