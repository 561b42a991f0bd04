"""Dataset validation for every format: every problem, with file and record, and safe fixes.

The readers in :mod:`pixsight.data.formats` stop at the first problem; a validator parses
its format leniently and collects them all: missing or unreadable images (checked as
cheaply as the format allows, with the safe loader's size limits), image sizes that differ
from the labels, boxes outside the image, empty or non-finite, unknown classes, duplicate
ids and files, malformed records. When the lenient pass finds nothing, the real reader runs
too, so ``ok`` means :func:`~pixsight.data.formats.read_dataset` will load the dataset.

:func:`fix_dataset` applies only the fixes a problem is marked with, in the same format:

- ``clip``: a box (or polygon) poking out of its image is clipped to the image;
- ``drop``: an annotation whose box is empty, not finite or entirely outside the image,
  whose class is not in the class list, that points to an unknown image (COCO), or that
  exactly repeats an earlier one (YOLO lines) is removed.

Images, class lists and everything else are never changed. Dropping a label of an unknown
class loses that label: when many are reported, the class list is likely what is wrong, and
that should be fixed by hand instead.

>>> import json, tempfile
>>> from PIL import Image
>>> d = Path(tempfile.mkdtemp()); Image.new("RGB", (8, 6)).save(d / "a.png")
>>> doc = {"images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 6}],
...        "categories": [{"id": 1, "name": "cat"}],
...        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 2, 10, 2]}]}
>>> _ = (d / "a.json").write_text(json.dumps(doc))
>>> report = validate_dataset(d / "a.json")
>>> report.format, [(p.record, p.fix) for p in report.problems]
('coco', [('annotations[0] (id 1)', 'clip')])
>>> fix_dataset(d / "a.json", report).clipped
['annotations[0] (id 1)']
>>> validate_dataset(d / "a.json").ok
True
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from ..core.errors import DatasetFormatError
from .validators.common import FixSummary, Problem, ValidationReport, probe_image
from .validators.coco import fix_coco, validate_coco
from .validators.folders import validate_folders
from .validators.labelstudio import fix_labelstudio, labelstudio_json, validate_labelstudio
from .validators.voc import fix_voc, validate_voc
from .validators.cvat import cvat_xml, fix_cvat, validate_cvat
from .validators.yolo import fix_yolo, validate_yolo, yolo_yaml

__all__ = ["Problem", "ValidationReport", "FixSummary", "validate_dataset", "fix_dataset", "dataset_file",
           "validate_coco", "fix_coco", "validate_yolo", "fix_yolo", "validate_voc", "fix_voc",
           "validate_cvat", "fix_cvat", "validate_labelstudio", "fix_labelstudio", "validate_folders",
           "probe_image"]

log = logging.getLogger(__name__)

_VALIDATORS = {"coco": validate_coco, "yolo": validate_yolo, "voc": validate_voc, "cvat": validate_cvat,
               "labelstudio": validate_labelstudio, "folders": validate_folders}
#: Formats whose labels live in one file (``--out`` is a file) vs. a folder (``--out`` is a folder).
SINGLE_FILE_FORMATS: tuple[str, ...] = ("coco", "cvat", "labelstudio")


def dataset_file(path: str | Path, fmt: str) -> Path:
    """The file a single-file format's labels are in (COCO JSON, CVAT XML, Label Studio JSON);
    for YOLO the ``data.yaml``; for VOC and folders the folder itself."""
    from .formats.coco import looks_like_coco

    p = Path(path)
    if fmt == "coco" and p.is_dir():
        jsons = [j for j in sorted(p.glob("*.json")) if looks_like_coco(j)]
        if len(jsons) != 1:
            raise DatasetFormatError(f"expected one COCO JSON file in the folder, found {len(jsons)} "
                                     f"({', '.join(j.name for j in jsons) or 'none'}); name the one to use", path=str(p))
        return jsons[0]
    if fmt == "cvat":
        return cvat_xml(p)
    if fmt == "labelstudio":
        return labelstudio_json(p)
    if fmt == "yolo":
        return yolo_yaml(p)
    return p


def validate_dataset(path: str | Path, *, fmt: str | None = None, check_images: bool = True,
                     decode: bool = False) -> ValidationReport:
    """Every problem in the dataset at ``path`` (format detected unless ``fmt``); never raises
    on a bad dataset, only when ``path`` is not a dataset pixsight recognises.

    ``check_images`` probes every image (missing, unreadable, over the size limits, size
    differing from the labels); ``decode`` decodes each one (reduced) instead of the
    cheapest check its format allows.

    Raises:
        DatasetFormatError: ``path`` does not exist, its format cannot be told, or (COCO) a
            folder holds several COCO files.
    """
    from .formats import FORMATS, detect_format, read_dataset

    fmt = fmt or detect_format(path)
    if fmt not in _VALIDATORS:
        raise DatasetFormatError(f"unknown dataset format {fmt!r}; use one of {', '.join(FORMATS)}")
    target = dataset_file(path, fmt)
    report = _VALIDATORS[fmt](target, check_images=check_images, decode=decode)
    if not report.errors:  # the safety net: what validates must load
        try:
            read_dataset(target, fmt)
        except DatasetFormatError as err:
            report.problems.append(Problem("error", err.path or str(target), "dataset", err.message))
    log.debug("validated %s (%s): %d problems", target, fmt, len(report.problems))
    return report


def fix_dataset(path: str | Path, report: ValidationReport, *, out: str | Path | None = None) -> FixSummary:
    """Apply ``report``'s safe fixes (from :func:`validate_dataset` on ``path``), in place, or
    into ``out``: a file for single-file formats (COCO, CVAT, Label Studio: images stay
    where they are), a new folder for YOLO and VOC (the dataset is copied there first).

    Raises:
        DatasetFormatError: the format has nothing to fix (folders), ``out`` exists (folder
            formats), or the file changed since it was validated.
    """
    fmt = report.format
    src = dataset_file(path, fmt)
    if fmt == "coco":
        return fix_coco(src, Path(out) if out else src, report)
    if fmt == "cvat":
        return fix_cvat(src, Path(out) if out else src, report)
    if fmt == "labelstudio":
        return fix_labelstudio(src, Path(out) if out else src, report)
    if fmt not in ("yolo", "voc"):
        raise DatasetFormatError(f"{fmt} datasets have no safe fixes", path=str(path))
    fixer = fix_yolo if fmt == "yolo" else fix_voc
    folder = src.parent if fmt == "yolo" else src
    if out is None:
        return fixer(folder, report)
    dest = Path(out)
    if dest.exists():
        raise DatasetFormatError("already exists; --out must be a new folder for a fixed copy", path=str(dest))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.fix-", dir=dest.parent))
    try:
        copy = tmp / "dataset"
        shutil.copytree(folder, copy, symlinks=True)
        summary = fixer(copy, report)
        copy.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary.out_path = str(dest)
    summary.files = [str(dest / Path(f).resolve().relative_to(copy.resolve())) for f in summary.files]
    return summary
