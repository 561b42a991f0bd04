"""A stage for user ONNX models (``pixsight models add``): ``classify`` and ``embed``.

The input contract comes from ``spec.preprocess``: ``size`` ([h, w]), ``mean``/``std``,
``scale`` (default 1/255), ``layout`` (``NCHW`` or ``NHWC``), ``channels`` (3 or 1),
``channel_order`` (``RGB`` or ``BGR``), ``resize`` (``stretch``, formerly ``squash``, or ``center_crop``) and
``dtype`` (``float32``, ``float16`` or ``uint8``; uint8 inputs get raw pixels).

- classify: the first output is (N, K) scores; rows that are not already probabilities
  are soft-maxed; the top ``config.classify.top_k`` become a :class:`Classification`.
- embed: the first output is flattened and L2-normalised into an :class:`Embedding`.

Example::

    stage = create_stage(get_registry().get("birds"), AnalyzeConfig(), ("classify",))
    [out] = stage.run([load_image("robin.jpg")])
    out["classify"].top_label
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
from PIL import Image

from ..core.config import AnalyzeConfig
from ..core.deprecation import canonical_resize
from ..core.errors import ConfigError, WeightsError
from ..core.image import LoadedImage
from ..core.types import Classification, Embedding
from ..models.runtime import create_session
from ..models.spec import ModelSpec
from ..models.user import USER_TASKS, spec_labels
from ..models.weights import resolve_weights
from .base import StageInfo, StageOutput

__all__ = ["OnnxGenericStage", "create_stage", "preprocess", "to_probabilities"]

log = logging.getLogger(__name__)


def preprocess(pixels: np.ndarray, contract: dict[str, Any]) -> np.ndarray:
    """One RGB uint8 (H, W, 3) image -> the model's input tensor for it (no batch axis).

    >>> contract = {"size": [2, 2], "mean": [0.5] * 3, "std": [0.5] * 3, "layout": "NCHW"}
    >>> preprocess(np.full((4, 4, 3), 255, np.uint8), contract).shape
    (3, 2, 2)
    """
    h, w = (contract["size"], contract["size"]) if isinstance(contract["size"], int) else contract["size"]
    if pixels.ndim != 3 or pixels.shape[2] < 3 or min(pixels.shape[:2]) < 1:
        raise ValueError(f"expected RGB pixels of shape (H, W, 3) with H, W >= 1, got {pixels.shape}")
    img = Image.fromarray(np.ascontiguousarray(pixels[..., :3], dtype=np.uint8))
    if contract.get("resize", "stretch") == "center_crop":  # else stretch (or its former name, squash)
        crop_pct = float(contract.get("crop_pct", 0.875))
        short = min(img.size)
        scale = max(h, w) / crop_pct / short
        img = img.resize((max(w, round(img.width * scale)), max(h, round(img.height * scale))), Image.Resampling.BILINEAR)
        left, top = (img.width - w) // 2, (img.height - h) // 2
        img = img.crop((left, top, left + w, top + h))
    else:
        img = img.resize((w, h), Image.Resampling.BILINEAR)
    if int(contract.get("channels", 3)) == 1:
        img = img.convert("L")
    arr = np.asarray(img)
    arr = arr[..., None] if arr.ndim == 2 else arr
    if contract.get("channel_order", "RGB").upper() == "BGR":
        arr = arr[..., ::-1]
    dtype = contract.get("dtype", "float32")
    if dtype == "uint8":
        x = arr.astype(np.uint8)
    else:
        x = arr.astype(np.float32) * float(contract.get("scale", 1 / 255))
        x = (x - np.asarray(contract.get("mean", 0.0), np.float32)) / np.asarray(contract.get("std", 1.0), np.float32)
        x = x.astype(dtype)
    return np.ascontiguousarray(x.transpose(2, 0, 1) if contract.get("layout", "NCHW") == "NCHW" else x)


def to_probabilities(scores: np.ndarray) -> np.ndarray:
    """Rows of scores -> rows of probabilities; rows that already are probabilities stay.

    >>> to_probabilities(np.array([[0.0, 0.0], [0.25, 0.75]])).round(2).tolist()
    [[0.5, 0.5], [0.25, 0.75]]
    """
    s = np.asarray(scores, dtype=np.float64)
    out = np.empty_like(s)
    for i, row in enumerate(s):
        if np.all(np.isfinite(row)) and row.min() >= 0 and row.max() <= 1 and abs(row.sum() - 1) < 1e-3:
            out[i] = row / row.sum()
        else:
            e = np.exp(row - np.max(row))
            out[i] = e / e.sum()
    return out


class OnnxGenericStage:
    """Runs one user ONNX model for its task; see the module docstring.

    ``session`` may be given (tests); otherwise the model's weights are resolved and
    opened with the external-data check on.
    """

    def __init__(self, spec: ModelSpec, *, top_k: int = 5, batch_size: int = 16, session: Any = None) -> None:
        if spec.task not in USER_TASKS:
            raise ConfigError(f"model {spec.name!r}: the generic ONNX stage runs {' or '.join(USER_TASKS)}, not {spec.task!r}")
        if "size" not in spec.preprocess or "input" not in spec.preprocess:
            raise ConfigError(f"model {spec.name!r}: preprocess needs 'size' and 'input'; re-add it with pixsight models add")
        self.spec = spec
        self.contract = dict(spec.preprocess)
        self.contract["resize"] = canonical_resize(str(self.contract.get("resize", "stretch")),
                                                   where=f"model {spec.name!r}")
        self.top_k = max(1, int(top_k))
        self._session = session if session is not None else create_session(resolve_weights(spec), check_external_data=True)
        self.labels = spec_labels(spec) if spec.task == "classify" else None
        fixed = self.contract.get("batch")
        self._chunk = int(fixed) if fixed else max(1, int(batch_size))
        self._fixed_batch = bool(fixed)
        h, w = (self.contract["size"],) * 2 if isinstance(self.contract["size"], int) else self.contract["size"]
        self.info = StageInfo(
            tasks=(spec.task,),
            models={spec.task: spec.key},
            max_side=2 * max(int(h), int(w)),
            batch_size=self._chunk,
            extra={"backend": "onnx", "stage": "onnx_generic"},
        )

    def run(self, images: Sequence[LoadedImage]) -> list[StageOutput]:
        """One output per image: ``{task: result}`` or the exception that image raised."""
        if self._session is None:
            raise RuntimeError(f"stage for {self.spec.name!r} is closed")
        outputs: list[StageOutput | None] = [None] * len(images)
        ready: list[tuple[int, np.ndarray]] = []
        for i, image in enumerate(images):
            try:
                ready.append((i, preprocess(image.pixels, self.contract)))
            except Exception as err:  # one bad image never loses the others
                outputs[i] = err
        for start in range(0, len(ready), self._chunk):
            chunk = ready[start : start + self._chunk]
            for (i, _), result in zip(chunk, self._run_chunk([x for _, x in chunk])):
                outputs[i] = result
        return outputs  # type: ignore[return-value]

    def _forward(self, tensors: list[np.ndarray]) -> np.ndarray:
        batch = np.stack(tensors)
        n = len(tensors)
        if self._fixed_batch and n < self._chunk:
            batch = np.concatenate([batch, np.zeros((self._chunk - n, *batch.shape[1:]), batch.dtype)])
        out = np.asarray(self._session.run(None, {self.contract["input"]: batch})[0])
        return out.reshape(out.shape[0], -1)[:n]

    def _run_chunk(self, tensors: list[np.ndarray]) -> list[StageOutput]:
        try:
            rows = self._forward(tensors)
        except Exception as err:
            if len(tensors) == 1:
                return [WeightsError(f"model {self.spec.name!r} failed: {err}")]
            log.warning("model %s failed on a batch of %d (%s); retrying one by one", self.spec.name, len(tensors), err)
            return [out for t in tensors for out in self._run_chunk([t])]
        results: list[StageOutput] = []
        for row in rows:
            try:
                results.append({self.spec.task: self._result(row)})
            except Exception as err:
                results.append(err)
        return results

    def _result(self, row: np.ndarray) -> Classification | Embedding:
        row = row.astype(np.float64)
        if self.spec.task == "embed":
            norm = float(np.linalg.norm(row))
            if not np.isfinite(norm) or norm == 0:
                raise WeightsError(f"model {self.spec.name!r} returned a zero or non-finite embedding")
            return Embedding(vector=(row / norm).astype(np.float32), model=self.spec.key)
        labels = self.labels or [f"class_{i}" for i in range(row.shape[0])]
        if len(labels) != row.shape[0]:
            raise WeightsError(f"model {self.spec.name!r} returned {row.shape[0]} scores for {len(labels)} labels")
        probs = to_probabilities(row[None])[0]
        top = np.argsort(-probs, kind="stable")[: self.top_k]
        return Classification(
            class_ids=top, scores=np.clip(probs[top], 0.0, 1.0), labels=[labels[i] for i in top], model=self.spec.key
        )

    def close(self) -> None:
        """Drop the ONNX Runtime session. Safe to call twice."""
        self._session = None


def create_stage(spec: ModelSpec, config: AnalyzeConfig, tasks: Sequence[str]) -> OnnxGenericStage:
    """The analyzer's entry point: a stage for ``spec`` answering ``tasks``.

    Raises:
        ConfigError: a requested task is not the model's task.
    """
    wrong = [t for t in tasks if t != spec.task]
    if wrong:
        raise ConfigError(
            f"model {spec.name!r} answers {spec.task!r}, not {', '.join(map(repr, wrong))}; "
            f"pick a {wrong[0]} model in the config (pixsight models list --task {wrong[0]})"
        )
    return OnnxGenericStage(spec, top_k=config.classify.top_k, batch_size=config.batch_size)
