"""Tiny REAL training runs for tests: fixed-weight torch modules with exactly the run
contract's ONNX outputs (docs/design/learning.md), exported with ``torch.onnx.export``, plus
a hand-written ``model.json``.

The models "see" two colours, with known answers:
- class 0 ``white``: pixels with all channels above ~190;
- class 1 ``red``: red above ~190, green and blue below ~64.

- detect: every stride-8 location predicts the extent box of the colour it covers most;
  its per-class score is the share of that colour in its 8x8 cell. So a white square and a
  red square give exactly one box each (identical boxes collapse in NMS).
- segment: background logit 0.5; class logits 2 * colour mask -> argmax is the colour map.
- classify: logits 10 * (share of white, share of red).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

CLASSES = ["white", "red"]
MEAN, STD = [127.0, 127.0, 127.0], [128.0, 128.0, 128.0]


def _modules():
    import torch
    from torch import nn
    from torch.nn import functional as F

    def colour_masks(images: torch.Tensor) -> torch.Tensor:
        r, g, b = images[:, 0], images[:, 1], images[:, 2]
        white = ((r > 0.5) & (g > 0.5) & (b > 0.5)).float()
        red = ((r > 0.5) & (g < -0.5) & (b < -0.5)).float()
        return torch.stack([white, red], 1)  # N, 2, H, W

    def extents(mask: torch.Tensor) -> torch.Tensor:  # N, H, W -> N, 4 (x1, y1, x2, y2), exclusive ends
        h, w = mask.shape[1], mask.shape[2]
        cols, rows = mask.amax(1), mask.amax(2)
        xs = torch.arange(w, dtype=torch.float32)
        ys = torch.arange(h, dtype=torch.float32)
        x1 = torch.where(cols > 0, xs, torch.full_like(xs, float(w))).amin(1)
        x2 = torch.where(cols > 0, xs + 1, torch.zeros_like(xs)).amax(1)
        y1 = torch.where(rows > 0, ys, torch.full_like(ys, float(h))).amin(1)
        y2 = torch.where(rows > 0, ys + 1, torch.zeros_like(ys)).amax(1)
        return torch.stack([x1, y1, torch.maximum(x2, x1), torch.maximum(y2, y1)], 1)

    class Detector(nn.Module):
        def forward(self, images: torch.Tensor):
            masks = colour_masks(images)
            per_class = torch.stack([extents(masks[:, 0]), extents(masks[:, 1])], 1)  # N, 2, 4
            scores = F.avg_pool2d(masks, 8).flatten(2).transpose(1, 2)  # N, L, 2
            cls = scores.argmax(-1)  # N, L
            boxes = torch.gather(per_class, 1, cls.unsqueeze(-1).expand(-1, -1, 4))  # N, L, 4
            return boxes, scores

    class Segmenter(nn.Module):
        def forward(self, images: torch.Tensor):
            masks = colour_masks(images) * 2.0
            background = torch.full_like(masks[:, :1], 0.5)
            return torch.cat([background, masks], 1)

    class Classifier(nn.Module):
        def forward(self, images: torch.Tensor):
            return colour_masks(images).mean((2, 3)) * 10.0

    return {"detect": Detector, "segment": Segmenter, "classify": Classifier}


def _export(module, path: Path, size: tuple[int, int], outputs: tuple[str, ...]) -> None:
    import warnings

    import torch

    example = torch.zeros(1, 3, *size)
    dynamic = {"images": {0: "N"}, **{name: {0: "N"} for name in outputs}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer fixes H and W: intended (fixed input size)
        torch.onnx.export(module.eval(), (example,), str(path), input_names=["images"], output_names=list(outputs),
                          dynamic_axes=dynamic, opset_version=17, dynamo=False)


def make_run(root: Path, task: str, *, name: str | None = None, size: tuple[int, int] = (64, 64),
             export: bool = True, analyze_score_threshold: float = 0.3) -> Path:
    """Write ``root/<task>/<name>/`` with model.json (+ model.onnx when ``export``)."""
    name = name or f"tiny-{task}"
    run = root / task / name
    run.mkdir(parents=True, exist_ok=True)
    outputs = ("boxes", "scores") if task == "detect" else ("logits",)
    onnx_info = {}
    if export:
        _export(_modules()[task](), run / "model.onnx", size, outputs)
        import hashlib

        onnx_info = {"file": "model.onnx", "sha256": hashlib.sha256((run / "model.onnx").read_bytes()).hexdigest(),
                     "max_abs_diff": 0.0}
    primary = {"classify": "accuracy", "detect": "map_50", "segment": "miou"}[task]
    meta = {
        "format": "pixsight-run/1", "name": name, "task": task, "classes": CLASSES,
        "arch": {"name": f"fixed-colour-{task}", "params": {}},
        "preprocess": {"size": list(size), "mean": MEAN, "std": STD,
                       "resize": "stretch" if task == "classify" else "letterbox"},
        "postprocess": {"score_threshold": 0.05, "iou_threshold": 0.6, "max_detections": 100,
                        "analyze_score_threshold": analyze_score_threshold} if task == "detect" else None,
        "metrics": {primary: 0.875}, "primary_metric": primary,
        "data": {}, "training": {"epochs": 0, "best_epoch": 0, "seconds": 0.0, "seed": 0, "pretrained": False},
        "onnx": onnx_info, "created": "2026-01-01T00:00:00Z", "pixsight_version": "0.1.0",
    }
    (run / "model.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return run


def squares_image(width: int = 200, height: int = 120) -> tuple[np.ndarray, dict[str, list[int]]]:
    """A dark non-square image with a white and a red square; returns pixels and their xyxy boxes."""
    img = np.full((height, width, 3), 30, np.uint8)
    boxes = {"white": [20, 30, 70, 80], "red": [120, 40, 180, 100]}
    x1, y1, x2, y2 = boxes["white"]
    img[y1:y2, x1:x2] = 255
    x1, y1, x2, y2 = boxes["red"]
    img[y1:y2, x1:x2] = (250, 10, 10)
    return img, boxes
