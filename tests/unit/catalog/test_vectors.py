"""VectorIndex / similar over a real catalog file (embeddings written with Catalog.save)."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from pixsight.catalog.store import Catalog
from pixsight.catalog.vectors import (
    DimensionMismatchError,
    NoEmbeddingsError,
    UnknownImageError,
    VectorIndex,
    similar,
)
from pixsight.core.types import Analysis, Embedding

MODEL = "embed-test@1"


def _sha(i: int) -> str:
    return f"{i:08x}" + "c" * 56


def _save(db, vecs: np.ndarray, *, start: int = 0, model: str = MODEL) -> None:
    with Catalog(db) as cat:
        for i, v in enumerate(vecs, start):
            cat.save(Analysis(path=f"/img/{i}.png", sha256=_sha(i), width=4, height=4, format="PNG",
                              results={"embed": Embedding(vector=v, model=model)}, models={"embed": model}))


def _brute(base: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    b = base / np.linalg.norm(base, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    sims = qn @ b.T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sims, order, axis=1)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_exact_search_matches_numpy_brute_force(catalog_db, rng):
    db = catalog_db
    base = rng.normal(size=(300, 32)).astype(np.float32)
    _save(db, base)
    index = VectorIndex.open(db)
    assert index.model == MODEL and index.sync() == 300 and len(index) == 300 and index.kind == "exact"
    queries = rng.normal(size=(5, 32)).astype(np.float32)
    want, want_sims = _brute(base, queries, 10)
    got = index.search(queries, k=10)
    for row, ids, sims in zip(got, want, want_sims):
        assert [sha for sha, _ in row] == [_sha(int(i)) for i in ids]
        np.testing.assert_allclose([s for _, s in row], sims, atol=1e-5)
    single = index.search(queries[0], k=3)
    assert single == got[0][:3]


def test_similar_by_sha_excludes_the_image_itself(catalog_db, rng):
    db = catalog_db
    base = rng.normal(size=(50, 16)).astype(np.float32)
    _save(db, base)
    hits = similar(db, _sha(4), k=5)
    assert len(hits) == 5 and _sha(4) not in [h[0] for h in hits]
    want, _ = _brute(base, base[4:5], 6)
    assert [h[0] for h in hits] == [_sha(int(i)) for i in want[0][1:]]
    assert similar(db, _sha(4)[:12], k=5) == hits  # prefix lookup
    with pytest.raises(UnknownImageError):
        similar(db, "f" * 64)


def test_incremental_sync_adds_only_new_rows_and_survives_reopen(catalog_db, rng):
    db = catalog_db
    base = rng.normal(size=(120, 16)).astype(np.float32)
    _save(db, base[:100])
    assert VectorIndex.open(db).sync() == 100
    _save(db, base[100:], start=100)
    reopened = VectorIndex.open(db)
    assert len(reopened) == 100  # loaded from disk, not rebuilt
    assert reopened.sync() == 20 and len(reopened) == 120
    assert reopened.sync() == 0
    again = VectorIndex.open(db)
    assert len(again) == 120 and again.sync() == 0
    assert again.search(base[110], k=1)[0][0] == _sha(110)


@pytest.mark.parametrize("which", [3, 59])  # a middle row, and the last synced row
def test_changed_vector_is_picked_up(catalog_db, rng, which):
    db = catalog_db
    base = rng.normal(size=(60, 16)).astype(np.float32)
    _save(db, base)
    index = VectorIndex.open(db)
    index.sync()
    target = base[17] + 0.01 * rng.normal(size=16).astype(np.float32)
    _save(db, target[None], start=which)
    assert index.sync() == 60  # rebuilt
    assert len(index) == 60
    top = [sha for sha, _ in index.search(target, k=2)]
    assert set(top) == {_sha(17), _sha(which)}


def test_deleted_or_corrupt_index_file_is_rebuilt(catalog_db, rng):
    db = catalog_db
    base = rng.normal(size=(40, 8)).astype(np.float32)
    _save(db, base)
    index = VectorIndex.open(db)
    index.sync()
    assert index.index_path.is_file() and index.meta_path.is_file()
    index.index_path.unlink()
    fresh = VectorIndex.open(db)
    assert len(fresh) == 0 and fresh.sync() == 40
    assert fresh.search(base[9], k=1)[0][0] == _sha(9)
    fresh.index_path.write_bytes(b"not a faiss index")
    broken = VectorIndex.open(db)
    assert broken.sync() == 40 and broken.search(base[9], k=1)[0][0] == _sha(9)


def test_errors(catalog_db, rng):
    db = catalog_db
    Catalog(db).close()
    with pytest.raises(NoEmbeddingsError):
        VectorIndex.open(db)
    _save(db, rng.normal(size=(5, 8)).astype(np.float32))
    with pytest.raises(NoEmbeddingsError, match="other@1"):
        VectorIndex.open(db, "other@1")
    index = VectorIndex.open(db)
    index.sync()
    with pytest.raises(DimensionMismatchError) as err:
        index.search(np.ones(9, np.float32))
    assert (err.value.expected, err.value.actual) == (8, 9)
    assert len(index.search(np.ones(8, np.float32), k=50)) == 5


def test_hnsw_recall_at_10_vs_exact(catalog_db, rng):
    n, d = 30_000, 64
    centers = rng.normal(size=(300, d)).astype(np.float32)
    base = (centers[rng.integers(0, 300, n)] + 0.5 * rng.normal(size=(n, d))).astype(np.float32)
    db = catalog_db
    Catalog(db).close()
    with sqlite3.connect(db) as con:  # bulk rows straight into the catalog's own table (fast)
        con.executemany("INSERT INTO embeddings VALUES (?, ?, ?, ?)",
                        ((_sha(i), MODEL, d, v.tobytes()) for i, v in enumerate(base)))
    index = VectorIndex.open(db)
    index.sync()
    assert index.kind == "hnsw" and len(index) == n
    queries = base[rng.choice(n, 200, replace=False)] + 0.1 * rng.normal(size=(200, d)).astype(np.float32)
    want, _ = _brute(base, queries, 10)
    got = index.search(queries, k=10)
    recall = np.mean([len({s for s, _ in g} & {_sha(int(i)) for i in w}) / 10 for g, w in zip(got, want)])
    assert recall >= 0.95, recall
