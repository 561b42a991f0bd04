"""The web UI in a real browser (Playwright + the system Chromium) against a real server.

A catalog is built by the real analyzer (classify + embed) over six images; four of them
are flagged for review, one is named ``<img src=x onerror=alert(1)>.png`` and carries an
OCR result whose text is ``<script>alert(1)</script>`` plus one face (box + landmarks).
``pixsight.serve`` runs under uvicorn in a background thread on a free port. Every test
fails when a JavaScript dialog opens (an XSS fired), when the page logs a console error
(CSP violations included) or throws. Screenshots land in ``tests/e2e/_artifacts/``.
"""

from __future__ import annotations

import hashlib
import json
import socket
import sqlite3
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("the browser tests need Chromium at /usr/bin/chromium (apt-get install chromium)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright (pip install playwright)")
uvicorn = pytest.importorskip("uvicorn")

from pixsight.catalog.store import Catalog  # noqa: E402
from pixsight.core.config import AnalyzeConfig  # noqa: E402
from pixsight.core.types import Analysis, Classification, Faces, TextLines  # noqa: E402
from pixsight.serve.ui import PAGE_SIZE  # noqa: E402
from pixsight.pipeline.analyzer import analyze  # noqa: E402
from tests.unit.serve.kit import make_app  # noqa: E402

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parent / "_artifacts"
XSS_NAME = "<img src=x onerror=alert(1)>.png"
XSS_TEXT = "<script>alert(1)</script>"
TINY = PAGE_SIZE + 5  # plain images beside the six analysed ones
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"]


# -- the catalog and the server ---------------------------------------------------------------
def _images(folder: Path) -> dict[str, Path]:
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    pictures = {
        "astronaut.jpg": data.astronaut(),
        "chelsea.jpg": data.chelsea(),
        "coffee.jpg": data.coffee(),
        "camera.png": np.stack([data.camera()] * 3, axis=-1),
        "noise.png": rng.integers(0, 256, (240, 320, 3), dtype=np.uint8),
        XSS_NAME: np.full((200, 300, 3), (40, 120, 200), dtype=np.uint8),
    }
    out = {}
    for name, pixels in pictures.items():
        path = folder / name
        Image.fromarray(pixels).save(path)
        out[name] = path
    return out


def _build_catalog(db: Path, folder: Path) -> dict[str, str]:
    """Analyse the images for real; flag four for review; give the XSS image OCR text and a face."""
    paths = _images(folder)
    analyze([str(p) for p in paths.values()], config=AnalyzeConfig(tasks=("classify", "embed"), parallel_stages=False),
            db=db)
    flagged = {"chelsea.jpg", "coffee.jpg", "noise.png", XSS_NAME}
    shas: dict[str, str] = {}
    with Catalog(db) as cat:
        for name, path in paths.items():
            sha = cat.find(str(path))[0]
            shas[name] = sha
            analysis = cat.load_analysis(sha)
            assert analysis is not None and "classify" in analysis.results
            analysis = replace(analysis, needs_review=name in flagged,
                               review_reasons=["forced by the UI test"] if name in flagged else [])
            if name == XSS_NAME:
                analysis.results["ocr"] = TextLines(texts=[XSS_TEXT], scores=np.array([0.42]),
                                                    boxes=np.array([[20, 30, 260, 70]]), model="test")
                analysis.results["faces"] = Faces(boxes=np.array([[100, 90, 180, 180]]), scores=np.array([0.9]),
                                                  landmarks=np.array([[[120, 120], [160, 120], [140, 140],
                                                                       [125, 160], [155, 160]]]))
                analysis.models.update(ocr="test-ocr@1", faces="test-faces@1")
            cat.save(analysis, path=str(path))
        for i in range(TINY):  # enough plain images for a second gallery page ("Load more")
            tiny = folder.parent / "tiny" / f"tiny_{i:03d}.png"
            tiny.parent.mkdir(exist_ok=True)
            Image.fromarray(np.full((24, 32, 3), (i * 5 % 256, 90, 160), dtype=np.uint8)).save(tiny)
            data = tiny.read_bytes()
            cat.save(Analysis(path=str(tiny), sha256=hashlib.sha256(data).hexdigest(), width=32, height=24,
                              format="PNG", bytes=len(data), models={"classify": "test@1"},
                              results={"classify": Classification(class_ids=[1], scores=[0.99], labels=["swatch"])}),
                     path=str(tiny))
    return shas


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("ui")
    db = tmp / "catalog.sqlite"
    shas = _build_catalog(db, tmp / "photos")
    # one gallery page is 48 thumbnail requests at once: the default burst (60 per key) is too
    # small for a browser session (reported to the lead); these tests are about the UI
    app, keys = make_app(tmp, db=db, rate_limit_burst=10_000, rate_limit_per_min=60_000)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="uvicorn-ui-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the test server did not start")
        time.sleep(0.05)
    try:
        yield {"url": f"http://127.0.0.1:{port}", "keys": keys, "db": db, "shas": shas, "photos": tmp / "photos"}
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture(scope="module")
def browser(site: dict[str, Any]) -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=BROWSER_ARGS)
        try:
            yield b
        finally:
            b.close()


class Watch:
    """What went wrong in the page: console errors, uncaught exceptions, dialogs (XSS)."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []


@pytest.fixture()
def page(browser: Any, site: dict[str, Any]) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1366, "height": 768}, base_url=site["url"])
    # CSP violations also reach the console as errors, with what was blocked
    context.add_init_script("document.addEventListener('securitypolicyviolation', e => console.error("
                            "'CSP violation: ' + e.violatedDirective + ' blocked ' + e.blockedURI));")
    pg = context.new_page()
    watch = Watch()

    def on_dialog(dialog: Any) -> None:
        watch.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    pg.on("dialog", on_dialog)
    pg.on("console", lambda msg: watch.errors.append(f"console {msg.type}: {msg.text} @ {pg.url}")
          if msg.type == "error" else None)
    pg.on("pageerror", lambda exc: watch.errors.append(f"uncaught: {exc} @ {pg.url}"))
    pg.watch = watch
    try:
        yield pg
        pg.wait_for_timeout(150)  # late console messages of the last page
        assert not watch.dialogs, f"a dialog opened (script injection ran): {watch.dialogs}"
        assert not watch.errors, "browser errors:\n" + "\n".join(watch.errors)
    finally:
        context.close()


def login(page: Any, key: str, *, next_path: str = "/") -> None:
    page.goto(f"/login?next={next_path}")
    page.fill("#key", key)
    page.click("#login-submit")
    page.wait_for_load_state("networkidle")


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


# -- tests -----------------------------------------------------------------------------------
def test_login_flow(page: Any, site: dict[str, Any]) -> None:
    page.goto("/dashboard")
    assert "/login" in page.url  # no session: the page sends the browser to the login form
    page.fill("#key", "pxs_00000000_not-a-real-key-at-all-xxxxxxxxxxxxxxxxxxxxxx")
    page.click("#login-submit")
    assert page.locator("#login-error").is_visible()
    shot(page, "login")
    # the refused login is answered 401, which Chromium logs as a failed document load: expected
    assert all("401" in e for e in page.watch.errors), page.watch.errors
    page.watch.errors.clear()
    page.fill("#key", site["keys"]["viewer"])
    page.click("#login-submit")
    page.wait_for_url("**/dashboard")
    assert page.locator(".topbar .role").inner_text() == "viewer"
    page.click("#logout")
    page.wait_for_url("**/login")
    page.goto("/")
    assert "/login" in page.url  # the session is gone


def test_gallery_thumbnails_and_filters(page: Any, site: dict[str, Any]) -> None:
    login(page, site["keys"]["viewer"], next_path=f"/?folder={site['photos']}")
    cards = page.locator("#grid .card")
    assert cards.count() == 6
    page.wait_for_function("() => [...document.querySelectorAll('#grid img')].every(i => i.complete && i.naturalWidth > 0)")
    shot(page, "gallery")
    page.fill("#q", "chelsea")
    page.click("#search")
    page.wait_for_load_state("networkidle")
    assert cards.count() == 1
    assert "chelsea.jpg" in cards.first.inner_text()
    page.goto("/")
    assert cards.count() == PAGE_SIZE
    page.select_option("select[name=needs_review]", "true")
    page.click("#search")
    page.wait_for_load_state("networkidle")
    assert cards.count() == 4
    assert all(cards.nth(i).locator(".badge.review").count() == 1 for i in range(4))


def test_gallery_load_more(page: Any, site: dict[str, Any]) -> None:
    login(page, site["keys"]["viewer"], next_path="/?label=swatch")
    cards = page.locator("#grid .card")
    assert cards.count() == PAGE_SIZE
    assert page.locator("#summary").inner_text() == f"Showing {PAGE_SIZE} of {TINY} images"
    page.click("#load-more")  # JavaScript appends the next page in place
    page.wait_for_function(f"() => document.querySelectorAll('#grid .card').length === {TINY}")
    assert page.locator("#load-more").is_hidden()
    assert page.locator("#shown").inner_text() == str(TINY)
    assert "offset" not in page.url  # same page, no navigation
    assert len(set(cards.evaluate_all("cs => cs.map(c => c.dataset.sha)"))) == TINY
    page.locator("#grid .card").last.scroll_into_view_if_needed()
    page.wait_for_function("() => { const i = [...document.querySelectorAll('#grid img')].pop(); "
                           "return i.complete && i.naturalWidth > 0; }")


def test_image_page_overlay_toggles(page: Any, site: dict[str, Any]) -> None:
    sha = site["shas"][XSS_NAME]
    login(page, site["keys"]["viewer"], next_path=f"/images/{sha}")
    page.wait_for_function("() => document.getElementById('photo').naturalWidth > 0")
    overlay = page.locator("#overlay")
    assert overlay.locator("g[data-layer=ocr] polygon").count() == 1
    assert overlay.locator("g[data-layer=boxes] rect").count() == 1
    assert overlay.locator("g[data-layer=landmarks] circle").count() == 5
    for layer in ("ocr", "boxes", "landmarks", "labels"):
        group = overlay.locator(f"g[data-layer={layer}]")
        assert group.evaluate("g => getComputedStyle(g).display") != "none"
        page.uncheck(f"#t-{layer}")
        assert group.evaluate("g => getComputedStyle(g).display") == "none"
        page.check(f"#t-{layer}")
        assert group.evaluate("g => getComputedStyle(g).display") != "none"
    assert page.locator("#labels-table tr").count() > 1  # the classify labels, as a table
    page.wait_for_selector("#similar a.similar-item, #similar .unavailable")
    assert page.locator("#similar .unavailable").count() == 0
    assert page.locator("#similar a.similar-item").count() >= 1
    shot(page, "image")


def test_xss_strings_show_as_text(page: Any, site: dict[str, Any]) -> None:
    sha = site["shas"][XSS_NAME]
    login(page, site["keys"]["viewer"], next_path=f"/?folder={site['photos']}")
    card = page.locator(f"#grid .card[data-sha='{sha}']")
    assert card.locator(".path").inner_text() == XSS_NAME
    page.goto(f"/images/{sha}")
    page.wait_for_load_state("networkidle")
    assert page.locator("#image-title").inner_text() == XSS_NAME
    assert page.locator("#ocr-text").inner_text() == XSS_TEXT
    assert page.locator("#ocr-table td").first.inner_text() == XSS_TEXT
    assert page.locator("script:not([src])").count() == 0  # no inline script made it into the DOM
    assert page.locator("img[src=x]").count() == 0
    page.goto(f"/?q={XSS_TEXT}")
    page.wait_for_load_state("networkidle")
    assert page.locator("#q").input_value() == XSS_TEXT


def test_review_flow_with_keyboard(page: Any, site: dict[str, Any]) -> None:
    started = time.time()
    login(page, site["keys"]["reviewer"], next_path="/review")
    page.wait_for_selector("#review-item:not(.hidden)")
    shot(page, "review")
    assert "4 pending" in page.locator("#review-count").inner_text()
    seen: list[str] = []

    def current() -> str:
        return page.locator("#item-sha").inner_text()

    def wait_next(previous: str) -> None:
        page.wait_for_function("prev => { const s = document.getElementById('item-sha'); "
                               "const empty = !document.getElementById('review-empty').classList.contains('hidden'); "
                               "return empty || (s && s.textContent && s.textContent !== prev); }", arg=previous)

    page.keyboard.press("?")
    assert page.locator("#help").is_visible()
    page.keyboard.press("?")
    assert page.locator("#help").is_hidden()
    skipped = current()
    page.keyboard.press("s")  # skipped images come back once the rest is done
    wait_next(skipped)
    seen.append(current())
    page.keyboard.press("a")
    wait_next(seen[-1])
    seen.append(current())
    page.keyboard.press("r")
    wait_next(seen[-1])
    seen.append(current())
    page.keyboard.press("l")
    page.wait_for_selector("#relabel-form:not(.hidden)")
    page.fill("#relabel-input", "tabby, tiger cat")
    page.keyboard.press("Enter")
    wait_next(seen[-1])
    seen.append(current())
    page.keyboard.press("f")
    page.wait_for_selector("#fix-form:not(.hidden)")
    page.wait_for_function("() => document.getElementById('photo').naturalWidth > 0")
    box = page.locator("#overlay").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5, steps=5)
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.7, steps=5)
    page.mouse.up()
    assert page.locator("#overlay g[data-layer=fix] rect").count() == 1
    page.fill("#fix-label", "thing")
    # a second box with its own label: starting it gives the first box "thing"
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.1)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + box["height"] * 0.3, steps=5)
    page.mouse.up()
    assert page.locator("#overlay g[data-layer=fix] rect").count() == 2
    assert page.locator("#overlay g[data-layer=fix] text").all_text_contents() == ["thing"]
    page.fill("#fix-label", "<b>other</b>")
    shot(page, "review-fix")
    page.keyboard.press("Enter")
    page.wait_for_selector("#review-empty:not(.hidden)")
    shot(page, "review-empty")
    assert len(set(seen)) == 4 and seen[-1] == skipped

    con = sqlite3.connect(site["db"])
    try:
        rows = con.execute("SELECT sha256, decision, labels, boxes, reviewer, created FROM reviews ORDER BY id").fetchall()
    finally:
        con.close()
    assert [r[1] for r in rows] == ["accept", "reject", "relabel", "fix"]
    assert [r[0] for r in rows] == seen
    assert all(r[4].startswith("test-reviewer") for r in rows), rows  # who decided: the key's name
    assert all(started - 1 <= r[5] <= time.time() + 1 for r in rows)
    assert "tabby" in rows[2][2] and "tiger cat" in rows[2][2]
    fixed = json.loads(rows[3][3])
    assert [b["label"] for b in fixed] == ["thing", "<b>other</b>"]
    con = sqlite3.connect(site["db"])
    try:
        width, height = con.execute("SELECT width, height FROM images WHERE sha256 = ?", (skipped,)).fetchone()
    finally:
        con.close()
    expected = [0.2 * width, 0.2 * height, 0.6 * width, 0.7 * height]  # where the mouse went, in image pixels
    assert fixed[0]["box"] == pytest.approx(expected, abs=0.02 * max(width, height))
    expected = [0.7 * width, 0.1 * height, 0.9 * width, 0.3 * height]
    assert fixed[1]["box"] == pytest.approx(expected, abs=0.02 * max(width, height))


def test_viewer_sees_read_only_review(page: Any, site: dict[str, Any]) -> None:
    login(page, site["keys"]["viewer"], next_path="/review")
    assert page.locator("#read-only").is_visible()
    assert page.locator("#btn-accept").count() == 0


def test_dashboard_renders_charts(page: Any, site: dict[str, Any]) -> None:
    login(page, site["keys"]["viewer"], next_path="/dashboard")
    page.wait_for_selector("#per-day-svg rect.bar")
    page.wait_for_selector("#labels-svg rect")
    page.wait_for_selector("#drift-status, #drift .unavailable")
    page.wait_for_function("() => document.getElementById('v-latency').textContent !== '–'")
    assert page.locator("#v-images").inner_text() == str(6 + TINY)
    assert page.locator(".unavailable").count() == 0, page.locator(".unavailable").all_inner_texts()
    shot(page, "dashboard")


def test_models_page_lists_efficientnet(page: Any, site: dict[str, Any]) -> None:
    login(page, site["keys"]["viewer"], next_path="/models")
    card = page.locator("article.model[data-name='efficientnet-lite0']")
    assert card.is_visible()
    assert "classify" in card.inner_text() and "Apache-2.0" in card.inner_text()
    shot(page, "models")


def test_csp_blocks_injected_inline_script(page: Any, site: dict[str, Any]) -> None:
    """The page's CSP is live in the browser, and the watch catches violations."""
    login(page, site["keys"]["viewer"], next_path="/models")
    page.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.injected = 1'; "
                  "document.body.appendChild(s); }")
    page.wait_for_function("() => true")
    page.wait_for_timeout(100)
    assert page.evaluate("() => window.injected") is None
    assert any("CSP violation: script-src" in e for e in page.watch.errors), page.watch.errors
    page.watch.errors.clear()
