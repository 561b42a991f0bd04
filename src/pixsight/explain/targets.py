"""What :func:`pixsight.evaluate.explain.explain` needs around a model: the torch module, its
task, classes and preprocessing, the layers a CAM looks at, and the input geometry.

- :func:`load_explainable` turns a run folder, a loaded ``Run`` (``pixsight.train.run``) or the
  name of the built-in ImageNet classifier (``"efficientnet-lite0"``) into an
  :class:`ExplainableModel`; any torch module with the contract's outputs can be wrapped
  directly (``ExplainableModel(module, task=..., classes=..., preprocess=...)``).
- :func:`prepare_image` makes the model input exactly as training / ``analyze`` do
  (:func:`pixsight.core.preprocess.prepare_input` for runs; the registry's centre crop for the
  ImageNet classifier) and returns an :class:`InputGeometry` that maps a heatmap or boxes from
  model-input pixels back onto the original image (undoing letterbox padding or the crop).
- :func:`target_layers` picks the layers a CAM reads (see docs/explain.md); :func:`run_cam`
  runs pytorch-grad-cam on them.

torch is imported on first use only (this module is imported by the CLI at start-up).

>>> import numpy as np
>>> x, geo = prepare_image(np.zeros((100, 200, 3), np.uint8),
...                        {"size": [64, 64], "mean": [127] * 3, "std": [128] * 3, "resize": "letterbox"})
>>> x.shape, (geo.scale_x, geo.offset_x, geo.offset_y)
((3, 64, 64), (0.32, 0.0, 16.0))
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..core.errors import ConfigError, ModelUnavailableError, UnknownModelError

__all__ = ["BUILTIN_MODELS", "DenseScoreTarget", "ExplainableModel", "InputGeometry", "load_explainable",
           "prepare_image", "resolve_class", "run_cam", "scores_only", "target_layers"]

log = logging.getLogger(__name__)

#: Built-in model names :func:`load_explainable` accepts (the torch twin of the registry entry).
BUILTIN_MODELS: tuple[str, ...] = ("efficientnet-lite0",)
TASKS: tuple[str, ...] = ("classify", "detect", "segment")


@dataclass
class ExplainableModel:
    """A torch module in eval mode plus what explaining it needs.

    Args:
        module: eval-mode module whose ``forward(images)`` returns the contract's outputs
            (classify ``logits [N, C]``; detect ``(boxes [N, L, 4], scores [N, L, C])``; segment
            ``logits [N, K + 1, H, W]``).
        task: ``"classify"``, ``"detect"`` or ``"segment"``.
        classes: class names (ImageNet: 1000 names; segment: without the background).
        preprocess: ``model.json`` ``preprocess`` (``resize`` ``"stretch"``/``"letterbox"``), or
            the ImageNet registry's ``"center_crop"`` block.
        postprocess: ``model.json`` ``postprocess`` (detect thresholds), else ``None``.
        name: what to call the model in results.
        layers: module names (``dict(module.named_modules())`` keys) the CAM reads; ``None``
            picks them (:func:`target_layers`).
    """

    module: Any
    task: str
    classes: list[str]
    preprocess: dict[str, Any]
    postprocess: dict[str, Any] | None = None
    name: str = "model"
    layers: tuple[str, ...] | None = None
    _layer_cache: dict[tuple[Any, ...], tuple[str, ...]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"cannot explain task {self.task!r}; explanations exist for {', '.join(TASKS)}")
        if not self.classes:
            raise ConfigError(f"model {self.name!r} has no class names")


def load_explainable(model: Any) -> ExplainableModel:
    """Resolve ``model`` (run folder path, loaded ``Run``, built-in name, or an
    :class:`ExplainableModel`) into an :class:`ExplainableModel`.

    Raises:
        UnknownModelError: the name is not a built-in model and not a run folder.
        ModelUnavailableError / WeightsError: the model exists but cannot be built here.

    >>> m = load_explainable("efficientnet-lite0")          # doctest: +SKIP
    >>> m.task, len(m.classes), m.preprocess["resize"]      # doctest: +SKIP
    ('classify', 1000, 'center_crop')
    """
    if isinstance(model, ExplainableModel):
        return model
    if isinstance(model, (str, os.PathLike)):
        text = os.fspath(model)
        if text in BUILTIN_MODELS:
            return _builtin_imagenet(text)
        path = Path(text)
        if (path.is_dir() and (path / "model.json").is_file()) or (path.name == "model.json" and path.is_file()):
            return _from_run(_load_run(path))
        if path.exists():
            raise UnknownModelError(f"{text} is not a run folder (no model.json inside); pass a folder written "
                                    f"by `pixsight train` or one of: {', '.join(BUILTIN_MODELS)}")
        close = difflib.get_close_matches(text, BUILTIN_MODELS, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UnknownModelError(f"no run folder or built-in model called {text!r}{hint}; explain works with a run "
                                f"folder (runs/<task>/<name>) or: {', '.join(BUILTIN_MODELS)}")
    if hasattr(model, "build_model") and hasattr(model, "task"):  # a loaded pixsight.train.run.Run
        return _from_run(model)
    raise ConfigError(f"cannot explain a {type(model).__name__}; pass a run folder, a loaded Run, "
                      f"{' / '.join(BUILTIN_MODELS)}, or an ExplainableModel")


def _load_run(path: Path) -> Any:
    try:
        from ..train.run import load_run
    except ImportError as err:
        raise ModelUnavailableError(f"cannot load run folders here ({err}); install the training extras: "
                                    "pip install 'pixsight[torch]'") from err
    return load_run(path)


def _from_run(run: Any) -> ExplainableModel:
    meta = getattr(run, "meta", None) or {}
    name = str(meta.get("name") or Path(getattr(run, "path", "run")).name)
    return ExplainableModel(run.build_model(), task=str(run.task), classes=list(run.classes),
                            preprocess=dict(run.preprocess), postprocess=dict(run.postprocess or {}) or None,
                            name=name)


def _builtin_imagenet(name: str) -> ExplainableModel:
    from ..models.efficientnet_lite import efficientnet_lite0
    from ..models.zoo.imagenet import PREPROCESS
    from ..tasks.imagenet import load_labels

    return ExplainableModel(efficientnet_lite0(weights="package"), task="classify",
                            classes=load_labels("imagenet_classes.txt", expected=1000),
                            preprocess=dict(PREPROCESS), name=name)


@dataclass(frozen=True)
class InputGeometry:
    """``input = image * scale + offset`` per axis (continuous pixel coordinates), plus sizes."""

    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float
    image_size: tuple[int, int]  # (H, W) of the original image
    input_size: tuple[int, int]  # (H, W) of the model input

    def heat_to_image(self, heat: np.ndarray) -> np.ndarray:
        """Resample an input-sized ``(H_in, W_in)`` map onto the image (bilinear); pixels the
        model did not see (outside a centre crop) are 0.

        >>> g = InputGeometry(0.5, 0.5, 0.0, 2.0, image_size=(4, 8), input_size=(8, 8))
        >>> h = np.zeros((8, 8), np.float32); h[2:4, :] = 1.0
        >>> g.heat_to_image(h).round(2)[:, 0].tolist()  # image rows 0-3 sample input rows 2.25-3.75
        [0.75, 1.0, 1.0, 0.75]
        """
        h, w = self.image_size
        pil = Image.fromarray(np.ascontiguousarray(heat, dtype=np.float32), "F")
        # PIL's AFFINE maps each output pixel to an input position: x_in = a * x + b * y + c.
        coeffs = (self.scale_x, 0.0, self.offset_x, 0.0, self.scale_y, self.offset_y)
        out = pil.transform((w, h), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR,
                            fillcolor=0.0)
        return np.asarray(out, dtype=np.float32)

    def boxes_to_image(self, boxes: np.ndarray) -> np.ndarray:
        """Map xyxy boxes from model-input pixels to image pixels (clipped to the image)."""
        b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
        b[:, [0, 2]] = ((b[:, [0, 2]] - self.offset_x) / self.scale_x).clip(0, self.image_size[1])
        b[:, [1, 3]] = ((b[:, [1, 3]] - self.offset_y) / self.scale_y).clip(0, self.image_size[0])
        return b

    def content_mask(self) -> np.ndarray:
        """``(H_in, W_in)`` bool: the input pixels that show the image (not letterbox padding)."""
        ih, iw = self.input_size
        h, w = self.image_size
        x0, y0 = max(0, round(self.offset_x)), max(0, round(self.offset_y))
        x1 = min(iw, round(self.offset_x + w * self.scale_x))
        y1 = min(ih, round(self.offset_y + h * self.scale_y))
        mask = np.zeros((ih, iw), dtype=bool)
        mask[y0:y1, x0:x1] = True
        return mask


def prepare_image(image: np.ndarray, preprocess: Mapping[str, Any]) -> tuple[np.ndarray, InputGeometry]:
    """Model input ``(3, H, W)`` float32 for one RGB uint8 image, and its :class:`InputGeometry`.

    ``resize`` ``"stretch"`` / ``"letterbox"`` go through :func:`pixsight.core.preprocess.prepare_input`
    (bit-for-bit what training and ``analyze`` feed a run); ``"center_crop"`` is the ImageNet
    registry entry's crop (:func:`pixsight.tasks.imagenet.preprocess_into`).

    Raises:
        ConfigError: unknown resize mode or invalid preprocess block; image not RGB uint8.
    """
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8 or 0 in arr.shape:
        raise ConfigError(f"image must be an RGB uint8 (H, W, 3) array, got {arr.dtype} {arr.shape}; "
                          "load files with pixsight.core.image.load_image")
    h, w = arr.shape[:2]
    if preprocess.get("resize") == "center_crop":
        from ..tasks.imagenet import preprocess_into

        size = int(preprocess.get("size", 224))
        crop_pct = float(preprocess.get("crop_pct", 0.875))
        x = np.empty((3, size, size), np.float32)
        preprocess_into(arr, x, size=size, crop_pct=crop_pct, resize="center_crop",
                        interpolation=str(preprocess.get("interpolation", "bilinear")))
        mean = np.asarray(preprocess.get("mean", (127.0,) * 3), np.float32)[:, None, None]
        std = np.asarray(preprocess.get("std", (128.0,) * 3), np.float32)[:, None, None]
        side = min(w, h) * crop_pct
        s = size / side
        geo = InputGeometry(s, s, -(w - side) / 2 * s, -(h - side) / 2 * s, (h, w), (size, size))
        return (x - mean) / std, geo
    from ..core.preprocess import parse_preprocess, prepare_input

    spec = parse_preprocess(preprocess)
    x, lb = prepare_input(arr, spec)
    th, tw = spec.size
    if lb is None:
        geo = InputGeometry(tw / w, th / h, 0.0, 0.0, (h, w), (th, tw))
    else:  # the effective per-axis scale of the resize (new size / image size), not the rounded one
        geo = InputGeometry(lb.new_width / w, lb.new_height / h, lb.pad_x, lb.pad_y, (h, w), (th, tw))
    return np.ascontiguousarray(x.transpose(2, 0, 1)), geo


def resolve_class(target: str | int, classes: Sequence[str]) -> int:
    """Class id of ``target`` (a name, case-insensitive if unambiguous, or an id).

    Raises:
        ConfigError: unknown name (with close matches) or id out of range.

    >>> resolve_class("Square", ["circle", "square"]), resolve_class(0, ["circle", "square"])
    (1, 0)
    """
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        if not 0 <= int(target) < len(classes):
            raise ConfigError(f"class id {target} is out of range; the model has {len(classes)} classes")
        return int(target)
    text = str(target).strip()
    if text in classes:
        return list(classes).index(text)
    folded = [i for i, c in enumerate(classes) if c.lower() == text.lower()]
    if folded:
        return folded[0]
    if text.isdigit() and int(text) < len(classes):
        return int(text)
    close = difflib.get_close_matches(text, list(classes), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else (
        f"; the classes are {', '.join(classes[:8])}{', ...' if len(classes) > 8 else ''}")
    raise ConfigError(f"unknown target class {text!r}{hint}")


def target_layers(model: ExplainableModel, x: Any, *, method: str) -> tuple[str, ...]:
    """Names of the modules whose outputs the CAM reads, in this order of preference:

    1. ``model.layers`` (the caller's choice) or a ``cam_layers`` attribute on the module;
    2. detect with a torchvision ``fpn``: its output levels (P3...), the maps the head reads;
       detect / segment with an ``EffNetLite0Backbone`` ``backbone``: its stage outputs
       (detect: strides 16 and 32; segment: stride 32, which beat stride 8 + 32 on a trained run);
    3. otherwise the last leaf module, in execution order, with a 4-D output larger than 1 x 1
       (segment: whose channel count is not the logits' K + 1) - the last conv block of a
       classifier, the last decoder features of a segmenter.

    ``x`` is one input batch; the probe runs one forward pass without gradients.
    """
    import torch

    key = (tuple(x.shape), method)
    if model.layers:
        names: tuple[str, ...] = tuple(model.layers)
    elif getattr(model.module, "cam_layers", None):
        names = tuple(model.module.cam_layers)
    elif key in model._layer_cache:
        return model._layer_cache[key]
    else:
        names = _known_layers(model) if model.task in ("detect", "segment") else ()
        if not names:
            names = _probe_last_feature_map(model, x, torch)
    modules = dict(model.module.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        close = difflib.get_close_matches(missing[0], list(modules), n=3)
        raise ConfigError(f"model {model.name!r} has no layer {missing[0]!r}"
                          + (f"; did you mean {', '.join(close)}?" if close else ""))
    model._layer_cache[key] = names
    return names


def _known_layers(model: ExplainableModel) -> tuple[str, ...]:
    fpn_levels = getattr(getattr(model.module, "fpn", None), "layer_blocks", None)
    if model.task == "detect" and fpn_levels is not None:  # torchvision FPN: the P3.. maps the head reads
        prefix = next(n for n, m in model.module.named_modules() if m is fpn_levels)
        return tuple(f"{prefix}.{i}" for i in range(len(fpn_levels)))
    backbone = getattr(model.module, "backbone", None)
    ends = getattr(getattr(backbone, "net", None), "stage_ends", None)
    if not ends or len(ends) < 7:
        return ()
    prefix = next((n for n, m in model.module.named_modules() if m is backbone), "backbone")
    stages = (6,) if model.task == "segment" else (4, 6)  # stride 32 / strides 16 + 32 (docs/explain.md)
    return tuple(f"{prefix}.net._blocks.{ends[i]}" for i in stages)


def _probe_last_feature_map(model: ExplainableModel, x: Any, torch: Any) -> tuple[str, ...]:
    seen: list[tuple[str, tuple[int, ...]]] = []
    handles = []
    for name, module in model.module.named_modules():
        if name and not any(True for _ in module.children()):
            handles.append(module.register_forward_hook(
                lambda mod, inp, out, name=name: seen.append((name, tuple(out.shape)))
                if isinstance(out, torch.Tensor) and out.dim() == 4 else None))
    try:
        with torch.no_grad():
            out = model.module(x)
    finally:
        for h in handles:
            h.remove()
    logits_channels = int(out.shape[1]) if model.task == "segment" and isinstance(out, torch.Tensor) else -1
    for name, shape in reversed(seen):
        if shape[2] * shape[3] > 1 and shape[1] != logits_channels:
            log.debug("CAM layer for %s: %s %s", model.name, name, shape)
            return (name,)
    raise ConfigError(f"model {model.name!r} has no 4-D feature map to explain; pass layers=(...) with a "
                      "convolutional layer's name")


class DenseScoreTarget:
    """CAM target: one location's class score in a detector's dense ``scores`` ``[L, C]``."""

    def __init__(self, loc: int, class_id: int) -> None:
        self.loc, self.class_id = loc, class_id

    def __call__(self, scores: Any) -> Any:
        return scores[self.loc, self.class_id]


def scores_only(module: Any) -> Any:
    """A detector wrapped to return only ``scores`` ``[N, L, C]`` (what a CAM target reads)."""
    import torch

    class ScoresOnly(torch.nn.Module):  # pytorch-grad-cam iterates over the batch of one output
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x)[1]

    return ScoresOnly(module).eval()


def run_cam(cam_model: Any, layers: list[Any], x: Any, targets: list[Any], method: str) -> np.ndarray:
    """``(H_in, W_in)`` heat in [0, 1] for the first image of ``x`` from pytorch-grad-cam's
    Grad-CAM / Grad-CAM++ or a sign-fixed EigenCAM; the hooks are always removed afterwards.

    Each layer gets its own pass and the normalised maps are averaged. (pytorch-grad-cam pairs
    several layers' activations and gradients by call order, which silently mismatches them
    for layers run in another order than listed, such as an FPN's top-down levels.)

    Raises:
        ConfigError: a layer runs more than once per forward pass (its map would be ambiguous).
    """
    import torch
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus

    cls = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "eigencam": _eigencam_class()}[method]
    if next(iter(cam_model.parameters()), None) is None:  # pytorch-grad-cam reads the device off a parameter
        holder = torch.nn.Module()
        holder.anchor = torch.nn.Parameter(torch.zeros(()), requires_grad=False)
        holder.inner = cam_model
        holder.forward = cam_model.forward  # type: ignore[method-assign]
        cam_model = holder
    maps = []
    for layer in layers:
        cam = cls(model=cam_model, target_layers=[layer])
        try:
            with torch.enable_grad():
                xin = x.clone().requires_grad_(method != "eigencam")  # gradients reach frozen layers too
                heat = cam(xin, targets=targets)[0]
                calls = len(cam.activations_and_grads.activations)
        finally:
            cam.activations_and_grads.release()
        if calls != 1:
            raise ConfigError(f"layer {type(layer).__name__} runs {calls} times per forward pass; pick a layer "
                              "that runs once (e.g. not a head shared by every pyramid level)")
        maps.append(np.nan_to_num(np.asarray(heat, dtype=np.float32)))
    heat = np.mean(maps, axis=0)
    peak = float(heat.max())
    return heat / peak if peak > 0 else heat


def _eigencam_class() -> type:
    """EigenCAM whose sign is fixed: SVD's first component is only defined up to sign, so the
    projection is flipped when it anti-correlates with the activation energy (|A| per pixel)."""
    from pytorch_grad_cam import EigenCAM
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    class OrientedEigenCAM(EigenCAM):
        def get_cam_image(self, input_tensor: Any, target_layer: Any, targets: Any, activations: Any,
                          grads: Any, eigen_smooth: bool) -> np.ndarray:
            acts = np.asarray(activations, dtype=np.float32)
            proj = get_2d_projection(acts)
            for i in range(len(proj)):
                energy = np.linalg.norm(acts[i], axis=0).ravel()
                p = proj[i].ravel()
                if np.std(p) > 0 and np.std(energy) > 0 and np.corrcoef(p, energy)[0, 1] < 0:
                    proj[i] = -proj[i]
            return proj

    return OrientedEigenCAM
