"""Result types: one per task, plus :class:`Analysis` for one image.

One family: every type is a frozen dataclass over numpy arrays, validated on construction,
with ``model`` (the ``name@version`` or engine that produced it), ``to_dict()`` /
``from_dict()`` for JSON and ``scaled(sx, sy)``. The per-row types (:class:`Classification`,
:class:`TextLines`, :class:`Faces`, :class:`Detections`) have ``len()`` and numpy-style
indexing that returns the same type. Boxes are absolute ``xyxy`` floats in the coordinates
of the *oriented* image; scores are floats in [0, 1]. The built-in tasks' types live in
:mod:`pixsight.core.task_results`, :class:`Detections` and :class:`Segmentation` (trained
models) in :mod:`pixsight.core.spatial`; all are re-exported here.

>>> c = Classification(class_ids=[281], scores=[0.9], labels=["tabby"], model="m@1")
>>> c.to_dict()
{'model': 'm@1', 'labels': [{'label': 'tabby', 'class_id': 281, 'score': 0.9}]}
>>> Classification.from_dict(c.to_dict()).top_label
'tabby'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._results import ResultValidationError
from .spatial import Detections, Segmentation
from .task_results import Classification, Embedding, Faces, TextLines

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


TaskResult = Classification | TextLines | Faces | Embedding | Detections | Segmentation

RESULT_TYPES: dict[str, type] = {
    "classify": Classification,
    "ocr": TextLines,
    "faces": Faces,
    "embed": Embedding,
    "detect": Detections,
    "segment": Segmentation,
}


@dataclass(frozen=True)
class Analysis:
    """Everything pixsight found in one image; built once (frozen: use
    :func:`dataclasses.replace` for a changed copy).

    ``results`` maps a task name (``classify``, ``ocr``, ...) to its result. ``status`` is
    ``"ok"`` or ``"error"``; on error, ``error`` is ``{"type", "message"}``. Task results
    that failed individually are listed in ``task_errors`` while the rest are kept.

    >>> from dataclasses import replace
    >>> a = Analysis(path="a.jpg", width=8, height=6)
    >>> replace(a, needs_review=True, review_reasons=["checked by hand"]).needs_review
    True
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
