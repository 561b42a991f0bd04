"""Pieces shared by the per-format validators: the report types, a problem collector, box
checks with their safe fixes, and a cheap safe image probe.

A validator never raises on a bad dataset: it collects every :class:`Problem` it finds.
A problem that ``--fix`` can repair safely carries ``fix`` (``"clip"`` or ``"drop"``) and a
``target`` that the format's fixer uses to find the record again.

>>> out = Collector("labels.txt")
>>> check_box(out, "line 1", [2, 2, 12, 5], (10, 8), target=0)
'clip'
>>> [(p.record, p.message, p.fix) for p in out.problems]
[('line 1', 'box [2.0, 2.0, 12.0, 5.0] is outside the 10x8 image', 'clip')]
>>> clip_box([2, 2, 12, 5], 10, 8)
[2.0, 2.0, 10.0, 5.0]
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from PIL import Image, UnidentifiedImageError

from ...core.errors import PixsightError
from ...core.image import ALLOWED_FORMATS, ImageLimits, load_image, sniff_refused_format
from ..dataset import BOX_TOLERANCE
from ..formats._common import exif_orientation

__all__ = ["Severity", "Problem", "ValidationReport", "FixSummary", "Collector", "check_box", "clip_box",
           "clip_points", "probe_image", "check_image_file", "is_int", "is_num"]

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One problem: how bad, in which file, which record, what is wrong, and whether the
    fixer can repair it safely (``fix`` says how: ``"clip"`` or ``"drop"``)."""

    severity: Severity
    file: str
    record: str
    message: str
    fixable: bool = False
    fix: str | None = None
    target: Any = field(default=None, repr=False, compare=False)  # where the fixer acts (format-specific)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("target")
        return d


@dataclass
class ValidationReport:
    """All problems found in one dataset; ``ok`` when there are none.

    ``images`` / ``annotations`` / ``categories`` count what the files hold (records, labels,
    classes), problems included.
    """

    path: str
    format: str = "coco"
    problems: list[Problem] = field(default_factory=list)
    images: int = 0
    annotations: int = 0
    categories: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def unfixable(self) -> list[Problem]:
        return [p for p in self.problems if not p.fixable]

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "format": self.format, "ok": self.ok, "images": self.images,
                "annotations": self.annotations, "categories": self.categories, "errors": len(self.errors),
                "warnings": len(self.warnings), "fixable": sum(p.fixable for p in self.problems),
                "problems": [p.to_dict() for p in self.problems]}


@dataclass
class FixSummary:
    """What a fixer changed: the clipped and dropped records (``file: record`` when the
    record is not in the dataset's main file) and the files it wrote."""

    out_path: str
    clipped: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.clipped or self.dropped)

    def note(self, problem: Problem, action: str, main_file: str) -> None:
        """Record that ``problem`` was fixed by ``action`` (``"clip"`` or ``"drop"``)."""
        name = problem.record if problem.file == main_file else f"{problem.file}: {problem.record}"
        (self.clipped if action == "clip" else self.dropped).append(name)

    def to_dict(self) -> dict[str, Any]:
        return {"out_path": self.out_path, "clipped": self.clipped, "dropped": self.dropped, "files": self.files}


def is_int(v: Any) -> bool:
    """True for an int that is not a bool."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v: Any) -> bool:
    """True for an int or float that is not a bool."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class Collector:
    """Gathers problems; ``file`` is the default file they are reported against."""

    def __init__(self, file: str | Path) -> None:
        self.file = str(file)
        self.problems: list[Problem] = []

    def error(self, record: str, message: str, *, file: str | Path | None = None, fix: str | None = None,
              target: Any = None) -> None:
        self.problems.append(Problem("error", str(file or self.file), record, message, fix is not None, fix, target))

    def warning(self, record: str, message: str, *, file: str | Path | None = None, fix: str | None = None,
                target: Any = None) -> None:
        self.problems.append(Problem("warning", str(file or self.file), record, message, fix is not None, fix, target))

    def fixes(self) -> dict[Any, Problem]:
        """Fixable problems by target (what a fixer iterates)."""
        return {p.target: p for p in self.problems if p.fixable}


def _round(values: Sequence[float]) -> list[float]:
    return [round(float(v), 3) for v in values]


def clip_box(box: Sequence[float], width: float, height: float) -> list[float] | None:
    """``box`` (xyxy) clipped to a ``width`` x ``height`` image, or ``None`` when nothing is inside.

    >>> clip_box([-5, 1, 3, 4], 10, 10), clip_box([11, 1, 13, 4], 10, 10)
    ([0.0, 1.0, 3.0, 4.0], None)
    """
    x1, y1 = max(0.0, float(box[0])), max(0.0, float(box[1]))
    x2, y2 = min(float(width), float(box[2])), min(float(height), float(box[3]))
    if x2 <= x1 or y2 <= y1:
        return None
    return [x1, y1, x2, y2]


def clip_points(points: Sequence[Sequence[float]], width: float, height: float) -> list[list[float]] | None:
    """Polygon points clamped into the image, or ``None`` when the clamped polygon has no area.

    >>> clip_points([[-1, 0], [4, 0], [4, 12]], 10, 10)
    [[0.0, 0.0], [4.0, 0.0], [4.0, 10.0]]
    """
    out = [[min(max(float(x), 0.0), float(width)), min(max(float(y), 0.0), float(height))] for x, y in points]
    if len(out) < 3:
        return None
    xs, ys = [p[0] for p in out], [p[1] for p in out]
    if max(xs) <= min(xs) or max(ys) <= min(ys):
        return None
    return out


def check_box(out: Collector, record: str, box: Sequence[float], size: tuple[float, float] | None, *,
              target: Any, file: str | Path | None = None, what: str = "box",
              tolerance: float = BOX_TOLERANCE, bounds: str | None = None) -> str | None:
    """Report a non-finite, empty or out-of-image ``box`` (xyxy); return the fix it got.

    ``size`` is the image's ``(width, height)`` (``None`` when unknown: only the first two
    checks run). Non-finite and empty boxes are dropped by the fixer; a box poking out of
    the image is clipped, or dropped when nothing of it is inside. ``bounds`` names the
    image's extent in the message (default ``"the WxH image"``).
    """
    if not all(math.isfinite(float(v)) for v in box):
        out.error(record, f"{what} has a non-finite value: {_round(box)}", file=file, fix="drop",
                  target=target)
        return "drop"
    x1, y1, x2, y2 = (float(v) for v in box)
    if x2 <= x1 or y2 <= y1:
        out.error(record, f"{what} {_round(box)} has zero or negative size", file=file, fix="drop", target=target)
        return "drop"
    if size is None:
        return None
    w, h = size
    t = tolerance
    if x1 < -t or y1 < -t or x2 > w + t or y2 > h + t:
        fix = "clip" if clip_box(box, w, h) is not None else "drop"
        tail = " (nothing left inside)" if fix == "drop" else ""
        where = bounds or f"the {_fmt(w)}x{_fmt(h)} image"
        out.error(record, f"{what} {_round(box)} is outside {where}{tail}", file=file,
                  fix=fix, target=target)
        return fix
    return None


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


_OPEN_FORMATS = tuple(f for f in ALLOWED_FORMATS if f != "MPO")


def probe_image(path: str | Path, *, limits: ImageLimits | None = None, decode: bool = False) -> tuple[int, int]:
    """``(width, height)`` of the EXIF-oriented image at ``path`` after the safe loader's checks.

    The byte limit, the refused-format sniff, the format allow-list and the pixel limit are
    checked from the header. Then the pixels are proved readable as cheaply as the format
    allows: PNG by walking its chunks and CRCs (``verify``, no inflate), JPEG by a reduced
    (1/8 scale) decode, other formats by a decode. ``decode=True`` always decodes (reduced).

    Raises:
        ImageDecodeError: (or a subclass) what :func:`~pixsight.core.image.load_image` would raise.
    """
    from ...core.errors import ImageDecodeError, ImageTooLargeError, UnsupportedFormatError

    limits = limits or ImageLimits()
    p = Path(path)
    where = str(p)
    try:
        nbytes = p.stat().st_size
        if not p.is_file():
            raise ImageDecodeError("not a regular file", path=where)
        if nbytes == 0:
            raise ImageDecodeError("file is empty (0 bytes)", path=where)
        if nbytes > limits.max_bytes:
            raise ImageTooLargeError(f"file is {nbytes} bytes, over the limit of {limits.max_bytes} bytes",
                                     path=where, limit=limits.max_bytes, actual=nbytes)
        with open(p, "rb") as fh:
            head = fh.read(64)
    except OSError as err:
        raise ImageDecodeError(f"cannot read file: {err.strerror or err}", path=where) from None
    refused = sniff_refused_format(head)
    if refused:
        raise UnsupportedFormatError(f"{refused} is not an allowed image format", path=where)
    try:
        with Image.open(p, formats=_OPEN_FORMATS) as img:
            fmt = img.format or ""
            w, h = img.size
            if w * h > limits.max_pixels:
                raise ImageTooLargeError(f"image is {w}x{h} = {w * h} pixels, over the limit of {limits.max_pixels} "
                                         "(possible decompression bomb)", path=where, limit=limits.max_pixels,
                                         actual=w * h)
            orientation = exif_orientation(img)
        if fmt == "PNG" and not decode:
            with Image.open(p, formats=("PNG",)) as img:
                img.verify()  # chunk structure and CRCs, no inflate; must come right after open
    except UnidentifiedImageError:
        raise ImageDecodeError(f"not a recognised image (allowed: {', '.join(ALLOWED_FORMATS)})",
                               path=where) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageTooLargeError(str(err), path=where, limit=limits.max_pixels, actual=-1) from None
    except PixsightError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, IndexError) as err:
        msg = str(err) or type(err).__name__
        if "truncated" in msg.lower():
            msg = f"file is truncated ({msg})"
        raise ImageDecodeError(f"cannot decode image: {msg}", path=where) from None
    if fmt != "PNG" or decode:
        load_image(p, max_side=64, limits=limits)
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def check_image_file(out: Collector, path: Path, name: str, record: str, declared: tuple[int, int] | None, *,
                     decode: bool = False, file: str | Path | None = None,
                     size_source: str = "the labels") -> tuple[int, int] | None:
    """Probe the image ``name`` (at ``path``) a record points to; report a missing or
    unreadable file, or a size that differs from ``declared`` (``size_source`` says where
    that size was written). Returns the real ``(width, height)`` or ``None``."""
    if not path.is_file():
        out.error(record, f"image file not found: {name}", file=file)
        return None
    try:
        size = probe_image(path, decode=decode)
    except PixsightError as err:
        out.error(record, f"unreadable image {name}: {err.message}", file=file)
        return None
    if declared is not None and tuple(declared) != size:
        out.error(record, f"size in {size_source} is {declared[0]}x{declared[1]} but {name} is "
                  f"{size[0]}x{size[1]}", file=file)
    return size
