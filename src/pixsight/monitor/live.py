"""Drift of a live catalog: the oldest analysed images against the newest, kept up to date.

:func:`compute_drift_status` reads two non-overlapping windows straight from the catalog
(image embeddings of one embed model; top-1 ``classify`` labels and scores) and compares
them with :func:`pixsight.monitor.drift.detect_drift`. The reference window is the oldest
``reference_size`` images (or the images first seen inside a pinned ``reference_range``),
the current window the newest ``current_size``; images are ordered by when the catalog
first saw them (``images.first_seen``; re-analysing an image does not make it "new").
:class:`LiveDrift` caches that status and refreshes it in a background thread (what
``pixsight serve`` shows at ``GET /v1/drift`` and in the ``pixsight_drift_*`` gauges).

>>> import tempfile, os
>>> compute_drift_status(os.path.join(tempfile.mkdtemp(), "none.sqlite"))["status"]
'insufficient_data'
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..catalog.storage import Session, open_session
from ..catalog.storage import drift as _rows
from ..core.errors import CatalogError
from .drift import DriftError, DriftWindow, detect_drift

__all__ = ["compute_drift_status", "DriftGauges", "LiveDrift"]

log = logging.getLogger(__name__)


@runtime_checkable
class DriftGauges(Protocol):
    """Where :class:`LiveDrift` publishes each status (the server's metrics object satisfies it).

    >>> class Printer:
    ...     def set_drift(self, status): print(status["status"])
    >>> isinstance(Printer(), DriftGauges)
    True
    """

    def set_drift(self, status: dict[str, Any]) -> None:
        """Show ``status`` (what :func:`compute_drift_status` returned)."""


def _connect(db: Path) -> Session:
    return open_session(db, mode="readonly", what="cannot read the catalog")


def _default_embed_model() -> str | None:
    """Registry key (``name@version``) of the default embed model, None if unknown."""
    try:
        from ..core.config import AnalyzeConfig
        from ..models.registry import get_registry

        return str(get_registry().get(AnalyzeConfig().embed.model).key)
    except Exception:  # noqa: BLE001 - only a preference; the catalog decides otherwise
        log.debug("default embed model unknown", exc_info=True)
        return None


def _pick_model(con: Session, model: str | None) -> str | None:
    rows = _rows.embedding_models(con)
    present = {m for m, _ in rows}
    if model is not None:
        return model if model in present else None
    default = _default_embed_model()
    if default in present:
        return default
    return rows[0][0] if rows else None


def _top1(con: Session, shas: list[str]) -> tuple[list[str], list[float]]:
    """Top-1 label and score of the latest ``classify`` result of each image that has one."""
    found = _rows.latest_top1(con, shas)
    pairs = [found[sha] for sha in shas if sha in found]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _window_info(rows: list[tuple[str, float, bytes]], n_labels: int) -> dict[str, Any]:
    return {"n": len(rows), "labelled": n_labels,
            "from": min(r[1] for r in rows) if rows else None, "to": max(r[1] for r in rows) if rows else None}


def _statistics(report: dict[str, Any]) -> dict[str, float]:
    """The flat numbers of a drift report (one gauge each: ``pixsight_drift_statistic{signal}``)."""
    out: dict[str, float] = {}
    emb = report.get("embedding") or {}
    out["embedding_mmd2"] = float(emb.get("mmd2", 0.0))
    out["embedding_p_value"] = float(emb.get("p_value", 1.0))
    for name in ("labels", "confidence"):
        part = report.get(name)
        if not part:
            continue
        for key in ("psi", "p_value", "chi2", "ks", "mean_reference", "mean_current"):
            if key in part:
                out[f"{name}_{key}"] = float(part[key])
    return out


def _empty(message: str, *, images: int = 0, model: str | None = None) -> dict[str, Any]:
    return {"status": "insufficient_data", "drift": None, "message": message, "images": images, "model": model,
            "reference": None, "current": None, "statistics": {}, "reasons": [], "computed": time.time()}


def compute_drift_status(
    db: str | os.PathLike[str],
    *,
    reference_size: int = 200,
    current_size: int = 200,
    min_size: int = 30,
    reference_range: tuple[float, float] | None = None,
    model: str | None = None,
    alpha: float = 0.01,
    psi_threshold: float = 0.2,
    permutations: int = 500,
) -> dict[str, Any]:
    """Compare the catalog's oldest and newest analysed images; a JSON-ready dict.

    Returns ``{"status": "ok"|"drift"|"insufficient_data", "drift": bool|None, "reference":
    {n, labelled, from, to, range}, "current": {...}, "statistics": {signal: number},
    "reasons": [...], "model", "images", "computed"}`` (``message`` says why when there is too
    little data: fewer than ``2 * min_size`` embedded images, or a pinned reference range
    holding fewer than ``min_size``). ``reference_range`` is ``(start, end)`` in Unix seconds.

    >>> import tempfile, os
    >>> compute_drift_status(os.path.join(tempfile.mkdtemp(), "c.sqlite"), min_size=5)["drift"] is None
    True
    """
    if min(reference_size, current_size, min_size) < 2:
        raise DriftError(f"drift windows need at least 2 images; got reference_size={reference_size}, "
                         f"current_size={current_size}, min_size={min_size}")
    path = Path(db)
    if not path.is_file():
        return _empty(f"no catalog at {path}: analyse images first")
    try:
        with _connect(path) as con:
            if not con.backend.has_table(con, "embeddings"):
                return _empty("the catalog has no embeddings table yet")
            chosen = _pick_model(con, model)
            if chosen is None:
                what = f"from model {model!r}" if model else "at all"
                return _empty(f"the catalog has no image embeddings {what}: serve or analyse with the embed task",
                              model=model)
            rows = _rows.embedded_images(con, chosen)
            total = len(rows)
            if reference_range is not None:
                start, end = reference_range
                ref_rows = [r for r in rows if start <= r[1] <= end][:reference_size]
                taken = {r[0] for r in ref_rows}
                cur_rows = [r for r in rows if r[0] not in taken and r[1] > end][-current_size:]
                if len(ref_rows) < min_size or len(cur_rows) < min_size:
                    return _empty(f"the pinned reference range holds {len(ref_rows)} images and {len(cur_rows)} are "
                                  f"newer; {min_size} of each are needed", images=total, model=chosen)
            else:
                if total < 2 * min_size:
                    return _empty(f"{total} embedded images; drift needs at least {2 * min_size} "
                                  f"({min_size} per window)", images=total, model=chosen)
                ref_n = min(reference_size, total // 2)
                cur_n = min(current_size, total - ref_n)
                ref_rows, cur_rows = rows[:ref_n], rows[total - cur_n:]
            windows = []
            for name, part in (("reference", ref_rows), ("current", cur_rows)):
                labels, scores = _top1(con, [r[0] for r in part])
                vectors = np.stack([np.frombuffer(r[2], dtype=np.float32) for r in part])
                windows.append((DriftWindow(embeddings=vectors, labels=labels, confidences=scores, name=name,
                                            model=chosen), len(labels)))
    except CatalogError as err:
        log.warning("drift: cannot read the catalog %s: %s", path, err.message)
        return _empty(err.message)
    try:
        report = detect_drift(windows[0][0], windows[1][0], alpha=alpha, psi_threshold=psi_threshold,
                              permutations=permutations, min_images=min_size)
    except DriftError as err:
        return _empty(str(err), images=total, model=chosen)
    ref_info = _window_info(ref_rows, windows[0][1])
    ref_info["range"] = list(reference_range) if reference_range is not None else None
    return {
        "status": "drift" if report.drift else "ok",
        "drift": report.drift,
        "reasons": list(report.reasons),
        "reference": ref_info,
        "current": _window_info(cur_rows, windows[1][1]),
        "statistics": _statistics(report.to_dict()),
        "alpha": alpha,
        "psi_threshold": psi_threshold,
        "model": chosen,
        "images": total,
        "computed": time.time(),
    }


def _fingerprint(db: Path) -> tuple[Any, ...] | None:
    """Cheap summary of what the drift windows depend on (skip recomputing when unchanged)."""
    try:
        with _connect(db) as con:
            return _rows.fingerprint(con)
    except (CatalogError, OSError, ValueError):
        return None


class LiveDrift:
    """The catalog's drift status, cached and refreshed every ``interval_s`` in a daemon thread.

    ``interval_s <= 0`` means no background thread: :meth:`status` recomputes when the
    catalog changed. Each refresh also calls ``metrics.set_drift(status)`` (any
    :class:`DriftGauges`; ``pixsight serve`` passes its metrics). Extra keyword
    arguments go to :func:`compute_drift_status` (window sizes, ``reference_range`` ...).

    >>> import tempfile, os
    >>> live = LiveDrift(os.path.join(tempfile.mkdtemp(), "c.sqlite"), interval_s=60)
    >>> live.status()["status"]
    'insufficient_data'
    """

    def __init__(self, db: str | os.PathLike[str], interval_s: float = 60.0, metrics: DriftGauges | None = None,
                 **options: Any) -> None:
        self.db = Path(db)
        self.interval_s = float(interval_s)
        self.metrics = metrics
        self.options = options
        self._status: dict[str, Any] | None = None
        self._seen: tuple[Any, ...] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def status(self) -> dict[str, Any]:
        """The latest status (computed now if there is none yet, or with no background thread)."""
        if self._status is None or (self.interval_s <= 0 and self._thread is None):
            return self.refresh()
        return self._status

    def refresh(self, *, force: bool = False) -> dict[str, Any]:
        """Recompute (unless the catalog is unchanged since the last time and not ``force``)."""
        with self._lock:
            seen = _fingerprint(self.db)
            if not force and self._status is not None and seen is not None and seen == self._seen:
                return self._status
            status = compute_drift_status(self.db, **self.options)
            self._status, self._seen = status, seen
            if self.metrics is not None:
                try:
                    self.metrics.set_drift(status)
                except Exception:  # noqa: BLE001 - gauges never break the status
                    log.exception("setting drift gauges failed")
            return status

    def start(self) -> None:
        """Refresh now and then every ``interval_s`` in a daemon thread (no-op if ``interval_s <= 0``)."""
        if self._thread is not None or self.interval_s <= 0:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="pixsight-drift", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the background thread (a refresh in progress finishes first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - keep the last status; try again next time
                log.exception("drift refresh failed")
            self._stop.wait(self.interval_s)
