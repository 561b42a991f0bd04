"""Second look for weak HOG candidates: rerun HOG on an upscaled crop around each one.

dlib's HOG window is 80 px, so a face that is ~50-80 px wide at the resolution the main pass
sees (small faces, and side views that only half-fit the side filters) gives at best a weak
margin there. Rerunning all five filters on a crop around the candidate, upscaled so the
candidate is ``face_px`` wide, gives such a face a clear margin while a false candidate stays
weak: on ``benchmarks/bench_faces_recall.py`` this raised fast-mode recall by 0.07-0.09
(seeds 0 and 1) for ~10 % more median time and no new false positive (``docs/faces.md``).
Crops are small (~0.06 MP each), so the cost is bounded by ``max_crops``.

>>> import dlib
>>> from skimage import data
>>> hits = zoom_candidates(data.astronaut(), [(175.0, 75.0, 260.0, 170.0)], hog=dlib.get_frontal_face_detector(),
...                        threshold=0.0)
>>> len(hits) >= 1 and hits[0][2] == 0  # (box, raw margin, filter index); 0 = front
True
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["weak_candidates", "zoom_candidates"]


def weak_candidates(boxes: Sequence[Sequence[float]], scores: np.ndarray, *, conf_threshold: float) -> list:
    """Boxes scored below ``conf_threshold`` that overlap no box at or above it, best first.

    >>> weak_candidates([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 60, 60]], np.array([0.9, 0.2, 0.1]),
    ...                 conf_threshold=0.35)
    [[50, 50, 60, 60]]
    """
    scores = np.asarray(scores).reshape(-1)
    good = [b for b, s in zip(boxes, scores) if s >= conf_threshold]
    order = [int(i) for i in np.argsort(-scores, kind="stable") if scores[i] < conf_threshold]
    return [boxes[i] for i in order if not any(_iou(boxes[i], g) > 0.3 for g in good)]


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / max((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter, 1e-9)


def zoom_candidates(
    pixels: np.ndarray,
    boxes: Sequence[Sequence[float]],
    *,
    hog: Any,
    threshold: float,
    face_px: int = 120,
    max_upscale: float = 3.0,
    pad: float = 0.5,
    max_crops: int = 5,
) -> list[tuple[list[float], float, int]]:
    """HOG detections on upscaled crops around ``boxes`` (xyxy, in ``pixels`` coordinates).

    Args:
        pixels: (H, W, 3) uint8 RGB; not modified.
        boxes: candidate faces, strongest first; only the first ``max_crops`` are examined.
        hog: ``dlib.get_frontal_face_detector()``.
        threshold: raw HOG margin a detection on the crop needs.
        face_px: the crop is resized so the candidate is about this wide (HOG's window is 80).
        max_upscale: never upsample a crop by more than this.
        pad: context around the candidate, as a fraction of its size on each side.
        max_crops: bound on the number of crops (and so on the cost) per image.

    Returns:
        ``(box xyxy in pixels coordinates, raw margin, filter index)`` per detection.
    """
    from PIL import Image

    h, w = pixels.shape[:2]
    out: list[tuple[list[float], float, int]] = []
    for x1, y1, x2, y2 in list(boxes)[:max_crops]:
        bw, bh = x2 - x1, y2 - y1
        if bw <= 1 or bh <= 1:
            continue
        cx1, cy1 = max(0, int(x1 - pad * bw)), max(0, int(y1 - pad * bh))
        cx2, cy2 = min(w, int(x2 + pad * bw) + 1), min(h, int(y2 + pad * bh) + 1)
        factor = min(max_upscale, face_px / bw)
        size = (max(1, round((cx2 - cx1) * factor)), max(1, round((cy2 - cy1) * factor)))
        if min(size) < 80:  # smaller than HOG's window: nothing can be found
            continue
        crop = Image.fromarray(np.ascontiguousarray(pixels[cy1:cy2, cx1:cx2]))
        view = np.ascontiguousarray(np.asarray(crop.resize(size, Image.Resampling.BILINEAR)))
        fx, fy = size[0] / (cx2 - cx1), size[1] / (cy2 - cy1)
        rects, scores, idx = hog.run(view, 0, threshold)
        for r, s, k in zip(rects, scores, idx):
            box = [cx1 + r.left() / fx, cy1 + r.top() / fy, cx1 + (r.right() + 1) / fx, cy1 + (r.bottom() + 1) / fy]
            out.append((box, float(s), int(k)))
    return out
