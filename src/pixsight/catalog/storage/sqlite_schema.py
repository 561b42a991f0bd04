"""The catalog schema in SQLite's dialect, as numbered migrations (see :mod:`.schema`).

Every statement is idempotent (``IF NOT EXISTS``): catalogs written before the schema was
versioned may already hold some of these tables, created on first use by the module that
needed them (search, review queue, face gallery, API keys).
"""

from __future__ import annotations

from .schema import Migration

__all__ = ["MIGRATIONS"]

_CATALOG = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS images (
    sha256 TEXT PRIMARY KEY,
    bytes INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    format TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    sha256 TEXT,
    size INTEGER,
    mtime_ns INTEGER,
    status TEXT NOT NULL,
    error_type TEXT,
    error_message TEXT,
    seen REAL NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS files_sha256 ON files (sha256)",
    """CREATE TABLE IF NOT EXISTS analyses (
    sha256 TEXT PRIMARY KEY REFERENCES images (sha256),
    needs_review INTEGER NOT NULL,
    review_reasons TEXT NOT NULL,
    timings TEXT NOT NULL,
    task_errors TEXT NOT NULL,
    updated REAL NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS analyses_review ON analyses (needs_review)",
    """CREATE TABLE IF NOT EXISTS results (
    sha256 TEXT NOT NULL REFERENCES images (sha256),
    task TEXT NOT NULL,
    model TEXT NOT NULL,
    result TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (sha256, task, model)
)""",
    """CREATE TABLE IF NOT EXISTS embeddings (
    sha256 TEXT NOT NULL REFERENCES images (sha256),
    model TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (sha256, model)
)""",
    """CREATE TABLE IF NOT EXISTS datasets (
    name TEXT PRIMARY KEY,
    format TEXT NOT NULL,
    path TEXT NOT NULL,
    task TEXT NOT NULL,
    classes TEXT NOT NULL,
    counts TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS face_embeddings (
    sha256 TEXT NOT NULL REFERENCES images (sha256),
    model TEXT NOT NULL,
    face_index INTEGER NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (sha256, model, face_index)
)""",
)

# the time columns the search index sync scans ("changed since") and the image list sorts by
_TIME_INDEXES = (
    "CREATE INDEX IF NOT EXISTS results_created ON results (created)",
    "CREATE INDEX IF NOT EXISTS analyses_updated ON analyses (updated)",
    "CREATE INDEX IF NOT EXISTS files_seen ON files (seen)",
)

_SEARCH = (
    """CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5(
    sha256 UNINDEXED, text, labels, names, tokenize = 'unicode61 remove_diacritics 2')""",
    """CREATE TABLE IF NOT EXISTS search_docs (
    sha256 TEXT PRIMARY KEY, labels TEXT NOT NULL, has_text INTEGER NOT NULL, has_faces INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS search_labels (
    sha256 TEXT NOT NULL, label TEXT NOT NULL COLLATE NOCASE, PRIMARY KEY (sha256, label))""",
    "CREATE INDEX IF NOT EXISTS search_labels_label ON search_labels (label)",
    "CREATE TABLE IF NOT EXISTS search_state (key TEXT PRIMARY KEY, value REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS search_rows (sha256 TEXT PRIMARY KEY, fts_rowid INTEGER NOT NULL) WITHOUT ROWID",
)

_REVIEW = (
    """CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('accept','reject','relabel','fix')),
    labels TEXT,
    boxes TEXT,
    note TEXT,
    reviewer TEXT NOT NULL,
    created REAL NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS reviews_sha256 ON reviews (sha256, id)",
    """CREATE TABLE IF NOT EXISTS review_claims (
    sha256 TEXT PRIMARY KEY,
    reviewer TEXT NOT NULL,
    until REAL NOT NULL
)""",
)

_GALLERY = (
    "CREATE TABLE IF NOT EXISTS people (name TEXT PRIMARY KEY, created REAL NOT NULL)",
    """CREATE TABLE IF NOT EXISTS gallery (
    name TEXT NOT NULL REFERENCES people (name),
    sha256 TEXT NOT NULL,
    face_index INTEGER NOT NULL,
    model TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (name, sha256, model)
)""",
)

_KEYS = (
    """CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created REAL NOT NULL,
    last_used REAL,
    revoked REAL
)""",
)

#: Version 1 is the catalog as ``Catalog`` made it before versioning; version 2 adds what
#: other modules used to create on first use (and repeats the version-1 tables that were
#: added without a version bump: ``datasets``, ``face_embeddings``).
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "catalog: images, files, analyses, results, embeddings, datasets, faces", _CATALOG),
    Migration(2, "one schema: time indexes, search index, review queue, face gallery, API keys",
              _CATALOG[8:] + _TIME_INDEXES + _SEARCH + _REVIEW + _GALLERY + _KEYS),
)
