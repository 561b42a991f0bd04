"""``classify`` and ``embed`` from one ImageNet classifier forward pass on ONNX Runtime.

:class:`ImageNetStage` runs an ONNX model with a ``logits`` output (N, C) and, for
``embed``, a ``features`` output (N, D) — the EfficientNet-Lite0 export of
:mod:`pixsight.models.export` by default. One forward pass answers both tasks:

- ``classify``: softmax over the logits, the ``top_k`` best classes as a
  :class:`~pixsight.core.types.Classification` (best first, labels from the spec's labels file);
- ``embed``: the pooled features, L2-normalised, as an :class:`~pixsight.core.types.Embedding`.

Preprocessing follows ``spec.preprocess``: the centre ``crop_pct`` of the shorter side is
resized (bilinear, one Pillow call) to ``size`` x ``size`` and written straight into a
preallocated float32 batch, then scaled with ``mean``/``std``. ``info.max_side`` is small
(320) so the analyzer decodes big JPEGs cheaply at reduced size.

>>> from skimage import data                                    # doctest: +SKIP
>>> from pixsight.core.image import load_image                  # doctest: +SKIP
>>> from pixsight.models.zoo.imagenet import SPECS              # doctest: +SKIP
>>> stage = ImageNetStage(SPECS[0], top_k=3)                    # doctest: +SKIP
>>> out = stage.run([LoadedImage(...)])                         # doctest: +SKIP
>>> out[0]["classify"].top_label                                # doctest: +SKIP
'tiger cat'
"""

from __future__ import annotations

import importlib.resources
import logging
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.config import AnalyzeConfig
from ..core.deprecation import canonical_resize
from ..core.errors import ConfigError, UnknownModelError, WeightsError
from ..core.image import LoadedImage
from ..core.preprocess import INTERPOLATIONS, preprocess_into
from ..core.types import Classification, Embedding
from ..models.spec import ModelSpec
from .base import StageInfo, StageOutput

__all__ = ["ImageNetStage", "create_stage", "load_labels"]

log = logging.getLogger(__name__)

_TASKS = ("classify", "embed")
_DEFAULT_BATCH = 16


def load_labels(name: str, *, expected: int | None = None) -> list[str]:
    """Class names, one per line, from a pixsight resource name or a file path.

    Raises:
        WeightsError: the file is missing or does not have ``expected`` lines.

    >>> labels = load_labels("imagenet_classes.txt", expected=1000)
    >>> labels[281], labels[967]
    ('tabby', 'espresso')
    """
    path = Path(name)
    try:
        if path.is_absolute() or path.parent != Path("."):
            text = path.read_text(encoding="utf-8")
        else:
            text = importlib.resources.files("pixsight").joinpath("resources", name).read_text(encoding="utf-8")
    except (OSError, ValueError) as err:
        raise WeightsError(f"cannot read the labels file {name!r} ({err}); reinstall pixsight or fix the model's "
                           "labels entry") from err
    labels = [line.strip() for line in text.splitlines() if line.strip()]
    if expected is not None and len(labels) != expected:
        raise WeightsError(f"labels file {name!r} has {len(labels)} names, the model has {expected} classes")
    return labels


class ImageNetStage:
    """One ONNX classifier answering ``classify`` and/or ``embed`` (the Stage protocol).

    Args:
        spec: a registry entry (``backend="onnx"``); with ``options["export_from"]`` the
            ONNX file is exported and cached on first use, otherwise ``spec.weights`` is used.
            ``options["precision"]`` ``"int8"`` runs the gated INT8 variant of the export
            (:func:`~pixsight.models.quantize.ensure_int8_onnx`); ``"fp32"`` (default) the export.
        top_k: how many classes ``classify`` returns (best first).
        tasks: the tasks to answer, any of ``("classify", "embed")``.
        threads: ONNX Runtime intra-op threads (default: all CPUs this process may use).
        models: task -> ``name@version`` stored with the results (default: ``spec.key``).
        batch_size: largest batch sent to ONNX Runtime at once.

    Raises:
        ConfigError: an unknown task, ``top_k < 1``, or ``embed`` on a model without features.
        WeightsError / ModelUnavailableError: the model cannot be found or exported.
    """

    def __init__(
        self,
        spec: ModelSpec,
        *,
        top_k: int = 5,
        tasks: Sequence[str] = _TASKS,
        threads: int | None = None,
        models: dict[str, str] | None = None,
        batch_size: int = _DEFAULT_BATCH,
    ) -> None:
        tasks = tuple(tasks)
        unknown = [t for t in tasks if t not in _TASKS]
        if unknown or not tasks:
            raise ConfigError(f"ImageNetStage answers {_TASKS}, got {tasks}")
        if top_k < 1:
            raise ConfigError(f"top_k must be >= 1, got {top_k}")
        self.spec = spec
        pre = spec.preprocess
        self._size = int(pre.get("size", 224))
        self._pre = {"size": self._size, "crop_pct": float(pre.get("crop_pct", 0.875)),
                     "resize": canonical_resize(str(pre.get("resize", "center_crop")), where=f"model {spec.name!r}"),
                     "interpolation": str(pre.get("interpolation", "bilinear"))}
        if self._pre["interpolation"] not in INTERPOLATIONS:
            raise ConfigError(f"model {spec.name!r}: unknown interpolation {self._pre['interpolation']!r}")
        self._mean = np.asarray(pre.get("mean", [127.0] * 3), np.float32).reshape(1, 3, 1, 1)
        self._inv_std = (1.0 / np.asarray(pre.get("std", [128.0] * 3), np.float32)).reshape(1, 3, 1, 1)
        self._session = self._open(spec, threads)
        outputs = [o.name for o in self._session.get_outputs()]
        self._input = self._session.get_inputs()[0].name
        self._logits = "logits" if "logits" in outputs else outputs[0]
        self._features = "features" if "features" in outputs else None
        if "embed" in tasks and self._features is None:
            raise ConfigError(f"model {spec.name!r} has no 'features' output, so it cannot answer 'embed'")
        self._fetch = [self._logits] + ([self._features] if "embed" in tasks and self._features else [])
        n_classes = self._session.get_outputs()[outputs.index(self._logits)].shape[-1]
        self.labels: list[str] | None = None
        if "classify" in tasks:
            expected = n_classes if isinstance(n_classes, int) else None
            self.labels = load_labels(spec.labels, expected=expected) if spec.labels else None
        self.top_k = top_k
        self.tasks = tasks
        self._batch_size = max(1, int(batch_size))
        self._buf = np.empty((0, 3, self._size, self._size), np.float32)
        self._lock = threading.Lock()
        models = dict(models or {})
        self.info = StageInfo(
            tasks=tasks,
            models={t: models.get(t, spec.key) for t in tasks},
            max_side=int(pre["max_side"]) if pre.get("max_side") else None,
            batch_size=self._batch_size,
            extra={"input_size": self._size, "resize": self._pre["resize"],
                   "precision": str(spec.options.get("precision") or "fp32")},
        )

    @staticmethod
    def _open(spec: ModelSpec, threads: int | None) -> Any:
        from ..models.runtime import create_session

        precision = str(spec.options.get("precision") or "fp32")
        if precision not in ("fp32", "int8"):
            raise ConfigError(f"model {spec.name!r}: unknown precision {precision!r}; use 'fp32' or 'int8'")
        if precision == "int8":
            if not spec.options.get("export_from"):
                raise ConfigError(f"model {spec.name!r}: precision 'int8' needs options['export_from'] (the FP32 export)")
            from ..models.quantize import ensure_int8_onnx

            path = ensure_int8_onnx(spec)
        elif spec.options.get("export_from"):
            from ..models.export import ensure_onnx

            path = ensure_onnx(spec)
        else:
            from ..models.weights import resolve_weights

            path = resolve_weights(spec)
        # no busy-waiting: the analyzer runs other stages (and decoding) on the same cores
        return create_session(path, threads=threads, allow_spinning=False)

    # -- the Stage protocol ------------------------------------------------------------
    def run(self, images: Sequence[LoadedImage]) -> list[StageOutput]:
        """Classify/embed a batch; one dict per image, or the Exception that image raised."""
        if self._session is None:
            raise RuntimeError("ImageNetStage.run() after close()")
        out: list[StageOutput] = []
        with self._lock:
            for start in range(0, len(images), self._batch_size):
                out.extend(self._run_chunk(images[start:start + self._batch_size]))
        return out

    def close(self) -> None:
        """Drop the ONNX Runtime session. Safe to call twice."""
        self._session = None
        self._buf = np.empty((0, 3, self._size, self._size), np.float32)

    def __enter__(self) -> ImageNetStage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------
    def _run_chunk(self, images: Sequence[LoadedImage]) -> list[StageOutput]:
        if len(self._buf) < len(images):
            self._buf = np.empty((len(images), 3, self._size, self._size), np.float32)
        results: list[StageOutput | None] = [None] * len(images)
        good: list[int] = []
        for i, image in enumerate(images):
            try:
                preprocess_into(image.pixels, self._buf[len(good)], **self._pre)
                good.append(i)
            except Exception as err:  # noqa: BLE001 - one bad image must not fail the batch
                results[i] = _image_error(err, image)
        if good:
            batch = self._buf[: len(good)]
            batch -= self._mean
            batch *= self._inv_std
            try:
                outputs = self._session.run(self._fetch, {self._input: batch})
            except Exception as err:  # noqa: BLE001 - ORT errors have their own types
                log.warning("ONNX Runtime failed on a batch of %d: %s", len(good), err)
                for i in good:
                    results[i] = WeightsError(f"model {self.spec.name!r} failed to run: {err}", path=images[i].path or None)
                return results  # type: ignore[return-value]
            logits = outputs[0]
            feats = outputs[1] if len(outputs) > 1 else None
            for row, i in enumerate(good):
                try:
                    results[i] = self._results(logits[row], None if feats is None else feats[row])
                except Exception as err:  # noqa: BLE001
                    results[i] = _image_error(err, images[i])
        return results  # type: ignore[return-value]

    def _results(self, logits: np.ndarray, feats: np.ndarray | None) -> dict[str, Any]:
        res: dict[str, Any] = {}
        if "classify" in self.tasks:
            z = logits.astype(np.float64)
            p = np.exp(z - z.max())
            p /= p.sum()
            k = min(self.top_k, len(p))
            top = np.argpartition(-p, k - 1)[:k] if k < len(p) else np.arange(len(p))
            top = top[np.argsort(-p[top], kind="stable")]
            labels = [self.labels[c] if self.labels else str(c) for c in top]
            res["classify"] = Classification(class_ids=top, scores=p[top].astype(np.float32), labels=labels,
                                             model=self.info.models["classify"])
        if "embed" in self.tasks and feats is not None:
            v = feats.astype(np.float32)
            norm = float(np.linalg.norm(v))
            res["embed"] = Embedding(vector=v / norm if norm > 1e-12 else v, model=self.info.models["embed"])
        return res


def _image_error(err: Exception, image: LoadedImage) -> Exception:
    if isinstance(err, ValueError) and not hasattr(err, "to_dict"):
        from ..core.errors import ImageDecodeError

        return ImageDecodeError(f"cannot prepare the image for classification: {err}", path=image.path or None)
    return err


def create_stage(spec: ModelSpec, config: AnalyzeConfig, tasks: tuple[str, ...]) -> ImageNetStage:
    """Build the stage the analyzer uses for ``tasks`` (``classify`` and/or ``embed``).

    ``spec`` is the model of the first task; the model identity recorded for each task is
    that task's configured model (``config.classify.model`` / ``config.embed.model``).

    >>> from pixsight.models.zoo.imagenet import SPECS           # doctest: +SKIP
    >>> stage = create_stage(SPECS[0], AnalyzeConfig(), ("classify", "embed"))  # doctest: +SKIP
    >>> stage.info.models["embed"]                                 # doctest: +SKIP
    'efficientnet-lite0-embed@1'
    """
    models: dict[str, str] = {}
    for task in tasks:
        name = getattr(getattr(config, task, None), "model", None)
        if task == spec.task or not name or name == spec.name:
            models[task] = spec.key
            continue
        try:
            from ..models.registry import get_registry

            models[task] = get_registry().get(name).key
        except UnknownModelError:
            models[task] = spec.key
    return ImageNetStage(spec, top_k=config.classify.top_k, tasks=tasks, models=models,
                         batch_size=max(config.batch_size, 1))
