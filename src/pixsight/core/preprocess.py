"""Model input preparation shared by training, ONNX export, ``analyze``, ``eval`` and ``explain`` (numpy + Pillow).

The contract (docs/design/learning.md): RGB uint8 image -> bilinear resize (Pillow) to
``size`` -> float32 ``(pixel - mean) / std`` (mean/std in 0..255 units). ``resize`` is
``"stretch"`` (ignore the aspect ratio) or ``"letterbox"`` (keep it, centre the image and pad
with the mean colour, which is 0 after normalisation; the placement is
:func:`pixsight.core.boxes.letterbox_geometry`). Training-time validation and the ONNX stage
both call :func:`prepare_input`, so they see bit-for-bit the same tensor. The ImageNet registry
entries crop instead (``"center_crop"`` / ``"stretch"``): :func:`preprocess_into`, which the
ImageNet stage, the INT8 calibration and Grad-CAM share.

>>> import numpy as np
>>> pre = {"size": [4, 8], "mean": [127, 127, 127], "std": [128, 128, 128], "resize": "letterbox"}
>>> x, lb = prepare_input(np.full((2, 8, 3), 255, np.uint8), pre)
>>> x.shape, x.dtype, lb.pad_y, float(x[0, 0, 0]), float(x[2, 0, 0])
((4, 8, 3), dtype('float32'), 1.0, 0.0, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from PIL import Image

from .boxes import Letterbox, letterbox_geometry
from .errors import ConfigError

__all__ = ["RESIZE_MODES", "INTERPOLATIONS", "PreprocessSpec", "parse_preprocess", "resize_image", "normalize_image",
           "prepare_input", "preprocess_into"]

#: Resize modes of the contract.
RESIZE_MODES: tuple[str, ...] = ("stretch", "letterbox")
_INTERP = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
           "nearest": Image.Resampling.NEAREST}
#: Resampling filters :func:`preprocess_into` accepts (a registry entry's ``interpolation``).
INTERPOLATIONS: tuple[str, ...] = tuple(_INTERP)


@dataclass(frozen=True)
class PreprocessSpec:
    """A validated ``model.json`` ``preprocess`` block."""

    size: tuple[int, int]  # (H, W)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: str

    @property
    def pad_value(self) -> tuple[int, int, int]:
        """uint8 colour of the letterbox padding: the mean, i.e. 0 after normalisation."""
        return tuple(int(min(255, max(0, round(m)))) for m in self.mean)  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        return {"size": list(self.size), "mean": list(self.mean), "std": list(self.std), "resize": self.resize}


def parse_preprocess(preprocess: Mapping[str, Any] | PreprocessSpec) -> PreprocessSpec:
    """Validate a ``preprocess`` mapping (``size`` may be an int for a square).

    >>> parse_preprocess({"size": 224, "mean": [127] * 3, "std": [128] * 3, "resize": "stretch"}).size
    (224, 224)
    """
    if isinstance(preprocess, PreprocessSpec):
        return preprocess
    if not isinstance(preprocess, Mapping):
        raise ConfigError(f"preprocess must be a mapping, got {type(preprocess).__name__}")
    try:
        size = preprocess["size"]
        size_t = (int(size), int(size)) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
        mean = tuple(float(v) for v in preprocess.get("mean", (127.0, 127.0, 127.0)))
        std = tuple(float(v) for v in preprocess.get("std", (128.0, 128.0, 128.0)))
        resize = str(preprocess.get("resize", "stretch"))
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise ConfigError(f"preprocess {dict(preprocess)!r} is invalid ({err}); expected "
                          "{'size': [H, W], 'mean': [3 numbers], 'std': [3 numbers], 'resize': ...}") from None
    if min(size_t) < 1 or max(size_t) > 4096:
        raise ConfigError(f"preprocess size must be between 1 and 4096 pixels, got {list(size_t)}")
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ConfigError(f"preprocess mean/std must be 3 numbers each (std > 0), got mean={mean}, std={std}")
    if resize not in RESIZE_MODES:
        raise ConfigError(f"preprocess resize must be one of {RESIZE_MODES}, got {resize!r}")
    return PreprocessSpec(size_t, mean, std, resize)  # type: ignore[arg-type]


def resize_image(image: np.ndarray, preprocess: Mapping[str, Any] | PreprocessSpec) -> tuple[np.ndarray, Letterbox | None]:
    """The uint8 ``(H, W, 3)`` model-size image and the letterbox placement (``None`` for stretch).

    >>> out, lb = resize_image(np.zeros((10, 20, 3), np.uint8), {"size": 8, "resize": "stretch"})
    >>> out.shape, lb
    ((8, 8, 3), None)
    """
    spec = parse_preprocess(preprocess)
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ConfigError(f"image must be an RGB uint8 (H, W, 3) array, got {arr.dtype} {arr.shape}")
    th, tw = spec.size
    h, w = arr.shape[:2]
    pil = Image.fromarray(np.ascontiguousarray(arr))
    if spec.resize == "stretch":
        out = pil if (w, h) == (tw, th) else pil.resize((tw, th), Image.Resampling.BILINEAR)
        return np.asarray(out, dtype=np.uint8), None
    lb = letterbox_geometry(w, h, (th, tw))
    small = pil if (w, h) == (lb.new_width, lb.new_height) else pil.resize((lb.new_width, lb.new_height),
                                                                           Image.Resampling.BILINEAR)
    canvas = np.empty((th, tw, 3), dtype=np.uint8)
    canvas[...] = np.asarray(spec.pad_value, dtype=np.uint8)
    x0, y0 = int(lb.pad_x), int(lb.pad_y)
    canvas[y0:y0 + lb.new_height, x0:x0 + lb.new_width] = np.asarray(small, dtype=np.uint8)
    return canvas, lb


def normalize_image(image: np.ndarray, preprocess: Mapping[str, Any] | PreprocessSpec) -> np.ndarray:
    """float32 ``(pixel - mean) / std`` of a uint8 ``(H, W, 3)`` image (channels last).

    >>> normalize_image(np.full((1, 1, 3), 255, np.uint8), {"size": 8}).tolist()
    [[[1.0, 1.0, 1.0]]]
    """
    spec = parse_preprocess(preprocess)
    x = np.asarray(image).astype(np.float32)
    return (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)


def prepare_input(image: np.ndarray, preprocess: Mapping[str, Any] | PreprocessSpec) -> tuple[np.ndarray, Letterbox | None]:
    """Resize and normalise one RGB uint8 image: ``(float32 (H, W, 3), Letterbox | None)``.

    Transpose to ``(3, H, W)`` (``x.transpose(2, 0, 1)``) and stack for the model's NCHW input.
    """
    resized, lb = resize_image(image, preprocess)
    return normalize_image(resized, preprocess), lb


def preprocess_into(
    pixels: np.ndarray,
    out: np.ndarray,
    *,
    size: int = 224,
    crop_pct: float = 0.875,
    resize: str = "center_crop",
    interpolation: str = "bilinear",
) -> None:
    """Resize one RGB uint8 image into ``out`` (3, size, size) float32, values still 0-255.

    The preprocessing of the ImageNet registry entries (``resize`` ``"center_crop"`` /
    ``"stretch"``), written straight into a preallocated batch row: ``center_crop`` takes the
    centre ``crop_pct`` of the shorter side (a square) and resizes it in one Pillow call;
    ``stretch`` (formerly ``squash``) resizes the whole image ignoring its aspect ratio. The caller scales with
    ``mean``/``std`` (the ImageNet stage, the INT8 calibration crops and Grad-CAM all do).

    Raises:
        ValueError: ``pixels`` is not an RGB uint8 ``(H, W, 3)`` array.
        ConfigError: unknown ``resize`` or ``interpolation``.

    >>> buf = np.empty((3, 224, 224), np.float32)
    >>> preprocess_into(np.zeros((300, 451, 3), np.uint8), buf)
    >>> float(buf.max())
    0.0
    """
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8 or 0 in pixels.shape:
        raise ValueError(f"expected RGB uint8 pixels (H, W, 3), got {pixels.dtype} {pixels.shape}")
    h, w = pixels.shape[:2]
    if resize in ("stretch", "squash"):  # squash: the former name of stretch
        box = (0.0, 0.0, float(w), float(h))
    elif resize == "center_crop":
        side = min(w, h) * crop_pct
        left, top = (w - side) / 2, (h - side) / 2
        box = (left, top, left + side, top + side)
    else:
        raise ConfigError(f"unknown resize mode {resize!r}; use 'center_crop' or 'stretch'")
    if interpolation not in _INTERP:
        raise ConfigError(f"unknown interpolation {interpolation!r}; use one of {', '.join(INTERPOLATIONS)}")
    img = Image.fromarray(np.ascontiguousarray(pixels), "RGB")
    small = img.resize((size, size), _INTERP[interpolation], box=box, reducing_gap=3.0)
    out[...] = np.asarray(small).transpose(2, 0, 1)
