"""Overlay images: draw an :class:`~pixsight.core.types.Analysis` on its image.

What is drawn (each only when the analysis has it):

- face boxes with their score (or ``identity`` from ``Faces.data``) and landmark dots;
- OCR line polygons, with a small text label when the line is tall enough to read;
- the top classification label and score as a banner in the top-left corner;
- a "NEEDS REVIEW" marker (banner in the top-right corner and a frame) and an error banner.

Every stroke is drawn twice, a dark halo under a bright colour, so overlays stay readable on
light and dark images. Line widths and font sizes scale with the output size. The input array
is never modified. Files written by :func:`save_annotated` carry no EXIF/GPS/XMP/ICC metadata
(SECURITY.md item 5), are written atomically (item 20) and always land inside ``out_dir``.

>>> import numpy as np
>>> from pixsight.core.types import Analysis, Faces
>>> img = np.zeros((120, 160, 3), np.uint8)
>>> a = Analysis(path="cat.jpg", width=160, height=120,
...              results={"faces": Faces(boxes=[[40, 30, 100, 90]], scores=[0.9])})
>>> out = draw_analysis(img, a)
>>> out.size, int(img.max())
((160, 120), 0)
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pixsight.core.errors import PixsightError
from pixsight.core.fileio import atomic_writer
from pixsight.core.types import Analysis, Classification, Faces, TextLines

__all__ = ["AnnotationError", "draw_analysis", "save_annotated", "safe_output_name"]

log = logging.getLogger(__name__)

RGB = tuple[int, int, int]
_HALO: RGB = (0, 0, 0)
_FACE: RGB = (0, 230, 118)  # green
_LANDMARK: RGB = (255, 235, 59)  # yellow
_OCR: RGB = (0, 200, 255)  # cyan
_REVIEW: RGB = (255, 145, 0)  # orange
_ERROR: RGB = (229, 57, 53)  # red
_BANNER_BG = (0, 0, 0, 175)
_MAX_OCR_LABELS = 60
_MAX_LABEL_CHARS = 48
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


class AnnotationError(PixsightError, ValueError):
    """The image cannot be annotated (wrong array shape/dtype) or the output name is unsafe."""


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _to_pil(image: np.ndarray) -> Image.Image:
    """Copy ``image`` (HxW, HxWx3 or HxWx4, any real dtype) into a new RGB PIL image."""
    if not isinstance(image, np.ndarray):
        raise AnnotationError(f"image must be a numpy array, got {type(image).__name__}")
    arr = image
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)) or 0 in arr.shape[:2]:
        raise AnnotationError(f"image must be (H, W), (H, W, 3) or (H, W, 4), got shape {image.shape}")
    if arr.dtype != np.uint8:
        if arr.dtype.kind not in "uif" and arr.dtype != np.bool_:
            raise AnnotationError(f"image dtype must be numeric, got {arr.dtype}")
        scale = 255.0 if arr.dtype.kind == "f" or arr.dtype == np.bool_ else 1.0
        arr = np.clip(np.nan_to_num(arr.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    # np.array(...) always copies, so drawing can never reach the caller's buffer.
    return Image.fromarray(np.array(arr[..., :3], dtype=np.uint8, order="C"), mode="RGB")


def _clean_text(text: str, limit: int = _MAX_LABEL_CHARS) -> str:
    """Drop control characters (untrusted OCR/label text) and shorten to ``limit``."""
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in str(text))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Painter:
    """Halo-stroked shapes and labelled boxes on an RGBA overlay."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size
        self.overlay = Image.new("RGBA", size, (0, 0, 0, 0))
        self.draw = ImageDraw.Draw(self.overlay)
        side = max(size)
        self.lw = max(1 if side < 160 else 2, round(side / 320))
        self.halo = max(1, round(self.lw / 2))
        self.font_px = max(11, round(side / 38))

    def polyline(self, points: list[tuple[float, float]], colour: RGB, *, closed: bool = True) -> None:
        pts = points + points[:1] if closed else points
        self.draw.line(pts, fill=(*_HALO, 255), width=self.lw + 2 * self.halo, joint="curve")
        self.draw.line(pts, fill=(*colour, 255), width=self.lw, joint="curve")

    def box(self, box: np.ndarray, colour: RGB) -> None:
        x0, y0, x1, y1 = (float(v) for v in box)
        self.polyline([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], colour)

    def dot(self, x: float, y: float, colour: RGB) -> None:
        r = max(1.5, self.lw * 1.3)
        self.draw.ellipse((x - r, y - r, x + r, y + r), fill=(*colour, 255), outline=(*_HALO, 255), width=self.halo)

    def label(self, text: str, x: float, y: float, *, colour: RGB, size: int | None = None,
              above: bool = True, bg: tuple[int, int, int, int] = _BANNER_BG) -> tuple[float, float, float, float]:
        """Draw ``text`` on a translucent plate anchored at (x, y); return the plate box."""
        font = _font(size or self.font_px)
        pad = max(2, (size or self.font_px) // 5)
        l, t, r, b = self.draw.textbbox((0, 0), text, font=font)
        w, h = r - l + 2 * pad, b - t + 2 * pad
        W, H = self.size
        x0 = min(max(0.0, x), max(0.0, W - w))
        y0 = y - h if above else y
        if y0 < 0:
            y0 = y if above else 0.0
        y0 = min(max(0.0, y0), max(0.0, H - h))
        plate = (x0, y0, x0 + w, y0 + h)
        self.draw.rectangle(plate, fill=bg)
        self.draw.text((x0 + pad - l, y0 + pad - t), text, font=font, fill=(*colour, 255))
        return plate

    def frame(self, colour: RGB) -> None:
        W, H = self.size
        width = max(2, self.lw * 2)
        self.draw.rectangle((0, 0, W - 1, H - 1), outline=(*colour, 255), width=width)


def _draw_faces(p: _Painter, faces: Faces) -> None:
    names = faces.data.get("identity")
    for i in range(len(faces)):
        p.box(faces.boxes[i], _FACE)
        if faces.landmarks is not None:
            for x, y in faces.landmarks[i]:
                if np.isfinite(x) and np.isfinite(y):
                    p.dot(float(x), float(y), _LANDMARK)
        who = names[i] if names is not None and names[i] else None
        text = _clean_text(f"{who} {faces.scores[i]:.2f}" if who else f"face {faces.scores[i]:.2f}")
        # Anchor the plate just above the stroke so it never hides the box's top edge.
        p.label(text, float(faces.boxes[i][0]), float(faces.boxes[i][1]) - p.lw - p.halo, colour=_FACE,
                size=max(11, round(p.font_px * 0.8)))


def _draw_ocr(p: _Painter, lines: TextLines) -> None:
    show_labels = len(lines) <= _MAX_OCR_LABELS
    for text, poly in zip(lines.texts, lines.polygons):
        pts = [(float(x), float(y)) for x, y in poly]
        p.polyline(pts, _OCR)
        if not show_labels:
            continue
        ys = [y for _, y in pts]
        size = min(p.font_px, round((max(ys) - min(ys)) * 0.7))
        text = _clean_text(text)
        if size >= 9 and text:  # below ~9 px the label would be unreadable clutter
            p.label(text, min(x for x, _ in pts), min(ys) - p.lw - p.halo, colour=_OCR, size=size)


def _draw_banners(p: _Painter, analysis: Analysis) -> None:
    big = max(11, round(p.font_px * 1.2))
    margin = max(2, p.lw * 3)
    cls = analysis.results.get("classify")
    if isinstance(cls, Classification) and cls.top_label is not None:
        p.label(f"{_clean_text(cls.top_label)} {cls.top_score:.0%}", margin, margin,
                colour=(255, 255, 255), size=big, above=False)
    right_texts: list[tuple[str, RGB]] = []
    if analysis.status == "error":
        err = analysis.error or {}
        right_texts.append((_clean_text(f"ERROR {err.get('type', '')}".strip()), _ERROR))
    if analysis.needs_review:
        right_texts.append(("NEEDS REVIEW", _REVIEW))
    y = float(margin)
    for text, colour in right_texts:
        p.frame(colour)
        font = _font(big)
        width = p.draw.textlength(text, font=font) + 2 * max(2, big // 5)
        plate = p.label(text, p.size[0] - margin - width, y, colour=colour, size=big, above=False)
        y = plate[3] + margin


def draw_analysis(image: np.ndarray, analysis: Analysis, *, max_side: int | None = None) -> Image.Image:
    """Return a new RGB image with ``analysis`` drawn over a copy of ``image``.

    Args:
        image: RGB uint8 (H, W, 3) pixels (grayscale, RGBA and float [0, 1] are accepted).
            It may be a reduced decode of the analysed image: coordinates are scaled by
            ``image width / analysis.width`` (and the same for heights).
        analysis: the results to draw (faces, ocr, classify, needs-review and error state).
        max_side: shrink the output so its longer side is at most this many pixels; lines
            and labels are sized for the output, so small thumbnails stay legible.

    Example:
        >>> from skimage import data
        >>> from pixsight.core.types import Classification
        >>> a = Analysis(path="chelsea.png", width=451, height=300, results={
        ...     "classify": Classification(class_ids=[281], scores=[0.9], labels=["tabby"])})
        >>> draw_analysis(data.chelsea(), a, max_side=200).size
        (200, 133)
    """
    pil = _to_pil(image)
    if max_side is not None:
        if max_side < 1:
            raise AnnotationError(f"max_side must be >= 1, got {max_side}")
        if max(pil.size) > max_side:
            ratio = max_side / max(pil.size)
            new = (max(1, round(pil.width * ratio)), max(1, round(pil.height * ratio)))
            pil = pil.resize(new, Image.Resampling.LANCZOS, reducing_gap=3.0)
    sx = pil.width / analysis.width if analysis.width else 1.0
    sy = pil.height / analysis.height if analysis.height else 1.0
    painter = _Painter(pil.size)
    ocr = analysis.results.get("ocr")
    if isinstance(ocr, TextLines) and len(ocr):
        _draw_ocr(painter, ocr.scaled(sx, sy))
    faces = analysis.results.get("faces")
    if isinstance(faces, Faces) and len(faces):
        _draw_faces(painter, faces.scaled(sx, sy))
    _draw_banners(painter, analysis)
    return Image.alpha_composite(pil.convert("RGBA"), painter.overlay).convert("RGB")


def safe_output_name(path: str, *, suffix: str = ".jpg", max_stem: int = 80) -> str:
    """A file name for ``path``'s overlay that is safe on any filesystem.

    Only the last path component is used, reduced to ASCII letters, digits, ``.``, ``_``
    and ``-``; a short sha256 of the full input path is appended so that ``a/x.jpg`` and
    ``b/x.jpg`` do not overwrite each other.

    >>> safe_output_name("../../etc/passwd.jpg")[:7]
    'passwd-'
    >>> safe_output_name("/photos/a/IMG 1.JPG") != safe_output_name("/photos/b/IMG 1.JPG")
    True
    """
    digest = hashlib.sha256(str(path).encode("utf-8", "surrogatepass")).hexdigest()[:10]
    base = re.split(r"[\\/]", str(path))[-1]
    stem = base.rsplit(".", 1)[0] if "." in base.strip(".") else base
    stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:max_stem] or "image"
    if stem.lower().split(".")[0] in _WINDOWS_RESERVED:
        stem = f"_{stem}"
    return f"{stem}-{digest}{suffix}"


def _resolve_target(out_dir: Path, analysis: Analysis, name: str | None) -> tuple[Path, str]:
    if name is None:
        filename = safe_output_name(analysis.path)
    else:
        if not name or os.path.basename(name) != name or name in (".", "..") or "\x00" in name or "\\" in name:
            raise AnnotationError(f"name must be a plain file name without folders, got {name!r}")
        filename = name
    ext = os.path.splitext(filename)[1].lower()
    if ext not in (".jpg", ".jpeg", ".png"):
        filename += ".jpg"
        ext = ".jpg"
    root = out_dir.resolve()
    target = (root / filename).resolve()
    if target.parent != root:
        raise AnnotationError(f"refusing to write outside {root}: {filename!r}")
    return target, "PNG" if ext == ".png" else "JPEG"


def save_annotated(
    image: np.ndarray,
    analysis: Analysis,
    out_dir: str | os.PathLike[str],
    *,
    name: str | None = None,
    max_side: int | None = 2048,
) -> Path:
    """Draw ``analysis`` on ``image`` and write it into ``out_dir``; return the file's path.

    The file is JPEG (quality 90) unless ``name`` ends in ``.png``. It is written without any
    metadata (no EXIF, GPS, XMP, ICC or PNG text), to a temp file that is renamed into place.
    Without ``name`` the file name comes from :func:`safe_output_name` (``<stem>-<hash>.jpg``).

    Raises:
        AnnotationError: ``name`` contains a folder part, or the image array is unusable.

    Example:
        >>> import tempfile
        >>> from skimage import data
        >>> a = Analysis(path="../../etc/passwd.jpg", width=451, height=300)
        >>> out = tempfile.mkdtemp()
        >>> p = save_annotated(data.chelsea(), a, out)
        >>> p.parent == Path(out).resolve(), p.suffix
        (True, '.jpg')
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target, fmt = _resolve_target(out, analysis, name)
    overlay = draw_analysis(image, analysis, max_side=max_side)
    # A fresh image from an array has an empty .info; pass nothing that could carry metadata.
    overlay.info.clear()
    with atomic_writer(target, "wb") as fh:
        if fmt == "PNG":
            overlay.save(fh, format="PNG", optimize=False)
        else:
            overlay.save(fh, format="JPEG", quality=90, subsampling="4:4:4")  # keeps thin coloured lines crisp
    log.debug("wrote overlay for %s to %s", analysis.path, target)
    return target
