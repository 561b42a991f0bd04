"""The catalog: one SQLite file (WAL) holding images, analyses and per-task results.

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
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..core.errors import CatalogError
from ..core.fileio import printable_path
from ..core.types import RESULT_TYPES, Analysis, Embedding, Faces

__all__ = ["Catalog", "SCHEMA_VERSION", "TIME_INDEXES", "connect_readonly", "default_db_path"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    sha256 TEXT PRIMARY KEY,
    bytes INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    format TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    sha256 TEXT,
    size INTEGER,
    mtime_ns INTEGER,
    status TEXT NOT NULL,
    error_type TEXT,
    error_message TEXT,
    seen REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_sha256 ON files (sha256);
CREATE TABLE IF NOT EXISTS analyses (
    sha256 TEXT PRIMARY KEY REFERENCES images (sha256),
    needs_review INTEGER NOT NULL,
    review_reasons TEXT NOT NULL,
    timings TEXT NOT NULL,
    task_errors TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS analyses_review ON analyses (needs_review);
CREATE TABLE IF NOT EXISTS results (
    sha256 TEXT NOT NULL REFERENCES images (sha256),
    task TEXT NOT NULL,
    model TEXT NOT NULL,
    result TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (sha256, task, model)
);
CREATE TABLE IF NOT EXISTS embeddings (
    sha256 TEXT NOT NULL REFERENCES images (sha256),
    model TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (sha256, model)
);
CREATE TABLE IF NOT EXISTS datasets (
    name TEXT PRIMARY KEY,
    format TEXT NOT NULL,
    path TEXT NOT NULL,
    task TEXT NOT NULL,
    classes TEXT NOT NULL,
    counts TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS face_embeddings (
    sha256 TEXT NOT NULL REFERENCES images (sha256),
    model TEXT NOT NULL,
    face_index INTEGER NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (sha256, model, face_index)
);
"""

#: Indexes on the time columns the search index sync scans ("changed since") and the image
#: list sorts by (newest first). Additive: older catalogs get them when next opened.
TIME_INDEXES = """
CREATE INDEX IF NOT EXISTS results_created ON results (created);
CREATE INDEX IF NOT EXISTS analyses_updated ON analyses (updated);
CREATE INDEX IF NOT EXISTS files_seen ON files (seen);
"""


def connect_readonly(db: str | os.PathLike[str], *, timeout: float = 30.0) -> sqlite3.Connection:
    """A read-only connection to the catalog at ``db`` (readers beside the one writer; WAL).

    The path becomes a ``file:`` URI with every special character escaped, so a folder named
    ``a?b#c`` or ``100%`` opens the right file. Raises ``sqlite3.OperationalError`` when the
    file does not exist (read-only never creates it).
    """
    return sqlite3.connect(f"{Path(db).resolve().as_uri()}?mode=ro", uri=True, timeout=timeout)


def default_db_path() -> Path:
    """``./pixsight.sqlite`` in the current folder (what ``--db`` defaults to)."""
    return Path("pixsight.sqlite")


class Catalog:
    """Results store over one SQLite file. Use from one thread (the analyzer's writer)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA + TIME_INDEXES)
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) > SCHEMA_VERSION:
                raise CatalogError(
                    f"catalog schema {row[0]} is newer than this pixsight ({SCHEMA_VERSION}); upgrade pixsight",
                    path=str(self.path),
                )
        except sqlite3.DatabaseError as err:
            if getattr(self, "_db", None) is not None:
                self._db.close()
            raise CatalogError(f"cannot open catalog: {err}", path=str(self.path)) from err

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
        return self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

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
            db.execute("BEGIN IMMEDIATE")
            if analysis.status == "error" or analysis.sha256 is None or analysis.width is None:
                err = analysis.error or {"type": "PixsightError", "message": "unknown error"}
                db.execute(
                    "INSERT INTO files (path, sha256, size, mtime_ns, status, error_type, error_message, seen) "
                    "VALUES (?, ?, ?, ?, 'error', ?, ?, ?) ON CONFLICT(path) DO UPDATE SET "
                    "sha256=excluded.sha256, size=excluded.size, mtime_ns=excluded.mtime_ns, status='error', "
                    "error_type=excluded.error_type, error_message=excluded.error_message, seen=excluded.seen",
                    (path, analysis.sha256, size, mtime_ns, err["type"], err["message"], now),
                )
                db.execute("COMMIT")
                return
            sha = analysis.sha256
            db.execute(
                "INSERT INTO images VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(sha256) DO UPDATE SET last_seen=excluded.last_seen",
                (sha, analysis.bytes or size or 0, analysis.width, analysis.height, analysis.format or "", now, now),
            )
            db.execute(
                "INSERT INTO files (path, sha256, size, mtime_ns, status, error_type, error_message, seen) "
                "VALUES (?, ?, ?, ?, 'ok', NULL, NULL, ?) ON CONFLICT(path) DO UPDATE SET sha256=excluded.sha256, "
                "size=excluded.size, mtime_ns=excluded.mtime_ns, status='ok', error_type=NULL, error_message=NULL, seen=excluded.seen",
                (path, sha, size, mtime_ns, now),
            )
            for task, result in analysis.results.items():
                model = analysis.models.get(task, "")
                payload = json.dumps(result.to_dict(with_vectors=False), ensure_ascii=False)
                db.execute(
                    "INSERT INTO results VALUES (?, ?, ?, ?, ?) ON CONFLICT(sha256, task, model) DO UPDATE SET "
                    "result=excluded.result, created=excluded.created",
                    (sha, task, model, payload, now),
                )
                if isinstance(result, Embedding):
                    db.execute(
                        "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)",
                        (sha, model, result.dim, result.vector.astype(np.float32).tobytes()),
                    )
                elif isinstance(result, Faces):
                    # always drop the old vectors: a re-run without embeddings must not inherit them
                    db.execute("DELETE FROM face_embeddings WHERE sha256=? AND model=?", (sha, model))
                    db.executemany(
                        "INSERT INTO face_embeddings VALUES (?, ?, ?, ?, ?)",
                        [(sha, model, i, int(v.shape[0]), v.astype(np.float32).tobytes())
                         for i, v in enumerate(result.embeddings if result.embeddings is not None else [])],
                    )
            db.execute(
                "INSERT INTO analyses VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(sha256) DO UPDATE SET "
                "needs_review=excluded.needs_review, review_reasons=excluded.review_reasons, "
                "timings=excluded.timings, task_errors=excluded.task_errors, updated=excluded.updated",
                (sha, int(analysis.needs_review), json.dumps(analysis.review_reasons),
                 json.dumps(analysis.timings_ms), json.dumps(analysis.task_errors), now),
            )
            db.execute("COMMIT")
        except sqlite3.DatabaseError as err:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise CatalogError(f"cannot write analysis of {analysis.path}: {err}", path=str(self.path)) from err
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def touch_file(self, path: str, sha256: str, *, size: int | None, mtime_ns: int | None) -> None:
        """Record that ``path`` holds already-analysed content ``sha256`` (dedup / re-run)."""
        self._db.execute(
            "INSERT INTO files (path, sha256, size, mtime_ns, status, error_type, error_message, seen) "
            "VALUES (?, ?, ?, ?, 'ok', NULL, NULL, ?) ON CONFLICT(path) DO UPDATE SET sha256=excluded.sha256, "
            "size=excluded.size, mtime_ns=excluded.mtime_ns, status='ok', error_type=NULL, error_message=NULL, seen=excluded.seen",
            (path, sha256, size, mtime_ns, time.time()),
        )

    # -- datasets (rows of pixsight.data.registry) -------------------------------------------
    _DATASET_COLUMNS = ("name", "format", "path", "task", "classes", "counts", "fingerprint", "created", "updated")

    def put_dataset(self, entry: dict[str, Any]) -> bool:
        """Insert or update the dataset ``entry["name"]`` (``classes`` and ``counts`` are stored
        as JSON; ``created`` is kept on update). True when an existing entry was updated."""
        now = time.time()
        row = (entry["name"], entry["format"], entry["path"], entry["task"], json.dumps(entry["classes"]),
               json.dumps(entry["counts"]), entry["fingerprint"], now, now)
        try:
            self._db.execute("BEGIN IMMEDIATE")
            existed = self._db.execute("SELECT 1 FROM datasets WHERE name=?", (entry["name"],)).fetchone() is not None
            self._db.execute(
                "INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                "format=excluded.format, path=excluded.path, task=excluded.task, classes=excluded.classes, "
                "counts=excluded.counts, fingerprint=excluded.fingerprint, updated=excluded.updated", row)
            self._db.execute("COMMIT")
        except sqlite3.DatabaseError as err:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise CatalogError(f"cannot register dataset {entry['name']!r}: {err}", path=str(self.path)) from err
        return existed

    def _dataset_row(self, row: tuple) -> dict[str, Any]:
        out = dict(zip(self._DATASET_COLUMNS, row))
        out["classes"], out["counts"] = json.loads(out["classes"]), json.loads(out["counts"])
        return out

    def get_dataset(self, name: str) -> dict[str, Any] | None:
        """The registered dataset ``name`` as a dict, or ``None``."""
        row = self._db.execute(f"SELECT {', '.join(self._DATASET_COLUMNS)} FROM datasets WHERE name=?",
                               (name,)).fetchone()
        return None if row is None else self._dataset_row(row)

    def list_datasets(self) -> list[dict[str, Any]]:
        """Every registered dataset, by name."""
        rows = self._db.execute(f"SELECT {', '.join(self._DATASET_COLUMNS)} FROM datasets ORDER BY name")
        return [self._dataset_row(r) for r in rows]

    def delete_dataset(self, name: str) -> bool:
        """Forget the registered dataset ``name`` (its files are untouched); True when it existed."""
        return self._db.execute("DELETE FROM datasets WHERE name=?", (name,)).rowcount > 0
