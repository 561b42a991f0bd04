"""Queries of the analysis store (:class:`pixsight.catalog.store.Catalog`): images, files,
analyses, per-task results, image and face embeddings.

Writes are keyed upserts, so storing the same analysis twice changes nothing but times;
:func:`save_ok` writes one image's rows and is called inside one write transaction. JSON
columns arrive and leave as text: the caller encodes and decodes them.

>>> import tempfile, os
>>> from pixsight.catalog.storage import open_session
>>> with open_session(os.path.join(tempfile.mkdtemp(), "c.sqlite")) as s:
...     save_error(s, "/x/broken.jpg", size=3, mtime_ns=4, error_type="ImageDecodeError", message="bad", now=1.0)
...     file_error(s, ["/x/broken.jpg"]), counts(s)
({'type': 'ImageDecodeError', 'message': 'bad'}, (0, 0))
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

from .backend import Session

__all__ = ["FILE_COLUMNS", "known_file", "count_results_of", "image_row", "analysis_row", "latest_path",
           "result_rows", "face_vectors", "embedding", "shas_by_path", "shas_by_prefix", "file_error", "counts",
           "iter_files", "save_error", "save_ok", "touch_file"]

FILE_COLUMNS = ("path", "sha256", "size", "mtime_ns", "status", "error_type", "error_message", "seen")
_IMAGE_COLUMNS = ("sha256", "bytes", "width", "height", "format", "first_seen", "last_seen")
_ANALYSIS_COLUMNS = ("sha256", "needs_review", "review_reasons", "timings", "task_errors", "updated")


# -- lookups ----------------------------------------------------------------------------------
def known_file(s: Session, path: str, size: int, mtime_ns: int) -> str | None:
    """sha256 of ``path`` if it was analysed before with this size and modification time."""
    return s.scalar("SELECT sha256 FROM files WHERE path=? AND size=? AND mtime_ns=? AND status='ok'",
                    (path, size, mtime_ns))


def count_results_of(s: Session, sha256: str, models: Mapping[str, str]) -> int:
    """How many of the ``task -> model`` results are stored for image ``sha256``."""
    if not models:
        return 0
    pairs = " OR ".join(["(task=? AND model=?)"] * len(models))
    return int(s.scalar(f"SELECT COUNT(*) FROM results WHERE sha256=? AND ({pairs})",
                        (sha256, *[v for kv in models.items() for v in kv])))


def image_row(s: Session, sha256: str) -> tuple[int, int, int, str] | None:
    """``(bytes, width, height, format)`` of an image, or None."""
    return s.one("SELECT bytes, width, height, format FROM images WHERE sha256=?", (sha256,))


def analysis_row(s: Session, sha256: str) -> tuple[int, str, str, str] | None:
    """``(needs_review, review_reasons, timings, task_errors)`` (JSON text) of an image, or None."""
    return s.one("SELECT needs_review, review_reasons, timings, task_errors FROM analyses WHERE sha256=?", (sha256,))


def latest_path(s: Session, sha256: str) -> str | None:
    """The path content ``sha256`` was last seen at (any status), or None."""
    return s.scalar("SELECT path FROM files WHERE sha256=? ORDER BY seen DESC LIMIT 1", (sha256,))


def result_rows(s: Session, sha256: str) -> list[tuple[str, str, str]]:
    """``(task, model, result JSON)`` of every stored result of an image, oldest first."""
    return s.all("SELECT task, model, result FROM results WHERE sha256=? ORDER BY created", (sha256,))


def face_vectors(s: Session, sha256: str, model: str) -> list[bytes]:
    """The face vectors ``model`` stored for an image, in face order."""
    return s.column("SELECT vector FROM face_embeddings WHERE sha256=? AND model=? ORDER BY face_index",
                    (sha256, model))


def embedding(s: Session, sha256: str, model: str) -> bytes | None:
    """The image embedding ``model`` stored for an image (float32 bytes), or None."""
    return s.scalar("SELECT vector FROM embeddings WHERE sha256=? AND model=?", (sha256, model))


def shas_by_path(s: Session, paths: Sequence[str]) -> list[str]:
    """Distinct sha256s recorded at any of ``paths``."""
    sql, params = s.backend.in_values("path", list(paths))
    return s.column(f"SELECT DISTINCT sha256 FROM files WHERE {sql} AND sha256 IS NOT NULL", params)


def shas_by_prefix(s: Session, prefix: str, *, limit: int = 11) -> list[str]:
    """sha256s of images starting with ``prefix`` (lowercase hex), at most ``limit``."""
    return s.column("SELECT sha256 FROM images WHERE sha256 LIKE ? LIMIT ?", (prefix + "%", limit))


def file_error(s: Session, paths: Sequence[str]) -> dict[str, str] | None:
    """``{"type", "message"}`` of the failed file recorded at any of ``paths``, or None."""
    sql, params = s.backend.in_values("path", list(paths))
    row = s.one(f"SELECT error_type, error_message FROM files WHERE {sql} AND status='error'", params)
    return {"type": row[0], "message": row[1]} if row else None


def counts(s: Session) -> tuple[int, int]:
    """``(images, results)``."""
    return int(s.scalar("SELECT COUNT(*) FROM images")), int(s.scalar("SELECT COUNT(*) FROM results"))


def iter_files(s: Session) -> Iterator[tuple[str, str | None, str, str | None, str | None]]:
    """``(path, sha256, status, error_type, error_message)`` of every file, by path."""
    yield from s.execute("SELECT path, sha256, status, error_type, error_message FROM files ORDER BY path")


# -- writes -----------------------------------------------------------------------------------
def save_error(s: Session, path: str, *, size: int | None, mtime_ns: int | None, error_type: str, message: str,
               now: float, sha256: str | None = None) -> None:
    """Record that ``path`` could not be analysed."""
    s.execute(s.backend.upsert("files", FILE_COLUMNS, ["path"]),
              (path, sha256, size, mtime_ns, "error", error_type, message, now))


def touch_file(s: Session, path: str, sha256: str, *, size: int | None, mtime_ns: int | None, now: float) -> None:
    """Record that ``path`` holds analysed content ``sha256``."""
    s.execute(s.backend.upsert("files", FILE_COLUMNS, ["path"]), (path, sha256, size, mtime_ns, "ok", None, None, now))


def save_ok(s: Session, *, sha256: str, path: str, size: int | None, mtime_ns: int | None, image: Sequence[Any],
            results: Sequence[tuple[str, str, str]], embeddings: Sequence[tuple[str, int, bytes]],
            faces: Sequence[tuple[str, Sequence[bytes]]], analysis: Sequence[Any], now: float) -> None:
    """Write one analysed image (call inside :meth:`Session.claim`).

    ``image`` is ``(bytes, width, height, format)``; ``results`` ``(task, model, JSON)``;
    ``embeddings`` ``(model, dim, vector)`` (replaced: a new row id, which the vector index
    notices); ``faces`` ``(model, vectors)`` (the model's old face vectors are dropped first,
    so a re-run without embeddings inherits none); ``analysis`` ``(needs_review,
    review_reasons, timings, task_errors)``.
    """
    up = s.backend.upsert
    s.execute(up("images", _IMAGE_COLUMNS, ["sha256"], ["last_seen"]), (sha256, *image, now, now))
    touch_file(s, path, sha256, size=size, mtime_ns=mtime_ns, now=now)
    for task, model, payload in results:
        s.execute(up("results", ["sha256", "task", "model", "result", "created"], ["sha256", "task", "model"]),
                  (sha256, task, model, payload, now))
    for model, dim, vector in embeddings:
        s.execute(s.backend.replace("embeddings", ["sha256", "model", "dim", "vector"]), (sha256, model, dim, vector))
    for model, vectors in faces:
        s.execute("DELETE FROM face_embeddings WHERE sha256=? AND model=?", (sha256, model))
        s.executemany("INSERT INTO face_embeddings (sha256, model, face_index, dim, vector) VALUES (?, ?, ?, ?, ?)",
                      [(sha256, model, i, len(v) // 4, v) for i, v in enumerate(vectors)])
    s.execute(up("analyses", _ANALYSIS_COLUMNS, ["sha256"]), (sha256, *analysis, now))
