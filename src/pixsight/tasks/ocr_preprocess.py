"""Image preparation for OCR on photos of pages: grey conversion, light flattening, scaling.

Phone photos of pages have uneven light (a gradient from the window, a vignette, the
shadow of a hand). :func:`flatten_illumination` estimates the paper's brightness at every
pixel (a morphological closing removes the dark ink, a blur smooths the rest) and divides
it out, so that the page becomes evenly white and the ink evenly dark.

>>> import numpy as np
>>> from skimage import data
>>> flat = flatten_illumination(data.page())
>>> flat.shape == data.page().shape and flat.dtype == np.uint8
True
"""

from __future__ import annotations

import numpy as np

__all__ = ["to_gray", "flatten_illumination", "ocr_scale"]


def to_gray(image: np.ndarray) -> np.ndarray:
    """RGB/RGBA/grey uint8 -> grey uint8 (H, W), never mutating the input.

    >>> to_gray(np.zeros((4, 5, 3), np.uint8)).shape
    (4, 5)
    """
    import cv2

    arr = np.asarray(image)
    if arr.ndim == 2:
        return np.ascontiguousarray(arr, dtype=np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        return np.ascontiguousarray(arr[..., 0], dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"to_gray: expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {arr.shape}")
    return cv2.cvtColor(np.ascontiguousarray(arr[..., :3], dtype=np.uint8), cv2.COLOR_RGB2GRAY)


def flatten_illumination(
    gray: np.ndarray,
    *,
    work_side: int = 640,
    kernel_frac: float = 0.035,
    black_percentile: float = 0.5,
) -> np.ndarray:
    """Divide out uneven lighting: evenly lit paper becomes ~255, ink stays dark.

    The background (paper brightness) is estimated on a copy at most ``work_side`` pixels
    wide: a grey closing with an elliptic kernel of ``kernel_frac`` of that side (larger
    than a letter, so ink disappears) followed by a Gaussian blur. The image is divided
    by the background and the darkest ``black_percentile`` % is stretched to black.

    Args:
        gray: grey uint8 image (H, W).

    Returns:
        grey uint8 image of the same shape.

    >>> ramp = np.tile(np.linspace(80, 240, 200).astype(np.uint8), (100, 1))
    >>> int(flatten_illumination(ramp).std()) < 5   # a lit gradient with no ink becomes flat
    True
    """
    import cv2

    g = np.asarray(gray, dtype=np.uint8)
    if g.ndim != 2:
        raise ValueError(f"flatten_illumination: expected a grey (H, W) image, got {g.shape}")
    h, w = g.shape
    if h < 8 or w < 8:
        return g.copy()
    ratio = min(1.0, work_side / max(h, w))
    small = cv2.resize(g, (max(1, round(w * ratio)), max(1, round(h * ratio))), interpolation=cv2.INTER_AREA) if ratio < 1 else g
    k = max(9, int(round(max(small.shape) * kernel_frac))) | 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    background = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel)
    background = cv2.GaussianBlur(background, (0, 0), k / 3)
    if ratio < 1:
        background = cv2.resize(background, (w, h), interpolation=cv2.INTER_LINEAR)
    flat = g.astype(np.float32) / np.maximum(background.astype(np.float32), 1.0)
    np.clip(flat, 0.0, 1.0, out=flat)
    step = max(1, int(np.sqrt(flat.size / 250_000)))  # a sample is enough for a percentile
    lo = float(np.percentile(flat[::step, ::step], black_percentile))
    if lo < 0.95:
        flat = (flat - lo) / (1.0 - lo)
    return (np.clip(flat, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def ocr_scale(height: int, width: int, *, min_side: int = 600, max_side: int = 1600) -> float:
    """Resize factor that brings a page image into the range the text detector likes.

    Small images (``page.png`` is 384 px wide) are enlarged so the longer side reaches
    ``min_side``; huge ones are shrunk to ``max_side``; others keep their size.

    >>> ocr_scale(191, 384), ocr_scale(3000, 4000), ocr_scale(800, 1200)
    (2.0, 0.4, 1.0)
    """
    longest = max(height, width, 1)
    if longest < min_side:
        return float(min(4.0, np.ceil(min_side / longest)))
    if longest > max_side:
        return max_side / longest
    return 1.0
