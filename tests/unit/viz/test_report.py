"""HTML report: content, escaping, self-containment, atomicity and streaming memory."""

from __future__ import annotations

import base64
import gc
import html
import io
import re
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixsight.core.types import Analysis, Classification, Faces, TextLines
from pixsight.viz.report import ReportWriter, write_report

XSS = "<script>alert(1)</script>"


def _img(h: int = 60, w: int = 80, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def _items() -> list[tuple[Analysis, np.ndarray | None]]:
    good = Analysis(
        path="holiday/beach & sun.jpg", width=80, height=60, needs_review=True,
        review_reasons=["low confidence"], timings_ms={"decode": 4.0, "classify": 10.0},
        results={
            "classify": Classification(class_ids=[5, 7], scores=[0.41, 0.2], labels=["seashore", "sandbar"]),
            "faces": Faces(boxes=[[10, 10, 40, 40]], scores=[0.95], landmarks=[[[20.0, 20.0]]]),
        },
    )
    broken = Analysis(path="scans/broken 'q'.png", status="error",
                      error={"type": "ImageDecodeError", "message": "scans/broken 'q'.png: file is truncated"})
    evil = Analysis(
        path=f"inbox/{XSS}.png".replace("</", "<\\/"), width=80, height=60,
        timings_ms={"decode": 2.0, "classify": 6.0},
        results={
            "classify": Classification(class_ids=[1], scores=[0.9], labels=[f"label {XSS}"]),
            "ocr": TextLines(texts=[XSS, "total: 12 EUR"], scores=[0.9, 0.8], boxes=[[5, 5, 60, 20], [5, 30, 60, 45]]),
        },
    )
    return [(good, _img()), (broken, None), (evil, _img(seed=1))]


@pytest.fixture()
def report(tmp_path: Path) -> tuple[str, list[Analysis]]:
    items = _items()
    out = write_report(iter(items), tmp_path / "r" / "report.html", title="My <photos>")
    assert out == tmp_path / "r" / "report.html"
    return out.read_text(encoding="utf-8"), [a for a, _ in items]


def test_every_file_appears_escaped_with_its_status(report: tuple[str, list[Analysis]]) -> None:
    page, analyses = report
    for a in analyses:
        assert html.escape(a.path).replace("&#x27;", "&#39;") in page  # Jinja2 writes ' as &#39;
    assert page.count('data-status="error"') == 1 and page.count('data-status="ok"') == 2
    assert page.count('data-review="1"') == 1
    assert "ImageDecodeError: scans/broken &#39;q&#39;.png: file is truncated" in page
    assert "<title>My &lt;photos&gt;</title>" in page


def test_script_injection_only_appears_escaped(report: tuple[str, list[Analysis]]) -> None:
    page, _ = report
    assert XSS not in page and "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # OCR text and label, escaped
    assert page.count("<script") == 1  # only the report's own filter script


def test_report_is_self_contained(report: tuple[str, list[Analysis]]) -> None:
    page, _ = report
    assert "http://" not in page and "https://" not in page and "//" not in re.sub(r"data:[^\"]+", "", page)
    assert 'http-equiv="Content-Security-Policy"' in page and "default-src &#39;none&#39;" in page
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert len(srcs) == 2  # the error card has no image
    for src in srcs:
        assert src.startswith("data:image/jpeg;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as thumb:
            assert thumb.format == "JPEG" and max(thumb.size) <= 480
            assert len(thumb.getexif()) == 0 and "exif" not in thumb.info


def test_summary_counts_labels_and_timings(report: tuple[str, list[Analysis]]) -> None:
    page, _ = report
    summary = page.split('<div class="grid">', 1)[0]
    assert re.search(r"<b>3</b>total.*<b>2</b>ok.*<b>1</b>errors.*<b>1</b>needs review", summary, re.S)
    assert "seashore" in summary and "label &lt;script&gt;" in summary  # label histogram
    assert re.search(r"<td>classify</td><td class=\"n\">16\.0</td><td class=\"n\">8\.0</td>", summary)
    assert re.search(r"<td>faces</td><td class=\"n\">1</td>", summary)


def test_thumbnail_shows_the_overlay_not_the_raw_image(tmp_path: Path) -> None:
    img = np.full((200, 300, 3), 128, np.uint8)
    a = Analysis(path="x.png", width=300, height=200, results={"faces": Faces(boxes=[[50, 50, 150, 150]], scores=[0.9])})
    page = write_report([(a, img)], tmp_path / "r.html").read_text(encoding="utf-8")
    src = re.findall(r'<img src="data:image/jpeg;base64,([^"]+)"', page)[0]
    thumb = np.asarray(Image.open(io.BytesIO(base64.b64decode(src))).convert("RGB")).astype(int)
    assert thumb.shape == (200, 300, 3)
    assert np.abs(thumb[150, 100] - 128).max() > 60  # bottom edge of the face box
    assert np.abs(thumb[100, 100] - 128).max() < 10  # inside the box


def test_nothing_is_written_until_close_and_a_failed_run_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("previous report", encoding="utf-8")
    with pytest.raises(RuntimeError):
        with ReportWriter(target) as writer:
            writer.add(Analysis(path="a.jpg"), _img())
            assert target.read_text(encoding="utf-8") == "previous report"
            raise RuntimeError("batch crashed")
    assert target.read_text(encoding="utf-8") == "previous report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # no temp files left


def test_adding_after_close_is_an_error(tmp_path: Path) -> None:
    writer = ReportWriter(tmp_path / "r.html")
    writer.close()
    with pytest.raises(Exception, match="closed"):
        writer.add(Analysis(path="a.jpg"), None)


def _small(i: int) -> Analysis:
    return Analysis(path=f"folder/img_{i:04d}.jpg", width=32, height=32, timings_ms={"classify": 1.0},
                    results={"classify": Classification(class_ids=[i % 5], scores=[0.5], labels=[f"l{i % 5}"])})


def test_cards_are_streamed_not_kept_in_memory(tmp_path: Path) -> None:
    img = _img(32, 32)
    writer = ReportWriter(tmp_path / "big.html")
    for i in range(20):  # warm up caches (fonts, templates) before measuring
        writer.add(_small(i), img)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(20, 300):
            writer.add(_small(i), img)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    # 280 cards hold > 300 KB of HTML+base64; keeping them would blow this bound.
    assert grown < 100_000, grown
    for value in vars(writer).values():
        assert not (isinstance(value, (list, dict, tuple)) and len(value) >= 20)
    page = writer.close().read_text(encoding="utf-8")
    assert page.count("<article") == 300 and "folder/img_0299.jpg" in page
    assert page.index("<b>300</b>total") < page.index("folder/img_0000.jpg")  # summary first
