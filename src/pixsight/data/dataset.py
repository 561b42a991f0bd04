"""In-memory labelled datasets: one type that every reader returns and every writer takes.

Boxes are absolute pixel ``xyxy`` floats; polygons are ``(K, 2)`` float arrays of ``x, y``;
masks are kept as COCO RLE dicts (``{"size": [h, w], "counts": str}``) and decoded on demand
with :meth:`Annotation.mask`. ``file_name`` is always relative to :attr:`Dataset.root`.

>>> import numpy as np
>>> ann = Annotation(class_id=0, box=[2, 2, 6, 5])
>>> rec = ImageRecord("a.png", width=8, height=6, annotations=[ann], attributes={"split": "train"})
>>> ds = Dataset(root=".", classes=["cat"], images=[rec], task="detect")
>>> ds.num_instances(), ds.class_counts(), len(ds.subset("val").images)
(1, {'cat': 1}, 0)
>>> int(ann.mask(6, 8).sum())
12
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

import numpy as np

from ..core.errors import DatasetFormatError

__all__ = ["TASKS", "BOX_TOLERANCE", "Annotation", "ImageRecord", "Dataset", "record_context"]

#: Dataset tasks.
TASKS: tuple[str, ...] = ("classify", "detect", "segment")
#: How far (pixels) a box may poke out of its image before it is an error (float round-off).
BOX_TOLERANCE: float = 0.01


@contextlib.contextmanager
def record_context(path: str | Path | None, record: str) -> Iterator[None]:
    """Turn any error raised inside into a :class:`DatasetFormatError` naming file and record.

    >>> try:
    ...     with record_context("a.json", "annotations[3]"):
    ...         {}["bbox"]
    ... except DatasetFormatError as err:
    ...     print(err)
    a.json: annotations[3]: missing key 'bbox'
    """
    where = str(path) if path is not None else None
    try:
        yield
    except DatasetFormatError as err:
        if err.path:  # already located by an inner context
            raise
        raise DatasetFormatError(f"{record}: {err.message}", path=where) from None
    except KeyError as err:
        raise DatasetFormatError(f"{record}: missing key {err.args[0]!r}", path=where) from None
    except (TypeError, ValueError, IndexError, AttributeError, OverflowError) as err:
        raise DatasetFormatError(f"{record}: {err}", path=where) from None


def _as_box(box: Any) -> np.ndarray:
    try:
        arr = np.asarray(box, dtype=np.float64)
    except (TypeError, ValueError):
        raise DatasetFormatError(f"box must be 4 numbers, got {box!r}") from None
    if arr.shape != (4,):
        raise DatasetFormatError(f"box must be 4 numbers, got {box!r}")
    if not np.all(np.isfinite(arr)):
        raise DatasetFormatError(f"box has a non-finite value: {arr.tolist()}")
    if arr[2] <= arr[0] or arr[3] <= arr[1]:
        raise DatasetFormatError(f"box {arr.tolist()} has zero or negative size")
    return arr


def _as_polygon(poly: Any, i: int) -> np.ndarray:
    try:
        arr = np.asarray(poly, dtype=np.float64)
    except (TypeError, ValueError):
        raise DatasetFormatError(f"polygons[{i}] is not a list of numbers") from None
    if arr.ndim == 1 and arr.size % 2 == 0:
        arr = arr.reshape(-1, 2)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 3:
        raise DatasetFormatError(f"polygons[{i}] needs at least 3 (x, y) points, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise DatasetFormatError(f"polygons[{i}] has a non-finite value")
    return arr


#: Largest RLE size or run pycocotools can hold (its counts are uint32).
_RLE_MAX = 2**32 - 1


def _as_rle(rle: Any) -> dict[str, Any]:
    """Normalise a COCO RLE (compressed or uncompressed counts) to ``{"size", "counts": str}``."""
    from pycocotools import mask as mask_utils

    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise DatasetFormatError("RLE mask must be a dict with 'size' and 'counts'")
    size = rle["size"]
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= _RLE_MAX for v in size)):
        raise DatasetFormatError(f"RLE size must be [height, width] positive ints below 2**32, got {size!r}")
    h, w = int(size[0]), int(size[1])
    counts = rle["counts"]
    if isinstance(counts, list):
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts) or sum(counts) != h * w:
            raise DatasetFormatError(f"uncompressed RLE counts must be non-negative ints summing to {h}*{w}")
        big = next((c for c in counts if c > _RLE_MAX), None)
        if big is not None:
            raise DatasetFormatError(f"RLE counts: run {big} does not fit in 32 bits")
        try:
            rle = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
        except (OverflowError, ValueError, TypeError) as err:
            raise DatasetFormatError(f"RLE counts: not valid COCO RLE ({err})") from None
        counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    if not isinstance(counts, str):
        raise DatasetFormatError(f"RLE counts must be a string or a list of ints, got {type(counts).__name__}")
    try:
        area = int(mask_utils.area({"size": [h, w], "counts": counts.encode("ascii")}))
    except Exception:  # noqa: BLE001 - pycocotools raises bare errors on bad strings
        raise DatasetFormatError("RLE counts string is not valid COCO RLE") from None
    if area < 0 or area > h * w:
        raise DatasetFormatError("RLE counts string is not valid COCO RLE")
    return {"size": [h, w], "counts": counts}


@dataclass(eq=False)
class Annotation:
    """One labelled instance: a class, an ``xyxy`` box and optionally its mask.

    ``polygons`` are ``(K, 2)`` arrays in pixels; ``rle`` is a COCO RLE dict. ``id`` is the
    source file's annotation id when it had one. ``attributes`` carries anything else the
    source held (VOC ``difficult``, COCO extra keys, ...).
    """

    class_id: int
    box: np.ndarray
    polygons: list[np.ndarray] = field(default_factory=list)
    rle: dict[str, Any] | None = None
    iscrowd: bool = False
    id: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.class_id, bool) or not isinstance(self.class_id, (int, np.integer)) or self.class_id < 0:
            raise DatasetFormatError(f"class id must be a non-negative int, got {self.class_id!r}")
        self.class_id = int(self.class_id)
        self.box = _as_box(self.box)
        self.polygons = [_as_polygon(p, i) for i, p in enumerate(self.polygons or [])]
        if self.rle is not None:
            self.rle = _as_rle(self.rle)
        self.iscrowd = bool(self.iscrowd)

    @property
    def has_mask(self) -> bool:
        return bool(self.polygons) or self.rle is not None

    def mask(self, height: int, width: int) -> np.ndarray:
        """The instance mask as a ``(height, width)`` bool array (the box when no mask is stored).

        >>> a = Annotation(0, [0, 0, 4, 4], polygons=[[[0, 0], [4, 0], [4, 4], [0, 4]]])
        >>> int(a.mask(4, 4).sum())
        16
        """
        from pycocotools import mask as mask_utils

        if self.rle is not None:
            rh, rw = self.rle["size"]
            if (rh, rw) != (height, width):
                raise DatasetFormatError(f"RLE mask is {rw}x{rh} but the image is {width}x{height}")
            rle = {"size": [rh, rw], "counts": self.rle["counts"].encode("ascii")}
            return _decode(rle)
        if self.polygons:
            rles = mask_utils.frPyObjects([p.ravel().tolist() for p in self.polygons], height, width)
            return _decode(mask_utils.merge(rles))
        out = np.zeros((height, width), dtype=bool)
        x1, y1, x2, y2 = self.box
        out[max(0, math.floor(y1)):max(0, math.ceil(y2)), max(0, math.floor(x1)):max(0, math.ceil(x2))] = True
        return out


def _decode(rle: dict[str, Any]) -> np.ndarray:
    from pycocotools import mask as mask_utils

    with warnings.catch_warnings():  # pycocotools' numpy-2 copy= DeprecationWarning
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)


def check_file_name(file_name: Any) -> str:
    """``file_name`` as a clean relative POSIX path; refuse absolute paths and ``..``."""
    if not isinstance(file_name, str) or not file_name.strip():
        raise DatasetFormatError(f"file_name must be a non-empty string, got {file_name!r}")
    norm = file_name.replace("\\", "/")
    p = PurePosixPath(norm)
    if p.is_absolute() or ".." in p.parts or (len(norm) > 1 and norm[1] == ":"):
        raise DatasetFormatError(f"file_name {file_name!r} must be relative and stay inside the dataset folder")
    return str(p)


def check_box_inside(box: np.ndarray, width: int, height: int) -> None:
    """Raise when ``box`` lies outside a ``width`` x ``height`` image (beyond :data:`BOX_TOLERANCE`)."""
    x1, y1, x2, y2 = box
    t = BOX_TOLERANCE
    if x1 < -t or y1 < -t or x2 > width + t or y2 > height + t:
        raise DatasetFormatError(f"box {np.round(box, 3).tolist()} is outside the {width}x{height} image")


@dataclass(eq=False)
class ImageRecord:
    """One image: its path relative to the dataset root, its size and its labels.

    ``label`` is the image-level class id (classification); ``attributes`` holds per-image
    fields such as ``split`` or ``group``; ``id`` is the source file's image id if any.
    """

    file_name: str
    width: int
    height: int
    annotations: list[Annotation] = field(default_factory=list)
    label: int | None = None
    id: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.file_name = check_file_name(self.file_name)
        for name in ("width", "height"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
                raise DatasetFormatError(f"{name} must be a positive int, got {v!r}")
            setattr(self, name, int(v))
        if self.label is not None and (isinstance(self.label, bool) or not isinstance(self.label, (int, np.integer))
                                       or self.label < 0):
            raise DatasetFormatError(f"label must be a non-negative int, got {self.label!r}")
        self.annotations = list(self.annotations)
        for j, ann in enumerate(self.annotations):
            with record_context(None, f"annotations[{j}]"):
                if not isinstance(ann, Annotation):
                    raise DatasetFormatError(f"expected an Annotation, got {type(ann).__name__}")
                check_box_inside(ann.box, self.width, self.height)
                if ann.rle is not None and tuple(ann.rle["size"]) != (self.height, self.width):
                    raise DatasetFormatError(f"RLE size {ann.rle['size']} differs from the image's "
                                             f"[{self.height}, {self.width}]")


@dataclass(eq=False)
class Dataset:
    """Images with labels under one ``root`` folder, for one ``task``.

    ``attributes`` keeps dataset-level facts a format needs to write the data back (COCO
    ``category_ids``, ``info``, ``licenses``).
    """

    root: Path
    classes: list[str]
    images: list[ImageRecord] = field(default_factory=list)
    task: str = "detect"
    attributes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        where = str(self.root)
        if self.task not in TASKS:
            raise DatasetFormatError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}", path=where)
        self.classes = list(self.classes)
        for i, name in enumerate(self.classes):
            if not isinstance(name, str) or not name:
                raise DatasetFormatError(f"classes[{i}] must be a non-empty string, got {name!r}", path=where)
        if len(set(self.classes)) != len(self.classes):
            raise DatasetFormatError(f"duplicate class names in {self.classes}", path=where)
        n = len(self.classes)
        seen: set[str] = set()
        for i, rec in enumerate(self.images):
            with record_context(where, f"images[{i}] ({getattr(rec, 'file_name', '?')})"):
                if not isinstance(rec, ImageRecord):
                    raise DatasetFormatError(f"expected an ImageRecord, got {type(rec).__name__}")
                if rec.file_name in seen:
                    raise DatasetFormatError("duplicate file_name")
                seen.add(rec.file_name)
                if rec.label is not None and rec.label >= n:
                    raise DatasetFormatError(f"label {rec.label} is not a class id (0..{n - 1})")
                for j, ann in enumerate(rec.annotations):
                    if ann.class_id >= n:
                        raise DatasetFormatError(f"annotations[{j}]: class id {ann.class_id} is not a class id (0..{n - 1})")

    def image_path(self, record: ImageRecord) -> Path:
        """Where ``record``'s image file lives."""
        return self.root / record.file_name

    def num_instances(self) -> int:
        """Total number of annotations over all images."""
        return sum(len(r.annotations) for r in self.images)

    def class_counts(self) -> dict[str, int]:
        """Instances per class name (image labels for classification), every class listed."""
        counts = dict.fromkeys(self.classes, 0)
        for rec in self.images:
            if rec.label is not None:
                counts[self.classes[rec.label]] += 1
            for ann in rec.annotations:
                counts[self.classes[ann.class_id]] += 1
        return counts

    def splits(self) -> list[str]:
        """The distinct ``split`` attributes, sorted."""
        return sorted({str(r.attributes["split"]) for r in self.images if "split" in r.attributes})

    def subset(self, split: str) -> Dataset:
        """The images whose ``split`` attribute equals ``split`` (same root, classes, task)."""
        images = [r for r in self.images if r.attributes.get("split") == split]
        return Dataset(self.root, list(self.classes), images, self.task, dict(self.attributes))


def semantic_map(record: ImageRecord) -> np.ndarray:
    """The record's instances painted into one class map: ``0`` background, ``class_id + 1``
    for each instance (later annotations over earlier ones, as they were drawn).

    ``uint8`` up to 254 classes, ``uint16`` above. Crowd regions are painted like any other.

    >>> r = ImageRecord("a.png", 4, 2, [Annotation(1, [0, 0, 2, 2]), Annotation(0, [1, 0, 3, 2])])
    >>> semantic_map(r).tolist()
    [[2, 1, 1, 0], [2, 1, 1, 0]]
    """
    n = max((a.class_id for a in record.annotations), default=0) + 2
    out = np.zeros((record.height, record.width), dtype=np.uint8 if n <= 255 else np.uint16)
    for ann in record.annotations:
        out[ann.mask(record.height, record.width)] = ann.class_id + 1
    return out
