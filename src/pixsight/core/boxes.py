"""Box geometry in numpy: IoU, non-maximum suppression, letterbox mapping.

Boxes are ``(N, 4)`` float arrays of absolute pixel ``xyxy`` (ARCHITECTURE.md). This module is
the one place these operations live; detection post-processing (analyze, training-time
validation, evaluation) all call it, so every path decodes a detector the same way.

>>> import numpy as np
>>> b = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], dtype=np.float32)
>>> nms(b, np.array([0.9, 0.8, 0.7]), 0.5).tolist()
[0, 2]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["box_area", "box_iou", "nms", "batched_nms", "Letterbox", "letterbox_geometry", "postprocess_dense"]


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Areas of ``(N, 4)`` xyxy boxes (0 for degenerate ones)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU ``(len(a), len(b))`` of two sets of xyxy boxes.

    >>> box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 0, 3, 2], [5, 5, 6, 6]])).round(3).tolist()
    [[0.333, 0.0]]
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, highest score first."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    areas = box_area(boxes)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        if not rest.size:
            break
        lt = np.maximum(boxes[i, :2], boxes[rest, :2])
        rb = np.minimum(boxes[i, 2:], boxes[rest, 2:])
        wh = np.clip(rb - lt, 0, None)
        inter = wh[:, 0] * wh[:, 1]
        union = areas[i] + areas[rest] - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou_threshold: float) -> np.ndarray:
    """NMS within each class (boxes of different classes never suppress each other).

    >>> b = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], dtype=np.float32)
    >>> batched_nms(b, np.array([0.9, 0.8]), np.array([0, 1]), 0.5).tolist()
    [0, 1]
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not len(boxes):
        return np.zeros(0, dtype=np.int64)
    # offset each class into its own region of the plane: one NMS pass, no cross-class overlap
    offset = np.asarray(class_ids, dtype=np.float64)[:, None] * (boxes.max() + 1.0)
    keep = nms(boxes + offset, scores, iou_threshold)
    return keep


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into a model input: ``input = image * scale + (pad_x, pad_y)``."""

    scale: float
    pad_x: float
    pad_y: float
    new_width: int
    new_height: int

    def to_image(self, boxes: np.ndarray, width: int, height: int) -> np.ndarray:
        """Map xyxy boxes from model-input pixels back to ``width`` x ``height`` image pixels."""
        b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
        b[:, [0, 2]] = (b[:, [0, 2]] - self.pad_x) / self.scale
        b[:, [1, 3]] = (b[:, [1, 3]] - self.pad_y) / self.scale
        b[:, [0, 2]] = b[:, [0, 2]].clip(0, width)
        b[:, [1, 3]] = b[:, [1, 3]].clip(0, height)
        return b


def letterbox_geometry(width: int, height: int, size: tuple[int, int]) -> Letterbox:
    """Scale that fits ``width`` x ``height`` inside ``size`` = ``(H, W)`` keeping the aspect
    ratio, and the padding that centres it.

    >>> letterbox_geometry(200, 100, (64, 64))
    Letterbox(scale=0.32, pad_x=0.0, pad_y=16.0, new_width=64, new_height=32)
    """
    th, tw = size
    scale = min(tw / width, th / height)
    nw, nh = max(1, round(width * scale)), max(1, round(height * scale))
    return Letterbox(scale, float((tw - nw) // 2), float((th - nh) // 2), nw, nh)


def postprocess_dense(
    boxes: np.ndarray,
    scores: np.ndarray,
    *,
    score_threshold: float = 0.05,
    iou_threshold: float = 0.6,
    max_detections: int = 100,
    pre_nms_top_k: int = 1000,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turn one image's dense detector output into final detections.

    Args:
        boxes: ``(L, 4)`` xyxy per location.
        scores: ``(L, C)`` per-class probabilities per location.

    Returns:
        ``(boxes (K, 4) float32, scores (K,) float32, class_ids (K,) int64)``, best first.

    >>> b = np.array([[0, 0, 10, 10], [0, 0, 10, 11], [5, 5, 9, 9]], dtype=np.float32)
    >>> s = np.array([[0.9, 0.0], [0.8, 0.1], [0.01, 0.7]], dtype=np.float32)
    >>> _, sc, cl = postprocess_dense(b, s)
    >>> [round(float(x), 2) for x in sc], cl.tolist()
    ([0.9, 0.7, 0.1], [0, 1, 1])
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float32)
    scores = scores.reshape(len(boxes), -1)
    loc, cls = np.nonzero(scores > score_threshold)
    cand = scores[loc, cls]
    if cand.size > pre_nms_top_k:
        top = np.argpartition(-cand, pre_nms_top_k)[:pre_nms_top_k]
        loc, cls, cand = loc[top], cls[top], cand[top]
    keep = batched_nms(boxes[loc], cand, cls, iou_threshold)[:max_detections]
    return boxes[loc[keep]].copy(), cand[keep].astype(np.float32), cls[keep].astype(np.int64)
