"""Result types of trained models: :class:`Detections` (boxes) and :class:`Segmentation` (class maps).

Both follow the conventions of :mod:`pixsight.core.types`: numpy arrays validated on
construction, boxes in absolute ``xyxy`` pixels of the *oriented* image, scores in [0, 1],
class ids beside their label names, ``to_dict()`` / ``from_dict()`` for JSON and
``scaled(sx, sy)`` to map a result from a reduced decode to the full image.

>>> d = Detections(boxes=[[10, 20, 50, 60]], scores=[0.9], class_ids=[1], labels=["square"], model="shapes@1")
>>> d.to_dict()["detections"][0]
{'box': [10.0, 20.0, 50.0, 60.0], 'score': 0.9, 'class_id': 1, 'label': 'square'}
>>> len(d.filter(conf_threshold=0.95))
0
>>> seg = Segmentation.from_class_map(np.array([[0, 1], [2, 2]], np.uint8), ["circle", "square"])
>>> [(c["label"], c["fraction"]) for c in seg.to_dict()["classes"]]
[('circle', 0.25), ('square', 0.5)]
>>> seg.class_map().tolist()
[[0, 1], [2, 2]]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

import numpy as np

from ._results import ResultValidationError, _as_array, _check_len, _check_scores, _r
from .deprecation import renamed_kwargs
from .errors import ModelUnavailableError

__all__ = ["Detections", "Segmentation", "resize_nearest"]

_DETECTION_KEYS = frozenset({"box", "score", "class_id", "label"})


@dataclass(frozen=True)
class Detections:
    """Detected objects as parallel arrays (one row per object, best first by convention).

    ``labels`` holds each detection's class name (parallel to ``class_ids``); ``model`` the
    ``name@version`` that produced them; ``data`` extra per-detection arrays (e.g. track ids).
    Indexing with an int, a slice, a boolean mask or an index array returns a new
    :class:`Detections` (like numpy).

    >>> d = Detections(boxes=[[0, 0, 4, 4], [1, 1, 3, 3]], scores=[0.3, 0.8], class_ids=[0, 1],
    ...                labels=["a", "b"])
    >>> d[d.scores > 0.5].labels
    ['b']
    """

    task: ClassVar[str] = "detect"
    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    labels: list[str]
    model: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        boxes = _as_array(self.boxes, np.float32, (4,), "Detections.boxes")
        n = len(boxes)
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", _as_array(self.scores, np.float32, (), "Detections.scores"))
        object.__setattr__(self, "class_ids", _as_array(self.class_ids, np.int64, (), "Detections.class_ids"))
        object.__setattr__(self, "labels", [str(v) for v in self.labels])
        object.__setattr__(self, "data", {k: list(v) for k, v in self.data.items()})
        _check_len(n, "Detections", self.scores, "scores")
        _check_len(n, "Detections", self.class_ids, "class_ids")
        _check_len(n, "Detections", self.labels, "labels")
        _check_scores(self.scores, "Detections")
        if n and not np.all(np.isfinite(boxes)):
            raise ResultValidationError("Detections: boxes must be finite")
        if n and (np.any(boxes[:, 2] < boxes[:, 0]) or np.any(boxes[:, 3] < boxes[:, 1])):
            raise ResultValidationError("Detections: boxes must be xyxy with x2 >= x1 and y2 >= y1")
        if n and self.class_ids.min() < 0:
            raise ResultValidationError("Detections: class_ids must be >= 0")
        for key, values in self.data.items():
            if key in _DETECTION_KEYS:  # to_dict() would overwrite the detection's own field
                raise ResultValidationError(f"Detections: data key {key!r} clashes with a field {sorted(_DETECTION_KEYS)}")
            _check_len(n, "Detections", values, f"data[{key!r}]")

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index: int | slice | Sequence[int] | np.ndarray) -> Detections:
        idx = np.arange(len(self))[index]
        idx = np.atleast_1d(idx)
        return Detections(
            boxes=self.boxes[idx], scores=self.scores[idx], class_ids=self.class_ids[idx],
            labels=[self.labels[i] for i in idx], model=self.model,
            data={k: [v[i] for i in idx] for k, v in self.data.items()},
        )

    @classmethod
    def empty(cls, model: str = "") -> Detections:
        """No detections (what a model returns for an image without objects)."""
        return cls(boxes=np.zeros((0, 4)), scores=np.zeros(0), class_ids=np.zeros(0, np.int64), labels=[], model=model)

    @renamed_kwargs(min_score="conf_threshold")
    def filter(self, *, conf_threshold: float) -> Detections:
        """The detections scoring at least ``conf_threshold`` (formerly ``min_score``)."""
        return self[self.scores >= conf_threshold]

    def scaled(self, sx: float, sy: float) -> Detections:
        return Detections(
            boxes=self.boxes * np.array([sx, sy, sx, sy], dtype=np.float32), scores=self.scores,
            class_ids=self.class_ids, labels=self.labels, model=self.model, data=dict(self.data),
        )

    def counts(self) -> dict[str, int]:
        """Detections per label, most frequent first.

        >>> Detections(boxes=[[0, 0, 1, 1]] * 3, scores=[0.5] * 3, class_ids=[0, 1, 1],
        ...            labels=["a", "b", "b"]).counts()
        {'b': 2, 'a': 1}
        """
        out: dict[str, int] = {}
        for label in self.labels:
            out[label] = out.get(label, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))

    def to_dict(self, *, with_vectors: bool = False) -> dict[str, Any]:
        rows = []
        for i in range(len(self)):
            row: dict[str, Any] = {
                "box": [_r(v, 1) for v in self.boxes[i]],
                "score": _r(self.scores[i]),
                "class_id": int(self.class_ids[i]),
                "label": self.labels[i],
            }
            for key, values in self.data.items():
                v = values[i]
                row[key] = v.item() if isinstance(v, np.generic) else v
            rows.append(row)
        return {"model": self.model, "detections": rows}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Detections:
        rows = d.get("detections", [])
        model = str(d.get("model", ""))
        if not rows:
            return cls.empty(model)
        extra = sorted({k for r in rows for k in r} - _DETECTION_KEYS)
        return cls(
            boxes=np.array([r["box"] for r in rows], dtype=np.float32),
            scores=np.array([r["score"] for r in rows], dtype=np.float32),
            class_ids=np.array([r["class_id"] for r in rows], dtype=np.int64),
            labels=[r["label"] for r in rows],
            model=model,
            data={k: [r.get(k) for r in rows] for k in extra},
        )


def resize_nearest(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of a 2-D array (labels stay labels: no blending).

    >>> resize_nearest(np.array([[1, 2], [3, 4]]), 4, 4).tolist()[0]
    [1, 1, 2, 2]
    """
    h, w = array.shape[:2]
    if (h, w) == (height, width):
        return array
    rows = np.minimum(((np.arange(height) + 0.5) * (h / height)).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * (w / width)).astype(np.int64), w - 1)
    return array[rows[:, None], cols[None, :]]


def _mask_api() -> Any:
    try:
        from pycocotools import mask as mask_api
    except ImportError as err:
        raise ModelUnavailableError(
            "segmentation masks are stored as COCO RLE, which needs pycocotools: pip install 'pixsight[data]'"
        ) from err
    return mask_api


def _rle_json(rle: dict[str, Any]) -> dict[str, Any]:
    counts = rle["counts"]
    return {"size": [int(v) for v in rle["size"]], "counts": counts.decode("ascii") if isinstance(counts, bytes) else str(counts)}


@dataclass(frozen=True)
class Segmentation:
    """A semantic segmentation: one binary mask per class present, as COCO RLE.

    The class map convention is the one of :func:`pixsight.data.dataset.semantic_map`:
    ``0`` background, ``class_id + 1`` for class ``class_id``. Only classes that cover at
    least one pixel are kept; ``fractions`` is the share of the image each covers.
    Build one with :meth:`from_class_map`; :meth:`class_map` decodes it back.
    Needs ``pycocotools`` (``pip install 'pixsight[data]'``) to encode or decode masks.
    """

    task: ClassVar[str] = "segment"
    height: int
    width: int
    class_ids: np.ndarray
    labels: list[str]
    rles: list[dict[str, Any]]
    model: str = ""
    fractions: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if int(self.height) < 1 or int(self.width) < 1:
            raise ResultValidationError(f"Segmentation: size must be positive, got {self.height}x{self.width}")
        object.__setattr__(self, "height", int(self.height))
        object.__setattr__(self, "width", int(self.width))
        ids = _as_array(self.class_ids, np.int64, (), "Segmentation.class_ids")
        object.__setattr__(self, "class_ids", ids)
        object.__setattr__(self, "labels", [str(v) for v in self.labels])
        rles = [_rle_json(r) for r in self.rles]
        object.__setattr__(self, "rles", rles)
        _check_len(len(ids), "Segmentation", self.labels, "labels")
        _check_len(len(ids), "Segmentation", rles, "rles")
        if len(ids) and (ids.min() < 0 or len(set(ids.tolist())) != len(ids)):
            raise ResultValidationError("Segmentation: class_ids must be distinct and >= 0")
        for rle in rles:
            if rle["size"] != [self.height, self.width]:
                raise ResultValidationError(f"Segmentation: an RLE has size {rle['size']}, expected {[self.height, self.width]}")
        areas = np.asarray(_mask_api().area(rles), dtype=np.float64).reshape(-1) if rles else np.zeros(0)
        object.__setattr__(self, "fractions", (areas / (self.height * self.width)).astype(np.float32))

    def __len__(self) -> int:
        return len(self.class_ids)

    @classmethod
    def from_class_map(cls, class_map: np.ndarray, labels: Sequence[str], *, model: str = "") -> Segmentation:
        """Encode a ``(H, W)`` class map (0 background, ``k + 1`` = class ``k`` = ``labels[k]``).

        Raises:
            ResultValidationError: the map is not 2-D or holds a value with no label.
        """
        arr = np.asarray(class_map)
        if arr.ndim != 2 or 0 in arr.shape or not np.issubdtype(arr.dtype, np.integer):
            raise ResultValidationError(f"Segmentation: class map must be a non-empty 2-D integer array, got {arr.dtype} {arr.shape}")
        if arr.min() < 0:
            raise ResultValidationError(f"Segmentation: class map values must be >= 0, got {int(arr.min())}")
        present = np.flatnonzero(np.bincount(arr.reshape(-1).astype(np.int64, copy=False)))
        present = present[present > 0]
        if len(present) and present.max() > len(labels):
            raise ResultValidationError(f"Segmentation: class map value {int(present.max())} has no label ({len(labels)} labels)")
        mask_api = _mask_api()
        rles = [mask_api.encode(np.asfortranarray(arr == v, dtype=np.uint8)) for v in present]
        ids = present.astype(np.int64) - 1
        return cls(height=arr.shape[0], width=arr.shape[1], class_ids=ids, labels=[str(labels[i]) for i in ids],
                   rles=rles, model=model)

    @classmethod
    def empty(cls, height: int, width: int, *, model: str = "") -> Segmentation:
        """All background."""
        return cls(height=height, width=width, class_ids=np.zeros(0, np.int64), labels=[], rles=[], model=model)

    def class_map(self) -> np.ndarray:
        """The ``(H, W)`` class map: ``uint8`` up to 254 classes, ``uint16`` above."""
        top = int(self.class_ids.max()) + 1 if len(self) else 0
        out = np.zeros((self.height, self.width), dtype=np.uint8 if top < 255 else np.uint16)
        if len(self):
            mask_api = _mask_api()
            for cid, rle in zip(self.class_ids, self.rles):
                out[mask_api.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).astype(bool)] = cid + 1
        return out

    def coverage(self) -> dict[str, float]:
        """Fraction of the image each present class covers, largest first."""
        pairs = sorted(zip(self.labels, (float(f) for f in self.fractions)), key=lambda kv: (-kv[1], kv[0]))
        return dict(pairs)

    def scaled(self, sx: float, sy: float) -> Segmentation:
        h, w = max(1, round(self.height * sy)), max(1, round(self.width * sx))
        if (h, w) == (self.height, self.width):
            return self
        names = {int(c): lab for c, lab in zip(self.class_ids, self.labels)}
        labels = [names.get(k, "") for k in range(int(self.class_ids.max()) + 1)] if len(self) else []
        return Segmentation.from_class_map(resize_nearest(self.class_map(), h, w), labels, model=self.model)

    def to_dict(self, *, with_vectors: bool = False) -> dict[str, Any]:
        return {
            "model": self.model,
            "size": [self.height, self.width],
            "classes": [
                {"class_id": int(cid), "label": lab, "fraction": _r(frac, 6), "rle": dict(rle)}
                for cid, lab, frac, rle in zip(self.class_ids, self.labels, self.fractions, self.rles)
            ],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Segmentation:
        classes = d.get("classes", [])
        try:
            h, w = (int(v) for v in d["size"])
        except (KeyError, TypeError, ValueError) as err:
            raise ResultValidationError(f"Segmentation.from_dict: 'size' must be [height, width] ({err})") from err
        return cls(height=h, width=w, class_ids=np.array([c["class_id"] for c in classes], dtype=np.int64),
                   labels=[c["label"] for c in classes], rles=[c["rle"] for c in classes], model=str(d.get("model", "")))
