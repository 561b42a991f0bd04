"""Result types of the built-in tasks: :class:`Classification`, :class:`TextLines`,
:class:`Faces` and :class:`Embedding` (re-exported by :mod:`pixsight.core.types`).

They follow the family rules of :mod:`pixsight.core.types`: frozen, validated on
construction, ``model``, ``to_dict()`` / ``from_dict()``, ``scaled(sx, sy)``, and ``len()``
plus numpy-style indexing for the per-row types.

>>> lines = TextLines(texts=["a", "b"], scores=[0.9, 0.3], boxes=[[0, 0, 1, 1], [0, 2, 1, 3]])
>>> len(lines[lines.scores > 0.5])
1
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Sequence

import numpy as np

from ._results import ResultValidationError, RowResult, _as_array, _check_len, _check_scores, _r
from .spatial import Detections

__all__ = ["Classification", "TextLines", "Faces", "Embedding"]


@dataclass(frozen=True)
class Classification(RowResult):
    """Top-k labels, best first; ``model`` names the classifier (``name@version``).

    >>> c = Classification(class_ids=[281, 285], scores=[0.7, 0.2], labels=["tabby", "Egyptian cat"])
    >>> c[:1].labels, len(c)
    (['tabby'], 2)
    """

    task: ClassVar[str] = "classify"
    _rows: ClassVar[tuple[str, ...]] = ("class_ids", "scores", "labels")
    class_ids: np.ndarray
    scores: np.ndarray
    labels: list[str]
    model: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_ids", _as_array(self.class_ids, np.int64, (), "class_ids"))
        object.__setattr__(self, "scores", _as_array(self.scores, np.float32, (), "scores"))
        object.__setattr__(self, "labels", list(self.labels))
        _check_len(len(self.class_ids), "Classification", self.scores, "scores")
        _check_len(len(self.class_ids), "Classification", self.labels, "labels")
        _check_scores(self.scores, "Classification")
        if len(self.scores) > 1 and np.any(np.diff(self.scores) > 1e-6):
            raise ResultValidationError("Classification: scores must be sorted best first")

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
            "model": self.model,
            "labels": [
                {"label": lab, "class_id": int(cid), "score": _r(s)}
                for lab, cid, s in zip(self.labels, self.class_ids, self.scores)
            ],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Classification:
        items = d.get("labels", [])
        return cls(
            class_ids=np.array([i["class_id"] for i in items], dtype=np.int64),
            scores=np.array([i["score"] for i in items], dtype=np.float32),
            labels=[i["label"] for i in items],
            model=str(d.get("model", "")),
        )


@dataclass(frozen=True)
class TextLines(RowResult):
    """OCR output: lines with text, score, box (xyxy) and polygon (4 corner points).

    ``text`` is the full text in reading order (lines joined by newlines); ``model`` the
    OCR engine that read it (``rapidocr-ppocrv6``, ``tesseract-eng``). The JSON keeps the
    former name ``"engine"`` beside ``"model"`` (same value) for readers of older output.

    >>> t = TextLines(texts=["INVOICE", "total 9.99"], scores=[0.9, 0.4], boxes=[[0, 0, 9, 2], [0, 3, 9, 5]],
    ...               model="tesseract-eng")
    >>> t[t.scores > 0.5].text, t.to_dict()["engine"]
    ('INVOICE', 'tesseract-eng')
    """

    task: ClassVar[str] = "ocr"
    _rows: ClassVar[tuple[str, ...]] = ("texts", "scores", "boxes", "polygons")
    texts: list[str]
    scores: np.ndarray
    boxes: np.ndarray
    polygons: np.ndarray | None = None
    model: str = ""
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

    @property
    def engine(self) -> str:
        """Former name of :attr:`model` (kept for code written against it)."""
        return self.model

    def __getitem__(self, index: int | slice | Sequence[int] | np.ndarray) -> TextLines:
        return replace(self, **self._take(index), text="")  # the full text is joined again

    @classmethod
    def empty(cls, model: str = "") -> TextLines:
        return cls(texts=[], scores=np.zeros(0), boxes=np.zeros((0, 4)), model=model)

    def scaled(self, sx: float, sy: float) -> TextLines:
        return TextLines(
            texts=self.texts,
            scores=self.scores,
            boxes=self.boxes * np.array([sx, sy, sx, sy], dtype=np.float32),
            polygons=self.polygons * np.array([sx, sy], dtype=np.float32),
            model=self.model,
            text=self.text,
        )

    def to_dict(self, *, with_vectors: bool = False) -> dict[str, Any]:
        return {
            "text": self.text,
            "model": self.model,
            "engine": self.model,  # the former name of "model", kept for readers of older output
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
            model=str(d.get("model", d.get("engine", ""))),
            text=d.get("text", ""),
        )


_FACE_KEYS = frozenset({"box", "score", "landmarks", "embedding"})


@dataclass(frozen=True)
class Faces(RowResult):
    """Detected faces: detections of one class (boxes, scores) plus landmarks (N, K, 2) and
    optional embeddings (N, D); :meth:`as_detections` gives the plain :class:`Detections`.

    ``data`` holds parallel per-face arrays that do not fit elsewhere
    (for example ``detector`` names or ``identity`` strings); ``model`` names the face model.

    >>> f = Faces(boxes=[[0, 0, 8, 8], [20, 0, 28, 8]], scores=[0.9, 0.2], landmarks=np.zeros((2, 5, 2)))
    >>> f[f.scores >= 0.5].landmarks.shape
    (1, 5, 2)
    >>> f.as_detections().labels
    ['face', 'face']
    """

    task: ClassVar[str] = "faces"
    _rows: ClassVar[tuple[str, ...]] = ("boxes", "scores", "landmarks", "embeddings", "data")
    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    data: dict[str, Any] = field(default_factory=dict)
    model: str = ""

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

    @classmethod
    def empty(cls, model: str = "") -> Faces:
        return cls(boxes=np.zeros((0, 4)), scores=np.zeros(0), landmarks=np.zeros((0, 0, 2)), model=model)

    def as_detections(self) -> Detections:
        """The faces as :class:`Detections` of the one class ``face`` (``data`` kept), for
        code written for detections (annotators, box metrics)."""
        n = len(self)
        return Detections(boxes=self.boxes, scores=self.scores, class_ids=np.zeros(n, np.int64),
                          labels=["face"] * n, model=self.model, data=dict(self.data))

    def scaled(self, sx: float, sy: float) -> Faces:
        lm = None if self.landmarks is None else self.landmarks * np.array([sx, sy], dtype=np.float32)
        return Faces(
            boxes=self.boxes * np.array([sx, sy, sx, sy], dtype=np.float32),
            scores=self.scores,
            landmarks=lm,
            embeddings=self.embeddings,
            data=dict(self.data),
            model=self.model,
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
        out: dict[str, Any] = {"model": self.model, "faces": faces}
        if self.embeddings is not None:
            out["embedding_dim"] = int(self.embeddings.shape[1])
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Faces:
        faces = d.get("faces", [])
        model = str(d.get("model", ""))
        if not faces:
            return cls.empty(model)
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
            model=model,
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
