"""The catalog: one database (a SQLite file in WAL mode today) holding images, analyses and
per-task results. The schema and its migrations live in :mod:`pixsight.catalog.storage`.

Keys make every write idempotent:
- ``images`` by content sha256 (identical files are one image);
- ``files`` by path (a path points at the content it had when last seen);
- ``results`` by (sha256, task, model) where ``model`` is ``name@version``;
- ``embeddings`` by (sha256, model); ``face_embeddings`` by (sha256, model, face_index);
- ``datasets`` by name (registered datasets, see :mod:`pixsight.data.registry`).

Each image is written in one transaction, so a run killed with ``kill -9`` loses at most
the image in flight and a re-run resumes without duplicates (SECURITY.md item 19).

>>> import tempfile, os
>>> store = Catalog(os.path.join(tempfile.mkdtemp(), "c.sqlite"))
>>> store.count_images()
0
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..core.errors import CatalogError
from ..core.fileio import printable_path
from ..core.types import RESULT_TYPES, Analysis, Embedding, Faces
from . import storage
from .storage import SCHEMA_VERSION, connect_readonly
from .storage import datasets as _datasets

__all__ = ["Catalog", "SCHEMA_VERSION", "connect_readonly"]

log = logging.getLogger(__name__)

_FILE_COLUMNS = ("path", "sha256", "size", "mtime_ns", "status", "error_type", "error_message", "seen")


class Catalog:
    """Results store over one catalog database. Use from one thread (the analyzer's writer).

    Raises:
        CatalogError: the file is not a database, or its schema is newer than this pixsight.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._db = storage.open_session(self.path, mode="create", what="catalog")
        up = self._db.backend.upsert
        self._upsert_file = up("files", _FILE_COLUMNS, ["path"])
        self._upsert_image = up("images", ["sha256", "bytes", "width", "height", "format", "first_seen", "last_seen"],
                                ["sha256"], ["last_seen"])
        self._upsert_result = up("results", ["sha256", "task", "model", "result", "created"],
                                 ["sha256", "task", "model"])
        self._upsert_analysis = up("analyses", ["sha256", "needs_review", "review_reasons", "timings", "task_errors",
                                                "updated"], ["sha256"])
        # a replaced embedding gets a new row id: the vector index sees it as changed
        self._replace_embedding = self._db.backend.replace("embeddings", ["sha256", "model", "dim", "vector"])

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- lookups ---------------------------------------------------------------------------
    def known_file(self, path: str, size: int, mtime_ns: int) -> str | None:
        """sha256 of ``path`` if it was analysed before and has not changed since."""
        row = self._db.execute(
            "SELECT sha256 FROM files WHERE path=? AND size=? AND mtime_ns=? AND status='ok'",
            (path, size, mtime_ns),
        ).fetchone()
        return row[0] if row else None

    def has_results(self, sha256: str, models: dict[str, str]) -> bool:
        """True when every ``task -> model`` result is stored for this image."""
        if not models:
            return False
        rows = self._db.execute(
            f"SELECT COUNT(*) FROM results WHERE sha256=? AND ({' OR '.join(['(task=? AND model=?)'] * len(models))})",
            (sha256, *[v for kv in models.items() for v in kv]),
        ).fetchone()
        return rows[0] == len(models)

    def load_analysis(self, sha256: str, *, models: dict[str, str] | None = None, path: str | None = None,
                      with_vectors: bool = True) -> Analysis | None:
        """The stored analysis of an image; ``models`` picks which results (default: latest per task)."""
        img = self._db.execute(
            "SELECT bytes, width, height, format FROM images WHERE sha256=?", (sha256,)
        ).fetchone()
        if img is None:
            return None
        an = self._db.execute(
            "SELECT needs_review, review_reasons, timings, task_errors FROM analyses WHERE sha256=?", (sha256,)
        ).fetchone()
        if path is None:
            row = self._db.execute("SELECT path FROM files WHERE sha256=? ORDER BY seen DESC LIMIT 1", (sha256,)).fetchone()
            path = row[0] if row else sha256
        results: dict[str, Any] = {}
        used: dict[str, str] = {}
        for task, model, payload in self._db.execute(
            "SELECT task, model, result FROM results WHERE sha256=? ORDER BY created", (sha256,)
        ):
            if models is not None and models.get(task) != model:
                continue
            rtype = RESULT_TYPES.get(task)
            if rtype is None:
                continue
            data = json.loads(payload)
            if rtype is Embedding:
                vec = self.get_embedding(sha256, model)
                if vec is None:
                    continue
                results[task] = Embedding(vector=vec, model=data.get("model") or model)
            else:
                results[task] = rtype.from_dict(data)
                if rtype is Faces and with_vectors:
                    results[task] = self._attach_face_vectors(sha256, model, results[task])
            used[task] = model
        return Analysis(
            path=path,
            sha256=sha256,
            width=img[1],
            height=img[2],
            format=img[3],
            bytes=img[0],
            status="ok",
            needs_review=bool(an[0]) if an else False,
            review_reasons=json.loads(an[1]) if an else [],
            timings_ms=json.loads(an[2]) if an else {},
            task_errors=json.loads(an[3]) if an else {},
            results=results,
            models=used,
        )

    def _attach_face_vectors(self, sha256: str, model: str, faces: Faces) -> Faces:
        rows = self._db.execute(
            "SELECT face_index, vector FROM face_embeddings WHERE sha256=? AND model=? ORDER BY face_index",
            (sha256, model),
        ).fetchall()
        if len(faces) == 0 or len(rows) != len(faces):
            return faces
        emb = np.stack([np.frombuffer(v, dtype=np.float32) for _, v in rows])
        return Faces(boxes=faces.boxes, scores=faces.scores, landmarks=faces.landmarks, embeddings=emb, data=faces.data)

    def get_embedding(self, sha256: str, model: str) -> np.ndarray | None:
        row = self._db.execute("SELECT vector FROM embeddings WHERE sha256=? AND model=?", (sha256, model)).fetchone()
        return None if row is None else np.frombuffer(row[0], dtype=np.float32).copy()

    def find(self, key: str) -> list[str]:
        """sha256s matching a path (absolute or as given), a sha256, or a sha256 prefix (>= 8 chars)."""
        key = printable_path(key.strip())
        out = [r[0] for r in self._db.execute(
            "SELECT DISTINCT sha256 FROM files WHERE (path=? OR path=?) AND sha256 IS NOT NULL",
            (key, printable_path(os.path.abspath(key))),
        )]
        if not out and len(key) >= 8 and all(c in "0123456789abcdef" for c in key.lower()):
            out = [r[0] for r in self._db.execute(
                "SELECT sha256 FROM images WHERE sha256 LIKE ? LIMIT 11", (key.lower() + "%",)
            )]
        return out

    def file_error(self, path: str) -> dict[str, str] | None:
        row = self._db.execute(
            "SELECT error_type, error_message FROM files WHERE (path=? OR path=?) AND status='error'",
            (printable_path(path), printable_path(os.path.abspath(path))),
        ).fetchone()
        return {"type": row[0], "message": row[1]} if row else None

    def count_images(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM images").fetchone()[0]

    def count_results(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    def iter_files(self) -> Iterator[tuple[str, str | None, str, str | None, str | None]]:
        """(path, sha256, status, error_type, error_message) for every file, by path."""
        yield from self._db.execute(
            "SELECT path, sha256, status, error_type, error_message FROM files ORDER BY path"
        )

    def integrity_ok(self) -> bool:
        """The database's own consistency check passed."""
        return self._db.backend.integrity_ok(self._db)

    # -- writes ----------------------------------------------------------------------------
    def save(self, analysis: Analysis, *, path: str | None = None, size: int | None = None,
             mtime_ns: int | None = None) -> None:
        """Store one analysis (ok or error) in a single transaction. Idempotent.

        ``path`` is the key stored for the file (the analyzer passes the absolute path);
        it defaults to ``analysis.path``.
        """
        now = time.time()
        path = path or analysis.path
        db = self._db
        try:
            with db.claim():
                if analysis.status == "error" or analysis.sha256 is None or analysis.width is None:
                    err = analysis.error or {"type": "PixsightError", "message": "unknown error"}
                    db.execute(self._upsert_file,
                               (path, analysis.sha256, size, mtime_ns, "error", err["type"], err["message"], now))
                    return
                self._save_ok(analysis, path, size, mtime_ns, now)
        except db.backend.DatabaseError as err:
            raise CatalogError(f"cannot write analysis of {analysis.path}: {err}", path=str(self.path)) from err

    def _save_ok(self, analysis: Analysis, path: str, size: int | None, mtime_ns: int | None, now: float) -> None:
        db, sha = self._db, analysis.sha256
        db.execute(self._upsert_image,
                   (sha, analysis.bytes or size or 0, analysis.width, analysis.height, analysis.format or "", now, now))
        db.execute(self._upsert_file, (path, sha, size, mtime_ns, "ok", None, None, now))
        for task, result in analysis.results.items():
            model = analysis.models.get(task, "")
            payload = json.dumps(result.to_dict(with_vectors=False), ensure_ascii=False)
            db.execute(self._upsert_result, (sha, task, model, payload, now))
            if isinstance(result, Embedding):
                db.execute(self._replace_embedding, (sha, model, result.dim, result.vector.astype(np.float32).tobytes()))
            elif isinstance(result, Faces):
                # always drop the old vectors: a re-run without embeddings must not inherit them
                db.execute("DELETE FROM face_embeddings WHERE sha256=? AND model=?", (sha, model))
                db.executemany(
                    "INSERT INTO face_embeddings (sha256, model, face_index, dim, vector) VALUES (?, ?, ?, ?, ?)",
                    [(sha, model, i, int(v.shape[0]), v.astype(np.float32).tobytes())
                     for i, v in enumerate(result.embeddings if result.embeddings is not None else [])],
                )
        db.execute(self._upsert_analysis,
                   (sha, int(analysis.needs_review), json.dumps(analysis.review_reasons),
                    json.dumps(analysis.timings_ms), json.dumps(analysis.task_errors), now))

    def touch_file(self, path: str, sha256: str, *, size: int | None, mtime_ns: int | None) -> None:
        """Record that ``path`` holds already-analysed content ``sha256`` (dedup / re-run)."""
        self._db.execute(self._upsert_file, (path, sha256, size, mtime_ns, "ok", None, None, time.time()))

    # -- datasets (rows of pixsight.data.registry) -------------------------------------------
    def put_dataset(self, entry: dict[str, Any]) -> bool:
        """Insert or update the dataset ``entry["name"]`` (``classes`` and ``counts`` are stored
        as JSON; ``created`` is kept on update). True when an existing entry was updated."""
        try:
            return _datasets.put(self._db, entry)
        except self._db.backend.DatabaseError as err:
            raise CatalogError(f"cannot register dataset {entry['name']!r}: {err}", path=str(self.path)) from err

    def get_dataset(self, name: str) -> dict[str, Any] | None:
        """The registered dataset ``name`` as a dict, or ``None``."""
        return _datasets.get(self._db, name)

    def list_datasets(self) -> list[dict[str, Any]]:
        """Every registered dataset, by name."""
        return _datasets.all_rows(self._db)

    def delete_dataset(self, name: str) -> bool:
        """Forget the registered dataset ``name`` (its files are untouched); True when it existed."""
        return _datasets.delete(self._db, name)
