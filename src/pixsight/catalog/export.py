"""Export the catalog as JSON Lines or CSV (one row per file).

>>> import io, tempfile, os
>>> from pixsight.catalog.store import Catalog
>>> cat = Catalog(os.path.join(tempfile.mkdtemp(), "c.sqlite"))
>>> buf = io.StringIO(); export_catalog(cat, buf, format="csv")
0
"""

from __future__ import annotations

import csv
import json
from typing import IO, Any, Iterator

from ..core.types import Analysis, Classification, Detections, Faces, Segmentation, TextLines
from .store import Catalog

__all__ = ["EXPORT_FORMATS", "CSV_COLUMNS", "iter_analyses", "export_catalog", "csv_row"]

EXPORT_FORMATS = ("jsonl", "csv")
CSV_COLUMNS = ("path", "sha256", "width", "height", "status", "error_type", "error_message", "needs_review",
               "review_reasons", "top_label", "top_score", "labels", "ocr_text", "ocr_lines", "faces",
               "embed_dim", "objects", "object_labels", "segments")


def iter_analyses(catalog: Catalog, *, with_vectors: bool = False) -> Iterator[Analysis]:
    """Every file in the catalog (errors included), sorted by path."""
    for path, sha, status, etype, emsg in catalog.iter_files():
        if status == "ok" and sha:
            analysis = catalog.load_analysis(sha, path=path, with_vectors=with_vectors)
            if analysis is not None:
                yield analysis
                continue
        yield Analysis(path=path, sha256=sha, status="error",
                       error={"type": etype or "PixsightError", "message": emsg or "unknown error"})


def csv_row(a: Analysis) -> dict[str, Any]:
    """One CSV row. Trained models: ``objects`` (how many detections), ``object_labels``
    (``label:count`` joined by ``|``, most frequent first) and ``segments`` (``label:fraction``
    of the image, largest first); empty when the task did not run."""
    cls, ocr, faces, emb = (a.results.get(k) for k in ("classify", "ocr", "faces", "embed"))
    dets, seg = a.results.get("detect"), a.results.get("segment")
    return {
        "path": a.path,
        "sha256": a.sha256 or "",
        "width": a.width or "",
        "height": a.height or "",
        "status": a.status,
        "error_type": (a.error or {}).get("type", ""),
        "error_message": (a.error or {}).get("message", ""),
        "needs_review": int(a.needs_review),
        "review_reasons": "; ".join(a.review_reasons),
        "top_label": cls.top_label if isinstance(cls, Classification) else "",
        "top_score": f"{cls.top_score:.4f}" if isinstance(cls, Classification) and len(cls) else "",
        "labels": "|".join(cls.labels) if isinstance(cls, Classification) else "",
        "ocr_text": ocr.text if isinstance(ocr, TextLines) else "",
        "ocr_lines": len(ocr) if isinstance(ocr, TextLines) else "",
        "faces": len(faces) if isinstance(faces, Faces) else "",
        "embed_dim": emb.dim if emb is not None else "",
        "objects": len(dets) if isinstance(dets, Detections) else "",
        "object_labels": "|".join(f"{k}:{n}" for k, n in dets.counts().items()) if isinstance(dets, Detections) else "",
        "segments": "|".join(f"{k}:{v:.4f}" for k, v in seg.coverage().items()) if isinstance(seg, Segmentation) else "",
    }


def export_catalog(catalog: Catalog, out: IO[str], *, format: str = "jsonl", with_vectors: bool = False) -> int:
    """Write every analysis to ``out``; returns the number of rows written."""
    if format not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {EXPORT_FORMATS}, got {format!r}")
    n = 0
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS) if format == "csv" else None
    if writer:
        writer.writeheader()
    # load vectors either way so faces keep their embedding_dim, as in `pixsight analyze --jsonl`
    for analysis in iter_analyses(catalog, with_vectors=True):
        if writer:
            writer.writerow(csv_row(analysis))
        else:
            out.write(json.dumps(analysis.to_dict(with_vectors=with_vectors), ensure_ascii=False) + "\n")
        n += 1
    return n
