"""Object detection: :class:`~pixsight.train.detector.DetectNet` (EfficientNet-Lite0 + FPN +
FCOS-style head) trained with focal + GIoU + centre-ness losses, validated with COCO mAP.

Data: :class:`pixsight.train.data.ImageDataset` with ``targets="boxes"`` (the shared
``transforms.v2`` augmentation moves boxes with the image, then the contract letterbox).
Validation decodes each image exactly as ``analyze`` does — the contract preprocessing
(:func:`pixsight.train.transforms.preprocess_array`), the dense outputs,
:func:`pixsight.core.boxes.postprocess_dense`, ``Letterbox.to_image`` — and scores the
detections with :func:`pixsight.evaluate.metrics.detection_metrics` (``map_50`` picks the
best epoch; ``map`` is COCO mAP@[.5:.95]).

>>> task = TASK
>>> task.name, task.primary_metric, task.output_names
('detect', 'map_50', ('boxes', 'scores'))
>>> task.arch({"channels": 96})["params"]["channels"]
96
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ...core.boxes import postprocess_dense
from ...core.errors import ConfigError
from ...data.dataset import Dataset
from ..backbone import PRETRAINED_MEAN, PRETRAINED_STD
from ..detector import DetectNet, fcos_loss

__all__ = ["ARCH_NAME", "DEFAULT_ARCH", "DEFAULT_POSTPROCESS", "DetectTask", "TASK"]

log = logging.getLogger(__name__)

ARCH_NAME = "effnet-lite0-fcos"
#: Architecture parameters and their defaults (``arch`` in the config overrides them).
DEFAULT_ARCH: dict[str, Any] = {
    "channels": 64,         # pyramid and head width
    "head_convs": 2,        # GroupNorm 3x3 convolutions per head tower
    "levels": 3,            # 3 = P3-P5 (strides 8-32); 4 adds P6 (stride 64) for very large objects
    "trainable_from": 3,    # trunk blocks before this one never train (stem + stride-2/4 stages)
    "center_radius": 1.5,   # FCOS centre sampling, in strides
    "range_mult": 4.0,      # level with stride s regresses edge distances up to range_mult * s
}
#: ``model.json`` ``postprocess`` (docs/design/learning.md).
DEFAULT_POSTPROCESS: dict[str, Any] = {"score_threshold": 0.05, "iou_threshold": 0.6, "max_detections": 100,
                                       "analyze_score_threshold": 0.3}
#: Default model input side (letterbox). docs/design/learning.md names 320; 256 is 1.6x cheaper
#: on CPU, and it is what meets the 15-minute CPU target (see ``config_defaults``).
DEFAULT_SIZE = 256
_POSTPROCESS_KEYS = ("score_threshold", "iou_threshold", "max_detections")


class DetectTask:
    """The ``detect`` :class:`~pixsight.train.tasks.base.TrainTask`."""

    name = "detect"
    primary_metric = "map_50"
    output_names = ("boxes", "scores")

    def default_preprocess(self, size: int | Sequence[int] | None) -> dict[str, Any]:
        """Letterbox to ``size`` (default :data:`DEFAULT_SIZE`) with the EfficientNet-Lite0 mean/std.

        >>> TASK.default_preprocess(256)["size"], TASK.default_preprocess(None)["resize"]
        ([256, 256], 'letterbox')
        """
        if size is None:
            hw = [DEFAULT_SIZE, DEFAULT_SIZE]
        elif isinstance(size, int):
            hw = [size, size]
        else:
            hw = [int(size[0]), int(size[1])]
        if min(hw) < 32 or hw[0] % 32 or hw[1] % 32:
            raise ConfigError(f"detector input size must be a multiple of 32 (>= 32), got {hw}; e.g. 256 or 320")
        return {"size": hw, "mean": list(PRETRAINED_MEAN), "std": list(PRETRAINED_STD), "resize": "letterbox"}

    def config_defaults(self) -> dict[str, Any]:
        """Training defaults measured on the synthetic shapes benchmark (benchmarks/bench_train_detect.py):
        batch 16, AdamW lr 2e-3 with OneCycle over 6 epochs, the first with the backbone
        frozen, then fine-tuning with the backbone at 0.25x the head's rate; the default
        augmentation without hue jitter (the slowest transform on CPU, and objects are rarely
        told apart by hue alone). There mAP@0.5 passes 0.90 after the first epoch and ends
        near 0.99 (mAP@[.5:.95] 0.80) in about 18 minutes on one busy core."""
        return {"batch_size": 16, "lr": 2e-3, "backbone_lr_mult": 0.25, "weight_decay": 1e-4,
                "epochs": 6, "freeze_epochs": 1, "warmup_epochs": 1.0, "schedule": "onecycle",
                "augment": {"preset": "default", "hue": 0.0}, "grad_clip": 10.0}

    def arch(self, params: dict[str, Any]) -> dict[str, Any]:
        """``{"name": "effnet-lite0-fcos", "params": {...}}`` with :data:`DEFAULT_ARCH` filled in."""
        unknown = sorted(set(params or {}) - set(DEFAULT_ARCH))
        if unknown:
            raise ConfigError(f"unknown detector arch key(s) {unknown}; known: {sorted(DEFAULT_ARCH)}")
        merged = {**DEFAULT_ARCH, **(params or {})}
        for key in ("channels", "head_convs", "levels", "trainable_from"):
            if isinstance(merged[key], bool) or not isinstance(merged[key], int):
                raise ConfigError(f"arch.{key} must be an integer, got {merged[key]!r}")
        for key in ("center_radius", "range_mult"):
            if isinstance(merged[key], bool) or not isinstance(merged[key], (int, float)) or merged[key] <= 0:
                raise ConfigError(f"arch.{key} must be a number > 0, got {merged[key]!r}")
            merged[key] = float(merged[key])
        return {"name": ARCH_NAME, "params": merged}

    def build_model(self, arch: dict[str, Any], num_classes: int, *, pretrained: bool) -> nn.Module:
        """A :class:`~pixsight.train.detector.DetectNet` for ``num_classes`` classes."""
        if arch.get("name", ARCH_NAME) != ARCH_NAME:
            raise ConfigError(f"detect task cannot build architecture {arch.get('name')!r} (expected {ARCH_NAME!r})")
        params = self.arch(arch.get("params", {}))["params"]
        return DetectNet(num_classes, pretrained=pretrained, **params)

    def torch_dataset(self, ds: Dataset, preprocess: dict[str, Any], augment: dict[str, Any] | None,
                      *, train: bool) -> torch.utils.data.Dataset:
        """Items ``(image (3, H, W), {"boxes", "labels", ...})`` in model-input pixels."""
        from ..data import ImageDataset

        return ImageDataset(ds, preprocess, augment if train else None, task="detect", train=train,
                            targets="boxes")

    def collate(self, items: Sequence[tuple[torch.Tensor, Any]]) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        """Stack the images; targets stay a list of ``{"boxes" (K, 4), "labels" (K,)}``."""
        images = torch.stack([image for image, _ in items])
        targets = [{"boxes": torch.as_tensor(t["boxes"], dtype=torch.float32).reshape(-1, 4),
                    "labels": torch.as_tensor(t["labels"], dtype=torch.int64).reshape(-1)} for _, t in items]
        return images, targets

    def loss(self, model: nn.Module, images: torch.Tensor, targets: Any,
             options: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """:func:`~pixsight.train.detector.fcos_loss` (``focal_gamma`` and ``class_weights``
        from the options)."""
        weights = options.get("class_weights")
        cw = torch.tensor(weights, dtype=torch.float32, device=images.device) if weights is not None else None
        out = model.dense(images)
        return fcos_loss(model, out, targets, gamma=float(options.get("focal_gamma", 2.0)), class_weights=cw)

    def validate(self, model: nn.Module, ds: Dataset, preprocess: dict[str, Any], postprocess: dict[str, Any] | None,
                 *, batch_size: int) -> dict[str, Any]:
        """COCO metrics on ``ds`` (``map_50``, ``map``, ``map_75``, size buckets) and ``val_loss``."""
        from ...evaluate.metrics import detection_metrics
        from ..data import load_record_image
        from ..transforms import preprocess_array

        post = {**DEFAULT_POSTPROCESS, **(postprocess or {})}
        post = {k: post[k] for k in _POSTPROCESS_KEYS}
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        predictions: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        loss_sum = 0.0
        step = max(1, batch_size)
        try:
            with torch.no_grad():
                for start in range(0, len(ds.images), step):
                    records = ds.images[start:start + step]
                    inputs, geometry, targets = [], [], []
                    for rec in records:
                        pixels = load_record_image(ds, rec)[0]
                        x, lb = preprocess_array(pixels, preprocess)
                        inputs.append(x)
                        geometry.append((lb, pixels.shape[1], pixels.shape[0]))
                        targets.append(_input_targets(rec, lb, pixels.shape[1], pixels.shape[0], x.shape[1:], device))
                    batch = torch.stack(inputs).to(device)
                    out = model.dense(batch)
                    loss_sum += float(fcos_loss(model, out, targets)[0]) * len(records)
                    boxes, scores = model.decode(out, (int(batch.shape[-2]), int(batch.shape[-1])))
                    boxes_np, scores_np = boxes.float().cpu().numpy(), scores.float().cpu().numpy()
                    for i, (lb, w, h) in enumerate(geometry):
                        b, s, c = postprocess_dense(boxes_np[i], scores_np[i], **post)
                        if lb is not None:
                            b = lb.to_image(b, w, h)
                        else:  # stretch
                            th, tw = batch.shape[-2:]
                            b = (b * np.float32([w / tw, h / th, w / tw, h / th])).astype(np.float32)
                        predictions.append((b, s, c))
        finally:
            model.train(was_training)
        metrics = detection_metrics(ds, predictions)
        keys = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_100")
        out_metrics = {k: float(metrics[k]) for k in keys if metrics.get(k) is not None}
        out_metrics.setdefault("map_50", 0.0)
        out_metrics.setdefault("map", 0.0)
        out_metrics["val_loss"] = loss_sum / max(1, len(ds.images))
        return out_metrics

    def default_postprocess(self) -> dict[str, Any]:
        """``{"score_threshold": 0.05, "iou_threshold": 0.6, "max_detections": 100,
        "analyze_score_threshold": 0.3}``."""
        return dict(DEFAULT_POSTPROCESS)


def _input_targets(rec: Any, lb: Any, width: int, height: int, size: Sequence[int],
                   device: torch.device) -> dict[str, torch.Tensor]:
    """A record's boxes (decoded-image pixels) mapped into model-input pixels, for the val loss."""
    anns = [a for a in rec.annotations if not a.iscrowd]
    gt = np.array([a.box for a in anns], np.float32).reshape(-1, 4)
    gt = gt * np.float32([width / rec.width, height / rec.height] * 2)
    if lb is not None:
        gt = gt * np.float32(lb.scale) + np.float32([lb.pad_x, lb.pad_y, lb.pad_x, lb.pad_y])
    else:
        gt = gt * np.float32([size[1] / width, size[0] / height] * 2)
    return {"boxes": torch.from_numpy(gt).to(device),
            "labels": torch.tensor([a.class_id for a in anns], dtype=torch.int64, device=device)}


TASK = DetectTask()
