"""The review queue over a real catalog: order, claims, concurrency, validation, history, stats."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from pixsight.core.errors import CatalogError, PixsightError
from pixsight.review import queue
from pixsight.review.queue import ReviewError, UnknownImageError
from tests.unit.review import build_catalog


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_catalog(tmp_path_factory.mktemp("review"))


@pytest.fixture()
def db(built, tmp_path):
    """A fresh copy of the module's catalog per test (decisions must not leak between tests)."""
    path = tmp_path / "c.sqlite"
    src = sqlite3.connect(built.db)
    dst = sqlite3.connect(path)
    src.backup(dst)
    src.close()
    dst.close()
    return path


def _flagged_oldest_first(db) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return [r[0] for r in con.execute(
            "SELECT a.sha256 FROM analyses a JOIN images i USING (sha256) WHERE a.needs_review = 1 "
            "ORDER BY i.first_seen, a.sha256")]
    finally:
        con.close()


def test_next_item_is_oldest_flagged_with_its_analysis(db, built):
    order = _flagged_oldest_first(db)
    assert len(order) == len(built.flagged) == 7
    item = queue.next_item(db, "ann")
    assert item.sha256 == order[0]
    assert item.pending == 7
    assert item.path == str(built.flagged[0])
    assert item.analysis["sha256"] == item.sha256 and "classify" in item.analysis
    assert item.reasons and "below 0.99" in item.reasons[0]
    assert (item.width, item.height) == (64, 48)
    assert item.to_dict()["analysis"]["classify"]["labels"]


def test_claims_hold_renew_and_expire(db):
    order = _flagged_oldest_first(db)
    a = queue.next_item(db, "ann")
    assert queue.next_item(db, "ann").sha256 == a.sha256          # same reviewer gets the claim back
    b = queue.next_item(db, "bob")
    assert b.sha256 == order[1]                                  # ann's claim holds against bob
    assert queue.stats(db)["claimed"] == 2
    assert queue.next_item(db, "cid", claim_s=0.05).sha256 == order[2]
    time.sleep(0.1)
    assert queue.next_item(db, "dan").sha256 == order[2]         # cid's claim expired
    assert queue.release(db, a.sha256, "ann") and not queue.release(db, a.sha256, "ann")
    assert queue.next_item(db, "eve").sha256 == order[0]


def test_looking_without_claiming(db):
    order = _flagged_oldest_first(db)
    peek = queue.next_item(db, "viewer", claim=False)
    assert peek.sha256 == order[0] and peek.claimed_until == 0
    assert queue.stats(db)["claimed"] == 0
    assert queue.next_item(db, "ann").sha256 == order[0]


def test_skip_releases_and_passes_over(db):
    order = _flagged_oldest_first(db)
    first = queue.next_item(db, "ann")
    second = queue.next_item(db, "ann", skip=[first.sha256])
    assert second.sha256 == order[1]
    assert queue.next_item(db, "bob").sha256 == order[0]         # the skipped image is free again


def test_decision_releases_claim_and_leaves_queue(db):
    order = _flagged_oldest_first(db)
    item = queue.next_item(db, "ann")
    review = queue.submit(db, item.sha256, "accept", "ann")
    assert review.decision == "accept" and review.reviewer == "ann"
    assert queue.next_item(db, "ann").sha256 == order[1]
    assert queue.stats(db)["pending"] == 6 and queue.stats(db)["claimed"] == 1


def test_two_reviewers_never_share_an_item(db):
    got: dict[str, list[str]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def worker(name: str) -> None:
        try:
            barrier.wait()
            item = queue.next_item(db, name)
            got[name] = [item.sha256] if item else []
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(f"r{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    shas = [s for v in got.values() for s in v]
    assert len(shas) == 6 and len(set(shas)) == 6
    # one image left for a seventh reviewer, then the queue is empty for an eighth
    assert queue.next_item(db, "r7") is not None
    assert queue.next_item(db, "r8") is None


def test_queue_runs_dry(db, built):
    for _ in range(len(built.flagged)):
        item = queue.next_item(db, "ann")
        queue.submit(db, item.sha256, "reject", "ann")
    assert queue.next_item(db, "ann") is None
    assert queue.stats(db)["pending"] == 0


@pytest.mark.parametrize("decision, kwargs, match", [
    ("maybe", {}, "unknown decision"),
    ("relabel", {}, "at least one label"),
    ("relabel", {"labels": ["cat", " "]}, r"labels\[1\]"),
    ("relabel", {"labels": [3]}, r"labels\[0\]"),
    ("accept", {"labels": ["cat"]}, "only 'relabel'"),
    ("reject", {"boxes": [{"box": [0, 0, 1, 1], "label": "x"}]}, "only 'fix'"),
    ("fix", {}, "needs boxes"),
    ("fix", {"boxes": [{"box": [0, 0, 10], "label": "x"}]}, "4 numbers"),
    ("fix", {"boxes": [{"box": [5, 0, 5, 10], "label": "x"}]}, "x1 < x2"),
    ("fix", {"boxes": [{"box": [0, 9, 5, 3], "label": "x"}]}, "y1 < y2"),
    ("fix", {"boxes": [{"box": [0, 0, 65, 10], "label": "x"}]}, "outside the 64x48"),
    ("fix", {"boxes": [{"box": [-1, 0, 5, 10], "label": "x"}]}, "outside"),
    ("fix", {"boxes": [{"box": [0, 0, 5, float("nan")], "label": "x"}]}, "non-finite"),
    ("fix", {"boxes": [{"box": [0, 0, 5, 5], "label": ""}]}, r"boxes\[0\]\.label"),
    ("fix", {"boxes": [[0, 0, 5, 5]]}, r"boxes\[0\] must be"),
])
def test_invalid_decisions_are_clear_errors(db, built, decision, kwargs, match):
    sha = built.sha(built.flagged[0])  # 64x48
    with pytest.raises(ReviewError, match=match):
        queue.submit(db, sha, decision, "ann", **kwargs)
    assert queue.history(db, sha) == []


def test_unknown_image_and_bad_reviewer(db, built):
    with pytest.raises(UnknownImageError, match="not in the catalog"):
        queue.submit(db, "0" * 64, "accept", "ann")
    with pytest.raises(UnknownImageError):
        queue.history(db, "f" * 64)
    with pytest.raises(ReviewError, match="reviewer"):
        queue.submit(db, built.sha(built.flagged[0]), "accept", "  ")
    with pytest.raises(ReviewError, match="claim_s"):
        queue.next_item(db, "ann", claim_s=0)
    assert issubclass(UnknownImageError, PixsightError)


def test_history_records_who_and_when_latest_counts(db, built):
    sha = built.sha(built.flagged[0])
    before = time.time()
    queue.submit(db, sha, "relabel", "ann", labels=["tabby", "tabby", " tiger cat "], note="  looks striped ")
    queue.submit(db, sha, "fix", "bob", boxes=[{"box": [1, 2, 30.5, 40], "label": "cat"}])
    hist = queue.history(db, sha)
    assert [(r.decision, r.reviewer) for r in hist] == [("relabel", "ann"), ("fix", "bob")]
    assert hist[0].labels == ["tabby", "tiger cat"] and hist[0].note == "looks striped"
    assert hist[1].boxes == [{"box": [1.0, 2.0, 30.5, 40.0], "label": "cat"}]
    assert before <= hist[0].created <= hist[1].created <= time.time()
    assert hist[1].to_dict()["reviewer"] == "bob"
    latest = queue.reviewed_items(db)
    assert [(r.sha256, r.decision) for r in latest] == [(sha, "fix")]
    assert queue.latest_decisions(db, [sha, "0" * 64]) == {sha: "fix"}


def test_stats_count_latest_decision_per_image(db, built):
    shas = [built.sha(p) for p in built.flagged]
    queue.submit(db, shas[0], "accept", "ann")
    queue.submit(db, shas[0], "reject", "bob")        # overrides ann's accept
    queue.submit(db, shas[1], "relabel", "ann", labels=["x"])
    queue.submit(db, built.sha(built.clean[0]), "accept", "cid")   # a not-flagged image can be judged too
    s = queue.stats(db)
    assert s == {"pending": 5, "claimed": 0, "reviewed": 3, "accept": 1, "reject": 1, "relabel": 1, "fix": 0,
                 "reviewers": 3}


def test_not_a_catalog(tmp_path):
    with pytest.raises(CatalogError, match="no catalog"):
        queue.stats(tmp_path / "missing.sqlite")
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(CatalogError, match="not a pixsight catalog"):
        queue.next_item(other, "ann")
