"""Visual-similarity search over the catalog's stored image embeddings (FAISS).

The index lives next to the catalog: ``<db file>.vectors/<model>.faiss`` plus a ``.json``
sidecar (sha256 ids in index order, the last synced SQLite rowid, the dimension); the folder is
made 0700 and its files 0600 (user data). Vectors are
L2-normalised float32, so inner product is cosine similarity. Up to ``EXACT_LIMIT`` vectors
the index is exact (``IndexFlatIP``); above it, an HNSW graph (``IndexHNSWFlat``, inner
product) answers in well under a millisecond-per-thousand.

:meth:`VectorIndex.sync` is incremental: rows with a rowid above the last synced one are
added. ``Catalog.save`` rewrites an embedding with the backend's replace (SQLite's
``INSERT OR REPLACE``: delete + insert, so the old rowid vanishes); a changed or removed row is detected by counting the rows at or
below the synced rowid and by checking the last synced row, and triggers a full rebuild. A
missing, corrupt or inconsistent index file is rebuilt from the catalog, never an error.

>>> import tempfile, os, numpy as np
>>> from pixsight.catalog.store import Catalog
>>> from pixsight.core.types import Analysis, Embedding
>>> db = os.path.join(tempfile.mkdtemp(), "c.sqlite")
>>> with Catalog(db) as cat:
...     for i, v in enumerate([[1, 0, 0, 0], [0, 1, 0, 0], [0.8, 0.6, 0, 0]]):
...         cat.save(Analysis(path=f"{i}.png", sha256=f"{i:064x}", width=1, height=1, format="PNG",
...                           results={"embed": Embedding(vector=np.float32(v), model="m")}, models={"embed": "m@1"}))
>>> [sha[-1] for sha, _ in similar(db, np.array([1, 0, 0, 0], np.float32), k=2)]
['0', '2']
>>> [sha[-1] for sha, _ in similar(db, "0" * 64, k=1)]   # the image itself is excluded
['2']
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import CatalogError
from ..core.fileio import atomic_writer, create_private_file, make_private_dirs
from .errors import UnknownImageError
from .storage import Session, open_session
from .storage import embeddings as _rows

__all__ = [
    "VectorIndex",
    "similar",
    "VectorIndexError",
    "NoEmbeddingsError",
    "UnknownImageError",
    "DimensionMismatchError",
    "EXACT_LIMIT",
]

log = logging.getLogger(__name__)

EXACT_LIMIT = 20_000  # up to this many vectors the index is exact (brute force)
HNSW_M = 32  # graph degree
HNSW_EF_CONSTRUCTION = 64
HNSW_EF_SEARCH = 128  # raised to 2*k for large k
_FORMAT = 1


class VectorIndexError(CatalogError):
    """The similarity index cannot answer (base of the errors below)."""


class NoEmbeddingsError(VectorIndexError):
    """The catalog holds no embeddings (for the requested model)."""


class DimensionMismatchError(VectorIndexError):
    """A vector's dimension differs from the index's."""

    def __init__(self, message: str, *, path: str | None = None, expected: int, actual: int) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(message, path=path)


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as err:  # pragma: no cover - depends on the install
        raise VectorIndexError("similarity search needs faiss: pip install 'pixsight[search]'") from err
    return faiss


def _safe_name(model: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("._") or "model"
    return f"{stem[:80]}-{zlib.crc32(model.encode()):08x}"


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class VectorIndex:
    """Persisted next to the catalog: ``<db file>.vectors/<model-safe-name>.faiss`` + ``.json``
    (ids, synced rowid, dim). Open with :meth:`open`; call :meth:`sync` to take in new rows.

    >>> VectorIndex.open("/nonexistent/c.sqlite")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    pixsight.core.errors.CatalogError: /nonexistent/c.sqlite: no catalog here
    """

    def __init__(self, db_path: Path, model: str, *, exact_limit: int = EXACT_LIMIT) -> None:
        self.db_path = db_path
        self.model = model
        self.exact_limit = exact_limit
        folder = Path(f"{db_path}.vectors")
        self.index_path = folder / f"{_safe_name(model)}.faiss"
        self.meta_path = folder / f"{_safe_name(model)}.json"
        self.dim: int | None = None
        self.ids: list[str] = []
        self._synced_rowid = 0
        self._synced_check: list[Any] = [None, None]  # [sha256, crc32 of vector] of the last synced row
        self._index: Any = None
        self.ef_search = HNSW_EF_SEARCH

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, db_path: str | os.PathLike[str], model: str | None = None, *,
             exact_limit: int = EXACT_LIMIT) -> VectorIndex:
        """Load the persisted index of ``model`` (default: the catalog's most common embedding
        model); an absent or unreadable index file is rebuilt on the next :meth:`sync`."""
        path = Path(db_path)
        if not path.is_file():
            raise CatalogError("no catalog here; run `pixsight analyze` first", path=str(path))
        with _connect(path) as db:
            models = _rows.models(db)
        if not models:
            raise NoEmbeddingsError("the catalog has no image embeddings; analyse images with the "
                                    "'embed' task first", path=str(path))
        if model is None:
            model = models[0][0]
        elif model not in {m for m, _ in models}:
            raise NoEmbeddingsError(f"no embeddings from model {model!r}; the catalog has: "
                                    f"{', '.join(m for m, _ in models)}", path=str(path))
        self = cls(path, model, exact_limit=exact_limit)
        self._load()
        return self

    def _load(self) -> None:
        try:
            meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
            if meta.get("format") != _FORMAT or meta.get("model") != self.model:
                raise ValueError("written by another version or for another model")
            index = _faiss().read_index(str(self.index_path))
            if index.ntotal != len(meta["ids"]) or index.d != meta["dim"]:
                raise ValueError(f"index holds {index.ntotal} x {index.d}, sidecar says "
                                 f"{len(meta['ids'])} x {meta['dim']}")
        except FileNotFoundError:
            return
        except Exception as err:  # noqa: BLE001 - any unreadable index is rebuilt, never fatal
            log.warning("%s: unreadable vector index (%s); it will be rebuilt", self.index_path, err)
            return
        self._index, self.dim, self.ids = index, int(meta["dim"]), list(meta["ids"])
        self._synced_rowid, self._synced_check = int(meta["synced_rowid"]), list(meta["synced_check"])

    # -- syncing ---------------------------------------------------------------------------
    def sync(self) -> int:
        """Add the catalog's embedding rows not yet indexed; rebuild when a row changed or was
        removed; persist atomically. Returns the number of vectors added."""
        with _connect(self.db_path) as db:
            if self._index is not None and not self._consistent(db):
                log.info("%s: embeddings changed or were removed; rebuilding the index", self.index_path)
                self._index = None
            rebuild = self._index is None
            after = 0 if rebuild else self._synced_rowid
            rows = _rows.rows_after(db, self.model, after)
        if not rows and not rebuild:
            return 0
        if not rows:
            raise NoEmbeddingsError(f"no embeddings from model {self.model!r}", path=str(self.db_path))
        known = set() if rebuild else set(self.ids)
        if any(r[1] in known for r in rows):  # a re-stored vector at a higher rowid: start over
            self._index = None
            return self.sync()
        dim = self.dim if not rebuild else int(rows[0][2])
        bad = next((r for r in rows if r[2] != dim or len(r[3]) != 4 * dim), None)
        if bad is not None:
            raise DimensionMismatchError(
                f"embedding of {bad[1]} ({self.model}) has {len(bad[3]) // 4} dims, the index has {dim}; "
                "re-analyse it with one embedding model", path=str(self.db_path), expected=dim, actual=bad[2])
        vecs = _normalise(np.frombuffer(b"".join(r[3] for r in rows), dtype=np.float32).reshape(len(rows), dim))
        total = len(rows) + (0 if rebuild else len(self.ids))
        if rebuild or (self._is_exact() and total > self.exact_limit):
            old = None if rebuild else self._index.reconstruct_n(0, self._index.ntotal)
            self._index, self.dim = self._new_index(dim, total), dim
            self.ids = [] if rebuild else self.ids
            if old is not None:
                self._index.add(old)
        self._index.add(vecs)
        self.ids.extend(r[1] for r in rows)
        self._synced_rowid = int(rows[-1][0])
        self._synced_check = [rows[-1][1], zlib.crc32(rows[-1][3])]
        self._save()
        log.info("%s: indexed %d new vectors (%d total)", self.index_path, len(rows), len(self.ids))
        return len(rows)

    def _consistent(self, db: Session) -> bool:
        n = _rows.count_up_to(db, self.model, self._synced_rowid)
        last = _rows.row_at(db, self.model, self._synced_rowid)
        return (n == len(self.ids) and last is not None
                and [last[0], zlib.crc32(last[1])] == self._synced_check)

    def _new_index(self, dim: int, n: int) -> Any:
        faiss = _faiss()
        if n <= self.exact_limit:
            return faiss.IndexFlatIP(dim)
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        return index

    def _is_exact(self) -> bool:
        return isinstance(self._index, _faiss().IndexFlat)

    def _save(self) -> None:
        faiss = _faiss()
        make_private_dirs(self.index_path.parent)  # vectors are user data: 0700 / 0600
        tmp = self.index_path.with_name(f".{self.index_path.name}.{os.getpid()}.tmp")
        try:
            tmp.unlink(missing_ok=True)
            create_private_file(tmp)  # FAISS truncates and writes it, keeping the 0600
            faiss.write_index(self._index, str(tmp))
            os.replace(tmp, self.index_path)
        finally:
            tmp.unlink(missing_ok=True)
        meta = {"format": _FORMAT, "model": self.model, "dim": self.dim, "kind": self.kind,
                "synced_rowid": self._synced_rowid, "synced_check": self._synced_check, "ids": self.ids}
        with atomic_writer(self.meta_path, "w", encoding="utf-8", private=True) as fh:
            json.dump(meta, fh)

    # -- querying --------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """``"exact"`` (flat inner product), ``"hnsw"``, or ``"empty"`` before the first sync."""
        if self._index is None:
            return "empty"
        return "exact" if self._is_exact() else "hnsw"

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, query: np.ndarray, k: int = 10) -> list[Any]:
        """(sha256, cosine similarity) best first; a ``(d,)`` query gives one list, an
        ``(n, d)`` query a list of lists. Call :meth:`sync` first to see new rows."""
        if self._index is None:
            self.sync()
        q = np.asarray(query, dtype=np.float32)
        single = q.ndim == 1
        q = q.reshape(1, -1) if single else q
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise DimensionMismatchError(
                f"query has shape {tuple(np.shape(query))}, the {self.model} index has {self.dim} dims",
                expected=int(self.dim or 0), actual=int(q.shape[-1]))
        if not np.all(np.isfinite(q)):
            raise VectorIndexError("query vector contains NaN or infinity")
        k = max(0, min(int(k), len(self.ids)))
        if k == 0 or len(q) == 0:
            return [] if single else [[] for _ in range(len(q))]
        if not self._is_exact():
            self._index.hnsw.efSearch = max(self.ef_search, 2 * k)
        scores, labels = self._index.search(_normalise(q), k)
        out = [[(self.ids[j], float(s)) for s, j in zip(srow, lrow) if j >= 0]
               for srow, lrow in zip(scores, labels)]
        return out[0] if single else out

    def vector_of(self, sha256: str) -> tuple[str, np.ndarray]:
        """(full sha256, normalised stored embedding) of a catalogued image, looked up by its
        sha256 or a >= 8-character prefix; raises UnknownImageError."""
        key = sha256.strip().lower()
        with _connect(self.db_path) as db:
            rows = _rows.by_prefix(db, self.model, key)
        if len(rows) != 1:
            what = "is ambiguous" if rows else f"has no {self.model} embedding in the catalog"
            raise UnknownImageError(f"image {sha256!r} {what}; pass the sha256 of an analysed image",
                                    path=str(self.db_path))
        return rows[0][0], _normalise(np.frombuffer(rows[0][1], dtype=np.float32).reshape(1, -1))[0]


def _connect(path: Path) -> Session:
    """A read-only session on the catalog at ``path`` that holds an ``embeddings`` table."""
    db = open_session(path, mode="readonly", what="cannot read embeddings")
    try:
        ok = db.backend.has_table(db, "embeddings")
    except db.backend.DatabaseError as err:
        db.close()
        raise CatalogError(f"cannot read embeddings: {err}", path=str(path)) from err
    if not ok:
        db.close()
        raise CatalogError("cannot read embeddings: the catalog has no embeddings table", path=str(path))
    return db


_CACHE: dict[tuple[str, str | None], VectorIndex] = {}
_CACHE_LOCK = threading.Lock()


def similar(db_path: str | os.PathLike[str], query: np.ndarray | str, *, k: int = 10,
            model: str | None = None) -> list[tuple[str, float]]:
    """Images most similar to ``query``: a vector, or the sha256 (or a >= 8-char prefix) of a
    catalogued image, which is then left out of the answer. Opens (cached per process),
    syncs and searches; returns (sha256, cosine similarity) best first.

    >>> similar("/nonexistent/c.sqlite", "ab" * 32)  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    pixsight.core.errors.CatalogError: /nonexistent/c.sqlite: no catalog here
    """
    key = (str(Path(db_path).resolve()), model)
    with _CACHE_LOCK:
        index = _CACHE.get(key)
        if index is None:
            index = _CACHE[key] = VectorIndex.open(db_path, model)
        index.sync()
        if isinstance(query, str):
            sha, vec = index.vector_of(query)
            return [hit for hit in index.search(vec, k + 1) if hit[0] != sha][:k]
        return index.search(np.asarray(query, dtype=np.float32), k)
