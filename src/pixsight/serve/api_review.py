"""Review queue routes over :mod:`pixsight.review.queue` and :mod:`pixsight.review.export`.

``GET /v1/review/next`` (viewer; claims the image only for reviewers, viewers just look),
``POST /v1/review/{sha256}`` (reviewer), ``GET /v1/review/stats``,
``GET /v1/review/history/{sha256}``, ``POST /v1/review/export`` (reviewer, a zip).

The reviewer recorded with a decision (and holding claims) is ``"<key name> [<key id>]"``,
so decisions stay attributable after a key is renamed or revoked.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from ..core.fileio import printable
from ..review import queue
from ..review.export import export_reviewed
from .api_catalog import _db, _not_found, check_sha
from .auth import ApiError, Principal, require

__all__ = ["router", "reviewer_name"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/review", tags=["review"])
viewer = Depends(require("viewer"))
reviewer = Depends(require("reviewer"))


def reviewer_name(principal: Principal) -> str:
    """Who a decision is recorded as: the key's name and id."""
    return f"{principal.name or 'key'} [{principal.key_id}]"


class ReviewItemOut(BaseModel):
    sha256: str
    path: str
    width: int
    height: int
    analysis: dict[str, Any]
    reasons: list[str]
    pending: int = Field(description="images still waiting, this one included")
    claimed_until: float = Field(description="POSIX time the claim ends; 0 when nothing was claimed (viewers)")


class BoxIn(BaseModel):
    box: list[float] = Field(min_length=4, max_length=4, description="[x1, y1, x2, y2] in pixels")
    label: str = Field(min_length=1, max_length=200)


class DecisionIn(BaseModel):
    decision: Literal["accept", "reject", "relabel", "fix"]
    labels: list[str] | None = Field(None, max_length=queue.MAX_LABELS)
    boxes: list[BoxIn] | None = Field(None, max_length=queue.MAX_BOXES)
    note: str | None = Field(None, max_length=queue.MAX_NOTE)


class ReviewOut(BaseModel):
    id: int
    sha256: str
    decision: str
    reviewer: str
    created: float
    labels: list[str]
    boxes: list[dict[str, Any]]
    note: str | None


class HistoryOut(BaseModel):
    sha256: str
    reviews: list[ReviewOut]


class ExportIn(BaseModel):
    format: Literal["coco", "folders"] = "coco"
    include_rejected: bool = False


@router.get("/next", response_model=ReviewItemOut, responses={204: {"description": "nothing waits for review"}},
            summary="The next image to review (claimed for reviewers)")
def review_next(request: Request, claim_s: float = Query(300.0, gt=0, le=3600),
                skip: list[str] = Query([], max_length=100, description="sha256s to pass over (and release)"),
                principal: Principal = viewer) -> Any:
    db = _db(request)
    item = queue.next_item(db, reviewer_name(principal), claim_s=claim_s, skip=skip,
                           claim=principal.can("reviewer"))
    if item is None:
        return Response(status_code=204)
    return ReviewItemOut(**item.to_dict())


@router.get("/stats", summary="Queue counts")
def review_stats(request: Request, principal: Principal = viewer) -> dict[str, int]:
    return queue.stats(_db(request))


@router.get("/history/{sha256}", response_model=HistoryOut, summary="Every decision on an image, oldest first")
def review_history(request: Request, sha256: str, principal: Principal = viewer) -> HistoryOut:
    sha = check_sha(sha256)
    try:
        reviews = queue.history(_db(request), sha)
    except queue.UnknownImageError:
        raise _not_found(sha) from None
    return HistoryOut(sha256=sha, reviews=[ReviewOut(**r.to_dict()) for r in reviews])


@router.post("/export", summary="The reviewed images as a dataset (zip)", response_class=FileResponse,
             responses={200: {"content": {"application/zip": {}}}})
def review_export(request: Request, body: ExportIn, principal: Principal = reviewer) -> FileResponse:
    """COCO or class folders (see ``pixsight review export``); images re-encoded without metadata."""
    db = _db(request)
    tmp = Path(tempfile.mkdtemp(prefix="pixsight-export-"))
    try:
        summary = export_reviewed(db, tmp / "dataset", format=body.format, include_rejected=body.include_rejected,
                                  strip_metadata=True)
        archive = tmp / "reviewed.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for path in sorted((tmp / "dataset").rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(tmp / "dataset").as_posix())
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("review export (%s) by %s: %d images", body.format, printable(reviewer_name(principal)), summary.images)
    return FileResponse(archive, media_type="application/zip", filename=f"pixsight-reviewed-{body.format}.zip",
                        headers={"X-Pixsight-Images": str(summary.images),
                                 "X-Pixsight-Skipped": str(len(summary.skipped))},
                        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True))


@router.post("/{sha256}", response_model=ReviewOut, summary="Record a decision (reviewer)")
def review_submit(request: Request, sha256: str, body: DecisionIn, principal: Principal = reviewer) -> ReviewOut:
    sha = check_sha(sha256)
    px = request.app.state.px
    try:
        review = queue.submit(_db(request), sha, body.decision, reviewer_name(principal), labels=body.labels,
                              boxes=[b.model_dump() for b in body.boxes] if body.boxes is not None else None,
                              note=body.note)
    except queue.UnknownImageError:
        raise _not_found(sha) from None
    except queue.ReviewError as err:
        raise ApiError(400, "ReviewError", printable(err.message)) from None
    if px.metrics is not None and hasattr(px.metrics, "count_review"):
        px.metrics.count_review(review.decision)
    return ReviewOut(**review.to_dict())
