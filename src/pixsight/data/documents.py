"""Synthetic document pages with known text: a clean renderer and a "phone photo" of it.

Used by the OCR tests, the OCR benchmark and the bundled examples. Everything is
deterministic for a given ``seed`` and needs only numpy, Pillow and OpenCV.

>>> page = render_page("Hello world. " * 20, width=600, font_size=24)
>>> page.shape[1], page.dtype
(600, dtype('uint8'))
>>> photo = photograph_page(page, seed=1, lighting="shadow")
>>> photo.shape == page.shape
True
"""

from __future__ import annotations

import io
import logging
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["FONT_FAMILIES", "LIGHTINGS", "sample_text", "render_page", "photograph_page"]

log = logging.getLogger(__name__)

#: Font family name -> DejaVu file (Debian's ``fonts-dejavu-core``); Pillow's own font otherwise.
FONT_FAMILIES: dict[str, str] = {
    "sans": "DejaVuSans.ttf",
    "serif": "DejaVuSerif.ttf",
    "mono": "DejaVuSansMono.ttf",
}
_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/usr/local/share/fonts")

#: Lighting models :func:`photograph_page` knows.
LIGHTINGS: tuple[str, ...] = ("none", "gradient", "vignette", "shadow", "mixed")

_WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at which "
    "but have an they you were her she there been one all we their has would when if so what no "
    "out up into more other some time could them than then now only its over also after new "
    "first these two may any like our well way even because made good each just those people "
    "how too many little state world long down day work life between both under never same "
    "another system number part water light page image paper market report letter account "
    "figure table method result sample value order record review quality engine reading "
    "morning evening station garden window kitchen village river mountain harbour railway "
    "history science language library museum council meeting payment invoice delivery "
    "customer service address summary chapter section example question answer measure"
).split()


def sample_text(seed: int = 0, *, n_words: int = 120, paragraph_every: int = 60) -> str:
    """Pseudo-English text (real words, sentences, a little punctuation and digits).

    >>> sample_text(3, n_words=8) == sample_text(3, n_words=8)
    True
    """
    rng = np.random.default_rng(seed)
    out: list[str] = []
    sentence: list[str] = []
    for i in range(n_words):
        word = str(rng.choice(_WORDS))
        if rng.random() < 0.04:
            word = str(int(rng.integers(2, 2000)))
        if not sentence:
            word = word.capitalize()
        sentence.append(word)
        end = len(sentence) >= int(rng.integers(6, 14)) or i == n_words - 1
        if end:
            out.append(" ".join(sentence) + ("." if rng.random() < 0.85 else "?"))
            sentence = []
        elif rng.random() < 0.07:
            sentence[-1] += ","
        if paragraph_every and i and i % paragraph_every == 0 and not sentence:
            out.append("\n\n")
    return " ".join(out).replace(" \n\n ", "\n\n").strip()


@lru_cache(maxsize=16)
def _font(family: str, size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    if family.endswith((".ttf", ".otf")) and Path(family).is_file():
        return ImageFont.truetype(family, size)
    name = FONT_FAMILIES.get(family)
    if name is None:
        raise ValueError(f"unknown font family {family!r}; use one of {sorted(FONT_FAMILIES)} or a .ttf path")
    for folder in _FONT_DIRS:
        path = Path(folder) / name
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    log.debug("DejaVu %s not found; using Pillow's default font", name)
    return ImageFont.load_default(size=size)


def _wrap(text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, max_width: int) -> list[str]:
    lines: list[str] = []
    for para in text.split("\n"):
        words = para.split()
        if not words:
            lines.append("")
            continue
        current = words[0]
        for word in words[1:]:
            trial = f"{current} {word}"
            if font.getlength(trial) <= max_width:
                current = trial
            else:
                lines.append(current)
                current = word
        lines.append(current)
    return lines


def render_page(
    text: str,
    *,
    width: int = 1200,
    font_size: int = 28,
    font: str = "sans",
    columns: int = 1,
    margin: int | None = None,
    line_spacing: float = 1.4,
    title: str | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Render ``text`` as a clean printed page (dark ink on off-white paper).

    Paragraphs are separated by blank lines in ``text``; words are wrapped to the column
    width. With ``columns=2`` the text fills the left column first, then the right one, so
    the reading order is the order of ``text``. A ``title`` spans all columns. The page is
    as tall as the text needs. ``seed`` varies the paper tone and ink darkness slightly.

    Returns:
        RGB uint8 array of shape (H, width, 3).

    >>> page = render_page("Two columns of text. " * 30, width=800, columns=2, title="Report")
    >>> page.shape[1]
    800
    """
    if width < 100 or font_size < 6 or columns < 1:
        raise ValueError(f"render_page: need width >= 100, font_size >= 6, columns >= 1 (got {width}, {font_size}, {columns})")
    rng = np.random.default_rng(seed)
    fnt = _font(font, font_size)
    margin = int(font_size * 2) if margin is None else margin
    gutter = int(font_size * 1.5)
    col_w = (width - 2 * margin - (columns - 1) * gutter) // columns
    if col_w < font_size * 4:
        raise ValueError(f"render_page: columns of {col_w}px are too narrow for font_size {font_size}")
    step = int(round(font_size * line_spacing))
    lines = _wrap(text, fnt, col_w)
    per_col = -(-len(lines) // columns) if lines else 0
    top = margin
    title_font = _font(font, int(font_size * 1.5)) if title else None
    if title:
        top += int(font_size * 1.5 * line_spacing) + step // 2
    height = top + per_col * step + margin
    paper = np.array([246, 244, 238]) + rng.integers(-6, 5, size=3)
    ink = int(rng.integers(10, 45))
    img = Image.new("RGB", (width, max(height, 2 * margin)), tuple(int(c) for c in paper))
    draw = ImageDraw.Draw(img)
    if title and title_font is not None:
        draw.text((margin, margin), title, font=title_font, fill=(ink, ink, ink))
    for i, line in enumerate(lines):
        col, row = divmod(i, per_col) if per_col else (0, 0)
        x = margin + col * (col_w + gutter)
        draw.text((x, top + row * step), line, font=fnt, fill=(ink, ink, ink))
    return np.asarray(img)


def _illumination(h: int, w: int, lighting: str, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative light field in (0, 1], shape (h, w)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    xn, yn = xx / max(w - 1, 1), yy / max(h - 1, 1)
    field = np.ones((h, w), np.float32)
    kinds = ("gradient", "vignette", "shadow") if lighting == "mixed" else (lighting,)
    for kind in kinds:
        if kind == "gradient":
            angle = rng.uniform(0, 2 * np.pi)
            ramp = np.cos(angle) * xn + np.sin(angle) * yn
            ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
            field *= 1.0 - strength * ramp
        elif kind == "vignette":
            cx, cy = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8)
            r2 = ((xn - cx) ** 2 + (yn - cy) ** 2) / 0.5
            field *= 1.0 - strength * np.clip(r2, 0, 1) ** 0.8
        elif kind == "shadow":
            # a soft-edged shadow over one side of a random line (a hand or a phone)
            angle = rng.uniform(0, 2 * np.pi)
            offset = rng.uniform(-0.25, 0.25)
            d = np.cos(angle) * (xn - 0.5) + np.sin(angle) * (yn - 0.5) - offset
            softness = rng.uniform(0.02, 0.08)
            field *= 1.0 - 0.75 * strength / (1.0 + np.exp(-d / softness))
        elif kind != "none":
            raise ValueError(f"unknown lighting {kind!r}; use one of {LIGHTINGS}")
    return np.clip(field, 0.05, 1.0)


def photograph_page(
    page: np.ndarray,
    *,
    seed: int = 0,
    lighting: str = "mixed",
    strength: float = 0.6,
    rotate_deg: float | None = None,
    perspective: float = 0.02,
    blur: float = 0.8,
    noise: float = 4.0,
    jpeg_quality: int | None = 75,
) -> np.ndarray:
    """Make a clean page look like a phone photo of it.

    Applied in order: a slight rotation and perspective tilt (the page stays the same size;
    uncovered corners show a darker table), uneven light (``lighting``: one of
    :data:`LIGHTINGS`, ``strength`` in [0, 1] is how dark the darkest part gets) with a warm
    colour cast, Gaussian blur (sigma ``blur`` px), sensor noise (std ``noise`` grey
    levels) and JPEG compression (``jpeg_quality``; ``None`` skips it).

    Args:
        page: RGB or grayscale uint8 page, e.g. from :func:`render_page`.
        seed: all random choices (angles, shadow position, noise) come from it.
        rotate_deg: rotation in degrees; ``None`` draws one in [-2, 2].

    Returns:
        RGB uint8 array of the same height and width as ``page``.

    >>> photo = photograph_page(render_page("Some text here.", width=400), seed=3, lighting="gradient")
    >>> photo.dtype.name
    'uint8'
    """
    import cv2  # installed with the OCR extra; imported here to keep module import light

    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"photograph_page: strength must be in [0, 1], got {strength}")
    if lighting not in LIGHTINGS:
        raise ValueError(f"photograph_page: unknown lighting {lighting!r}; use one of {LIGHTINGS}")
    rng = np.random.default_rng(seed)
    img = np.asarray(page)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = np.ascontiguousarray(img[..., :3], dtype=np.uint8)
    h, w = img.shape[:2]
    angle = float(rng.uniform(-2.0, 2.0)) if rotate_deg is None else float(rotate_deg)
    table = tuple(int(c) for c in rng.integers(60, 110, size=3))
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    jitter = rng.uniform(-perspective, perspective, size=(4, 2)) * np.float32([w, h])
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    dst = (np.hstack([src, np.ones((4, 1), np.float32)]) @ rot.T + jitter).astype(np.float32)
    matrix = cv2.getPerspectiveTransform(src, dst)
    out = cv2.warpPerspective(img, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=table)
    light = _illumination(h, w, lighting, strength, rng)
    cast = np.float32([1.0, rng.uniform(0.93, 1.0), rng.uniform(0.82, 0.95)])
    photo = out.astype(np.float32) * light[..., None] * cast
    if blur > 0:
        photo = cv2.GaussianBlur(photo, (0, 0), blur)
    if noise > 0:
        photo += rng.normal(0.0, noise, size=photo.shape).astype(np.float32)
    photo = np.clip(photo, 0, 255).astype(np.uint8)
    if jpeg_quality is not None:
        buf = io.BytesIO()
        Image.fromarray(photo).save(buf, format="JPEG", quality=int(jpeg_quality))
        photo = np.asarray(Image.open(buf).convert("RGB"))
    return photo
