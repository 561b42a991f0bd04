"""Overlay images: draw an :class:`~pixsight.core.types.Analysis` on its image.

What is drawn (each only when the analysis has it):

- segmentation masks (translucent, one colour per class) with a legend in the bottom-left corner;
- detected object boxes with "label score", one colour per class;
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
from pixsight.core.spatial import resize_nearest
from pixsight.core.types import Analysis, Classification, Detections, Faces, Segmentation, TextLines

__all__ = ["AnnotationError", "draw_analysis", "save_annotated", "safe_output_name", "class_colour"]

log = logging.getLogger(__name__)

RGB = tuple[int, int, int]
Box = tuple[float, float, float, float]
_HALO: RGB = (0, 0, 0)
_FACE: RGB = (0, 230, 118)  # green
_LANDMARK: RGB = (255, 235, 59)  # yellow
_OCR: RGB = (0, 200, 255)  # cyan
_REVIEW: RGB = (255, 145, 0)  # orange
_ERROR: RGB = (229, 57, 53)  # red
_BANNER_BG = (0, 0, 0, 175)
# Distinct, saturated colours for classes (detect/segment), readable on the dark label plates.
_CLASS_COLOURS: tuple[RGB, ...] = (
    (255, 64, 129), (41, 121, 255), (255, 214, 0), (0, 230, 118), (213, 0, 249), (255, 109, 0),
    (0, 229, 255), (174, 234, 0), (255, 23, 68), (101, 31, 255), (29, 233, 182), (255, 171, 64),
)
_MASK_ALPHA = 110  # of 255: the image stays visible under a mask
_MAX_BOX_LABELS = 60
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
        self.banner_px = max(11, round(self.font_px * 1.2))

    def _clip(self, points: list[tuple[float, float]]) -> list[tuple[float, float]] | None:
        """Drop shapes with non-finite points; clamp the rest near the canvas (bounded work)."""
        if not all(np.isfinite(x) and np.isfinite(y) for x, y in points):
            return None
        W, H = self.size
        return [(min(max(x, -W), 2.0 * W), min(max(y, -H), 2.0 * H)) for x, y in points]

    def polyline(self, points: list[tuple[float, float]], colour: RGB, *, closed: bool = True) -> None:
        clipped = self._clip(points)
        if not clipped:
            return
        pts = clipped + clipped[:1] if closed else clipped
        self.draw.line(pts, fill=(*_HALO, 255), width=self.lw + 2 * self.halo, joint="curve")
        self.draw.line(pts, fill=(*colour, 255), width=self.lw, joint="curve")

    def box(self, box: np.ndarray, colour: RGB) -> None:
        x0, y0, x1, y1 = (float(v) for v in box)
        self.polyline([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], colour)

    def dot(self, x: float, y: float, colour: RGB) -> None:
        clipped = self._clip([(x, y)])
        if not clipped:
            return
        (x, y), r = clipped[0], max(1.5, self.lw * 1.3)
        self.draw.ellipse((x - r, y - r, x + r, y + r), fill=(*colour, 255), outline=(*_HALO, 255), width=self.halo)

    def plate(self, text: str, x: float, y: float, *, size: int | None = None, above: bool = True) -> Box:
        """Where :meth:`label` would put ``text``'s plate: above (or below) (x, y), on canvas."""
        font = _font(size or self.font_px)
        pad = max(2, (size or self.font_px) // 5)
        l, t, r, b = self.draw.textbbox((0, 0), text, font=font)
        w, h = r - l + 2 * pad, b - t + 2 * pad
        W, H = self.size
        x = x if np.isfinite(x) else 0.0
        y = y if np.isfinite(y) else 0.0
        x0 = min(max(0.0, x), max(0.0, W - w))
        y0 = y - h if above else y
        if y0 < 0:
            y0 = y if above else 0.0
        y0 = min(max(0.0, y0), max(0.0, H - h))
        return (x0, y0, x0 + w, y0 + h)

    def label(self, text: str, x: float, y: float, *, colour: RGB, size: int | None = None,
              above: bool = True, at: Box | None = None) -> Box:
        """Draw ``text`` on a translucent plate anchored at (x, y) (or at ``at``); return the plate."""
        font = _font(size or self.font_px)
        pad = max(2, (size or self.font_px) // 5)
        box = at or self.plate(text, x, y, size=size, above=above)
        l, t, _, _ = self.draw.textbbox((0, 0), text, font=font)
        self.draw.rectangle(box, fill=_BANNER_BG)
        self.draw.text((box[0] + pad - l, box[1] + pad - t), text, font=font, fill=(*colour, 255))
        return box

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


def class_colour(class_id: int) -> RGB:
    """The colour of a class in overlays (stable per class id).

    >>> class_colour(0) != class_colour(1), class_colour(0) == class_colour(12)
    (True, True)
    """
    return _CLASS_COLOURS[int(class_id) % len(_CLASS_COLOURS)]


def _draw_detections(p: _Painter, dets: Detections) -> None:
    order = np.argsort(dets.scores, kind="stable")  # best drawn last, on top
    size = max(11, round(p.font_px * 0.8))
    for i in order:
        p.box(dets.boxes[i], class_colour(int(dets.class_ids[i])))
    if len(dets) > _MAX_BOX_LABELS:
        return
    for i in order:
        text = _clean_text(f"{dets.labels[i]} {dets.scores[i]:.2f}")
        p.label(text, float(dets.boxes[i][0]), float(dets.boxes[i][1]) - p.lw - p.halo,
                colour=class_colour(int(dets.class_ids[i])), size=size)


def _mask_layer(seg: Segmentation, size: tuple[int, int]) -> Image.Image:
    """An RGBA layer the size of the output: each class's pixels in its colour, translucent."""
    w, h = size
    cmap = resize_nearest(seg.class_map(), h, w)
    lut = np.zeros((int(cmap.max()) + 1, 4), np.uint8)
    for cid in seg.class_ids:
        lut[int(cid) + 1] = (*class_colour(int(cid)), _MASK_ALPHA)
    return Image.fromarray(lut[cmap], mode="RGBA")


def _draw_legend(p: _Painter, seg: Segmentation) -> None:
    """One plate per class, bottom-left upwards: "label 12%" in the class colour."""
    size = max(11, round(p.font_px * 0.8))
    margin = max(2, p.lw * 3)
    y = float(p.size[1] - margin)
    for cid, label, frac in sorted(zip(seg.class_ids, seg.labels, seg.fractions), key=lambda t: -t[2])[:12]:
        text = _clean_text(f"{label} {frac:.0%}" if frac >= 0.005 else f"{label} <1%")
        plate = p.plate(text, margin, y, size=size, above=True)
        p.label(text, plate[0], plate[1], colour=class_colour(int(cid)), size=size, at=plate)
        y = plate[1] - 2


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _draw_ocr(p: _Painter, lines: TextLines, *, reserved: list[Box]) -> None:
    polys = [[(float(x), float(y)) for x, y in poly] for poly in lines.polygons]
    for pts in polys:
        p.polyline(pts, _OCR)
    if len(lines) > _MAX_OCR_LABELS:
        return
    bounds: list[Box] = [(min(x for x, _ in q), min(y for _, y in q), max(x for x, _ in q), max(y for _, y in q))
                         for q in polys]
    placed: list[Box] = list(reserved)
    gap = p.lw + p.halo
    for i, (text, (x0, y0, _, y1)) in enumerate(zip(lines.texts, bounds)):
        size = min(p.font_px, round((y1 - y0) * 0.7)) if np.isfinite(y1 - y0) else 0
        text = _clean_text(text)
        if size < 9 or not text:  # below ~9 px the label would be unreadable clutter
            continue
        # Above the line, else below it; skip the label if both would hide other text.
        for y, above in ((y0 - gap, True), (y1 + gap, False)):
            plate = p.plate(text, x0, y, size=size, above=above)
            if not any(_overlaps(plate, b) for j, b in enumerate(bounds) if j != i) and \
                    not any(_overlaps(plate, b) for b in placed):
                placed.append(p.label(text, x0, y, colour=_OCR, size=size, at=plate))
                break


def _banners(p: _Painter, analysis: Analysis) -> list[tuple[str, RGB, Box]]:
    """Text, colour and plate of each banner: top label (top-left), error and review (top-right)."""
    big = p.banner_px
    margin = max(2, p.lw * 3)
    out: list[tuple[str, RGB, Box]] = []
    cls = analysis.results.get("classify")
    if isinstance(cls, Classification) and cls.top_label is not None:
        text = f"{_clean_text(cls.top_label)} {cls.top_score:.0%}"
        out.append((text, (255, 255, 255), p.plate(text, margin, margin, size=big, above=False)))
    right: list[tuple[str, RGB]] = []
    if analysis.status == "error":
        right.append((_clean_text(f"ERROR {(analysis.error or {}).get('type', '')}".strip()), _ERROR))
    if analysis.needs_review:
        right.append(("NEEDS REVIEW", _REVIEW))
    y = float(margin)
    for text, colour in right:
        width = p.draw.textlength(text, font=_font(big)) + 2 * max(2, big // 5)
        plate = p.plate(text, p.size[0] - margin - width, y, size=big, above=False)
        out.append((text, colour, plate))
        y = plate[3] + margin
    return out


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
    seg = analysis.results.get("segment")
    if isinstance(seg, Segmentation) and len(seg):
        pil = Image.alpha_composite(pil.convert("RGBA"), _mask_layer(seg, pil.size)).convert("RGB")
    painter = _Painter(pil.size)
    banners = _banners(painter, analysis)
    if isinstance(seg, Segmentation) and len(seg):
        _draw_legend(painter, seg)
    dets = analysis.results.get("detect")
    if isinstance(dets, Detections) and len(dets):
        _draw_detections(painter, dets.scaled(sx, sy))
    ocr = analysis.results.get("ocr")
    if isinstance(ocr, TextLines) and len(ocr):
        _draw_ocr(painter, ocr.scaled(sx, sy), reserved=[plate for _, _, plate in banners])
    faces = analysis.results.get("faces")
    if isinstance(faces, Faces) and len(faces):
        _draw_faces(painter, faces.scaled(sx, sy))
    if analysis.status == "error" or analysis.needs_review:
        painter.frame(_ERROR if analysis.status == "error" else _REVIEW)
    for text, colour, plate in banners:
        painter.label(text, plate[0], plate[1], colour=colour, size=painter.banner_px, at=plate)
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


def _upscaled(image: np.ndarray, analysis: Analysis, max_side: int | None) -> np.ndarray:
    """A reduced decode brought back to the analysed size (capped at ``max_side``), so
    overlays always have the original image's size and proportions. Strokes are drawn after
    this, so they stay sharp even though the photo itself may look soft."""
    if not (analysis.width and analysis.height) or image.ndim < 2:
        return image
    w, h = analysis.width, analysis.height
    if max_side and max(w, h) > max_side:
        ratio = max_side / max(w, h)
        w, h = max(1, round(w * ratio)), max(1, round(h * ratio))
    if image.shape[1] >= w or image.shape[0] >= h:
        return image
    log.debug("upscaling %dx%d pixels to %dx%d for the overlay of %s",
              image.shape[1], image.shape[0], w, h, analysis.path)
    return np.asarray(_to_pil(image).resize((w, h), Image.Resampling.BICUBIC))


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
    The overlay has the analysed image's size (``analysis.width`` x ``analysis.height``, shrunk
    to ``max_side``); a reduced decode is scaled up first, so pass the largest pixels you have.

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
    overlay = draw_analysis(_upscaled(image, analysis, max_side), analysis, max_side=max_side)
    # A fresh image from an array has an empty .info; pass nothing that could carry metadata.
    overlay.info.clear()
    with atomic_writer(target, "wb") as fh:
        if fmt == "PNG":
            overlay.save(fh, format="PNG", optimize=False)
        else:
            overlay.save(fh, format="JPEG", quality=90, subsampling="4:4:4")  # keeps thin coloured lines crisp
    log.debug("wrote overlay for %s to %s", analysis.path, target)
    return target
