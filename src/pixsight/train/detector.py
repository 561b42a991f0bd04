"""The object detector: EfficientNet-Lite0 + feature pyramid + an FCOS-style anchor-free head.

:class:`DetectNet` is the ``nn.Module`` of ``pixsight train detect``; :func:`fcos_loss` its
training loss. Every feature-map location of every pyramid level predicts, per class, "an
object's centre is here" (sigmoid focal loss), the distances from the location to the
object's left/top/right/bottom edges (GIoU loss) and a *centre-ness* (BCE) that downweights
off-centre locations. The eval-mode ``forward`` returns the dense outputs of
docs/design/learning.md: ``boxes`` ``[N, L, 4]`` xyxy in model-input pixels and ``scores``
``[N, L, C]`` = ``sqrt(sigmoid(class) * sigmoid(centreness))``, all levels concatenated, with
no data-dependent control flow (it exports to ONNX as is); the final detections come from
:func:`pixsight.core.boxes.postprocess_dense`.

Choices for small CPU budgets: a narrow pyramid (64 channels), two GroupNorm convs per head
tower, pyramid levels P3-P5 (strides 8, 16, 32; ``levels=4`` adds a stride-64 P6), a trunk
with frozen BatchNorm statistics whose first stages (strides 2 and 4) never train, and
FCOS's scale ranges shrunk to suit 256-320 px inputs (a location on level ``s`` regresses
objects whose largest edge distance is between ``range_mult * s / 2`` and ``range_mult * s``).

>>> net = DetectNet(3, pretrained=False).eval()
>>> boxes, scores = net(torch.zeros(2, 3, 128, 128))
>>> tuple(boxes.shape), tuple(scores.shape)       # 16*16 + 8*8 + 4*4 locations
((2, 336, 4), (2, 336, 3))
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.ops import FeaturePyramidNetwork, generalized_box_iou_loss, sigmoid_focal_loss
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock
from torchvision.ops.misc import FrozenBatchNorm2d

from ..core.errors import ConfigError
from .backbone import STAGE_CHANNELS, EffNetLite0Backbone

__all__ = ["DetectNet", "DenseOutputs", "DetectionBackbone", "fcos_loss", "assign_targets"]


class DetectionBackbone(EffNetLite0Backbone):
    """EfficientNet-Lite0 trunk for detection: BatchNorm statistics and affine parameters are
    frozen (``FrozenBatchNorm2d``: small detection batches give poor batch statistics), and
    the blocks before ``trainable_from`` (the stem is block -1) stay frozen even after the
    loop unfreezes the backbone: the high-resolution early stages are the costly part of a
    backward pass on CPU and hold generic edge filters that need no fine-tuning.

    >>> b = DetectionBackbone(pretrained=False, trainable_from=3)
    >>> b.freeze(False)
    >>> b.net._conv_stem.weight.requires_grad, b.net._blocks[3]._depthwise_conv.weight.requires_grad
    (False, True)
    """

    def __init__(self, *, pretrained: bool = True, trainable_from: int = 3) -> None:
        super().__init__(pretrained=pretrained)
        _freeze_batchnorm(self.net)
        self.trainable_from = int(trainable_from)

    def _always_frozen(self) -> list[nn.Parameter]:
        net = self.net
        params = list(net._conv_stem.parameters()) + list(net._bn0.parameters())
        for block in net._blocks[: max(0, self.trainable_from)]:
            params += list(block.parameters())
        return params

    def freeze(self, frozen: bool = True) -> None:
        super().freeze(frozen)
        for p in self._always_frozen():
            p.requires_grad_(False)


def _freeze_batchnorm(module: nn.Module) -> None:
    """Replace every ``BatchNorm2d`` under ``module`` with a ``FrozenBatchNorm2d`` (same eps)."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            frozen.weight.copy_(child.weight.detach())
            frozen.bias.copy_(child.bias.detach())
            frozen.running_mean.copy_(child.running_mean)
            frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            _freeze_batchnorm(child)


class _LastLevelP6(ExtraFPNBlock):
    """One extra stride-64 level from P5 (a 3x3 stride-2 convolution)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.p6 = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, results: list[torch.Tensor], x: list[torch.Tensor],
                names: list[str]) -> tuple[list[torch.Tensor], list[str]]:
        return [*results, self.p6(F.relu(results[-1]))], [*names, "p6"]


def _tower(channels: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                   nn.GroupNorm(min(16, channels // 4), channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


@dataclass
class DenseOutputs:
    """Raw per-location outputs of :meth:`DetectNet.dense` (training and validation use them).

    ``cls_logits`` ``[N, L, C]``, ``ltrb`` ``[N, L, 4]`` edge distances in input pixels,
    ``ctr_logits`` ``[N, L]``, ``points`` ``[L, 2]`` (x, y) location centres, ``strides`` ``[L]``.
    """

    cls_logits: torch.Tensor
    ltrb: torch.Tensor
    ctr_logits: torch.Tensor
    points: torch.Tensor
    strides: torch.Tensor


class DetectNet(nn.Module):
    """EfficientNet-Lite0 + FPN + FCOS-style head.

    Args:
        num_classes: object classes ``C``.
        channels: width of the pyramid and the head.
        head_convs: convolutions in each head tower (classification, regression).
        levels: pyramid levels, 3 (P3-P5) or 4 (P3-P6).
        trainable_from: first trunk block that ever trains (see :class:`DetectionBackbone`).
        center_radius: FCOS centre sampling radius, in strides.
        range_mult: scale ranges: level stride ``s`` takes edge distances up to ``range_mult * s``.
        pretrained: start the trunk from the ImageNet weights.
    """

    def __init__(self, num_classes: int, *, channels: int = 64, head_convs: int = 2, levels: int = 3,
                 trainable_from: int = 3, center_radius: float = 1.5, range_mult: float = 4.0,
                 prior: float = 0.01, pretrained: bool = True) -> None:
        super().__init__()
        if num_classes < 1:
            raise ConfigError(f"a detector needs at least one class, got {num_classes}")
        if levels not in (3, 4):
            raise ConfigError(f"detector levels must be 3 (P3-P5) or 4 (P3-P6), got {levels}")
        if channels < 8 or channels % 4 or head_convs < 0:
            raise ConfigError(f"detector channels must be a multiple of 4 >= 8 and head_convs >= 0, "
                              f"got channels={channels}, head_convs={head_convs}")
        self.num_classes = num_classes
        self.center_radius = float(center_radius)
        self.range_mult = float(range_mult)
        self.backbone = DetectionBackbone(pretrained=pretrained, trainable_from=trainable_from)
        self.strides: tuple[int, ...] = (8, 16, 32, 64)[:levels]
        self.fpn = FeaturePyramidNetwork(list(STAGE_CHANNELS), channels,
                                         extra_blocks=_LastLevelP6(channels) if levels == 4 else None)
        self.cls_tower = _tower(channels, head_convs)
        self.reg_tower = _tower(channels, head_convs)
        self.cls_out = nn.Conv2d(channels, num_classes, 3, padding=1)
        self.reg_out = nn.Conv2d(channels, 4, 3, padding=1)
        self.ctr_out = nn.Conv2d(channels, 1, 3, padding=1)
        self.scales = nn.Parameter(torch.ones(levels))
        for conv in (self.cls_out, self.reg_out, self.ctr_out):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
        nn.init.constant_(self.cls_out.bias, -math.log((1 - prior) / prior))

    def dense(self, images: torch.Tensor) -> DenseOutputs:
        """Raw outputs for every location (no decoding)."""
        feats = self.backbone(images)
        pyramid = self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats)))
        cls_all, ltrb_all, ctr_all, points, strides = [], [], [], [], []
        for level, (feat, stride) in enumerate(zip(pyramid.values(), self.strides)):
            n, _, h, w = feat.shape
            c = self.cls_tower(feat)
            r = self.reg_tower(feat)
            cls_all.append(self.cls_out(c).flatten(2).transpose(1, 2))
            ltrb = F.softplus(self.reg_out(r) * self.scales[level]) * stride
            ltrb_all.append(ltrb.flatten(2).transpose(1, 2))
            ctr_all.append(self.ctr_out(r).flatten(1))
            ys = (torch.arange(h, dtype=torch.float32, device=feat.device) + 0.5) * stride
            xs = (torch.arange(w, dtype=torch.float32, device=feat.device) + 0.5) * stride
            grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
            points.append(torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1))
            strides.append(torch.full((h * w,), float(stride), device=feat.device))
        return DenseOutputs(torch.cat(cls_all, 1), torch.cat(ltrb_all, 1), torch.cat(ctr_all, 1),
                            torch.cat(points, 0), torch.cat(strides, 0))

    @staticmethod
    def decode(out: DenseOutputs, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(boxes [N, L, 4] xyxy clipped to the ``(H, W)`` input, scores [N, L, C])``."""
        h, w = size
        p = out.points.unsqueeze(0)
        boxes = torch.cat([p - out.ltrb[..., :2], p + out.ltrb[..., 2:]], dim=-1)
        boxes = torch.stack([boxes[..., 0].clamp(0, w), boxes[..., 1].clamp(0, h),
                             boxes[..., 2].clamp(0, w), boxes[..., 3].clamp(0, h)], dim=-1)
        scores = torch.sqrt(torch.sigmoid(out.cls_logits) * torch.sigmoid(out.ctr_logits).unsqueeze(-1))
        return boxes, scores

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(boxes [N, L, 4], scores [N, L, C])`` (the contract's dense outputs)."""
        return self.decode(self.dense(images), (int(images.shape[-2]), int(images.shape[-1])))

    def scale_ranges(self, strides: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-location ``(lo, hi)`` bounds on the largest edge distance a location regresses:
        the first level takes everything below, the last everything above."""
        hi = strides * self.range_mult
        lo = hi / 2
        lo = torch.where(strides == self.strides[0], torch.zeros_like(lo), lo)
        hi = torch.where(strides == self.strides[-1], torch.full_like(hi, float("inf")), hi)
        return lo, hi


def assign_targets(points: torch.Tensor, strides: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
                   boxes: torch.Tensor, labels: torch.Tensor, *,
                   center_radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """FCOS assignment for one image: ``(labels [L] (-1 = background), boxes [L, 4])``.

    A location is positive for a box when it lies within ``center_radius`` strides of the box
    centre (and inside the box), and the box's largest edge distance from it falls in the
    level's ``[lo, hi]``; of several such boxes the smallest wins. Boxes of zero width or
    height can own no location.

    >>> pts = torch.tensor([[4.0, 4.0], [12.0, 4.0]])
    >>> s = torch.tensor([8.0, 8.0]); lo = torch.zeros(2); hi = torch.full((2,), 1e9)
    >>> lab, _ = assign_targets(pts, s, lo, hi, torch.tensor([[0.0, 0, 8, 8]]), torch.tensor([2]), center_radius=1.5)
    >>> lab.tolist()
    [2, -1]
    """
    num = points.shape[0]
    if boxes.numel() == 0:
        return torch.full((num,), -1, dtype=torch.int64, device=points.device), points.new_zeros(num, 4)
    x, y = points[:, 0:1], points[:, 1:2]
    ltrb = torch.stack([x - boxes[:, 0], y - boxes[:, 1], boxes[:, 2] - x, boxes[:, 3] - y], dim=-1)  # (L, K, 4)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    rad = strides[:, None] * center_radius
    cx0, cx1 = torch.maximum(cx - rad, boxes[:, 0]), torch.minimum(cx + rad, boxes[:, 2])
    cy0, cy1 = torch.maximum(cy - rad, boxes[:, 1]), torch.minimum(cy + rad, boxes[:, 3])
    in_centre = (x > cx0) & (x < cx1) & (y > cy0) & (y < cy1)
    reach = ltrb.max(dim=-1).values
    ok = in_centre & (ltrb.min(dim=-1).values > 0) & (reach >= lo[:, None]) & (reach <= hi[:, None])
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    cost = torch.where(ok, area[None, :].expand_as(reach), torch.full_like(reach, float("inf")))
    best, idx = cost.min(dim=1)
    pos = torch.isfinite(best)
    out_labels = torch.where(pos, labels[idx], torch.full_like(idx, -1))
    return out_labels, boxes[idx]


def fcos_loss(model: DetectNet, out: DenseOutputs, targets: Sequence[dict[str, torch.Tensor]], *,
              gamma: float = 2.0, alpha: float = 0.25,
              class_weights: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Focal classification + GIoU box + centre-ness BCE losses, each normalised by the
    number of positive locations in the batch (at least 1, so empty images are fine).

    Args:
        model: gives the assignment settings (scale ranges, centre radius).
        out: :meth:`DetectNet.dense` of the batch.
        targets: per image ``{"boxes": (K, 4) xyxy input pixels, "labels": (K,) int64}``.
        class_weights: optional ``(C,)`` per-class weights on the classification loss.

    Returns:
        ``(loss, {"cls", "box", "ctr", "pos"})``.
    """
    lo, hi = model.scale_ranges(out.strides)
    labels_t, boxes_t = [], []
    for t in targets:
        lab, box = assign_targets(out.points, out.strides, lo, hi, t["boxes"].to(out.points),
                                  t["labels"].to(out.points.device), center_radius=model.center_radius)
        labels_t.append(lab)
        boxes_t.append(box)
    labels = torch.stack(labels_t)                      # (N, L)
    gt_boxes = torch.stack(boxes_t)                     # (N, L, 4)
    pos = labels >= 0
    num_pos = max(1.0, float(pos.sum()))
    onehot = F.one_hot(labels.clamp(min=0), model.num_classes).to(out.cls_logits.dtype) * pos[..., None]
    cls = sigmoid_focal_loss(out.cls_logits, onehot, alpha=alpha, gamma=gamma, reduction="none")
    if class_weights is not None:
        cls = cls * class_weights.to(cls)
    cls_loss = cls.sum() / num_pos

    p = out.points.unsqueeze(0).expand_as(gt_boxes[..., :2])[pos]
    pred_ltrb = out.ltrb[pos]
    gt = gt_boxes[pos]
    pred = torch.cat([p - pred_ltrb[:, :2], p + pred_ltrb[:, 2:]], dim=1)
    box_loss = generalized_box_iou_loss(pred, gt, reduction="sum") / num_pos
    g = torch.cat([p - gt[:, :2], gt[:, 2:] - p], dim=1)  # target l, t, r, b
    lr, tb = g[:, [0, 2]], g[:, [1, 3]]
    centreness = torch.sqrt((lr.min(1).values / lr.max(1).values.clamp(min=1e-6)).clamp(min=0)
                            * (tb.min(1).values / tb.max(1).values.clamp(min=1e-6)).clamp(min=0))
    ctr_loss = F.binary_cross_entropy_with_logits(out.ctr_logits[pos], centreness, reduction="sum") / num_pos
    total = cls_loss + box_loss + ctr_loss
    return total, {"cls": float(cls_loss.detach()), "box": float(box_loss.detach()),
                   "ctr": float(ctr_loss.detach()), "pos": num_pos / max(1, len(targets))}
