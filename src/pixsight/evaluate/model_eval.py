"""``evaluate_model``: run a trained model over a labelled dataset and score it.

Predictions come from the very ONNX stage ``pixsight analyze`` uses for trained runs
(:func:`pixsight.tasks.trained.load_trained_stage`), so eval measures what users get:

- classify: every class's softmax probability (``top_k`` = all classes);
- detect: detections down to the run's ``postprocess.score_threshold`` (default 0.05, the
  mAP setting; analyze reports only those above ``analyze_score_threshold``);
- segment: the argmax class map at the image's size.

Model classes are matched to the dataset's classes by name (order may differ).

Example::

    result = evaluate_model("runs/detect/shapes", "data/val.json", report="eval.html",
                            explainer=cam_explainer)   # from pixsight.explain: Grad-CAM in the report
    result.summary()   # {'map': 0.71, 'map_50': 0.93, ...}
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.errors import ConfigError, PixsightError
from ..data.dataset import Dataset
from .evaluator import EvalResult, finish_result, open_ground_truth
from .predictions import Predictions

if TYPE_CHECKING:
    from .report import Explainer

__all__ = ["evaluate_model", "predict_dataset"]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


def _class_mapping(model_classes: list[str], gt: Dataset, model: str) -> np.ndarray:
    """``lut[model class id] = dataset class id``; the two class lists must hold the same names."""
    missing = [c for c in gt.classes if c not in model_classes]
    extra = [c for c in model_classes if c not in gt.classes]
    if missing or extra:
        raise ConfigError(f"model {model!r} classes {model_classes} differ from the dataset's {gt.classes}"
                          + (f" (dataset only: {missing})" if missing else "")
                          + (f" (model only: {extra})" if extra else "")
                          + "; evaluate on data labelled with the classes the model was trained on")
    index = {n: k for k, n in enumerate(gt.classes)}
    return np.array([index[c] for c in model_classes], dtype=np.int64)


def _convert(task: str, result: Any, lut: np.ndarray, num_classes: int) -> Any:
    if task == "classify":
        probs = np.zeros(num_classes)
        probs[lut[np.asarray(result.class_ids, dtype=np.int64)]] = np.asarray(result.scores, dtype=np.float64)
        return probs
    if task == "detect":
        return (np.asarray(result.boxes, dtype=np.float64), np.asarray(result.scores, dtype=np.float64),
                lut[np.asarray(result.class_ids, dtype=np.int64)])
    class_map = np.asarray(result.class_map(), dtype=np.int64)
    return np.concatenate([[0], lut + 1])[class_map]


def predict_dataset(stage: Any, gt: Dataset, *, progress: Progress | None = None) -> tuple[list[Any], list[str]]:
    """Run ``stage`` (a ``TrainedStage``) over ``gt.images`` in batches.

    Returns the predictions aligned with ``gt.images`` (converted to dataset class ids; ``None``
    for an image that could not be read or run) and the error messages of those images.
    """
    from ..core.image import load_image

    task = stage.spec.task
    lut = _class_mapping(list(stage.classes), gt, stage.spec.name)
    batch = max(1, int(stage.info.batch_size or 16))
    items: list[Any] = [None] * len(gt.images)
    errors: list[str] = []
    for start in range(0, len(gt.images), batch):
        idx = list(range(start, min(start + batch, len(gt.images))))
        loaded, where = [], []
        for i in idx:
            try:
                loaded.append(load_image(gt.image_path(gt.images[i]), max_side=stage.info.max_side))
                where.append(i)
            except PixsightError as err:
                errors.append(str(err))
        for i, res in zip(where, stage.predict(loaded) if loaded else []):
            if isinstance(res, Exception):
                errors.append(f"{gt.images[i].file_name}: {res}")
                continue
            items[i] = _convert(task, res, lut, len(gt.classes))
        if progress is not None:
            progress(idx[-1] + 1, len(gt.images))
    if errors:
        log.warning("%d images could not be evaluated (first: %s)", len(errors), errors[0])
    return items, errors


def _resolve_spec(model_spec: str | os.PathLike[str]) -> Any:
    """The registry entry of a run folder or of a registered model name."""
    from ..models.registry import get_registry

    spec = get_registry().get(os.fspath(model_spec))  # run folders are accepted as well as names
    if spec.task not in ("classify", "detect", "segment") or spec.options.get("stage") != "trained":
        raise ConfigError(f"model {spec.name!r} is not a trained classify/detect/segment run; evaluate models "
                          "trained with `pixsight train` (or score any model's output with --predictions)")
    return spec


def evaluate_model(model_spec: str | os.PathLike[str], data: str | os.PathLike[str] | Dataset, *,
                   group_by: str | None = None, report: str | os.PathLike[str] | None = None,
                   progress: Progress | None = None, explainer: Explainer | None = None) -> EvalResult:
    """Evaluate a trained run (``runs/<task>/<name>``) or a registered trained model on ``data``.

    Args:
        model_spec: a run folder or a registry name (``pixsight models add RUN_DIR``).
        data: a labelled dataset (path in any format, or a loaded :class:`Dataset`) of the
            model's task; for detection a dataset with boxes, for segmentation with masks.
        group_by: per-image attribute to break every metric down by (largest gap included).
        report: write a self-contained HTML report here (worst examples drawn).
        explainer: adds Grad-CAM overlays of the worst examples to the report for
            classify/detect: pass :func:`pixsight.explain.cam_explainer` (``pixsight eval`` does).
        progress: ``progress(done, total)`` after each batch of images.

    Raises:
        UnknownModelError: ``model_spec`` is neither a run folder nor a registered model.
        WeightsError: the run has no usable ``model.onnx``.
        ConfigError: the model is not a trained classify/detect/segment run, or its classes
            differ from the dataset's.
        DatasetFormatError: ``data`` cannot be read.
    """
    from ..tasks.trained import load_trained_stage

    gt = open_ground_truth(data)
    spec = _resolve_spec(model_spec)
    post = dict(spec.options.get("postprocess") or {})
    task = spec.task
    if task == "classify" and any(r.label is None for r in gt.images):
        raise ConfigError(f"the dataset is a {gt.task} dataset without image labels; model {spec.name!r} is a classifier")
    if task in ("detect", "segment") and gt.task == "classify":
        raise ConfigError(f"model {spec.name!r} is a {task} model but the dataset has only image labels")
    # every class for a classifier; detections down to the mAP threshold (not analyze's)
    stage = load_trained_stage(spec, top_k=None, conf_threshold=float(post.get("score_threshold", 0.05)))
    try:
        items, errors = predict_dataset(stage, gt, progress=progress)
    finally:
        stage.close()
    model_dir = spec.options.get("run_dir") or os.fspath(model_spec)
    result = finish_result(task, gt, Predictions(task, items, spec.key), source=spec.key,
                           data=str(getattr(data, "root", data)), model=str(model_dir), group_by=group_by,
                           report=report, explainer=explainer)
    if errors:
        result.extra["errors"] = errors[:50]
        result.extra["failed"] = len(errors)
    return result
