"""A small real catalog for the review queue and catalog API tests.

:func:`build_catalog` runs the real analyzer (classify + embed) over generated images, with
``classify_conf_threshold=0.99`` so they are flagged ``needs_review``, analyses two more with
``classify_conf_threshold=0`` (not flagged), and saves one image with hand-made detections
(``detect`` needs a trained model, so the analysis is written directly).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass
class Built:
    db: Path
    flagged: list[Path] = field(default_factory=list)  # needs_review images
    clean: list[Path] = field(default_factory=list)  # analysed, not flagged
    detected: Path | None = None  # the image with hand-made detections
    exif: Path | None = None  # JPEG with EXIF orientation 6 and a camera tag
    alpha: Path | None = None  # RGBA PNG

    def sha(self, path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()


def _pattern(seed: int, size: tuple[int, int]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = size
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * (seed + 3)) % 256, (y * (seed + 5)) % 256, ((x + y) * 7) % 256], axis=-1)
    noise = rng.integers(0, 40, size=(h, w, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def build_catalog(folder: Path) -> Built:
    """Images under ``folder/img`` and a catalog at ``folder/c.sqlite``."""
    from skimage import data as skdata

    from pixsight.catalog.store import Catalog
    from pixsight.core.config import AnalyzeConfig, ReviewThresholds
    from pixsight.core.types import Analysis, Detections
    from pixsight.pipeline.analyzer import analyze

    img = folder / "img"
    (img / "sub").mkdir(parents=True)
    built = Built(db=folder / "c.sqlite")
    for i in range(4):
        p = img / f"pattern_{i}.png"
        Image.fromarray(_pattern(i, (48 + 8 * i, 64))).save(p)
        built.flagged.append(p)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when shown
    exif[0x010F] = "SecretCam"  # Make
    built.exif = img / "sub" / "rotated.jpg"
    Image.fromarray(_pattern(9, (40, 80))).save(built.exif, "JPEG", quality=90, exif=exif.tobytes())
    built.flagged.append(built.exif)
    built.alpha = img / "alpha.png"
    rgba = np.dstack([_pattern(11, (50, 50)), np.full((50, 50), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(built.alpha)
    built.flagged.append(built.alpha)
    for name, pixels in (("cat.jpg", skdata.chelsea()), ("coffee.jpg", skdata.coffee())):
        p = img / name
        Image.fromarray(pixels).save(p, "JPEG", quality=90)
        built.clean.append(p)

    tasks = ("classify", "embed")
    strict = AnalyzeConfig(tasks=tasks, review=ReviewThresholds(classify_conf_threshold=0.99))
    summary = analyze([str(p) for p in built.flagged], db=built.db, config=strict)
    assert summary.failed == 0, summary
    lenient = AnalyzeConfig(tasks=tasks, review=ReviewThresholds(classify_conf_threshold=0.0))
    assert analyze([str(p) for p in built.clean], db=built.db, config=lenient).failed == 0

    built.detected = img / "boxes.png"
    Image.fromarray(_pattern(21, (60, 90))).save(built.detected)
    raw = built.detected.read_bytes()
    det = Detections(boxes=[[5, 5, 40, 30], [50, 10, 89.5, 59.9]], scores=[0.9, 0.4], class_ids=[0, 1],
                     labels=["widget", "gadget"], model="toy@1")
    with Catalog(built.db) as cat:
        cat.save(Analysis(path=str(built.detected), sha256=hashlib.sha256(raw).hexdigest(), width=90, height=60,
                          format="PNG", bytes=len(raw), needs_review=True, review_reasons=["detect: low score"],
                          results={"detect": det}, models={"detect": "toy@1"}),
                 path=str(built.detected), size=len(raw))
    built.flagged.append(built.detected)
    return built


def png_bytes(size: tuple[int, int] = (20, 30), seed: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_pattern(seed, size)).save(buf, "PNG")
    return buf.getvalue()
