"""Input geometry of an explanation: the model input for one image, and the way back.

:func:`prepare_image` makes the model input exactly as training / ``analyze`` do
(:func:`pixsight.core.preprocess.prepare_input` for runs; the registry's centre crop,
:func:`pixsight.core.preprocess.preprocess_into`, for the ImageNet classifier) and returns an
:class:`InputGeometry` that maps a heatmap or boxes from model-input pixels back onto the
original image (undoing letterbox padding or the crop).

>>> import numpy as np
>>> x, geo = prepare_image(np.zeros((100, 200, 3), np.uint8),
...                        {"size": [64, 64], "mean": [127] * 3, "std": [128] * 3, "resize": "letterbox"})
>>> x.shape, (geo.scale_x, geo.offset_x, geo.offset_y)
((3, 64, 64), (0.32, 0.0, 16.0))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..core.errors import ConfigError
from ..core.preprocess import parse_preprocess, prepare_input, preprocess_into

__all__ = ["InputGeometry", "prepare_image"]


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
    registry entry's crop (:func:`pixsight.core.preprocess.preprocess_into`).

    Raises:
        ConfigError: unknown resize mode or invalid preprocess block; image not RGB uint8.
    """
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8 or 0 in arr.shape:
        raise ConfigError(f"image must be an RGB uint8 (H, W, 3) array, got {arr.dtype} {arr.shape}; "
                          "load files with pixsight.core.image.load_image")
    h, w = arr.shape[:2]
    if preprocess.get("resize") == "center_crop":
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
    spec = parse_preprocess(preprocess)
    x, lb = prepare_input(arr, spec)
    th, tw = spec.size
    if lb is None:
        geo = InputGeometry(tw / w, th / h, 0.0, 0.0, (h, w), (th, tw))
    else:  # the effective per-axis scale of the resize (new size / image size), not the rounded one
        geo = InputGeometry(lb.new_width / w, lb.new_height / h, lb.pad_x, lb.pad_y, (h, w), (th, tw))
    return np.ascontiguousarray(x.transpose(2, 0, 1)), geo
