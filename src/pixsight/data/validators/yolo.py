"""YOLO validation: ``data.yaml``, every label line of every label file, and the images.

Records are named like the reader names them: the label file and ``line N``. Fixes act on
label lines only (``data.yaml`` and the images are never changed): a box or polygon poking
out of the image is clipped to it, a line whose shape is empty, not finite, entirely
outside the image, of a class id not in ``names``, or an exact duplicate of an earlier
line is dropped.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import yaml

from ...core.errors import DatasetFormatError, PixsightError
from ...core.fileio import atomic_write_text
from ..formats._common import image_size, list_images
from ..parsing import ParseLimitError, load_yaml
from .common import Collector, FixSummary, ValidationReport, check_box, check_image_file, clip_box, clip_points

__all__ = ["validate_yolo", "fix_yolo", "yolo_yaml"]

log = logging.getLogger(__name__)

_SPLITS = ("train", "val", "test")


def yolo_yaml(path: str | Path) -> Path:
    """The ``data.yaml`` that ``path`` names (the file itself, or the one in the folder)."""
    p = Path(path)
    if p.is_dir():
        for name in ("data.yaml", "data.yml"):
            if (p / name).is_file():
                return p / name
        raise DatasetFormatError("no data.yaml in this folder", path=str(p))
    return p


def _names(doc: dict[str, Any], out: Collector) -> int | None:
    """Number of classes, or ``None`` when ``names`` is unusable (reported)."""
    if "names" not in doc:
        out.error("names", "missing key 'names'")
        return None
    names = doc["names"]
    if isinstance(names, dict):
        keys = sorted(names, key=str)
        if keys != list(range(len(keys))):
            out.error("names", f"names keys must be 0..{len(keys) - 1}, got {keys}")
            return None
        names = [names[k] for k in keys]
    if not isinstance(names, list):
        out.error("names", f"names must be a list or a mapping of class names, got {type(names).__name__}")
        return None
    for k, n in enumerate(names):
        if not isinstance(n, str) or not n:
            out.error("names", f"names[{k}] must be a non-empty string, got {n!r}")
    dupes = sorted({n for n in names if isinstance(n, str) and names.count(n) > 1})
    if dupes:
        out.error("names", f"duplicate class names {dupes}")
    return len(names)


def _split_files(doc: dict[str, Any], base: Path, out: Collector) -> dict[Path, list[str]]:
    """Image path -> the splits listing it; bad entries are reported."""
    owner: dict[Path, list[str]] = {}
    root = base.resolve()
    for split in _SPLITS:
        entries = doc.get(split)
        if entries is None:
            continue
        for entry in entries if isinstance(entries, list) else [entries]:
            target = (base / str(entry)).resolve()
            if target != root and root not in target.parents:
                out.error(split, f"{entry!r} points outside the dataset folder")
                continue
            if not target.exists():
                out.error(split, f"{entry!r} does not exist")
                continue
            if target.is_file() and target.suffix == ".txt":
                try:
                    lines = target.read_text(encoding="utf-8").splitlines()
                except (OSError, UnicodeDecodeError) as err:
                    out.error("file", f"cannot read: {err}", file=target)
                    continue
                found = []
                for n, ln in enumerate(lines, start=1):
                    if not ln.strip():
                        continue
                    img = (base / ln.strip()).resolve()
                    if not img.is_file():
                        out.error(f"line {n}", f"image not found: {ln.strip()}", file=target)
                    else:
                        found.append(img)
            else:
                found = [p.resolve() for p in list_images(target)]
            for p in found:
                owner.setdefault(p, []).append(split)
    return owner


def _label_path(image: Path, base: Path) -> Path:
    parts = list(image.relative_to(base).parts)
    for k in range(len(parts) - 2, -1, -1):
        if parts[k] == "images":
            parts[k] = "labels"
            break
    return base.joinpath(*parts).with_suffix(".txt")


def _shape(vals: list[float], size: tuple[int, int]) -> tuple[list[float], list[list[float]] | None]:
    """(xyxy box, polygon points or None) in the units of ``size``."""
    w, h = size
    if len(vals) == 4:
        cx, cy, bw, bh = vals
        return [(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], None
    pts = [[vals[k] * w, vals[k + 1] * h] for k in range(0, len(vals), 2)]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return [min(xs), min(ys), max(xs), max(ys)], pts


def _check_labels(label: Path, rel: str, size: tuple[int, int] | None, nc: int | None, out: Collector) -> int:
    try:
        text = label.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        out.error("file", f"cannot read labels: {err}", file=label)
        return 0
    seen: dict[tuple[str, ...], int] = {}
    count = 0
    for n, line in enumerate(text.splitlines(), start=1):
        tokens = tuple(line.split())
        if not tokens:
            continue
        count += 1
        rec, target = f"line {n}", (rel, n)
        if tokens in seen:
            out.warning(rec, f"duplicate of line {seen[tokens]}", file=label, fix="drop", target=target)
            continue
        seen[tokens] = n
        try:
            cls = int(tokens[0])
        except ValueError:
            out.error(rec, f"class id must be an int, got {tokens[0]!r}", file=label)
            continue
        try:
            vals = [float(t) for t in tokens[1:]]
        except ValueError:
            out.error(rec, f"coordinates must be numbers, got {' '.join(tokens[1:])!r}", file=label)
            continue
        if len(vals) != 4 and (len(vals) < 6 or len(vals) % 2):
            out.error(rec, f"expected 4 box values or 3+ polygon points after the class, got {len(vals)} values",
                      file=label)
            continue
        if nc is not None and not 0 <= cls < nc:
            out.error(rec, f"class id {cls} is not in names (0..{nc - 1})", file=label, fix="drop", target=target)
            continue
        what = "box" if len(vals) == 4 else "polygon"
        if not all(math.isfinite(v) for v in vals):
            out.error(rec, f"{what} has a non-finite value: {vals}", file=label, fix="drop", target=target)
            continue
        if size is not None:
            box, _ = _shape(vals, size)
            check_box(out, rec, box, size, target=target, file=label, what=what)
        else:  # image unreadable: check in normalised units
            box, _ = _shape(vals, (1, 1))
            check_box(out, rec, box, (1, 1), target=target, file=label, what=f"{what} (normalised)",
                      tolerance=1e-6, bounds="the image (0..1)")
    return count


def validate_yolo(path: str | Path, *, check_images: bool = True, decode: bool = False) -> ValidationReport:
    """Every problem in the YOLO dataset at ``path`` (its ``data.yaml`` or the folder holding it).

    >>> import tempfile
    >>> from PIL import Image
    >>> d = Path(tempfile.mkdtemp()); (d / "images").mkdir(); (d / "labels").mkdir()
    >>> Image.new("RGB", (10, 10)).save(d / "images" / "a.png")
    >>> _ = (d / "data.yaml").write_text("names: [cat]\\n")
    >>> _ = (d / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\\n3 0.5 0.5 0.2 0.2\\n")
    >>> [(p.record, p.message, p.fix) for p in validate_yolo(d).problems]
    [('line 2', 'class id 3 is not in names (0..0)', 'drop')]
    """
    try:
        yaml_file = yolo_yaml(path)
    except DatasetFormatError as err:
        out = Collector(str(path))
        out.error("file", err.message)
        return ValidationReport(str(path), "yolo", out.problems)
    out = Collector(yaml_file)
    report = ValidationReport(str(yaml_file), "yolo")
    try:
        doc = load_yaml(yaml_file)
    except FileNotFoundError:
        doc, err_msg = None, "file not found"
    except ParseLimitError as err:
        doc, err_msg = None, err.problem
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        doc, err_msg = None, f"cannot read YAML: {err}"
    else:
        err_msg = None if isinstance(doc, dict) else f"expected a mapping with 'names', got {type(doc).__name__}"
    if err_msg:
        out.error("file", err_msg)
        report.problems = out.problems
        return report
    nc = _names(doc, out)
    root = yaml_file.parent.resolve()
    owners = _split_files(doc, root, out)
    shared = [img for img, splits in owners.items() if len(set(splits)) > 1]
    if shared and len({tuple(sorted(set(s))) for s in owners.values()}) > 1:  # not the "train: images, val: images" idiom
        first = shared[0]
        out.warning("splits", f"{len(shared)} images are listed in several splits (first: "
                    f"{first.relative_to(root).as_posix()} in {' and '.join(sorted(set(owners[first])))}); "
                    "the reader ignores all splits")
    images_dir = root / "images"
    files = [p.resolve() for p in list_images(images_dir)] if images_dir.is_dir() else sorted(owners)
    if not files:
        out.warning("images", "no images found (expected an images/ folder or train/val lists)")
    labels_seen: set[Path] = set()
    for img in files:
        if check_images:
            size = check_image_file(out, img, img.relative_to(root).as_posix(), "image", None, decode=decode,
                                    file=img)
        else:
            try:
                size = image_size(img)
            except PixsightError:
                size = None
        label = _label_path(img, root)
        labels_seen.add(label)
        if label.is_file():
            report.annotations += _check_labels(label, label.relative_to(root).as_posix(), size, nc, out)
    for label in sorted((root / "labels").rglob("*.txt")) if (root / "labels").is_dir() else []:
        if label not in labels_seen:
            out.warning("file", "label file has no image (it is ignored)", file=label)
    report.images, report.categories = len(files), nc or 0
    report.problems = out.problems
    return report


def fix_yolo(path: str | Path, report: ValidationReport) -> FixSummary:
    """Apply ``report``'s safe fixes to the label files of the YOLO dataset at ``path``
    (in place; each changed label file is rewritten atomically).

    ``report`` comes from :func:`validate_yolo` on this dataset or on an identical copy.
    """
    base = yolo_yaml(path).parent.resolve()
    summary = FixSummary(str(base))
    by_file: dict[str, dict[int, Any]] = {}
    for p in report.problems:
        if p.fixable and isinstance(p.target, tuple):
            by_file.setdefault(p.target[0], {})[p.target[1]] = p
    for rel, fixes in sorted(by_file.items()):
        label = base / rel
        lines = label.read_text(encoding="utf-8").splitlines()
        kept = []
        for n, line in enumerate(lines, start=1):
            problem = fixes.get(n)
            if problem is None:
                kept.append(line)
                continue
            new = _clipped_line(line) if problem.fix == "clip" else None
            if new is None:
                summary.note(problem, "drop", report.path)
            else:
                summary.note(problem, "clip", report.path)
                kept.append(new)
        atomic_write_text(label, "".join(ln + "\n" for ln in kept))
        summary.files.append(str(label))
    log.info("fixed %s: %d clipped, %d dropped", base, len(summary.clipped), len(summary.dropped))
    return summary


def _clipped_line(line: str) -> str | None:
    tokens = line.split()
    vals = [float(t) for t in tokens[1:]]
    fmt = lambda v: format(float(v), ".10g")  # noqa: E731
    if len(vals) == 4:
        box, _ = _shape(vals, (1, 1))
        c = clip_box(box, 1.0, 1.0)
        if c is None:
            return None
        vals = [(c[0] + c[2]) / 2, (c[1] + c[3]) / 2, c[2] - c[0], c[3] - c[1]]
    else:
        pts = clip_points([[vals[k], vals[k + 1]] for k in range(0, len(vals), 2)], 1.0, 1.0)
        if pts is None:
            return None
        vals = [v for p in pts for v in p]
    return " ".join([tokens[0], *(fmt(v) for v in vals)])

