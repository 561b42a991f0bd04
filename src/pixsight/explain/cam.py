"""Explanations: where in an image a model looked for its answer (Grad-CAM family heatmaps).

:func:`explain` runs one image through a classifier, detector or segmenter and returns an
:class:`Explanation`: a heatmap in [0, 1] at the image's own size, a colour overlay, and what
was explained (class, score, and for a detector the box).

- classify: Grad-CAM (or Grad-CAM++ / EigenCAM) on the last convolutional block, for the
  predicted class or a requested one.
- detect: EigenCAM (default) on the backbone's deep feature maps - the first principal
  component of the activations, no class gradient through NMS needed - drawn with the
  detected boxes, optionally restricted to them (``box_only``). ``method="gradcam"`` also
  works: its target is the dense score of the location that produced the explained box.
- segment: Grad-CAM whose target is the sum of one class's logits over the pixels predicted
  as that class.

Heatmaps are computed at the model input and mapped back through the same preprocessing
(stretch, letterbox padding removed, or the ImageNet centre crop) onto the original image.
The CAM maths is pytorch-grad-cam's (``pytorch_grad_cam``); see docs/explain.md.

>>> from skimage import data
>>> e = explain("efficientnet-lite0", data.chelsea())                    # doctest: +SKIP
>>> e.label, e.heatmap.shape, e.overlay.shape                             # doctest: +SKIP
('Egyptian cat', (300, 451), (300, 451, 3))
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..core.errors import ConfigError
from ..core.fileio import atomic_writer
from ..core.spatial import Detections
from ..core.types import Classification
from .geometry import prepare_image
from .model import ExplainableModel, load_explainable, resolve_class
from .targets import DenseScoreTarget, run_cam, scores_only, target_layers

__all__ = ["METHODS", "Explanation", "explain", "render_overlay", "save_explanation"]

log = logging.getLogger(__name__)

#: CAM methods by name; ``"auto"`` picks Grad-CAM (classify, segment) or EigenCAM (detect).
METHODS: tuple[str, ...] = ("gradcam", "gradcam++", "eigencam")


@dataclass(frozen=True)
class Explanation:
    """One image's explanation.

    ``heatmap`` is float32 ``(H, W)`` in [0, 1] at the image's size (0 where the model saw
    nothing, e.g. outside a centre crop); ``overlay`` is the uint8 RGB picture (heat blended
    on the image, label banner, boxes). ``class_id``/``label``/``score`` name the explained
    class (``score``: classify softmax, detect the box score, segment the class's mean
    probability over its pixels). ``box`` is the explained detection (xyxy, image pixels);
    ``detections`` all detections drawn. ``layers`` are the module names the CAM read;
    ``data`` extras (``predicted``/``predicted_score`` for classify, ``coverage`` for segment).
    """

    heatmap: np.ndarray
    overlay: np.ndarray
    method: str
    task: str
    model: str
    class_id: int | None
    label: str | None
    score: float | None
    box: np.ndarray | None = None
    detections: Detections | None = None
    layers: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no pixel arrays)."""
        d: dict[str, Any] = {
            "method": self.method, "task": self.task, "model": self.model, "class_id": self.class_id,
            "label": self.label, "score": None if self.score is None else round(float(self.score), 4),
            "box": None if self.box is None else [round(float(v), 2) for v in self.box],
            "layers": list(self.layers), "width": int(self.heatmap.shape[1]), "height": int(self.heatmap.shape[0]),
            **self.data,
        }
        if self.detections is not None:
            d["detections"] = self.detections.to_dict()["detections"]
        return d


def explain(
    model: Any,
    image: np.ndarray,
    *,
    target: str | int | None = None,
    method: str = "auto",
    layers: Sequence[str] | None = None,
    box_only: bool = False,
    score_threshold: float | None = None,
    alpha: float = 0.5,
) -> Explanation:
    """Explain one prediction of ``model`` on ``image``.

    Args:
        model: a run folder (``runs/<task>/<name>``), a loaded ``Run``, ``"efficientnet-lite0"``
            (the built-in ImageNet classifier) or an :class:`~pixsight.explain.model.ExplainableModel`.
            Load it once with :func:`~pixsight.explain.model.load_explainable` when
            explaining many images.
        image: RGB uint8 ``(H, W, 3)`` pixels, or the :class:`~pixsight.core.image.LoadedImage`
            that :func:`pixsight.core.image.load_image` returns (safe decoding, EXIF rotation).
        target: class name or id to explain; default the prediction (classify: top class;
            detect: the best detection; segment: the class covering most pixels).
        method: ``"gradcam"``, ``"gradcam++"``, ``"eigencam"`` or ``"auto"``.
        layers: module names to read instead of the automatic choice.
        box_only: detect - keep the heat inside the detected boxes only, rescaled per box.
        score_threshold: detect - lowest score of the boxes drawn (default: model.json
            ``analyze_score_threshold``, else 0.3).
        alpha: strength of the heat colours in the overlay (0..1).

    Raises:
        ConfigError: unknown method / class / layer, or an image that is not RGB uint8.
        UnknownModelError, ModelUnavailableError, WeightsError: the model cannot be loaded.

    The CAM hooks live on the model's modules while it runs: do not explain with one
    ``ExplainableModel`` from several threads at once (load one per thread).

    >>> import numpy as np, torch
    >>> from pixsight.explain import ExplainableModel
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
    ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
    >>> m = ExplainableModel(net, task="classify", classes=["a", "b"],
    ...                      preprocess={"size": [16, 16], "mean": [127] * 3, "std": [128] * 3, "resize": "stretch"})
    >>> e = explain(m, np.zeros((30, 40, 3), np.uint8), target="b")
    >>> e.label, e.heatmap.shape, e.overlay.shape, e.layers
    ('b', (30, 40), (30, 40, 3), ('1',))
    """
    import torch

    image = getattr(image, "pixels", image)  # a LoadedImage
    em = load_explainable(model)
    if layers:
        em = replace(em, layers=tuple(layers), _layer_cache={})
    method = _resolve_method(method, em.task)
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must be between 0 and 1, got {alpha}")
    class_id = None if target is None else resolve_class(target, em.classes)
    x_np, geo = prepare_image(image, em.preprocess)
    x = torch.from_numpy(x_np)[None]
    names = target_layers(em, x, method=method)
    modules = dict(em.module.named_modules())
    task_fn = {"classify": _classify_target, "detect": _detect_target, "segment": _segment_target}[em.task]
    plan = task_fn(em, x, geo, class_id, score_threshold=score_threshold)
    heat_in = run_cam(plan.cam_model, [modules[n] for n in names], x, plan.targets, method)
    heat = geo.heat_to_image(heat_in)
    if box_only and plan.detections is not None:
        heat = _within_boxes(heat, [*plan.detections.boxes, *([plan.box] if plan.box is not None else [])])
    peak = float(heat.max()) if heat.size else 0.0
    heat = np.clip(heat / peak, 0.0, 1.0).astype(np.float32) if peak > 0 else np.zeros_like(heat, np.float32)
    label = None if plan.class_id is None else em.classes[plan.class_id]
    seen = geo.heat_to_image(np.ones(geo.input_size, np.float32)) > 0.5  # False outside a centre crop
    overlay = render_overlay(image, heat, alpha=alpha, title=None if label is None else f"{label} ({method})",
                             score=plan.score, detections=plan.detections, box=plan.box, seen=seen)
    return Explanation(heatmap=heat, overlay=overlay, method=method, task=em.task, model=em.name,
                       class_id=plan.class_id, label=label, score=plan.score, box=plan.box,
                       detections=plan.detections, layers=names, data=plan.data)


def _within_boxes(heat: np.ndarray, boxes: list[np.ndarray]) -> np.ndarray:
    """Heat inside the boxes only, rescaled to [0, 1] within each box (so a small object's
    structure shows next to a big one's); overlapping boxes keep the larger value."""
    out = np.zeros_like(heat)
    for b in boxes:
        x0, y0 = (max(0, int(v)) for v in np.floor(b[:2]))
        x1, y1 = (int(v) for v in np.ceil(b[2:]))
        region = heat[y0:y1, x0:x1]
        if region.size and region.max() > region.min():
            scaled = (region - region.min()) / (region.max() - region.min())
            out[y0:y1, x0:x1] = np.maximum(out[y0:y1, x0:x1], scaled)
    return out


def _resolve_method(method: str, task: str) -> str:
    m = str(method).lower().replace("_", "").replace("-", "")
    aliases = {"gradcam": "gradcam", "gradcam++": "gradcam++", "gradcampp": "gradcam++", "gradcamplusplus": "gradcam++",
               "eigencam": "eigencam", "auto": "eigencam" if task == "detect" else "gradcam"}
    if m not in aliases:
        raise ConfigError(f"unknown explanation method {method!r}; use one of {', '.join(METHODS)} or auto")
    return aliases[m]


@dataclass
class _Plan:
    cam_model: Any
    targets: list[Any]
    class_id: int | None
    score: float | None
    box: np.ndarray | None = None
    detections: Detections | None = None
    data: dict[str, Any] = field(default_factory=dict)


def _classify_target(em: ExplainableModel, x: Any, geo: Any, class_id: int | None, **_: Any) -> _Plan:
    import torch
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with torch.no_grad():
        probs = torch.softmax(_single(em.module(x), em), dim=1)[0].numpy()
    top = int(probs.argmax())
    cid = top if class_id is None else class_id
    data = {"predicted": em.classes[top], "predicted_score": round(float(probs[top]), 4)}
    return _Plan(em.module, [ClassifierOutputTarget(cid)], cid, float(probs[cid]), data=data)


def _segment_target(em: ExplainableModel, x: Any, geo: Any, class_id: int | None, **_: Any) -> _Plan:
    import torch
    from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

    with torch.no_grad():
        logits = _single(em.module(x), em)
    if logits.dim() != 4 or logits.shape[1] != len(em.classes) + 1:
        raise ConfigError(f"segment model {em.name!r} returned {tuple(logits.shape)}; expected logits "
                          f"[N, {len(em.classes) + 1}, H, W] (background + {len(em.classes)} classes)")
    probs = torch.softmax(logits, dim=1)[0].numpy()
    pred = probs.argmax(axis=0)
    content = np.asarray(Image.fromarray(geo.content_mask()).resize(pred.shape[::-1], Image.Resampling.NEAREST))
    counts = np.bincount(pred[content].ravel(), minlength=len(em.classes) + 1)[1:]
    if class_id is None:
        if counts.sum():
            class_id = int(counts.argmax())
        else:  # nothing but background: the class the model came closest to seeing
            class_id = int(probs[1:, content].max(axis=1).argmax())
    mask = (pred == class_id + 1) & content
    if not mask.any():
        log.info("no pixel is predicted as %r; explaining the class over the whole image", em.classes[class_id])
        mask = content
    score = float(probs[class_id + 1][mask].mean())
    data = {"coverage": round(float((pred[content] == class_id + 1).mean()), 4) if content.any() else 0.0}
    target = SemanticSegmentationTarget(class_id + 1, mask.astype(np.float32))
    return _Plan(em.module, [target], class_id, score, data=data)


def _detect_target(em: ExplainableModel, x: Any, geo: Any, class_id: int | None, *,
                   score_threshold: float | None) -> _Plan:
    import torch

    from ..core.boxes import postprocess_dense

    with torch.no_grad():
        out = em.module(x)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise ConfigError(f"detect model {em.name!r} must return (boxes [N, L, 4], scores [N, L, C])")
    boxes, scores = out[0][0].numpy(), out[1][0].numpy()
    pp = em.postprocess or {}
    threshold = float(score_threshold if score_threshold is not None else pp.get("analyze_score_threshold", 0.3))
    kept_boxes, kept_scores, kept_ids = postprocess_dense(
        boxes, scores, score_threshold=threshold, iou_threshold=float(pp.get("iou_threshold", 0.6)),
        max_detections=int(pp.get("max_detections", 100)))
    detections = Detections(boxes=geo.boxes_to_image(kept_boxes), scores=kept_scores.clip(0, 1), class_ids=kept_ids,
                            labels=[em.classes[i] for i in kept_ids], model=em.name)
    # The best detection after NMS is the best-scoring location, so no matching is needed.
    if class_id is None:
        loc, class_id = (int(v) for v in np.unravel_index(int(scores.argmax()), scores.shape))
    else:
        loc = int(scores[:, class_id].argmax())
    score = float(scores[loc, class_id])
    box = geo.boxes_to_image(boxes[loc])[0]
    data = {"location": loc, "above_threshold": score >= threshold}
    return _Plan(scores_only(em.module), [DenseScoreTarget(loc, class_id)], class_id, score, box=box,
                 detections=detections, data=data)


def _single(out: Any, em: ExplainableModel) -> Any:
    if isinstance(out, (tuple, list)):
        raise ConfigError(f"{em.task} model {em.name!r} returned {len(out)} outputs; expected one tensor")
    return out


def render_overlay(
    image: np.ndarray,
    heatmap: np.ndarray,
    *,
    alpha: float = 0.5,
    title: str | None = None,
    score: float | None = None,
    detections: Detections | None = None,
    box: np.ndarray | None = None,
    seen: np.ndarray | None = None,
    colormap: str = "jet",
) -> np.ndarray:
    """Blend ``heatmap`` ((H, W) in [0, 1]) onto ``image`` as colours, hot areas most opaque;
    draw ``title`` as a banner, ``detections`` as thin boxes and ``box`` as a thick one.
    Pixels where ``seen`` is False (the model never saw them) are dimmed instead of coloured.

    >>> out = render_overlay(np.zeros((20, 30, 3), np.uint8), np.ones((20, 30), np.float32))
    >>> out.shape, out.dtype, int(out[..., 0].max()) > 0
    ((20, 30, 3), dtype('uint8'), True)
    """
    from matplotlib import colormaps

    img = np.asarray(image)
    heat = np.clip(np.nan_to_num(np.asarray(heatmap, dtype=np.float32)), 0.0, 1.0)
    if heat.shape != img.shape[:2]:
        raise ConfigError(f"heatmap {heat.shape} does not match the image {img.shape[:2]}")
    colours = colormaps[colormap](heat)[..., :3] * 255.0
    a = (alpha * (0.35 + 0.65 * heat))[..., None]
    blended = img.astype(np.float32) * (1.0 - a) + colours * a
    if seen is not None:
        blended = np.where(np.asarray(seen, dtype=bool)[..., None], blended, img.astype(np.float32) * 0.45)
    blended = blended.round().clip(0, 255).astype(np.uint8)
    pil = Image.fromarray(blended, "RGB")
    draw = ImageDraw.Draw(pil)
    lw = max(1, round(max(pil.size) / 320))
    if detections is not None:
        for b in detections.boxes:
            draw.rectangle([float(v) for v in b], outline=(255, 255, 255), width=lw)
    if box is not None:
        x0, y0, x1, y1 = (float(v) for v in box)
        draw.rectangle([x0, y0, x1, y1], outline=(0, 0, 0), width=3 * lw + 2)
        draw.rectangle([x0, y0, x1, y1], outline=(0, 230, 118), width=3 * lw)
    if title:
        from ..core.types import Analysis
        from ..viz.annotate import draw_analysis

        banner = Classification(class_ids=[0], scores=[score if score is not None else 1.0], labels=[title])
        analysis = Analysis(path="", width=pil.width, height=pil.height, results={"classify": banner})
        pil = draw_analysis(np.asarray(pil), analysis)
    return np.asarray(pil, dtype=np.uint8)


def save_explanation(
    explanation: Explanation,
    out_dir: str | os.PathLike[str],
    *,
    source: str = "image",
    name: str | None = None,
) -> Path:
    """Write ``explanation.overlay`` as a metadata-free PNG inside ``out_dir``; return its path.

    The name is ``name`` (a plain ``.png`` file name) or :func:`pixsight.viz.annotate.safe_output_name`
    of ``source`` plus ``-<method>.png``, so ``a/x.jpg`` and ``b/x.jpg`` never collide.

    Raises:
        ConfigError: ``name`` has a folder part or is not a ``.png``.

    >>> import tempfile
    >>> e = Explanation(heatmap=np.zeros((4, 5), np.float32), overlay=np.zeros((4, 5, 3), np.uint8),
    ...                 method="gradcam", task="classify", model="m", class_id=0, label="a", score=0.5)
    >>> save_explanation(e, tempfile.mkdtemp(), source="../../etc/passwd.jpg").name[:7]
    'passwd-'
    """
    from ..viz.annotate import safe_output_name

    out = Path(out_dir)
    if name is None:
        name = safe_output_name(source, suffix=f"-{explanation.method.replace('+', 'p')}.png")
    elif os.path.basename(name) != name or name in (".", "..") or "\x00" in name or not name.lower().endswith(".png"):
        raise ConfigError(f"name must be a plain .png file name without folders, got {name!r}")
    out.mkdir(parents=True, exist_ok=True)
    target = out.resolve() / name
    pil = Image.fromarray(np.ascontiguousarray(explanation.overlay, dtype=np.uint8), "RGB")
    pil.info.clear()
    with atomic_writer(target, "wb") as fh:
        pil.save(fh, format="PNG", optimize=False)
    log.debug("wrote explanation of %s to %s", source, target)
    return target
