"""Where a CAM looks and how it runs: :func:`target_layers` picks the layers (see
docs/explain.md), :func:`run_cam` runs pytorch-grad-cam on them, :class:`DenseScoreTarget`
and :func:`scores_only` make a detector's dense scores a CAM target.

torch and pytorch-grad-cam are imported on first use only.

>>> import numpy as np
>>> float(DenseScoreTarget(1, 0)(np.array([[0.1, 0.2], [0.7, 0.3]])))
0.7
"""

from __future__ import annotations

import difflib
import logging
from typing import Any

import numpy as np

from ..core.errors import ConfigError
from .model import ExplainableModel

__all__ = ["DenseScoreTarget", "run_cam", "scores_only", "target_layers"]

log = logging.getLogger(__name__)


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
