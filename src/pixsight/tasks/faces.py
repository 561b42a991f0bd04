"""Faces: detection, 5-point landmarks and 128-D embeddings with dlib.

Detection combines what dlib ships (see ``docs/faces.md`` for the measurements behind it):

- ``"fast"`` (default): dlib's HOG detector with its five filters (front, left and right
  side views, front rotated left/right) on the image resized to a fixed pixel budget
  (1.5 MP): small photos are upsampled (up to 2x, so faces down to ~40 px are found) and
  big ones downsampled, so the cost is constant (~110 ms per image on one core here).
  Weak candidates (margin -0.8 up to ``conf_threshold``) get a second look on an upscaled crop
  (:mod:`.faces_zoom`): more small and side-view faces for ~10 % more time.
- ``"accurate"``: HOG at 3 MP plus the MMOD CNN detector on the image bounded to 640 px,
  merged with non-maximum suppression (a mirrored HOG pass is available in
  :class:`DetectorPlan` but measured +1 face / +1 false positive, so it is off). Finds more small and
  non-frontal faces; costs seconds per image on CPU.

Raw detector margins are mapped to [0, 1] by a fixed logistic per detector
(:func:`calibrate_score`), read off the recall benchmark (``benchmarks/bench_faces_recall.py``);
the default ``conf_threshold`` 0.35 is a little stricter than dlib's own HOG threshold.

Embeddings are dlib's native 128-D ResNet descriptors of aligned 150 px face chips. They
are *not* L2-normalised (their norm is about 1.4), so that dlib's published convention
holds: two faces of the same person are closer than 0.6 in Euclidean distance.

>>> from skimage import data
>>> from pixsight.core.image import LoadedImage
>>> from pixsight.core.config import AnalyzeConfig
>>> from pixsight.models.zoo.faces import SPECS
>>> stage = create_stage(SPECS[0], AnalyzeConfig(), ("faces",))
>>> px = data.astronaut()
>>> img = LoadedImage(pixels=px, width=512, height=512, format="PNG", sha256="", nbytes=0)
>>> faces = stage.run([img])[0]["faces"]
>>> len(faces), faces.landmarks.shape, faces.embeddings.shape
(1, (1, 5, 2), (1, 128))
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..core.config import AnalyzeConfig
from ..core.deprecation import renamed_kwargs
from ..core.errors import ConfigError, ModelUnavailableError, PixsightError
from ..core.image import LoadedImage
from ..core.types import Faces
from ..models.spec import ModelSpec
from ..models.weights import resolve_weights
from .base import StageInfo, StageOutput
from .faces_zoom import weak_candidates, zoom_candidates

__all__ = [
    "DetectorPlan",
    "PLANS",
    "FacesStage",
    "FaceDetection",
    "calibrate_score",
    "detect_faces",
    "nms",
    "create_stage",
]


#: dlib holds the GIL: the analyzer runs this stage in its own process to use both cores.
GIL_BOUND = True

log = logging.getLogger(__name__)

#: Names of the five filters inside dlib's HOG detector, by the index ``run`` returns.
HOG_FILTERS: tuple[str, ...] = ("hog-front", "hog-left", "hog-right", "hog-front-rot-left", "hog-front-rot-right")

#: Logistic calibration per detector: unit = 1 / (1 + exp(-(raw - center) / width)).
#: Read off benchmarks/bench_faces_recall.py (composites + real photos, HOG at 1-3 MP):
#: HOG margins >= 0.15 were all true faces, 0..0.15 mostly (11/13; the misses were on the
#: astronaut's suit), below 0 the side-view and rotated filters were mostly wrong. So raw
#: 0.2 -> 0.5 and the default conf_threshold 0.35 keeps raw >= ~0.08. MMOD: every detection
#: at its own threshold (0.0) was a face on that set, so raw 0.0 -> 0.5.
CALIBRATION: dict[str, tuple[float, float]] = {"hog": (0.2, 0.2), "mmod": (0.0, 0.3)}


@dataclass(frozen=True)
class DetectorPlan:
    """How to combine dlib's detectors for one image.

    Attributes:
        hog_pixels: the HOG pass sees the image resized to about this many pixels
            (0 turns HOG off). Cost grows linearly with it (~75 ms per megapixel here).
        hog_max_upscale: never upsample by more than this (blurry upsampled faces
            give false positives).
        hog_threshold: raw HOG margin to keep a candidate (dlib's own default is 0.0);
            candidates are then calibrated and filtered by ``conf_threshold``.
        mirror: also run HOG on the mirrored image (the side-view filters are not
            perfectly symmetric).
        mmod_max_side: run the MMOD CNN on the image bounded to this longer side
            (``None`` = off). ~6.5 µs per pixel: 640x480 costs about 2 s.
        nms_iou: boxes overlapping more than this (or one mostly inside another)
            are the same face.
        zoom_threshold: HOG candidates with a margin from this up to ``conf_threshold`` are
            rerun on a crop upscaled so they are ``zoom_face_px`` wide (``None`` = off);
            at most ``zoom_max_crops`` per image, strongest first. A face found on a crop
            needs a margin >= ``zoom_min_margin`` (0.15: the suit patch on the astronaut
            reaches 0.11 on a crop; true faces on crops were 0.11-1.7).
    """

    hog_pixels: int = 1_500_000
    hog_max_upscale: float = 2.0
    hog_threshold: float = -0.2
    mirror: bool = False
    mmod_max_side: int | None = None
    nms_iou: float = 0.35
    zoom_threshold: float | None = None
    zoom_face_px: int = 120
    zoom_max_crops: int = 5
    zoom_min_margin: float = 0.15


#: The named detector modes (``FacesOptions.detector``).
PLANS: dict[str, DetectorPlan] = {
    "fast": DetectorPlan(zoom_threshold=-0.8),
    "accurate": DetectorPlan(hog_pixels=3_000_000, mmod_max_side=640),
}


@dataclass(frozen=True)
class FaceDetection:
    """Detections of one image before landmarks: boxes xyxy, unit scores, raw margins, names."""

    boxes: np.ndarray  # (N, 4) float32, coordinates of the input image
    scores: np.ndarray  # (N,) calibrated to [0, 1]
    raw: np.ndarray  # (N,) the detector's own margin
    detectors: list[str]


def calibrate_score(raw: np.ndarray | float, detector: str) -> np.ndarray:
    """Map a raw detector margin to [0, 1] with the detector's fixed logistic.

    Monotone in ``raw``; 0.5 at the fitted centre.

    >>> float(calibrate_score(0.2, "hog"))
    0.5
    >>> bool(calibrate_score(1.0, "mmod") > calibrate_score(0.5, "mmod"))
    True
    """
    center, width = CALIBRATION["mmod" if detector.startswith("mmod") else "hog"]
    z = (np.asarray(raw, dtype=np.float64) - center) / width
    return (1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, *, iou_threshold: float = 0.35) -> list[list[int]]:
    """Greedy non-maximum suppression that also merges a box mostly inside a better one.

    Returns groups of indices, best first within each group and groups in score order.

    >>> b = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], float)
    >>> nms(b, np.array([0.9, 0.8, 0.7]))
    [[0, 1], [2]]
    """
    order = list(np.argsort(-np.asarray(scores), kind="stable"))
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    area = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    groups: list[list[int]] = []
    used = np.zeros(len(boxes), dtype=bool)
    for i in order:
        if used[i]:
            continue
        x1 = np.maximum(boxes[i, 0], boxes[:, 0])
        y1 = np.maximum(boxes[i, 1], boxes[:, 1])
        x2 = np.minimum(boxes[i, 2], boxes[:, 2])
        y2 = np.minimum(boxes[i, 3], boxes[:, 3])
        inter = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
        iou = inter / np.maximum(area[i] + area - inter, 1e-9)
        inside = inter / np.maximum(np.minimum(area[i], area), 1e-9)
        same = (~used) & ((iou > iou_threshold) | (inside > 0.7))
        same[i] = True
        members = [i] + [int(j) for j in order if same[j] and j != i]
        used[members] = True
        groups.append([int(i)] + members[1:])
    return groups


def _resize(pixels: np.ndarray, factor: float) -> np.ndarray:
    if abs(factor - 1.0) < 1e-3:
        return pixels
    from PIL import Image

    h, w = pixels.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0))


def _hog_pass(detector: Any, pixels: np.ndarray, plan: DetectorPlan, threshold: float) -> tuple[list, list, list]:
    h, w = pixels.shape[:2]
    factor = min(plan.hog_max_upscale, math.sqrt(plan.hog_pixels / max(h * w, 1)))
    small = np.ascontiguousarray(_resize(pixels, factor))
    boxes, raws, names = [], [], []
    views = [(small, False)] + ([(np.ascontiguousarray(small[:, ::-1]), True)] if plan.mirror else [])
    for view, mirrored in views:
        rects, scores, idx = detector.run(view, 0, threshold)
        vw = view.shape[1]
        for r, s, k in zip(rects, scores, idx):
            x1, x2 = (vw - r.right() - 1, vw - r.left() - 1) if mirrored else (r.left(), r.right())
            boxes.append([x1 / factor, r.top() / factor, (x2 + 1) / factor, (r.bottom() + 1) / factor])
            raws.append(float(s))
            names.append(HOG_FILTERS[int(k)] if 0 <= int(k) < len(HOG_FILTERS) else "hog")
    return boxes, raws, names


def _zoom_pass(detector: Any, pixels: np.ndarray, plan: DetectorPlan, found: tuple[list, list, list],
               conf_threshold: float) -> tuple[list, list, list]:
    """Keep HOG candidates above ``plan.hog_threshold``; add what crops find around weak ones."""
    boxes, raws, names = found
    weak = weak_candidates(boxes, calibrate_score(np.asarray(raws, dtype=np.float64), "hog"),
                           conf_threshold=conf_threshold)
    keep = [i for i, r in enumerate(raws) if r >= plan.hog_threshold]
    out = ([boxes[i] for i in keep], [raws[i] for i in keep], [names[i] for i in keep])
    for box, raw, k in zoom_candidates(pixels, weak, hog=detector, threshold=plan.zoom_min_margin,
                                       face_px=plan.zoom_face_px, max_crops=plan.zoom_max_crops):
        for acc, new in zip(out, (box, raw, (HOG_FILTERS[k] if 0 <= k < len(HOG_FILTERS) else "hog") + "-zoom")):
            acc.append(new)
    return out


def _mmod_pass(detector: Any, pixels: np.ndarray, max_side: int) -> tuple[list, list, list]:
    h, w = pixels.shape[:2]
    factor = min(1.0, max_side / max(h, w))
    small = np.ascontiguousarray(_resize(pixels, factor))
    boxes, raws = [], []
    for d in detector(small, 0):
        r = d.rect
        boxes.append([r.left() / factor, r.top() / factor, (r.right() + 1) / factor, (r.bottom() + 1) / factor])
        raws.append(float(d.confidence))
    return boxes, raws, ["mmod"] * len(boxes)


@renamed_kwargs(min_score="conf_threshold")
def detect_faces(
    pixels: np.ndarray, *, hog: Any, mmod: Any = None, plan: DetectorPlan = PLANS["fast"], conf_threshold: float = 0.0
) -> FaceDetection:
    """Run the detectors of ``plan`` on an RGB uint8 image and merge their boxes.

    Args:
        pixels: (H, W, 3) uint8 RGB.
        hog: ``dlib.get_frontal_face_detector()``.
        mmod: a ``dlib.cnn_face_detection_model_v1`` (needed when ``plan.mmod_max_side``).
        plan: which detectors, at what size.
        conf_threshold: drop merged faces whose calibrated score is below this.

    >>> import dlib
    >>> from skimage import data
    >>> det = detect_faces(data.astronaut(), hog=dlib.get_frontal_face_detector(), conf_threshold=0.35)
    >>> det.detectors
    ['hog-front']
    """
    boxes: list = []
    raws: list = []
    names: list = []
    if plan.hog_pixels > 0:
        zoom = plan.zoom_threshold is not None
        floor = min(plan.hog_threshold, plan.zoom_threshold) if zoom else plan.hog_threshold
        found = _hog_pass(hog, pixels, plan, floor)
        zoomed = _zoom_pass(hog, pixels, plan, found, conf_threshold) if zoom else found
        for acc, new in zip((boxes, raws, names), zoomed):
            acc.extend(new)
    if plan.mmod_max_side:
        if mmod is None:
            raise ConfigError("detect_faces: the plan uses MMOD but no MMOD model was given")
        for acc, new in zip((boxes, raws, names), _mmod_pass(mmod, pixels, plan.mmod_max_side)):
            acc.extend(new)
    if not boxes:
        return FaceDetection(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32), [])
    b = np.asarray(boxes, dtype=np.float32)
    raw = np.asarray(raws, dtype=np.float32)
    unit = np.array([calibrate_score(r, n) for r, n in zip(raws, names)], dtype=np.float32)
    keep_boxes, keep_scores, keep_raw, keep_names = [], [], [], []
    for group in nms(b, unit, iou_threshold=plan.nms_iou):
        best = group[0]
        if unit[best] < conf_threshold:
            continue
        keep_boxes.append(b[best])
        keep_scores.append(unit[best])
        keep_raw.append(raw[best])
        members = sorted({names[j] for j in group}, key=lambda n: (n != names[best], n))
        keep_names.append("+".join(members))
    h, w = pixels.shape[:2]
    out = np.asarray(keep_boxes, dtype=np.float32).reshape(-1, 4)
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, w)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, h)
    return FaceDetection(out, np.asarray(keep_scores, np.float32), np.asarray(keep_raw, np.float32), keep_names)


def _as_rgb(pixels: np.ndarray) -> np.ndarray:
    arr = np.asarray(pixels)
    if arr.dtype != np.uint8:
        raise PixsightError(f"faces: expected uint8 pixels, got {arr.dtype}; decode images with load_image")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., :3]
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise PixsightError(f"faces: expected an (H, W, 3) RGB image, got shape {arr.shape}")
    return np.ascontiguousarray(arr)


class FacesStage:
    """The ``faces`` stage: boxes, calibrated scores, landmarks and (optionally) embeddings.

    Results are in the coordinates of ``image.pixels``. ``data["detector"]`` names the
    filter(s) that found each face (``hog-front``, ``hog-left``, ``mmod``, joined with
    ``+`` when several agree). dlib holds the GIL while it computes, so two calls of this
    stage in threads do not overlap (``info.extra["releases_gil"]`` is ``False``).

    >>> from pixsight.models.zoo.faces import SPECS
    >>> stage = FacesStage(SPECS[0], detector="fast", with_embeddings=False)
    >>> stage.info.max_side
    1280
    """

    @renamed_kwargs(min_score="conf_threshold")
    def __init__(
        self,
        spec: ModelSpec,
        *,
        detector: str = "fast",
        conf_threshold: float = 0.35,
        with_embeddings: bool = True,
        plan: DetectorPlan | None = None,
    ) -> None:
        try:
            import dlib
        except ImportError as err:
            raise ModelUnavailableError(
                f"model {spec.name!r} needs dlib, which is not installed. {spec.install_hint}".strip()
            ) from err
        if plan is None and detector not in PLANS:
            raise ConfigError(f"faces.detector must be one of {sorted(PLANS)}, got {detector!r}")
        if not 0.0 <= conf_threshold <= 1.0:
            raise ConfigError(f"faces.conf_threshold must be in [0, 1], got {conf_threshold}")
        self.spec = spec
        self.plan = plan or PLANS[detector]
        self.conf_threshold = float(conf_threshold)
        self.with_embeddings = with_embeddings
        landmarks_key = spec.options.get("landmarks", "landmarks5")
        self._hog = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(str(resolve_weights(spec, landmarks_key)))
        blank = np.zeros((16, 16, 3), dtype=np.uint8)
        self._num_parts = int(self._shape(blank, dlib.rectangle(0, 0, 15, 15)).num_parts)
        self._mmod = (
            dlib.cnn_face_detection_model_v1(str(resolve_weights(spec, "mmod"))) if self.plan.mmod_max_side else None
        )
        self._rec = (
            dlib.face_recognition_model_v1(str(resolve_weights(spec, "recognition"))) if with_embeddings else None
        )
        self._dlib = dlib
        self.info = StageInfo(
            tasks=("faces",),
            models={"faces": spec.key},
            max_side=int(spec.preprocess.get("max_side", 1280)),
            batch_size=1,
            extra={"detector": detector if plan is None else "custom", "releases_gil": False,
                   "embedding": "dlib-native-128d (same person: distance < 0.6)"},
        )

    def detect(self, pixels: np.ndarray) -> Faces:
        """Faces in one RGB uint8 image (grayscale and RGBA are accepted too).

        >>> from skimage import data
        >>> from pixsight.models.zoo.faces import SPECS
        >>> len(FacesStage(SPECS[0], with_embeddings=False).detect(data.coffee()))
        0
        """
        rgb = _as_rgb(pixels)
        det = detect_faces(rgb, hog=self._hog, mmod=self._mmod, plan=self.plan, conf_threshold=self.conf_threshold)
        n = len(det.boxes)
        k = self._num_parts
        landmarks = np.zeros((n, k, 2), dtype=np.float32)
        shapes = self._dlib.full_object_detections()
        for i, (x1, y1, x2, y2) in enumerate(det.boxes):
            rect = self._dlib.rectangle(int(round(x1)), int(round(y1)), int(round(x2)) - 1, int(round(y2)) - 1)
            shape = self._shape(rgb, rect)
            landmarks[i] = [(p.x, p.y) for p in shape.parts()]
            shapes.append(shape)
        embeddings = None
        if self._rec is not None:
            embeddings = np.zeros((n, 128), dtype=np.float32)
            if n:
                chips = self._dlib.get_face_chips(rgb, shapes, size=150, padding=0.25)
                embeddings = np.asarray(self._rec.compute_face_descriptor(chips), dtype=np.float32).reshape(n, -1)
        return Faces(boxes=det.boxes, scores=det.scores, landmarks=landmarks, embeddings=embeddings,
                     data={"detector": list(det.detectors)}, model=self.spec.key)

    def run(self, images: Sequence[LoadedImage]) -> list[StageOutput]:
        """One ``{"faces": Faces}`` per image (or the exception that image raised)."""
        out: list[StageOutput] = []
        for image in images:
            try:
                out.append({"faces": self.detect(image.pixels)})
            except Exception as err:  # one bad image must not lose the batch
                log.warning("faces failed on %s: %s", image.path or "<image>", err)
                out.append(err)
        return out

    def close(self) -> None:
        """Drop the dlib models. Safe to call twice."""
        self._mmod = None
        self._rec = None


def create_stage(spec: ModelSpec, config: AnalyzeConfig, tasks: tuple[str, ...]) -> FacesStage:
    """Build the faces stage from a registry entry and the analyze config.

    >>> from pixsight.models.zoo.faces import SPECS
    >>> create_stage(SPECS[0], AnalyzeConfig(), ("faces",)).info.tasks
    ('faces',)
    """
    if tuple(tasks) != ("faces",):
        raise ConfigError(f"model {spec.name!r} answers only the 'faces' task, not {tasks}")
    opts = config.faces
    return FacesStage(
        spec,
        detector=getattr(opts, "detector", "fast"),
        conf_threshold=opts.conf_threshold,
        with_embeddings=opts.with_embeddings,
    )
