"""Safe image loading for untrusted files (SECURITY.md items 1-5).

- The format is sniffed from the content against an allow-list (never the extension);
  EPS, FITS, SVG, PDF and anything else are refused with a clear message.
- Byte and pixel limits are checked before any pixel is decoded.
- EXIF orientation is applied; width/height always describe the *oriented* image.
- CMYK, 16-bit, palette, alpha, grayscale and animated (first frame) inputs become RGB uint8.
- JPEGs are decoded at a reduced size with Pillow's ``draft`` when the caller only needs
  ``max_side`` pixels, which is most of the decode time on big photos.

>>> from skimage import data
>>> import io, PIL.Image
>>> buf = io.BytesIO(); PIL.Image.fromarray(data.chelsea()).save(buf, "JPEG")
>>> img = load_image(buf.getvalue(), name="chelsea.jpg")
>>> img.width, img.height, img.pixels.dtype
(451, 300, dtype('uint8'))
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from struct import error as struct_error

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageDecodeError, ImageTooLargeError, PixsightError, UnsupportedFormatError

__all__ = [
    "ALLOWED_FORMATS",
    "DecodeBusyError",
    "IMAGE_EXTENSIONS",
    "ImageLimits",
    "LoadedImage",
    "PixelBudget",
    "clean_as_stored",
    "encode_clean",
    "header_pixels",
    "load_image",
    "read_image_bytes",
    "sniff_refused_format",
]

#: Pillow format names pixsight decodes. Everything else is refused by content.
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "MPO", "PNG", "GIF", "WEBP", "BMP", "TIFF", "PPM")
#: File extensions that folder walks pick up (content is still sniffed).
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".pnm", ".mpo"}
)
# What ``Image.open(formats=...)`` is given: Pillow has no separate MPO opener (the JPEG
# plugin returns MPO images itself) and raises KeyError for a name it cannot open.
_OPEN_FORMATS: tuple[str, ...] = tuple(f for f in ALLOWED_FORMATS if f != "MPO")

_REFUSED_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%!PS", "PostScript/EPS (decoding it would run Ghostscript)"),
    (b"\xc5\xd0\xd3\xc6", "EPS (decoding it would run Ghostscript)"),
    (b"SIMPLE  =", "FITS"),
    (b"%PDF", "PDF"),
    (b"<svg", "SVG"),
    (b"<?xml", "XML/SVG"),
    (b"PK\x03\x04", "a zip archive"),
)


@dataclass(frozen=True)
class ImageLimits:
    """Limits applied before decoding. Defaults suit photos up to 80 megapixels.

    ``max_pixels`` must stay at or below Pillow's own ``Image.MAX_IMAGE_PIXELS`` so that a
    decompression bomb is refused by pixsight before Pillow would only warn about it.
    """

    max_bytes: int = 100 * 1024 * 1024  # 100 MiB per file
    max_pixels: int = 80_000_000  # 80 MP (oriented width * height)

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.max_pixels <= 0:
            raise ValueError("ImageLimits: limits must be positive")
        pil_limit = Image.MAX_IMAGE_PIXELS
        if pil_limit is None or self.max_pixels > pil_limit:
            raise ValueError(
                f"ImageLimits: max_pixels={self.max_pixels} exceeds Pillow's limit {pil_limit}; "
                "pixsight never disables Pillow's decompression-bomb guard"
            )


@dataclass(frozen=True)
class LoadedImage:
    """A decoded image.

    ``pixels`` is RGB uint8 (H, W, 3), possibly smaller than the full image when a reduced
    decode was requested; ``width``/``height`` are the full oriented size, and
    ``scale`` = (width / pixels_width, height / pixels_height) maps pixel coordinates back
    to full-image coordinates.
    """

    pixels: np.ndarray
    width: int
    height: int
    format: str
    sha256: str
    nbytes: int
    path: str = ""

    @property
    def scale(self) -> tuple[float, float]:
        h, w = self.pixels.shape[:2]
        return self.width / w, self.height / h


def sniff_refused_format(head: bytes) -> str | None:
    """Name a refused format recognised from the first bytes of a file, else ``None``."""
    stripped = head.lstrip()
    for magic, name in _REFUSED_MAGIC:
        if head.startswith(magic) or stripped[: len(magic)].lower() == magic.lower():
            return name
    return None


def read_image_bytes(path: str | os.PathLike[str], *, limits: ImageLimits | None = None) -> bytes:
    """Read a file's bytes, refusing empty files and files over ``limits.max_bytes``."""
    limits = limits or ImageLimits()
    p = Path(path)
    try:
        size = p.stat().st_size
        if not p.is_file():
            raise ImageDecodeError("not a regular file", path=str(path))
        if size > limits.max_bytes:
            raise ImageTooLargeError(
                f"file is {size} bytes, over the limit of {limits.max_bytes} bytes",
                path=str(path), limit=limits.max_bytes, actual=size,
            )
        with open(p, "rb") as fh:
            data = fh.read(limits.max_bytes + 1)
    except OSError as err:
        raise ImageDecodeError(f"cannot read file: {err.strerror or err}", path=str(path)) from err
    if len(data) > limits.max_bytes:
        raise ImageTooLargeError("file grew past the byte limit while reading", path=str(path),
                                 limit=limits.max_bytes, actual=len(data))
    return data


def _oriented_size(img: Image.Image, size: tuple[int, int]) -> tuple[int, int]:
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # corrupt EXIF must not make a good image unreadable
        orientation = 1
    w, h = size
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


_HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in _HIGH_DEPTH_MODES:
        arr = np.asarray(img)
        if arr.ndim == 3:
            arr = arr[..., 0]
        arr = arr.astype(np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        if mode == "F":
            lo, hi = float(np.nanmin(arr, initial=0)), float(np.nanmax(arr, initial=1))
            arr = (arr - lo) / max(hi - lo, 1e-12) * 255.0
        else:
            arr = arr / top * 255.0
        gray = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img)


def load_image(
    source: bytes | str | os.PathLike[str],
    *,
    max_side: int | None = None,
    limits: ImageLimits | None = None,
    name: str | None = None,
) -> LoadedImage:
    """Decode an untrusted image safely into RGB uint8.

    Args:
        source: a path or the file's bytes.
        max_side: when set, decode at reduced size so that the longer side of ``pixels``
            is about ``max_side`` (never smaller than the image allows). ``None`` decodes
            at full size.
        limits: byte and pixel limits (defaults: :class:`ImageLimits`).
        name: what to call the image in errors (defaults to the path).

    Raises:
        ImageDecodeError: empty, truncated, corrupt or unreadable file.
        UnsupportedFormatError: a format outside :data:`ALLOWED_FORMATS` (EPS, FITS, SVG, ...).
        ImageTooLargeError: over the byte or pixel limit.
    """
    limits = limits or ImageLimits()
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        where = name or "<bytes>"
        if len(data) > limits.max_bytes:
            raise ImageTooLargeError(f"{len(data)} bytes is over the limit of {limits.max_bytes}",
                                     path=where, limit=limits.max_bytes, actual=len(data))
    else:
        where = name or str(source)
        data = read_image_bytes(source, limits=limits)
    if not data:
        raise ImageDecodeError("file is empty (0 bytes)", path=where)
    refused = sniff_refused_format(data[:64])
    if refused:
        raise UnsupportedFormatError(f"{refused} is not an allowed image format", path=where)
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        img = Image.open(io.BytesIO(data), formats=_OPEN_FORMATS)
    except UnidentifiedImageError as err:
        raise ImageDecodeError(
            f"not a recognised image (allowed: {', '.join(ALLOWED_FORMATS)})", path=where
        ) from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        # the warning arrives as an exception where warnings are errors (the CLI sets that)
        raise ImageTooLargeError(str(err), path=where, limit=limits.max_pixels, actual=-1) from err
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageDecodeError(f"cannot parse image header: {err}", path=where) from err
    with img:
        fmt = img.format or "unknown"
        full_w, full_h = img.size
        if full_w <= 0 or full_h <= 0:
            raise ImageDecodeError(f"invalid image size {full_w}x{full_h}", path=where)
        if full_w * full_h > limits.max_pixels:
            raise ImageTooLargeError(
                f"image is {full_w}x{full_h} = {full_w * full_h} pixels, over the limit of "
                f"{limits.max_pixels} (possible decompression bomb)",
                path=where, limit=limits.max_pixels, actual=full_w * full_h,
            )
        width, height = _oriented_size(img, (full_w, full_h))
        try:
            if max_side and fmt in ("JPEG", "MPO") and max(full_w, full_h) > max_side:
                ratio = max_side / max(full_w, full_h)
                img.draft("RGB", (max(1, int(full_w * ratio)), max(1, int(full_h * ratio))))
            img.seek(0) if getattr(img, "n_frames", 1) > 1 else None
            img.load()
            oriented = ImageOps.exif_transpose(img)
            if max_side and max(oriented.size) > max_side * 1.25:
                ratio = max_side / max(oriented.size)
                new_size = (max(1, round(oriented.width * ratio)), max(1, round(oriented.height * ratio)))
                if oriented.mode in _HIGH_DEPTH_MODES:  # scale to 8 bits first: convert() would clip
                    oriented = Image.fromarray(_to_rgb_array(oriented))
                elif oriented.mode not in ("RGB", "L", "RGBA", "LA"):
                    oriented = oriented.convert("RGBA" if "A" in oriented.mode or "transparency" in oriented.info else "RGB")
                oriented = oriented.resize(new_size, Image.Resampling.BILINEAR, reducing_gap=2.0)
            pixels = _to_rgb_array(oriented)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise ImageTooLargeError(str(err), path=where, limit=limits.max_pixels, actual=-1) from err
        except (OSError, ValueError, SyntaxError, EOFError, IndexError, struct_error) as err:
            msg = str(err) or type(err).__name__
            if "truncated" in msg.lower():
                msg = f"file is truncated ({msg})"
            raise ImageDecodeError(f"cannot decode image: {msg}", path=where) from err
    pixels = np.ascontiguousarray(pixels)
    return LoadedImage(pixels=pixels, width=width, height=height, format=fmt, sha256=sha256,
                       nbytes=len(data), path="" if isinstance(source, (bytes, bytearray, memoryview)) else str(source))


def encode_clean(image: LoadedImage, *, fmt: str | None = None, quality: int = 92,
                 max_side: int | None = None) -> tuple[bytes, str]:
    """Re-encode decoded (EXIF-oriented) pixels without any metadata: ``(bytes, mime type)``.

    ``fmt`` is ``"JPEG"`` or ``"PNG"``; by default JPEG sources stay JPEG and everything else
    becomes PNG (lossless). ``max_side`` shrinks the longer side (thumbnails).

    >>> import numpy as np
    >>> img = load_image(encode_clean(LoadedImage(np.zeros((4, 6, 3), np.uint8), 6, 4, "PNG", "", 0))[0])
    >>> img.width, img.height, img.format
    (6, 4, 'PNG')
    """
    fmt = fmt or ("JPEG" if image.format in ("JPEG", "MPO") else "PNG")
    if fmt not in ("JPEG", "PNG"):
        raise ValueError(f"fmt must be JPEG or PNG, got {fmt!r}")
    pil = Image.fromarray(image.pixels)
    if max_side and max(pil.size) > max_side:
        pil.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    if fmt == "JPEG":
        pil.save(buf, "JPEG", quality=quality, optimize=True)
        return buf.getvalue(), "image/jpeg"
    pil.save(buf, "PNG", optimize=False)
    return buf.getvalue(), "image/png"



# -- decode memory budget ---------------------------------------------------------------------
class DecodeBusyError(PixsightError):
    """Every pixel of the decode budget stayed in use for the whole wait; retry shortly."""


class PixelBudget:
    """One memory budget for concurrent decodes, counted in pixels (width x height).

    Every decode acquires the image's pixel count (read from the header, before decoding)
    and releases it when its pixels are no longer needed, so the pixels being decoded at
    once never exceed ``total``. A request that finds the budget spent waits at most
    ``timeout`` seconds, then gets :class:`DecodeBusyError`; an image larger than the whole
    budget gets :class:`ImageTooLargeError` at once. ``high_water`` is the most pixels ever
    held at the same time.

    >>> budget = PixelBudget(100)
    >>> with budget.acquire(60):
    ...     budget.in_use
    60
    >>> budget.in_use, budget.high_water
    (0, 60)
    """

    def __init__(self, total: int) -> None:
        if total <= 0:
            raise ValueError(f"PixelBudget: total must be positive, got {total}")
        self.total = int(total)
        self.in_use = 0
        self.high_water = 0
        self._cond = threading.Condition()

    @contextmanager
    def acquire(self, pixels: int, timeout: float = 5.0, *, name: str = "") -> Iterator[None]:
        pixels = max(0, int(pixels))
        if pixels > self.total:
            raise ImageTooLargeError(
                f"image is {pixels} pixels, more than the server's whole decode budget of {self.total} pixels",
                path=name, limit=self.total, actual=pixels)
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while self.in_use + pixels > self.total:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DecodeBusyError(
                        f"the server is decoding other images ({self.in_use} of {self.total} pixels in use); "
                        "retry shortly", path=name)
                self._cond.wait(left)
            self.in_use += pixels
            self.high_water = max(self.high_water, self.in_use)
        try:
            yield
        finally:
            with self._cond:
                self.in_use -= pixels
                self._cond.notify_all()


def header_pixels(data: bytes) -> int:
    """The pixel count (width x height) an image's header declares, without decoding any
    pixel; 0 when the header cannot be read (the decoder then refuses the file itself).

    >>> buf = io.BytesIO(); Image.new("L", (30, 20)).save(buf, "PNG")
    >>> header_pixels(buf.getvalue()), header_pixels(b"nope")
    (600, 0)
    """
    if not data or sniff_refused_format(data[:64]):
        return 0
    try:
        with Image.open(io.BytesIO(data), formats=_OPEN_FORMATS) as img:
            w, h = img.size
    except Exception:  # noqa: BLE001 - an unreadable header is load_image's error to report
        return 0
    return max(0, w) * max(0, h)


# PNG chunks that carry pixels or rendering hints, never text, EXIF, XMP, ICC or times.
_PNG_CLEAN_CHUNKS = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"pHYs",
                               b"sBIT", b"bKGD"})
# JPEG markers before the first scan that carry no metadata: SOFn, DHT, DQT, DRI, DNL, DAC.
_JPEG_CLEAN_MARKERS = frozenset({*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0),
                                 0xC4, 0xDB, 0xDD, 0xDC, 0xCC})


def _png_clean(data: bytes) -> bool:
    pos = 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        if kind not in _PNG_CLEAN_CHUNKS:
            return False
        pos += 12 + length
        if kind == b"IEND":
            return pos == len(data)
    return False


def _jpeg_clean(data: bytes) -> bool:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        segment = data[pos + 4:pos + 2 + length]
        if marker == 0xDA:  # start of scan: entropy-coded data, where FF D9 only ever means EOI
            end = data.find(b"\xff\xd9", pos + 2 + length)
            return end != -1 and end + 2 == len(data)
        if marker == 0xE0 and segment.startswith(b"JFIF\0"):
            pass
        elif marker == 0xEE and segment.startswith(b"Adobe"):
            pass
        elif marker not in _JPEG_CLEAN_MARKERS:
            return False  # APPn (EXIF, XMP, ICC, IPTC, MPF...), COM, or anything unexpected
        pos += 2 + length
    return False


def clean_as_stored(data: bytes) -> str | None:
    """The MIME type of ``data`` when it can be served as it is: a PNG or JPEG that holds
    nothing but pixels and rendering hints (no EXIF and so no orientation to apply, no XMP,
    ICC profile, comments, text chunks or trailing bytes). ``None``: it must be re-encoded.
    Only the container's structure is read; no pixel is decoded.

    >>> buf = io.BytesIO(); Image.new("RGB", (8, 8)).save(buf, "PNG")
    >>> clean_as_stored(buf.getvalue())
    'image/png'
    >>> exif = Image.Exif(); exif[0x0112] = 6  # orientation: rotate
    >>> buf = io.BytesIO(); Image.new("RGB", (8, 8)).save(buf, "PNG", exif=exif)
    >>> clean_as_stored(buf.getvalue()) is None
    True
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png" if _png_clean(data) else None
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg" if _jpeg_clean(data) else None
    return None
