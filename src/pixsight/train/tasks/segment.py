"""Semantic segmentation: EfficientNet-Lite0 + an LR-ASPP (or ASPP) head, trained with
cross-entropy (+ optional soft Dice).

The module (:class:`SegmentNet`) maps ``images`` ``[N, 3, H, W]`` to ``logits``
``[N, K + 1, H, W]`` at input resolution (channel 0 = background, channel ``k + 1`` = class
``k``; docs/design/learning.md). Heads:

- ``"lraspp"`` (default): MobileNetV3's Lite R-ASPP (torchvision's ``LRASPPHead``) over the
  stride-32 and stride-8 features; optionally (``detail=True``) a stride-4 refinement that
  adds a per-class correction from the stride-4 features;
- ``"aspp"``: a DeepLabV3+-style head, torchvision's ``ASPP`` over stride 32 and a decoder
  that concatenates the stride-8 features.

Measured on the synthetic shapes (256 px, 1 thread, CPU time per training image): lraspp
71 ms, lraspp + detail 90 ms, aspp 100 ms, lraspp with the whole trunk trainable
(``fixed_blocks=0``) 124 ms. lraspp alone reaches the target (benchmarks/bench_train_segment.py);
the detail branch gave no better mIoU in a 300-image comparison, so it is off by default.

Targets are :func:`pixsight.data.dataset.semantic_map` class maps taken through the same
augmentation as the image (:class:`pixsight.train.data.ImageDataset`); pixels equal to
:data:`IGNORE_INDEX` are left out of the loss and the metrics.

>>> task = TASK
>>> task.name, task.primary_metric, task.output_names
('segment', 'miou', ('logits',))
>>> model = task.build_model(task.arch({}), 2, pretrained=False).eval()     # doctest: +SKIP
>>> model(torch.zeros(1, 3, 128, 128)).shape                                # doctest: +SKIP
torch.Size([1, 3, 128, 128])
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ...core.errors import ConfigError, DatasetFormatError
from ...core.spatial import resize_nearest
from ...data.dataset import Dataset, semantic_map
from ..backbone import PRETRAINED_MEAN, PRETRAINED_STD, EffNetLite0Backbone

__all__ = ["ARCH_NAME", "DEFAULT_ARCH", "IGNORE_INDEX", "SegmentNet", "SegmentTask", "TASK", "logits_to_class_map",
           "segmentation_loss"]

log = logging.getLogger(__name__)

#: ``arch.name`` of the default head (``effnet-lite0-<head>`` in general).
ARCH_NAME = "effnet-lite0-lraspp"
#: Architecture parameters and their defaults (``arch`` in the config overrides them).
DEFAULT_ARCH: dict[str, Any] = {
    "head": "lraspp",      # "lraspp" (Lite R-ASPP) | "aspp" (DeepLabV3+-style)
    "channels": 128,       # width of the head
    "detail": False,       # add a stride-4 refinement (+21 % training cost; no gain measured on shapes)
    "fixed_blocks": 3,     # trunk blocks (after the stem) that never train: the stride-2/4 layers
    "dice_weight": 0.0,    # loss = CE + dice_weight * soft Dice (foreground classes)
}
#: Target pixels with this value count neither in the loss nor in the metrics.
IGNORE_INDEX = 255
#: Backbone feature maps of ``forward_stages``: strides 2, 4, 8, 16, 32.
_CHANNELS = (16, 24, 40, 112, 320)


def _conv_bn_relu(cin: int, cout: int, kernel: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class _AsppHead(nn.Module):
    """DeepLabV3+-style: ASPP over stride 32, decoder with the stride-8 features."""

    def __init__(self, num_outputs: int, channels: int) -> None:
        super().__init__()
        from torchvision.models.segmentation.deeplabv3 import ASPP

        self.aspp = ASPP(_CHANNELS[4], [2, 4, 6], out_channels=channels)
        self.low = _conv_bn_relu(_CHANNELS[2], 48)
        self.fuse = nn.Sequential(_conv_bn_relu(channels + 48, channels, 3), nn.Conv2d(channels, num_outputs, 1))

    def classifiers(self) -> list[nn.Conv2d]:
        return [self.fuse[-1]]

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        low = self.low(feats[2])
        high = F.interpolate(self.aspp(feats[4]), size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([low, high], dim=1))


class _LrasppHead(nn.Module):
    """torchvision's Lite R-ASPP over strides 8 and 32."""

    def __init__(self, num_outputs: int, channels: int) -> None:
        super().__init__()
        from torchvision.models.segmentation.lraspp import LRASPPHead

        self.head = LRASPPHead(_CHANNELS[2], _CHANNELS[4], num_outputs, channels)

    def classifiers(self) -> list[nn.Conv2d]:
        return [self.head.low_classifier, self.head.high_classifier]

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.head({"low": feats[2], "high": feats[4]})


class _PartlyFixedBackbone(EffNetLite0Backbone):
    """The trunk with its stem and first ``fixed_blocks`` blocks always frozen (weights and
    BatchNorm statistics), whatever :meth:`freeze` says: generic low-level filters that cost
    the most to back-propagate through (they run at strides 2 and 4)."""

    def __init__(self, *, pretrained: bool, fixed_blocks: int) -> None:
        super().__init__(pretrained=pretrained)
        self.fixed_blocks = int(fixed_blocks)
        self.freeze(False)

    def _fixed_modules(self) -> list[nn.Module]:
        if self.fixed_blocks <= 0:
            return []
        return [self.net._conv_stem, self.net._bn0, *self.net._blocks[:self.fixed_blocks]]

    def freeze(self, frozen: bool = True) -> None:
        super().freeze(frozen)
        for module in self._fixed_modules():
            for p in module.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> _PartlyFixedBackbone:
        super().train(mode)
        for module in self._fixed_modules():
            for m in module.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self


class SegmentNet(nn.Module):
    """EfficientNet-Lite0 trunk + segmentation head; ``forward(images)`` returns ``logits``
    ``[N, K + 1, H, W]`` at the input resolution (bilinear upsampling inside the graph).

    Args:
        num_classes: foreground classes ``K`` (background is added).
        head: ``"lraspp"`` or ``"aspp"``.
        channels: head width.
        detail: add the stride-4 refinement.
        fixed_blocks: trunk blocks (after the stem) kept frozen throughout (0 = none; only
            with ``pretrained``: random filters are not worth keeping).
        pretrained: start the trunk from the ImageNet weights.
    """

    def __init__(self, num_classes: int, *, head: str = "lraspp", channels: int = 128, detail: bool = False,
                 fixed_blocks: int = 3, pretrained: bool = True) -> None:
        super().__init__()
        if num_classes < 1:
            raise ConfigError(f"a segmenter needs at least one class, got {num_classes}")
        self.num_outputs = num_classes + 1
        self.backbone = _PartlyFixedBackbone(pretrained=pretrained, fixed_blocks=fixed_blocks if pretrained else 0)
        heads = {"lraspp": _LrasppHead, "aspp": _AsppHead}
        if head not in heads:
            raise ConfigError(f"unknown segmentation head {head!r}; use one of {', '.join(heads)}")
        self.head = heads[head](self.num_outputs, channels)
        # stride-4 refinement: per-class correction from the finer features
        self.detail = nn.Sequential(_conv_bn_relu(_CHANNELS[1], 32, 3), nn.Conv2d(32, self.num_outputs, 1)) \
            if detail else None
        self._init_classifiers()

    def _init_classifiers(self) -> None:
        """Small final layers: the first steps start near uniform class probabilities instead
        of large random logits from the pretrained features."""
        for conv in (*self.head.classifiers(), *(self.detail[-1:] if self.detail is not None else ())):
            nn.init.normal_(conv.weight, std=0.01)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not torch.onnx.is_in_onnx_export():
            # NHWC activations: about 1.5-2x faster depthwise convolutions on CPU (measured)
            images = images.contiguous(memory_format=torch.channels_last)
        feats = self.backbone.net.forward_stages(images)
        logits = self.head(feats)
        if self.detail is not None:
            fine = feats[1]
            logits = F.interpolate(logits, size=fine.shape[-2:], mode="bilinear", align_corners=False)
            logits = logits + self.detail(fine)
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)


def segmentation_loss(logits: torch.Tensor, targets: torch.Tensor, *, class_weights: torch.Tensor | None = None,
                      label_smoothing: float = 0.0, dice_weight: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Pixel cross-entropy (``IGNORE_INDEX`` skipped) plus ``dice_weight`` x soft Dice over the
    foreground classes present in the batch.

    >>> logits = torch.zeros(1, 3, 2, 2)
    >>> loss, parts = segmentation_loss(logits, torch.zeros(1, 2, 2, dtype=torch.long))
    >>> round(float(loss), 4), sorted(parts)
    (1.0986, ['ce'])
    """
    ce = F.cross_entropy(logits, targets, weight=class_weights, ignore_index=IGNORE_INDEX,
                         label_smoothing=label_smoothing)
    parts = {"ce": float(ce.detach())}
    if dice_weight <= 0:
        return ce, parts
    valid = (targets != IGNORE_INDEX).unsqueeze(1)
    probs = logits.softmax(dim=1) * valid
    onehot = F.one_hot(targets.clamp(max=logits.shape[1] - 1), logits.shape[1]).permute(0, 3, 1, 2) * valid
    inter = (probs * onehot).sum(dim=(0, 2, 3))[1:]
    denom = (probs + onehot).sum(dim=(0, 2, 3))[1:]
    present = onehot.sum(dim=(0, 2, 3))[1:] > 0
    if present.any():
        dice = 1 - ((2 * inter + 1) / (denom + 1))[present].mean()
    else:
        dice = logits.sum() * 0.0
    parts["dice"] = float(dice.detach())
    return ce + dice_weight * dice, parts


def logits_to_class_map(logits: torch.Tensor | np.ndarray, letterbox: Any, width: int, height: int) -> np.ndarray:
    """One image's ``[K + 1, H, W]`` logits -> ``(height, width)`` uint8/uint16 class map: argmax,
    crop out of the letterbox (``None`` = stretched input), nearest resize to the image
    (:func:`pixsight.core.spatial.resize_nearest`, as the ONNX stage of analyze does).

    >>> logits = np.zeros((2, 4, 4), np.float32); logits[1, :, :2] = 1
    >>> logits_to_class_map(logits, None, 8, 2).tolist()
    [[1, 1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0, 0, 0]]
    """
    arr = logits.detach().cpu().numpy() if isinstance(logits, torch.Tensor) else np.asarray(logits)
    cls = arr.argmax(axis=0).astype(np.uint8 if arr.shape[0] <= 255 else np.uint16)
    if letterbox is not None:
        x0, y0 = int(letterbox.pad_x), int(letterbox.pad_y)
        cls = cls[y0:y0 + letterbox.new_height, x0:x0 + letterbox.new_width]
    return resize_nearest(cls, height, width)


def _class_weights(option: Any, num_outputs: int, device: torch.device) -> torch.Tensor | None:
    """The ``class_weights`` loss option as a tensor over background + classes."""
    if option is None or isinstance(option, str):
        return None  # "auto" is resolved by SegmentTask.resolve_class_weights (or ignored)
    w = [float(v) for v in option]
    if len(w) == num_outputs - 1:  # one per foreground class: background gets 1
        w = [1.0, *w]
    if len(w) != num_outputs or min(w) < 0:
        raise ConfigError(f"class_weights needs {num_outputs - 1} (classes) or {num_outputs} (background + classes) "
                          f"non-negative numbers, got {list(option)}")
    return torch.tensor(w, dtype=torch.float32, device=device)


class SegmentTask:
    """:class:`~pixsight.train.tasks.base.TrainTask` for semantic segmentation."""

    name = "segment"
    primary_metric = "miou"
    output_names = ("logits",)

    def config_defaults(self) -> dict[str, Any]:
        """Defaults for CPU training: 10 epochs (the first with the trunk frozen), OneCycle,
        light augmentation. On the synthetic shapes benchmark (1,000 train images, 256 px) this
        gives val mIoU 0.907 in 8.1 min on 2 CPU cores (benchmarks/bench_train_segment.py)."""
        return {"epochs": 10, "batch_size": 16, "lr": 3e-3, "backbone_lr_mult": 0.3, "freeze_epochs": 1,
                "weight_decay": 1e-4, "schedule": "onecycle", "augment": {"preset": "light"}}

    def default_preprocess(self, size: int | None) -> dict[str, Any]:
        side = int(size or 256)
        return {"size": [side, side], "mean": list(PRETRAINED_MEAN), "std": list(PRETRAINED_STD),
                "resize": "letterbox"}

    def default_postprocess(self) -> dict[str, Any] | None:
        return None

    def arch(self, params: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(params) - set(DEFAULT_ARCH))
        if unknown:
            raise ConfigError(f"unknown segment arch key(s) {unknown}; known: {sorted(DEFAULT_ARCH)}")
        resolved = {**DEFAULT_ARCH, **params}
        return {"name": f"effnet-lite0-{resolved['head']}", "params": resolved}

    def build_model(self, arch: dict[str, Any], num_classes: int, *, pretrained: bool) -> nn.Module:
        p = {**DEFAULT_ARCH, **arch.get("params", {})}
        model = SegmentNet(num_classes, head=str(p["head"]), channels=int(p["channels"]), detail=bool(p["detail"]),
                           fixed_blocks=int(p["fixed_blocks"]), pretrained=pretrained)
        model.dice_weight = float(p["dice_weight"])  # read by loss()
        log.debug("segmenter %s for %d classes (pretrained=%s)", p, num_classes, pretrained)
        return model

    def torch_dataset(self, ds: Dataset, preprocess: dict[str, Any], augment: dict[str, Any] | None,
                      *, train: bool, cache_mb: int = 1024) -> torch.utils.data.Dataset:
        from ..data import ImageDataset

        return ImageDataset(ds, preprocess, augment, task="segment", train=train, targets="semantic",
                            cache_mb=cache_mb)

    def collate(self, items: Sequence[tuple[torch.Tensor, Any]]) -> tuple[torch.Tensor, Any]:
        images = torch.stack([x for x, _ in items])
        maps = torch.stack([torch.as_tensor(t["masks"]).as_subclass(torch.Tensor).long() for _, t in items])
        return images, maps

    def loss(self, model: nn.Module, images: torch.Tensor, targets: Any,
             options: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        logits = model(images)
        weights = _class_weights(options.get("class_weights"), logits.shape[1], logits.device)
        return segmentation_loss(logits, targets.to(logits.device), class_weights=weights,
                                 label_smoothing=float(options.get("label_smoothing") or 0.0),
                                 dice_weight=float(getattr(model, "dice_weight", 0.0)))

    @torch.no_grad()
    def validate(self, model: nn.Module, ds: Dataset, preprocess: dict[str, Any], postprocess: dict[str, Any] | None,
                 *, batch_size: int) -> dict[str, Any]:
        """``miou, per_class_iou, dice, per_class_dice, pixel_accuracy`` (SegmentationMeter) at the
        images' own resolution (the prediction goes through the same argmax / letterbox crop /
        nearest resize as analyze), plus ``val_loss`` (pixel cross-entropy at model size)."""
        from ...evaluate.metrics import SegmentationMeter
        from ..data import load_record_image
        from ..transforms import preprocess_array

        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        meter = SegmentationMeter(len(ds.classes) + 1, class_names=ds.classes)
        loss_sum, loss_n = 0.0, 0
        try:
            for start in range(0, len(ds.images), batch_size):
                recs = ds.images[start:start + batch_size]
                xs, boxes, gts = [], [], []
                for rec in recs:
                    pixels, _, _ = load_record_image(ds, rec)
                    if pixels.shape[:2] != (rec.height, rec.width):
                        raise DatasetFormatError(f"image is {pixels.shape[1]}x{pixels.shape[0]} but the annotations "
                                                 f"say {rec.width}x{rec.height}; fix width/height in the "
                                                 "annotation file", path=str(ds.image_path(rec)))
                    x, lb = preprocess_array(pixels, preprocess)
                    xs.append(x)
                    boxes.append(lb)
                    gts.append(semantic_map(rec))
                logits = model(torch.stack(xs).to(device))
                for lg, lb, gt, rec in zip(logits, boxes, gts, recs):
                    meter.update(gt, logits_to_class_map(lg, lb, rec.width, rec.height))
                    target = _map_to_input(gt, lb, tuple(lg.shape[-2:]))
                    loss_sum += float(F.cross_entropy(lg[None], target[None].to(device), ignore_index=IGNORE_INDEX,
                                                      reduction="sum"))
                    loss_n += int((target != IGNORE_INDEX).sum())
        finally:
            model.train(was_training)
        out = meter.result()
        out.pop("confusion", None)
        out["val_loss"] = loss_sum / max(loss_n, 1)
        return out


def _map_to_input(gt: np.ndarray, letterbox: Any, size: tuple[int, int]) -> torch.Tensor:
    """A class map placed like its image in the model input (nearest; padding = background)."""
    h, w = size
    if letterbox is None:
        return torch.from_numpy(resize_nearest(gt, h, w).astype(np.int64))
    out = np.zeros(size, np.int64)
    nw, nh = letterbox.new_width, letterbox.new_height
    small = resize_nearest(gt, nh, nw)
    x0, y0 = int(letterbox.pad_x), int(letterbox.pad_y)
    out[y0:y0 + nh, x0:x0 + nw] = small
    return torch.from_numpy(out)


TASK = SegmentTask()
