"""ONNX Runtime stages for models trained with ``pixsight train``: classify, detect, segment.

A run folder (``model.json`` + ``model.onnx``, docs/design/learning.md) or its registry entry
becomes a :class:`TrainedStage`. Preprocessing is :func:`pixsight.core.preprocess.prepare_input`,
the very function training validation uses, so analyze and eval see the same tensors.

- classify: softmax over ``logits`` -> the ``top_k`` best classes (:class:`Classification`);
- detect: ``boxes``/``scores`` -> :func:`pixsight.core.boxes.postprocess_dense` ->
  :meth:`Letterbox.to_image` -> :class:`Detections` above ``conf_threshold`` (analyze: the
  run's ``postprocess.analyze_score_threshold``; eval passes ``postprocess.score_threshold``);
- segment: argmax of ``logits``, cropped out of the letterbox, nearest-resized to the image
  (:class:`Segmentation`).

``run(images)`` answers in the coordinates of ``image.pixels`` (the analyzer scales results);
``predict(images)`` answers in full-image coordinates. Eval uses :func:`load_trained_stage`::

    stage = load_trained_stage("runs/detect/shapes", conf_threshold=0.05)
    [dets] = stage.predict([load_image("a.jpg")])      # Detections in image pixels
    stage.info.models                                  # {'detect': 'shapes@3f2a9c...'}
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.boxes import Letterbox, postprocess_dense
from ..core.config import AnalyzeConfig
from ..core.deprecation import renamed_kwargs
from ..core.errors import ConfigError, ImageDecodeError, PixsightError, WeightsError
from ..core.image import LoadedImage
from ..core.preprocess import prepare_input
from ..core.types import Classification, Detections, Segmentation
from ..core.spatial import resize_nearest
from ..models.spec import ModelSpec
from .base import StageInfo, StageOutput

__all__ = ["TrainedStage", "create_stage", "load_trained_stage", "softmax"]

log = logging.getLogger(__name__)

_TASKS = ("classify", "detect", "segment")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (stable for large logits).

    >>> softmax(np.array([[0.0, 0.0], [1000.0, 0.0]])).round(3).tolist()
    [[0.5, 0.5], [1.0, 0.0]]
    """
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class TrainedStage:
    """One trained run on ONNX Runtime answering its own task (the Stage protocol).

    Args:
        spec: the run's registry entry (:func:`pixsight.models.runs.run_spec`).
        top_k: classes a classifier returns, best first (``None`` = all of them).
        conf_threshold: lowest detection score kept (``None`` = the run's
            ``postprocess.analyze_score_threshold``); formerly ``score_threshold``.
        batch_size: images per ONNX Runtime call.
        threads: ONNX Runtime intra-op threads (default: every CPU this process may use).
        session: an already open ONNX Runtime session (tests).

    Raises:
        ConfigError: the spec is not a trained classify/detect/segment run.
        WeightsError: the ONNX file is missing or cannot be opened.
    """

    @renamed_kwargs(score_threshold="conf_threshold")
    def __init__(self, spec: ModelSpec, *, top_k: int | None = None, conf_threshold: float | None = None,
                 batch_size: int = 16, threads: int | None = None, session: Any = None) -> None:
        if spec.task not in _TASKS or not spec.options.get("classes"):
            raise ConfigError(f"model {spec.name!r} is not a trained classify/detect/segment run "
                              "(pixsight models add RUN_DIR registers one)")
        self.spec = spec
        self.classes: list[str] = list(spec.options["classes"])
        self.preprocess = dict(spec.preprocess)
        post = dict(spec.options.get("postprocess") or {})
        self.iou_threshold = float(post.get("iou_threshold", 0.6))
        self.max_detections = int(post.get("max_detections", 100))
        if conf_threshold is None:
            conf_threshold = float(post.get("analyze_score_threshold", 0.3))
        if not 0.0 <= float(conf_threshold) <= 1.0:
            raise ConfigError(f"conf_threshold must be in [0, 1], got {conf_threshold}")
        self.conf_threshold = float(conf_threshold)
        self.top_k = len(self.classes) if top_k is None else max(1, min(int(top_k), len(self.classes)))
        self._batch = max(1, int(batch_size))
        if session is None:
            from ..models.runtime import create_session
            from ..models.weights import resolve_weights

            # no busy-waiting: the analyzer runs other stages (and decoding) on the same cores
            session = create_session(resolve_weights(spec), threads=threads, allow_spinning=False)
        self._session = session
        names = [o.name for o in session.get_outputs()]
        self._fetch = ["boxes", "scores"] if spec.task == "detect" else ["logits"]
        missing = [n for n in self._fetch if n not in names]
        if missing:
            raise WeightsError(f"model {spec.name!r}: the ONNX file has no output {missing} (it has {names}); "
                               "it does not follow the run contract (docs/design/learning.md)")
        self._lock = threading.Lock()
        h, w = self.preprocess["size"]
        self.info = StageInfo(
            tasks=(spec.task,),
            models={spec.task: spec.key},
            # decoded at up to twice the input size: cheap for big photos, enough detail to resize from
            max_side=2 * max(int(h), int(w)),
            batch_size=self._batch,
            extra={"backend": "onnx", "stage": "trained", "run_dir": spec.options.get("run_dir"),
                   "input_size": [int(h), int(w)], "conf_threshold": self.conf_threshold},
        )

    # -- the Stage protocol ------------------------------------------------------------
    def run(self, images: Sequence[LoadedImage]) -> list[StageOutput]:
        """One ``{task: result}`` per image (in ``image.pixels`` coordinates), or its exception."""
        if self._session is None:
            raise RuntimeError(f"stage for {self.spec.name!r} is closed")
        out: list[StageOutput] = []
        with self._lock:
            for start in range(0, len(images), self._batch):
                out.extend(self._run_chunk(images[start:start + self._batch]))
        return out

    def predict(self, images: Sequence[LoadedImage]) -> list[Any]:
        """Like :meth:`run`, but each entry is the result itself in full-image coordinates
        (scaled by ``image.scale``), or the exception that image raised."""
        out: list[Any] = []
        for image, res in zip(images, self.run(images)):
            out.append(res if isinstance(res, Exception) else res[self.spec.task].scaled(*image.scale))
        return out

    def close(self) -> None:
        """Drop the ONNX Runtime session. Safe to call twice."""
        self._session = None

    def __enter__(self) -> TrainedStage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------
    def _run_chunk(self, images: Sequence[LoadedImage]) -> list[StageOutput]:
        results: list[StageOutput | None] = [None] * len(images)
        ready: list[tuple[int, np.ndarray, Letterbox | None]] = []
        for i, image in enumerate(images):
            try:
                x, lb = prepare_input(image.pixels, self.preprocess)
                ready.append((i, x.transpose(2, 0, 1), lb))
            except Exception as err:  # noqa: BLE001 - one bad image never loses the others
                results[i] = err if isinstance(err, PixsightError) else ImageDecodeError(
                    f"cannot prepare the image for {self.spec.name!r}: {err}", path=image.path or None)
        if ready:
            try:
                outputs = self._session.run(self._fetch, {"images": np.stack([x for _, x, _ in ready])})
            except Exception as err:  # noqa: BLE001 - ORT raises its own types
                if len(ready) > 1:
                    log.warning("model %s failed on a batch of %d (%s); retrying one by one",
                                self.spec.name, len(ready), err)
                    for i, _, _ in ready:
                        results[i] = self._run_chunk([images[i]])[0]
                    return results  # type: ignore[return-value]
                i = ready[0][0]
                results[i] = WeightsError(f"model {self.spec.name!r} failed to run: {err}", path=images[i].path or None)
                return results  # type: ignore[return-value]
            for row, (i, _, lb) in enumerate(ready):
                h, w = images[i].pixels.shape[:2]
                try:
                    results[i] = {self.spec.task: self._decode([o[row] for o in outputs], lb, w, h)}
                except Exception as err:  # noqa: BLE001
                    results[i] = err
        return results  # type: ignore[return-value]

    def _decode(self, outs: list[np.ndarray], lb: Letterbox | None, w: int, h: int) -> Any:
        if self.spec.task == "classify":
            return self._classify(outs[0])
        if self.spec.task == "detect":
            return self._detect(outs[0], outs[1], lb, w, h)
        return self._segment(outs[0], lb, w, h)

    def _classify(self, logits: np.ndarray) -> Classification:
        if logits.shape != (len(self.classes),):
            raise WeightsError(f"model {self.spec.name!r} returned {logits.shape} logits for {len(self.classes)} classes")
        p = softmax(logits[None])[0]
        top = np.argsort(-p, kind="stable")[: self.top_k]
        return Classification(class_ids=top, scores=np.clip(p[top], 0.0, 1.0).astype(np.float32),
                              labels=[self.classes[c] for c in top], model=self.spec.key)

    def _detect(self, boxes: np.ndarray, scores: np.ndarray, lb: Letterbox | None, w: int, h: int) -> Detections:
        if scores.ndim != 2 or scores.shape[1] != len(self.classes) or boxes.shape != (scores.shape[0], 4):
            raise WeightsError(f"model {self.spec.name!r} returned boxes {boxes.shape} and scores {scores.shape}; "
                               f"expected (L, 4) and (L, {len(self.classes)})")
        b, s, c = postprocess_dense(boxes, scores, score_threshold=self.conf_threshold,
                                    iou_threshold=self.iou_threshold, max_detections=self.max_detections)
        if lb is None:  # stretched input: scale each axis back
            th, tw = self.preprocess["size"]
            b = b * np.array([w / tw, h / th, w / tw, h / th], np.float32)
            b[:, [0, 2]] = b[:, [0, 2]].clip(0, w)
            b[:, [1, 3]] = b[:, [1, 3]].clip(0, h)
        else:
            b = lb.to_image(b, w, h)
        b[:, 2:] = np.maximum(b[:, 2:], b[:, :2])  # a degenerate box stays valid xyxy
        return Detections(boxes=b, scores=np.clip(s, 0.0, 1.0), class_ids=c,
                          labels=[self.classes[k] for k in c], model=self.spec.key)

    def _segment(self, logits: np.ndarray, lb: Letterbox | None, w: int, h: int) -> Segmentation:
        if logits.ndim != 3 or logits.shape[0] != len(self.classes) + 1:
            raise WeightsError(f"model {self.spec.name!r} returned logits {logits.shape}; "
                               f"expected ({len(self.classes) + 1}, H, W)")
        pred = logits.argmax(axis=0).astype(np.uint8 if len(self.classes) < 255 else np.uint16)
        if lb is not None:
            x0, y0 = int(lb.pad_x), int(lb.pad_y)
            pred = pred[y0:y0 + lb.new_height, x0:x0 + lb.new_width]
        return Segmentation.from_class_map(resize_nearest(pred, h, w), self.classes, model=self.spec.key)


@renamed_kwargs(score_threshold="conf_threshold")
def load_trained_stage(
    spec_or_path: ModelSpec | str | os.PathLike[str],
    *,
    conf_threshold: float | None = None,
    top_k: int | None = None,
    batch_size: int = 16,
    threads: int | None = None,
) -> TrainedStage:
    """A :class:`TrainedStage` for a run folder, a registered model name or a spec.

    ``conf_threshold=None`` keeps what analyze reports (the run's
    ``analyze_score_threshold``); eval passes the run's ``postprocess.score_threshold`` to get
    the full list for mAP. ``top_k=None`` returns every class of a classifier (full
    probability vector, best first).

    Raises:
        ConfigError: not a trained run / unknown folder layout.
        UnknownModelError: a name that is neither registered nor a run folder.
        WeightsError: ``model.onnx`` is missing or broken.

    Example::

        stage = load_trained_stage("runs/segment/leaves")
        [seg] = stage.predict([load_image("leaf.jpg")])
        seg.class_map().shape      # (height, width) of the image
    """
    if isinstance(spec_or_path, ModelSpec):
        spec = spec_or_path
    else:
        from ..models.registry import get_registry
        from ..models.runs import is_run_dir, run_spec

        ref = os.fspath(spec_or_path)
        spec = run_spec(ref) if is_run_dir(ref) or isinstance(spec_or_path, Path) else get_registry().get(ref)
    return TrainedStage(spec, top_k=top_k, conf_threshold=conf_threshold, batch_size=batch_size, threads=threads)


def create_stage(spec: ModelSpec, config: AnalyzeConfig, tasks: Sequence[str]) -> TrainedStage:
    """The analyzer's entry point: the stage for a trained run answering its task.

    Raises:
        ConfigError: a requested task is not the run's task.
    """
    wrong = [t for t in tasks if t != spec.task]
    if wrong:
        raise ConfigError(f"model {spec.name!r} answers {spec.task!r}, not {', '.join(map(repr, wrong))}")
    threshold = config.detect.conf_threshold if spec.task == "detect" and config.detect.conf_threshold >= 0 else None
    return TrainedStage(spec, top_k=config.classify.top_k if spec.task == "classify" else None,
                        conf_threshold=threshold, batch_size=config.batch_size)
