"""Picture panels for HTML reports: boxes or a class map drawn on an image, two pictures side
by side, and a re-encoded JPEG ``data:`` URI (no source EXIF reaches a page).

>>> import numpy as np
>>> left = draw_panel(np.zeros((10, 20, 3), np.uint8), 1.0, boxes=np.array([[1, 1, 8, 8]]), labels=["cat"])
>>> side_by_side(left, left).size
(48, 10)
>>> jpeg_data_uri(left).startswith("data:image/jpeg;base64,")
True
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["GREEN", "RED", "class_palette", "draw_panel", "jpeg_data_uri", "side_by_side"]

#: Ground truth and prediction colours of the eval report's panels.
GREEN, RED = (22, 163, 74), (220, 38, 38)

_TAB10 = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
          (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def jpeg_data_uri(img: Image.Image, *, quality: int = 85) -> str:
    """``data:image/jpeg;base64,...`` of ``img`` re-encoded (so no source metadata survives)."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def class_palette(n: int) -> np.ndarray:
    """``(n + 1, 3)`` uint8 colour per class-map value (0 = background, unused); distinct
    colours, repeating after 10.

    >>> class_palette(2).tolist()
    [[0, 0, 0], [31, 119, 180], [255, 127, 14]]
    """
    return np.array([(0, 0, 0)] + [_TAB10[k % len(_TAB10)] for k in range(n)], dtype=np.uint8)


def draw_panel(pixels: np.ndarray, scale: float, *, boxes: np.ndarray | None = None, labels: list[str] | None = None,
               colour: tuple[int, int, int] = GREEN, class_map: np.ndarray | None = None) -> Image.Image:
    """``pixels`` (RGB uint8) with a class map blended in (values > 0 coloured, the rest dimmed)
    and/or xyxy ``boxes`` (in original-image pixels, multiplied by ``scale``) with labels."""
    img = Image.fromarray(pixels).convert("RGB")
    if class_map is not None:
        cm = np.asarray(Image.fromarray(class_map.astype(np.int32)).resize(img.size, Image.Resampling.NEAREST))
        colours = class_palette(int(max(cm.max(), 1)))[np.clip(cm, 0, None)]
        mix = np.where((cm > 0)[..., None], 0.3 * np.asarray(img) + 0.7 * colours, 0.6 * np.asarray(img))
        img = Image.fromarray(mix.astype(np.uint8))
    if boxes is not None:
        draw = ImageDraw.Draw(img)
        for box, label in zip(np.asarray(boxes).reshape(-1, 4), labels or [""] * len(boxes)):
            x1, y1, x2, y2 = (float(v) * scale for v in box)
            draw.rectangle([x1, y1, x2, y2], outline=colour, width=2)
            if label:
                draw.text((x1 + 2, max(0.0, y1 - 11)), label[:40], fill=colour)
    return img


def side_by_side(left: Image.Image, right: Image.Image) -> Image.Image:
    """Two pictures next to each other with a white gap.

    >>> side_by_side(Image.new("RGB", (4, 3)), Image.new("RGB", (5, 2))).size
    (17, 3)
    """
    out = Image.new("RGB", (left.width + right.width + 8, max(left.height, right.height)), (255, 255, 255))
    out.paste(left, (0, 0))
    out.paste(right, (left.width + 8, 0))
    return out
