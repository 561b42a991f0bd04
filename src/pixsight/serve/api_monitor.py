"""``GET /v1/drift`` (role viewer): the catalog's live drift status (see :mod:`pixsight.monitor.live`).

The answer is :meth:`LiveDrift.status` of the app (refreshed in the background every
``settings.drift_interval_s``), or one computation now when the app runs no monitor.

>>> [r.path for r in router.routes]
['/v1/drift']
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from ..monitor.live import compute_drift_status
from .auth import Principal, require

__all__ = ["router"]

router = APIRouter(tags=["monitor"])


@router.get("/v1/drift", summary="Drift between the oldest and the newest analysed images")
async def drift(request: Request, principal: Principal = Depends(require("viewer"))) -> dict[str, Any]:
    """``{"status": "ok"|"drift"|"insufficient_data", "drift", "reference", "current", "statistics",
    "computed", ...}``: embeddings (MMD), top-1 labels (PSI, chi-square) and confidences (KS, PSI)."""
    px = request.app.state.px
    live = getattr(px, "drift", None)
    if live is not None:
        return await run_in_threadpool(live.status)
    return await run_in_threadpool(compute_drift_status, px.settings.db)
