"""Image-folder (classification) validation: every image readable, nothing misplaced.

There is nothing to fix safely in class folders (a problem is an unreadable image or a
file in the wrong place), so this format has no fixer.
"""

from __future__ import annotations

from pathlib import Path

from ...core.image import IMAGE_EXTENSIONS
from ..formats.folders import SPLIT_FOLDERS
from .common import Collector, ValidationReport, check_image_file

__all__ = ["validate_folders"]


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def validate_folders(path: str | Path, *, check_images: bool = True, decode: bool = False) -> ValidationReport:
    """Every problem in the class-folder dataset at ``path`` (``ROOT/<class>/<image>`` or
    ``ROOT/<split>/<class>/<image>``).

    Reported: unreadable images (errors); images or other files the reader ignores, a mix
    of split and class folders at the top, classes present in one split only, classes
    without images (warnings).

    >>> import tempfile
    >>> from PIL import Image
    >>> d = Path(tempfile.mkdtemp()); (d / "cat").mkdir(); (d / "dog").mkdir()
    >>> Image.new("RGB", (4, 4)).save(d / "cat" / "a.png"); _ = (d / "cat" / "b.png").write_bytes(b"")
    >>> [(p.record, p.message) for p in validate_folders(d).problems]
    [('image', 'unreadable image cat/b.png: file is empty (0 bytes)'), ('dog', 'class folder has no images')]
    """
    root = Path(path)
    out = Collector(root)
    report = ValidationReport(str(root), "folders")
    if not root.is_dir():
        out.error("folder", "not a folder")
        report.problems = out.problems
        return report
    top = _subdirs(root)
    if not top:
        out.error("folder", "no class folders found")
    split_dirs = [d for d in top if d.name in SPLIT_FOLDERS]
    if split_dirs and len(split_dirs) != len(top):
        others = ", ".join(d.name for d in top if d.name not in SPLIT_FOLDERS)
        out.warning("folder", f"split folders ({', '.join(d.name for d in split_dirs)}) next to other folders "
                    f"({others}): the split folders are read as classes")
    groups = [(d.name, d) for d in top] if split_dirs and len(split_dirs) == len(top) else [(None, root)]
    for loose in sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS):
        out.warning("image", "image outside a class folder (ignored)", file=loose)
    per_split: dict[str | None, set[str]] = {}
    classes: set[str] = set()
    for split, group in groups:
        for class_dir in _subdirs(group):
            rel_class = class_dir.relative_to(root).as_posix()
            classes.add(class_dir.name)
            files = sorted(p for p in class_dir.rglob("*") if p.is_file())
            images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
            for other in files:
                if other.suffix.lower() not in IMAGE_EXTENSIONS and not other.name.startswith("."):
                    out.warning("file", "not an image extension (ignored)", file=other)
            if not images:
                out.warning(rel_class, "class folder has no images")
            else:
                per_split.setdefault(split, set()).add(class_dir.name)
            report.images += len(images)
            report.annotations += len(images)
            if check_images:
                for img in images:
                    check_image_file(out, img, img.relative_to(root).as_posix(), "image", None, decode=decode,
                                     file=img)
    if len(per_split) > 1:
        for split, present in sorted(per_split.items(), key=lambda kv: str(kv[0])):
            missing = sorted(classes - present)
            if missing:
                out.warning(str(split), f"no images of {', '.join(missing)} in this split")
    report.categories = len(classes)
    report.problems = out.problems
    return report
