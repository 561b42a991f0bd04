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

import dataclasses
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
from .storage import images as _rows

__all__ = ["Catalog", "SCHEMA_VERSION", "connect_readonly"]

log = logging.getLogger(__name__)

class Catalog:
    """Results store over one catalog database. Use from one thread (the analyzer's writer).

    Raises:
        CatalogError: the file is not a database, or its schema is newer than this pixsight.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._db = storage.open_session(self.path, mode="create", what="catalog")

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
        return _rows.known_file(self._db, path, size, mtime_ns)

    def has_results(self, sha256: str, models: dict[str, str]) -> bool:
        """True when every ``task -> model`` result is stored for this image."""
        return bool(models) and _rows.count_results_of(self._db, sha256, models) == len(models)

    def load_analysis(self, sha256: str, *, models: dict[str, str] | None = None, path: str | None = None,
                      with_vectors: bool = True) -> Analysis | None:
        """The stored analysis of an image; ``models`` picks which results (default: latest per task)."""
        img = _rows.image_row(self._db, sha256)
        if img is None:
            return None
        an = _rows.analysis_row(self._db, sha256)
        if path is None:
            path = _rows.latest_path(self._db, sha256) or sha256
        results: dict[str, Any] = {}
        used: dict[str, str] = {}
        for task, model, payload in _rows.result_rows(self._db, sha256):
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
        rows = _rows.face_vectors(self._db, sha256, model)
        if len(faces) == 0 or len(rows) != len(faces):
            return faces
        emb = np.stack([np.frombuffer(v, dtype=np.float32) for v in rows])
        return dataclasses.replace(faces, embeddings=emb)  # keeps every other field (model included)

    def get_embedding(self, sha256: str, model: str) -> np.ndarray | None:
        """The stored image embedding of ``model`` for an image, or None."""
        vector = _rows.embedding(self._db, sha256, model)
        return None if vector is None else np.frombuffer(vector, dtype=np.float32).copy()

    def find(self, key: str) -> list[str]:
        """sha256s matching a path (absolute or as given), a sha256, or a sha256 prefix (>= 8 chars)."""
        key = printable_path(key.strip())
        out = _rows.shas_by_path(self._db, [key, printable_path(os.path.abspath(key))])
        if not out and len(key) >= 8 and all(c in "0123456789abcdef" for c in key.lower()):
            out = _rows.shas_by_prefix(self._db, key.lower())
        return out

    def file_error(self, path: str) -> dict[str, str] | None:
        """``{"type", "message"}`` when ``path`` (as given or absolute) failed to analyse."""
        return _rows.file_error(self._db, [printable_path(path), printable_path(os.path.abspath(path))])

    def count_images(self) -> int:
        return _rows.counts(self._db)[0]

    def count_results(self) -> int:
        return _rows.counts(self._db)[1]

    def iter_files(self) -> Iterator[tuple[str, str | None, str, str | None, str | None]]:
        """(path, sha256, status, error_type, error_message) for every file, by path."""
        yield from _rows.iter_files(self._db)

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
                    _rows.save_error(db, path, size=size, mtime_ns=mtime_ns, error_type=err["type"],
                                     message=err["message"], now=now, sha256=analysis.sha256)
                    return
                self._save_ok(analysis, path, size, mtime_ns, now)
        except db.backend.DatabaseError as err:
            raise CatalogError(f"cannot write analysis of {analysis.path}: {err}", path=str(self.path)) from err

    def _save_ok(self, analysis: Analysis, path: str, size: int | None, mtime_ns: int | None, now: float) -> None:
        results, embeddings, faces = [], [], []
        for task, result in analysis.results.items():
            model = analysis.models.get(task, "")
            results.append((task, model, json.dumps(result.to_dict(with_vectors=False), ensure_ascii=False)))
            if isinstance(result, Embedding):
                embeddings.append((model, result.dim, result.vector.astype(np.float32).tobytes()))
            elif isinstance(result, Faces):
                faces.append((model, [v.astype(np.float32).tobytes()
                                      for v in (result.embeddings if result.embeddings is not None else [])]))
        _rows.save_ok(
            self._db, sha256=analysis.sha256, path=path, size=size, mtime_ns=mtime_ns, now=now,
            image=(analysis.bytes or size or 0, analysis.width, analysis.height, analysis.format or ""),
            results=results, embeddings=embeddings, faces=faces,
            analysis=(int(analysis.needs_review), json.dumps(analysis.review_reasons), json.dumps(analysis.timings_ms),
                      json.dumps(analysis.task_errors)))

    def touch_file(self, path: str, sha256: str, *, size: int | None, mtime_ns: int | None) -> None:
        """Record that ``path`` holds already-analysed content ``sha256`` (dedup / re-run)."""
        _rows.touch_file(self._db, path, sha256, size=size, mtime_ns=mtime_ns, now=time.time())

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
