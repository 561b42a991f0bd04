"""Write ``catalog_v1.sql``: a catalog as pixsight wrote it before the one storage layer
(schema version 1, tables created on first use by search, the review queue, the face gallery
and the API keys). Kept to show how the fixture was made; tests only read the ``.sql`` file.

Run it with the source of that pixsight (commit 1cd7190) first on the path::

    git archive 1cd7190 src | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old/src python tests/unit/catalog/data/make_catalog_v1.py
"""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
from pathlib import Path

import numpy as np

from pixsight.catalog.search import search
from pixsight.catalog.store import Catalog
from pixsight.core.types import Analysis, Classification, Embedding, Faces, TextLines
from pixsight.review.queue import next_item, submit
from pixsight.serve.keys import KeyStore

#: The API key stored in the fixture (its secret is only ever stored hashed).
TOKEN = "pxs_0a1b2c3d_" + "k" * 43


def _sha(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def main() -> None:
    db = Path(tempfile.mkdtemp()) / "c.sqlite"
    with Catalog(db) as cat:
        for i, (name, label, text) in enumerate([("/old/cat.jpg", "tabby", ""), ("/old/invoice.png", "envelope",
                                                   "ACME invoice 42"), ("/old/party.jpg", "restaurant", "")]):
            results = {"classify": Classification(class_ids=[i], scores=[0.4], labels=[label]),
                       "embed": Embedding(vector=np.eye(4, dtype=np.float32)[i], model="emb")}
            models = {"classify": "cls@1", "embed": "emb@1"}
            if text:
                results["ocr"] = TextLines(texts=[text], scores=[0.9], boxes=[[0, 0, 10, 10]])
                models["ocr"] = "ocr@1"
            if name.endswith("party.jpg"):
                results["faces"] = Faces(boxes=[[1, 1, 5, 5]], scores=[0.9],
                                         embeddings=np.full((1, 4), 0.5, np.float32))
                models["faces"] = "faces@1"
            cat.save(Analysis(path=name, sha256=_sha(name), width=8, height=6, format="JPEG", bytes=100,
                              results=results, models=models, needs_review=i < 2,
                              review_reasons=["classify: low score"] if i < 2 else []))
        cat.save(Analysis(path="/old/broken.jpg", status="error", error={"type": "ImageDecodeError",
                                                                         "message": "truncated"}))
        cat.put_dataset({"name": "pets", "format": "coco", "path": "/old/pets", "task": "detect",
                         "classes": ["cat"], "counts": {"images": 1}, "fingerprint": "f00d"})
    assert [h.sha256 for h in search(db, "acme")] == [_sha("/old/invoice.png")]
    item = next_item(db, "ann")
    submit(db, item.sha256, "relabel", "ann", labels=["tiger cat"])
    next_item(db, "bob")  # a live claim
    KeyStore(db)
    con = sqlite3.connect(db)
    with con:
        key_id, secret = TOKEN.split("_")[1], TOKEN.split("_", 2)[2]
        con.execute("INSERT INTO api_keys VALUES (?, 'laptop', 'admin', ?, 1.0, NULL, NULL)",
                    (key_id, hashlib.sha256(secret.encode()).hexdigest()))
        con.executescript("CREATE TABLE IF NOT EXISTS people (name TEXT PRIMARY KEY, created REAL NOT NULL);"
                          "CREATE TABLE IF NOT EXISTS gallery (name TEXT NOT NULL REFERENCES people (name), "
                          "sha256 TEXT NOT NULL, face_index INTEGER NOT NULL, model TEXT NOT NULL, "
                          "vector BLOB NOT NULL, PRIMARY KEY (name, sha256, model));")  # gallery._SCHEMA then
        con.execute("INSERT INTO people VALUES ('eileen', 1.0)")
        con.execute("INSERT INTO gallery VALUES ('eileen', ?, 0, 'faces@1', ?)",
                    (_sha("/old/enrol.jpg"), np.full(4, 0.5, np.float32).tobytes()))
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    out = Path(__file__).with_name("catalog_v1.sql")
    # rows of the FTS5 table itself are left out: its shadow tables (dumped too) hold them
    lines = [line for line in con.iterdump() if not line.startswith('INSERT INTO "search_fts" ')]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    con.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
