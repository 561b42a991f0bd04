BEGIN TRANSACTION;
CREATE TABLE analyses (
    sha256 TEXT PRIMARY KEY REFERENCES images (sha256),
    needs_review INTEGER NOT NULL,
    review_reasons TEXT NOT NULL,
    timings TEXT NOT NULL,
    task_errors TEXT NOT NULL,
    updated REAL NOT NULL
);
INSERT INTO "analyses" VALUES('bf8db332568c10fd59cdcacd1de25e300da482285073e5c9e2b7aa0a1755bac9',1,'["classify: low score"]','{}','{}',1.79640601292567801475e+09);
INSERT INTO "analyses" VALUES('1c8ab9bd0e57d08cdd60528db6ccbd626445bc8df93928df25968292c0b10575',1,'["classify: low score"]','{}','{}',1.79640601292614173886e+09);
INSERT INTO "analyses" VALUES('68d6b5305d4e4ba4662cc811e319270b5475686e24a8f263433e753f0c78a878',0,'[]','{}','{}',1.79640601292643308636e+09);
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created REAL NOT NULL,
    last_used REAL,
    revoked REAL
);
INSERT INTO "api_keys" VALUES('0a1b2c3d','laptop','admin','a0484a6185b324e2f355194f334482fc79194cd805185155ddcf6804fdb9090a',1.0,NULL,NULL);
CREATE TABLE datasets (
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
INSERT INTO "datasets" VALUES('pets','coco','/old/pets','detect','["cat"]','{"images": 1}','f00d',1.79640601292675423624e+09,1.79640601292675423624e+09);
CREATE TABLE embeddings (
    sha256 TEXT NOT NULL REFERENCES images (sha256),
    model TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (sha256, model)
);
INSERT INTO "embeddings" VALUES('bf8db332568c10fd59cdcacd1de25e300da482285073e5c9e2b7aa0a1755bac9','emb@1',4,X'0000803F000000000000000000000000');
INSERT INTO "embeddings" VALUES('1c8ab9bd0e57d08cdd60528db6ccbd626445bc8df93928df25968292c0b10575','emb@1',4,X'000000000000803F0000000000000000');
INSERT INTO "embeddings" VALUES('68d6b5305d4e4ba4662cc811e319270b5475686e24a8f263433e753f0c78a878','emb@1',4,X'00000000000000000000803F00000000');
CREATE TABLE face_embeddings (
    sha256 TEXT NOT NULL REFERENCES images (sha256),
    model TEXT NOT NULL,
    face_index INTEGER NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (sha256, model, face_index)
);
INSERT INTO "face_embeddings" VALUES('68d6b5305d4e4ba4662cc811e319270b5475686e24a8f263433e753f0c78a878','faces@1',0,4,X'0000003F0000003F0000003F0000003F');
CREATE TABLE files (
    path TEXT PRIMARY KEY,
    sha256 TEXT,
    size INTEGER,
    mtime_ns INTEGER,
    status TEXT NOT NULL,
    error_type TEXT,
    error_message TEXT,
    seen REAL NOT NULL
);
INSERT INTO "files" VALUES('/old/cat.jpg','bf8db332568c10fd59cdcacd1de25e300da482285073e5c9e2b7aa0a1755bac9',NULL,NULL,'ok',NULL,NULL,1.79640601292567801475e+09);
INSERT INTO "files" VALUES('/old/invoice.png','1c8ab9bd0e57d08cdd60528db6ccbd626445bc8df93928df25968292c0b10575',NULL,NULL,'ok',NULL,NULL,1.79640601292614173886e+09);
INSERT INTO "files" VALUES('/old/party.jpg','68d6b5305d4e4ba4662cc811e319270b5475686e24a8f263433e753f0c78a878',NULL,NULL,'ok',NULL,NULL,1.79640601292643308636e+09);
INSERT INTO "files" VALUES('/old/broken.jpg',NULL,NULL,NULL,'error','ImageDecodeError','truncated',1.79640601292667937286e+09);
CREATE TABLE gallery (name TEXT NOT NULL REFERENCES people (name), sha256 TEXT NOT NULL, face_index INTEGER NOT NULL, model TEXT NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (name, sha256, model));
INSERT INTO "gallery" VALUES('eileen','43e6d962f6082d8398abd082456446bc77e278bf22a9f22c946e61f5256d2079',0,'faces@1',X'0000003F0000003F0000003F0000003F');
CREATE TABLE images (
    sha256 TEXT PRIMARY KEY,
    bytes INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    format TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL
);
INSERT INTO "images" VALUES('bf8db332568c10fd59cdcacd1de25e300da482285073e5c9e2b7aa0a1755bac9',100,8,6,'JPEG',1.79640601292567801475e+09,1.79640601292567801475e+09);
INSERT INTO "images" VALUES('1c8ab9bd0e57d08cdd60528db6ccbd626445bc8df93928df25968292c0b10575',100,8,6,'JPEG',1.79640601292614173886e+09,1.79640601292614173886e+09);
INSERT INTO "images" VALUES('68d6b5305d4e4ba4662cc811e319270b5475686e24a8f263433e753f0c78a878',100,8,6,'JPEG',1.79640601292643308636e+09,1.79640601292643308636e+09);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO "meta" VALUES('schema_version','1');
CREATE TABLE people (name TEXT PRIMARY KEY, created REAL NOT NULL);
INSERT INTO "people" VALUES('eileen',1.0);
CREATE TABLE results (
    sha256 TEXT NOT NULL REFERENCES images (sha256),
    task TEXT NOT NULL,
    model TEXT NOT NULL,
    result TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (sha256, task, model)
);
INSERT INTO "results" VALUES('bf8db332568c10fd59cdcacd1de25e300da482285073e5c9e2b7aa0a1755bac9','classify','cls@1','{"labels": [{"label": "tabby", "class_id": 0, "score": 0.4}]}',1.79640601292567801475e+09);
INSERT INTO "results" VALUES('bf8db332568c10fd59cdcacd1de25e300da482285073e5c9e2b7aa0a1755bac9','embed','emb@1','{"dim": 4, "model": "emb"}',1.79640601292567801475e+09);
INSERT INTO "results" VALUES('1c8ab9bd0e57d08cdd60528db6ccbd626445bc8df93928df25968292c0b10575','classify','cls@1','{"labels": [{"label": "envelope", "class_id": 1, "score": 0.4}]}',1.79640601292614173886e+09);
INSERT INTO "results" VALUES('1c8ab9bd0e57d08cdd60528db6ccbd626445bc8df93928df25968292c0b10575','embed','emb@1','{"dim": 4, "model": "emb"}',1.79640601292614173886e+09);
INSERT INTO "results" VALUES('1c8ab9bd0e57d08cdd60528db6ccbd626445bc8df93928df25968292c0b10575','ocr','ocr@1','{"text": "ACME invoice 42", "engine": "", "lines": [{"text": "ACME invoice 42", "score": 0.9, "box": [0.0, 0.0, 10.0, 10.0], "polygon": [[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]]}]}',1.79640601292614173886e+09);
INSERT INTO "results" VALUES('68d6b5305d4e4ba4662cc811e319270b5475686e24a8f263433e753f0c78a878','classify','cls@1','{"labels": [{"label": "restaurant", "class_id": 2, "score": 0.4}]}',1.79640601292643308636e+09);
INSERT INTO "results" VALUES('68d6b5305d4e4ba4662cc811e319270b5475686e24a8f263433e753f0c78a878','embed','emb@1','{"dim": 4, "model": "emb"}',1.79640601292643308636e+09);
INSERT INTO "results" VALUES('68d6b5305d4e4ba4662cc811e319270b5475686e24a8f263433e753f0c78a878','faces','faces@1','{"faces": [{"box": [1.0, 1.0, 5.0, 5.0], "score": 0.9, "landmarks": []}], "embedding_dim": 4}',1.79640601292643308636e+09);
CREATE TABLE review_claims (
    sha256 TEXT PRIMARY KEY,
    reviewer TEXT NOT NULL,
    until REAL NOT NULL
);
INSERT INTO "review_claims" VALUES('1c8ab9bd0e57d08cdd60528db6ccbd626445bc8df93928df25968292c0b10575','bob',1.79640631304064965251e+09);
CREATE TABLE reviews (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('accept','reject','relabel','fix')),
    labels TEXT,
    boxes TEXT,
    note TEXT,
    reviewer TEXT NOT NULL,
    created REAL NOT NULL
);
INSERT INTO "reviews" VALUES(1,'bf8db332568c10fd59cdcacd1de25e300da482285073e5c9e2b7aa0a1755bac9','relabel','["tiger cat"]',NULL,NULL,'ann',1.79640601301836490633e+09);
CREATE TABLE search_docs (
    sha256 TEXT PRIMARY KEY, labels TEXT NOT NULL, has_text INTEGER NOT NULL, has_faces INTEGER NOT NULL);
INSERT INTO "search_docs" VALUES('1c8ab9bd0e57d08cdd60528db6ccbd626445bc8df93928df25968292c0b10575','["envelope"]',1,0);
INSERT INTO "search_docs" VALUES('68d6b5305d4e4ba4662cc811e319270b5475686e24a8f263433e753f0c78a878','["restaurant"]',0,1);
INSERT INTO "search_docs" VALUES('bf8db332568c10fd59cdcacd1de25e300da482285073e5c9e2b7aa0a1755bac9','["tabby"]',0,0);
PRAGMA writable_schema=ON;
INSERT INTO sqlite_master(type,name,tbl_name,rootpage,sql)VALUES('table','search_fts','search_fts',0,'CREATE VIRTUAL TABLE search_fts USING fts5(
    sha256 UNINDEXED, text, labels, names, tokenize = ''unicode61 remove_diacritics 2'')');
CREATE TABLE 'search_fts_config'(k PRIMARY KEY, v) WITHOUT ROWID;
INSERT INTO "search_fts_config" VALUES('version',4);
CREATE TABLE 'search_fts_content'(id INTEGER PRIMARY KEY, c0, c1, c2, c3);
INSERT INTO "search_fts_content" VALUES(1,'1c8ab9bd0e57d08cdd60528db6ccbd626445bc8df93928df25968292c0b10575','ACME invoice 42','envelope','/old/invoice.png');
INSERT INTO "search_fts_content" VALUES(2,'68d6b5305d4e4ba4662cc811e319270b5475686e24a8f263433e753f0c78a878','','restaurant','/old/party.jpg');
INSERT INTO "search_fts_content" VALUES(3,'bf8db332568c10fd59cdcacd1de25e300da482285073e5c9e2b7aa0a1755bac9','','tabby','/old/cat.jpg');
CREATE TABLE 'search_fts_data'(id INTEGER PRIMARY KEY, block BLOB);
INSERT INTO "search_fts_data" VALUES(1,X'0300030309');
INSERT INTO "search_fts_data" VALUES(10,X'000000000101010001010101');
INSERT INTO "search_fts_data" VALUES(137438953473,X'00000097033034320106010104010461636D650106010102010363617403060103030108656E76656C6F706501060102020107696E766F696365010C01010301030301036A70670206010304010601030401036F6C6401060103020106010302010601030201057061727479020601030302026E670106010304010A72657374617572616E74020601020201057461626279030601020204090B0A0F110F140C0911');
CREATE TABLE 'search_fts_docsize'(id INTEGER PRIMARY KEY, sz BLOB);
INSERT INTO "search_fts_docsize" VALUES(1,X'00030103');
INSERT INTO "search_fts_docsize" VALUES(2,X'00000103');
INSERT INTO "search_fts_docsize" VALUES(3,X'00000103');
CREATE TABLE 'search_fts_idx'(segid, term, pgno, PRIMARY KEY(segid, term)) WITHOUT ROWID;
INSERT INTO "search_fts_idx" VALUES(1,X'',2);
CREATE TABLE search_labels (
    sha256 TEXT NOT NULL, label TEXT NOT NULL COLLATE NOCASE, PRIMARY KEY (sha256, label));
INSERT INTO "search_labels" VALUES('1c8ab9bd0e57d08cdd60528db6ccbd626445bc8df93928df25968292c0b10575','envelope');
INSERT INTO "search_labels" VALUES('68d6b5305d4e4ba4662cc811e319270b5475686e24a8f263433e753f0c78a878','restaurant');
INSERT INTO "search_labels" VALUES('bf8db332568c10fd59cdcacd1de25e300da482285073e5c9e2b7aa0a1755bac9','tabby');
CREATE TABLE search_rows (sha256 TEXT PRIMARY KEY, fts_rowid INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO "search_rows" VALUES('1c8ab9bd0e57d08cdd60528db6ccbd626445bc8df93928df25968292c0b10575',1);
INSERT INTO "search_rows" VALUES('68d6b5305d4e4ba4662cc811e319270b5475686e24a8f263433e753f0c78a878',2);
INSERT INTO "search_rows" VALUES('bf8db332568c10fd59cdcacd1de25e300da482285073e5c9e2b7aa0a1755bac9',3);
CREATE TABLE search_state (key TEXT PRIMARY KEY, value REAL NOT NULL);
INSERT INTO "search_state" VALUES('layout',2.0);
INSERT INTO "search_state" VALUES('results.created',1.79640601292643308636e+09);
INSERT INTO "search_state" VALUES('files.seen',1.79640601292667937286e+09);
INSERT INTO "search_state" VALUES('analyses.updated',1.79640601292643308636e+09);
CREATE INDEX files_sha256 ON files (sha256);
CREATE INDEX analyses_review ON analyses (needs_review);
CREATE INDEX results_created ON results (created);
CREATE INDEX analyses_updated ON analyses (updated);
CREATE INDEX files_seen ON files (seen);
CREATE INDEX search_labels_label ON search_labels (label);
CREATE INDEX reviews_sha256 ON reviews (sha256, id);
PRAGMA writable_schema=OFF;
COMMIT;
