"""Reviewed images -> a training dataset (COCO JSON or class folders).

The latest decision of each reviewed image decides what it contributes:

========  ===========================================================================
accept    the model's own results: its top-1 ``classify`` label and its ``detect`` boxes
relabel   the reviewer's labels (the first one is the class in class folders)
fix       the reviewer's boxes (COCO only: class folders cannot hold boxes)
reject    left out (``include_rejected=True``: COCO keeps it as an image without
          annotations, class folders put it in a ``rejected`` folder)
========  ===========================================================================

Datasets are written by :func:`pixsight.data.formats.write_dataset`, so what this writes is
what ``pixsight data validate`` reads. In COCO, image-level labels (``accept``'s classify
label, ``relabel``'s labels) travel as the extra image field ``labels`` (class names, also
listed in ``categories``), because COCO has no image-level label of its own.

Images are read from the paths the catalog recorded (uploads included) and are used only
when their content still has the catalogued sha256. They are copied byte for byte, or, with
``strip_metadata=True``, re-encoded without metadata (EXIF orientation applied).

>>> summary = export_reviewed("pixsight.sqlite", "reviewed-coco", format="coco")  # doctest: +SKIP
>>> summary.images, summary.skipped[:1]                                           # doctest: +SKIP
(41, [{'sha256': '…', 'reason': 'no catalogued file has this content any more'}])
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..catalog.files import catalog_image
from ..core.errors import ImageDecodeError
from ..core.image import encode_clean, load_image
from .queue import Review, ReviewError, reviewed_items

__all__ = ["EXPORT_FORMATS", "ExportSummary", "export_reviewed", "catalog_image", "encode_clean",
           "REJECTED_CLASS"]

log = logging.getLogger(__name__)

#: Formats :func:`export_reviewed` writes.
EXPORT_FORMATS: tuple[str, ...] = ("coco", "folders")
#: Class folder of rejected images when ``include_rejected`` (class folders only).
REJECTED_CLASS = "rejected"

# formats copied byte for byte, with the extension their readers expect
_EXTENSIONS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "GIF": ".gif", "WEBP": ".webp",
               "BMP": ".bmp", "TIFF": ".tif", "PPM": ".ppm"}


@dataclass
class ExportSummary:
    """What an export wrote: where, in which format, how many images / annotations, the
    class names, decisions used per kind, and each image left out with the reason."""

    out_dir: str
    format: str
    images: int = 0
    annotations: int = 0
    classes: list[str] = field(default_factory=list)
    decisions: dict[str, int] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    dataset_path: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- export -----------------------------------------------------------------------------------
def export_reviewed(db: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, format: str = "coco",
                    include_rejected: bool = False, strip_metadata: bool = False) -> ExportSummary:
    """Write the reviewed images of the catalog at ``db`` as a dataset at ``out_dir`` (a new
    or empty folder), using each image's latest decision (see the module docs).

    Raises:
        ReviewError: unknown format, ``out_dir`` not empty, or nothing to export.
        CatalogError: ``db`` is not a catalog.

    Example:
        >>> s = export_reviewed("pixsight.sqlite", "out/folders", format="folders")  # doctest: +SKIP
        >>> s.images, s.classes                                                     # doctest: +SKIP
        (12, ['tabby', 'tiger cat'])
    """
    from ..catalog.store import Catalog
    from ..data.dataset import Annotation, Dataset, ImageRecord
    from ..data.formats import write_dataset

    if format not in EXPORT_FORMATS:
        raise ReviewError(f"unknown export format {format!r}; use one of {', '.join(EXPORT_FORMATS)}")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ReviewError("export folder exists and is not empty; pick a new folder", path=str(out))
    summary = ExportSummary(out_dir=str(out), format=format)
    reviews = reviewed_items(db)
    plans: list[tuple[Review, list[str], list[tuple[list[float], str]]]] = []
    with Catalog(db) as cat:
        for review in reviews:
            labels, boxes, reason = _labels_for(cat, review, format, include_rejected=include_rejected)
            if reason:
                summary.skipped.append({"sha256": review.sha256, "reason": reason})
                continue
            plans.append((review, labels[:1] if format == "folders" else labels, boxes))
    names = sorted({n for _, labels, boxes in plans for n in [*labels, *(b[1] for b in boxes)]})
    index = {n: k for k, n in enumerate(names)}
    with tempfile.TemporaryDirectory(prefix="pixsight-export-") as tmp:
        stage = Path(tmp)
        records = []
        for review, labels, boxes in plans:
            written = _stage_image(db, review.sha256, stage, strip_metadata=strip_metadata)
            if written is None:
                summary.skipped.append({"sha256": review.sha256,
                                        "reason": "no catalogued file has this content any more"})
                continue
            file_name, width, height = written
            anns = [Annotation(index[label], box) for box, label in boxes]
            if format == "folders":
                rec = ImageRecord(file_name, width, height, label=index[labels[0]])
            else:
                attrs: dict[str, Any] = {"sha256": review.sha256, "review": review.decision}
                if labels:
                    attrs["labels"] = labels
                rec = ImageRecord(file_name, width, height, annotations=anns, attributes=attrs)
            records.append(rec)
            summary.decisions[review.decision] = summary.decisions.get(review.decision, 0) + 1
        if not records:
            raise ReviewError("nothing to export: no reviewed image can be used"
                              + (f" ({len(summary.skipped)} skipped: {summary.skipped[0]['reason']})"
                                 if summary.skipped else "; review some images first"), path=str(db))
        ds = Dataset(stage, names, records, "classify" if format == "folders" else "detect")
        written_path = write_dataset(ds, out, format)
    summary.images = len(records)
    summary.annotations = sum(len(r.annotations) for r in records)
    summary.classes = names
    summary.dataset_path = str(written_path)
    log.info("exported %d reviewed images (%s) to %s; %d skipped", summary.images, format, out,
             len(summary.skipped))
    return summary


def _labels_for(cat: Any, review: Review, fmt: str, *, include_rejected: bool
                ) -> tuple[list[str], list[tuple[list[float], str]], str | None]:
    """(image labels, boxes, reason to skip or None) for one decision."""
    if review.decision == "reject":
        if not include_rejected:
            return [], [], "rejected"
        return ([REJECTED_CLASS] if fmt == "folders" else []), [], None
    if review.decision == "relabel":
        return list(review.labels), [], None
    if review.decision == "fix":
        if fmt == "folders":
            return [], [], "fixed boxes cannot be stored in class folders; export as coco"
        return [], [(list(b["box"]), str(b["label"])) for b in review.boxes], None
    analysis = cat.load_analysis(review.sha256, with_vectors=False)
    if analysis is None:
        return [], [], "image is no longer in the catalog"
    top = analysis.results.get("classify")
    labels = [top.top_label] if top is not None and top.top_label else []
    boxes: list[tuple[list[float], str]] = []
    det = analysis.detections
    if det is not None and fmt == "coco":
        for box, label in zip(det.boxes, det.labels):
            x1, y1, x2, y2 = (float(v) for v in box)
            # clamp float round-off at the border; drop degenerate boxes
            x1, y1 = max(0.0, x1), max(0.0, y1)
            x2, y2 = min(float(analysis.width), x2), min(float(analysis.height), y2)
            if x2 > x1 and y2 > y1:
                boxes.append(([x1, y1, x2, y2], label))
    if fmt == "folders" and not labels:
        return [], [], "accepted, but the model gave no classify label"
    if fmt == "coco" and not labels and not boxes:
        return [], [], "accepted, but the model gave no classify label or detections"
    return labels, boxes, None


def _stage_image(db: str | os.PathLike[str], sha: str, stage: Path, *,
                 strip_metadata: bool) -> tuple[str, int, int] | None:
    """Put the image into the staging folder; ``(file_name, width, height)`` or None."""
    found = catalog_image(db, sha)
    if found is None:
        return None
    _, data = found
    try:
        image = load_image(data, name=sha)
    except ImageDecodeError as err:
        log.warning("%s: cannot decode for export: %s", sha[:12], err)
        return None
    ext = _EXTENSIONS.get(image.format)
    if strip_metadata or ext is None:
        data, mime = encode_clean(image)
        ext = ".jpg" if mime == "image/jpeg" else ".png"
    file_name = f"images/{sha[:16]}{ext}"
    dst = stage / file_name
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(data)
    return file_name, image.width, image.height
