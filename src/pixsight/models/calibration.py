"""Real photos as model inputs: calibration and held-out crops for INT8 builds.

:func:`real_crops` cuts deterministic crops, flips and rescales out of scikit-image's
bundled photos (astronaut, chelsea, coffee, rocket, motorcycle, camera, page, Hubble,
retina, IHC, ...) and preprocesses them exactly as
:class:`~pixsight.tasks.imagenet.ImageNetStage` does. :mod:`pixsight.models.quantize`
calibrates on one seed and checks its gate on another.
"""

from __future__ import annotations

import io
import logging
from typing import Any, Mapping

import numpy as np

from ..core.errors import ModelUnavailableError

__all__ = ["PHOTOS", "real_crops"]

log = logging.getLogger(__name__)

#: scikit-image sample photos the crops come from (ones that need a download are skipped).
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle", "camera", "page", "hubble_deep_field",
          "retina", "immunohistochemistry", "clock", "coins", "text", "colorwheel", "logo", "moon", "brick", "grass",
          "gravel")


def _photos() -> list[np.ndarray]:
    try:
        from skimage import data
    except ImportError as err:
        raise ModelUnavailableError(
            "scikit-image is needed once to calibrate the INT8 model (its bundled photos); "
            "pip install scikit-image, or use the FP32 model"
        ) from err
    out = []
    for name in PHOTOS:
        try:
            img = data.stereo_motorcycle()[0] if name == "stereo_motorcycle" else getattr(data, name)()
        except Exception as err:  # noqa: BLE001 - a photo that needs a download is skipped
            log.debug("skimage photo %s unavailable: %s", name, err)
            continue
        img = np.asarray(img)
        img = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]
        out.append(np.ascontiguousarray(img.astype(np.uint8)))
    if len(out) < 4:
        raise ModelUnavailableError("too few scikit-image photos are available to calibrate the INT8 model")
    return out


def real_crops(n: int, *, seed: int, preprocess: Mapping[str, Any], jpeg_quality: int | None = None) -> np.ndarray:
    """``n`` deterministic crops/flips/rescales of skimage photos, as the model's input batch.

    Each crop keeps 35-100 % of the photo's area with a jittered aspect ratio, is flipped
    with probability 1/2 and rescaled by 0.5-1.5x, then goes through
    :func:`~pixsight.core.preprocess.preprocess_into` and ``(x - mean) / std`` exactly as
    in :class:`~pixsight.tasks.imagenet.ImageNetStage`. Returns (n, 3, size, size) float32.
    With ``jpeg_quality`` each crop is JPEG re-encoded first (same crops, same seed): FP32's
    agreement with itself on those is the noise floor the INT8 numbers are compared with.

    >>> real_crops(2, seed=0, preprocess={"size": 224}).shape         # doctest: +SKIP
    (2, 3, 224, 224)
    """
    from PIL import Image

    from ..core.preprocess import preprocess_into

    size = int(preprocess.get("size", 224))
    kw = {"size": size, "crop_pct": float(preprocess.get("crop_pct", 0.875)),
          "resize": str(preprocess.get("resize", "center_crop")),
          "interpolation": str(preprocess.get("interpolation", "bilinear"))}
    mean = np.asarray(preprocess.get("mean", [127.0] * 3), np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(preprocess.get("std", [128.0] * 3), np.float32).reshape(1, 3, 1, 1)
    photos = _photos()
    rng = np.random.default_rng(seed)
    out = np.empty((n, 3, size, size), np.float32)
    for i in range(n):
        img = photos[i % len(photos)]
        h, w = img.shape[:2]
        frac = np.sqrt(rng.uniform(0.35, 1.0))
        ch = max(16, int(h * frac))
        cw = min(w, max(16, int(w * frac * rng.uniform(0.8, 1.25))))
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop = img[y0:y0 + ch, x0:x0 + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        scale = rng.uniform(0.5, 1.5)
        pil = Image.fromarray(np.ascontiguousarray(crop))
        small = pil.resize((max(8, int(cw * scale)), max(8, int(ch * scale))), Image.Resampling.BILINEAR)
        if jpeg_quality is not None:
            buf = io.BytesIO()
            small.save(buf, "JPEG", quality=jpeg_quality)
            buf.seek(0)
            small = Image.open(buf).convert("RGB")
        crop = np.asarray(small)
        preprocess_into(np.ascontiguousarray(crop), out[i], **kw)
    out -= mean
    out /= std
    return out
