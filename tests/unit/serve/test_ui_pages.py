"""The web UI's pages through TestClient: login and redirects, rendering, escaping of every
user/derived string, paging without JavaScript, roles, and HTML the CSP allows (no inline
scripts, styles or event handlers). The browser side is tests/e2e/test_ui_browser.py."""

from __future__ import annotations

import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from pixsight.catalog.store import Catalog
from pixsight.core.types import Analysis, Classification, TextLines
from pixsight.serve.auth import SESSION_COOKIE
from pixsight.serve.ui import PAGE_SIZE, _safe_next

from .kit import make_app, ui_login

XSS_PATH = "/photos/<img src=x onerror=alert(1)>.png"
XSS_TEXT = "<script>alert(1)</script>"
XSS_LABEL = "<b onmouseover=alert(1)>cat</b>"
STATIC = Path(__file__).resolve().parents[3] / "src" / "pixsight" / "serve" / "static"


def _sha(i: int) -> str:
    return hashlib.sha256(f"image-{i}".encode()).hexdigest()


def _save(cat: Catalog, i: int, *, path: str | None = None, label: str = "tabby", score: float = 0.9,
          needs_review: bool = False, text: str | None = None) -> str:
    sha = _sha(i)
    results: dict[str, Any] = {"classify": Classification(class_ids=np.array([281, 282]), scores=np.array([score, 0.05]),
                                                          labels=[label, "tiger cat"])}
    models = {"classify": "efficientnet-lite0@1"}
    if text is not None:
        results["ocr"] = TextLines(texts=[text], scores=np.array([0.5]), boxes=np.array([[1, 2, 30, 12]]), model="t")
        models["ocr"] = "t@1"
    cat.save(Analysis(path=path or f"/photos/img_{i:03d}.png", sha256=sha, width=64, height=48, format="PNG",
                      bytes=1000, needs_review=needs_review,
                      review_reasons=["classify: low score"] if needs_review else [], results=results, models=models))
    return sha


@pytest.fixture()
def site(tmp_path: Path) -> dict[str, Any]:
    app, keys = make_app(tmp_path)
    with Catalog(tmp_path / "catalog.sqlite") as cat:
        xss = _save(cat, 0, path=XSS_PATH, label=XSS_LABEL, score=0.2, needs_review=True, text=XSS_TEXT)
        for i in range(1, 4):
            _save(cat, i, needs_review=i == 1)
    return {"app": app, "keys": keys, "xss": xss, "db": tmp_path / "catalog.sqlite"}


@pytest.fixture()
def client(site: dict[str, Any]) -> Any:
    with TestClient(site["app"]) as c:
        yield c


PAGES = ["/", "/review", "/dashboard", "/models", f"/images/{_sha(1)}"]


class _Html(HTMLParser):
    """Collects what the CSP would refuse: inline scripts, styles and event handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script":
            self._in_script = True
            if not names.get("src"):
                self.problems.append("inline <script>")
            else:
                self.scripts.append(names["src"] or "")
        if tag == "style":
            self.problems.append("<style> element")
        for name, value in attrs:
            if name == "style":
                self.problems.append(f"style attribute on <{tag}>")
            if name.startswith("on"):
                self.problems.append(f"event handler {name} on <{tag}>")
            if name in ("href", "src", "action") and value and re.match(r"\s*(javascript|https?):", value, re.I):
                self.problems.append(f"{name}={value!r} on <{tag}>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append("inline script text")


# -- login ----------------------------------------------------------------------------------
@pytest.mark.parametrize("path", PAGES)
def test_pages_redirect_to_login_without_session(client: Any, path: str) -> None:
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=" + path.split("?")[0])


def test_login_page_is_public_and_posts_the_key(client: Any) -> None:
    r = client.get("/login?next=/models")
    assert r.status_code == 200
    assert 'action="/login"' in r.text and 'name="key"' in r.text
    assert 'name="next" value="/models"' in r.text


def test_wrong_key_is_refused_with_a_message(client: Any) -> None:
    r = client.post("/login", data={"key": "pxs_00000000_wrong", "next": "/"}, follow_redirects=False)
    assert r.status_code == 401
    assert "not valid" in r.text
    assert SESSION_COOKIE not in client.cookies


def test_login_sets_session_cookie_and_goes_to_next(client: Any, site: dict[str, Any]) -> None:
    r = client.post("/login", data={"key": site["keys"]["viewer"], "next": "/models"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/models"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert client.get("/models").status_code == 200
    # a logged-in browser that opens /login goes straight on
    assert client.get("/login?next=/dashboard", follow_redirects=False).headers["location"] == "/dashboard"


@pytest.mark.parametrize("target, expected", [
    ("/review?sha=ab", "/review?sha=ab"), ("//evil.example/x", "/"), ("https://evil.example", "/"),
    ("/\\evil.example", "/"), ("javascript:alert(1)", "/"), ("", "/"), ("/a\r\nSet-Cookie: x=1", "/"),
])
def test_next_is_only_ever_a_local_path(target: str, expected: str) -> None:
    assert _safe_next(target) == expected


def test_login_never_redirects_off_site(client: Any, site: dict[str, Any]) -> None:
    r = client.post("/login", data={"key": site["keys"]["viewer"], "next": "//evil.example"}, follow_redirects=False)
    assert r.headers["location"] == "/"


def test_logout_ends_the_session(client: Any, site: dict[str, Any]) -> None:
    ui_login(client, site["keys"]["viewer"])
    assert client.get("/", follow_redirects=False).status_code == 200
    r = client.post("/logout", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    client.cookies.clear()
    assert len(site["app"].state.px.sessions) == 0
    assert client.get("/", follow_redirects=False).status_code == 303


# -- rendering, escaping, CSP ---------------------------------------------------------------
@pytest.mark.parametrize("path", PAGES + [f"/images/{_sha(0)}", "/?q=tabby&needs_review=true", "/login"])
def test_pages_render_and_are_csp_compatible(client: Any, site: dict[str, Any], path: str) -> None:
    csrf = ui_login(client, site["keys"]["reviewer"])
    r = client.get(path)
    assert r.status_code == 200, r.text[:500]
    assert r.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"
    parser = _Html()
    parser.feed(r.text)
    assert parser.problems == []
    assert parser.scripts and all(s.startswith("/static/") for s in parser.scripts)
    if path != "/login":
        assert f'<meta name="csrf-token" content="{csrf}">' in r.text


def test_user_and_derived_text_is_escaped(client: Any, site: dict[str, Any]) -> None:
    ui_login(client, site["keys"]["viewer"])
    gallery = client.get("/").text
    image = client.get(f"/images/{site['xss']}").text
    for html in (gallery, image):
        assert "<img src=x" not in html and "<b onmouseover" not in html
        assert "&lt;img src=x onerror=alert(1)&gt;.png" in html
        assert "&lt;b onmouseover=alert(1)&gt;cat&lt;/b&gt;" in html
    assert XSS_TEXT not in image
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in image
    # the analysis handed to image.js sits in a single-quoted attribute: no quote or tag can break out
    attr = re.search(r"data-analysis='([^']*)'", image)
    assert attr is not None and "<" not in attr.group(1) and ">" not in attr.group(1)
    # a search string comes back as the input's value, escaped
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in client.get("/", params={"q": XSS_TEXT}).text


def test_static_assets_are_served_and_build_dom_safely(client: Any) -> None:
    for name, kind in (("app.css", "text/css"), ("common.js", "javascript"), ("gallery.js", "javascript"),
                       ("image.js", "javascript"), ("review.js", "javascript"), ("dashboard.js", "javascript")):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and kind in r.headers["content-type"], name
    for js in STATIC.glob("*.js"):
        source = js.read_text()
        for banned in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert banned not in source, f"{js.name} uses {banned}"
    assert client.get("/static/../ui.py").status_code == 404


# -- gallery --------------------------------------------------------------------------------
def _cards(html: str) -> list[str]:
    return re.findall(r'<div class="card" data-sha="([0-9a-f]{64})">', html)


def test_gallery_pages_without_javascript(site: dict[str, Any]) -> None:
    with Catalog(site["db"]) as cat:
        for i in range(4, PAGE_SIZE + 6):
            _save(cat, i, needs_review=True)
    flagged = PAGE_SIZE + 2 + 2  # the two from the fixture too
    with TestClient(site["app"]) as client:
        ui_login(client, site["keys"]["viewer"])
        first = client.get("/", params={"needs_review": "true"}).text
        assert len(_cards(first)) == PAGE_SIZE
        assert f"of {flagged} images" in first
        more = re.search(r'<a class="button" id="load-more" href="([^"]+)" data-api="([^"]+)"', first)
        assert more is not None
        link, api = (m.replace("&amp;", "&") for m in more.groups())
        assert "needs_review=true" in link and f"offset={PAGE_SIZE}" in link
        assert api.startswith("/v1/images?") and "needs_review=true" in api and f"offset={PAGE_SIZE}" in api
        second = client.get(link).text
        rest = _cards(second)
        assert len(rest) == flagged - PAGE_SIZE and not set(rest) & set(_cards(first))
        assert 'id="load-more"' not in second and 'id="prev"' in second
        page = client.get(api).json()  # what gallery.js appends is the same next page
        assert [c["sha256"] for c in page["items"]] == rest


@pytest.mark.parametrize("params, expected", [
    ({}, 4), ({"needs_review": "true"}, 2), ({"needs_review": "false"}, 2), ({"has_text": "true"}, 1),
    ({"q": "img_002"}, 1), ({"label": "tabby"}, 3), ({"q": "nothing-like-this"}, 0),
])
def test_gallery_filters_narrow_the_grid(client: Any, site: dict[str, Any], params: dict, expected: int) -> None:
    ui_login(client, site["keys"]["viewer"])
    html = client.get("/", params=params).text
    assert len(_cards(html)) == expected
    for name, value in params.items():  # the form shows the filters in use
        if name in ("q", "label"):
            assert f'value="{value}"' in html
        else:
            assert re.search(rf'name="{name}">\s*<option value="" >any</option>\s*'
                             rf'(<option[^>]*>[a-z]+</option>\s*)*<option value="{value}" selected>', html)


@pytest.mark.parametrize("params, message", [({"since": "not-a-date"}, "YYYY-MM-DD"),
                                             ({"q": "x" * 501}, "longer than 500")])
def test_gallery_bad_filter_shows_a_notice(client: Any, site: dict[str, Any], params: dict, message: str) -> None:
    ui_login(client, site["keys"]["viewer"])
    r = client.get("/", params=params)
    assert r.status_code == 400
    assert 'id="gallery-error"' in r.text and message in r.text


# -- image, review, models ------------------------------------------------------------------
def test_image_page_shows_results(client: Any, site: dict[str, Any]) -> None:
    ui_login(client, site["keys"]["viewer"])
    html = client.get(f"/images/{_sha(1)}").text
    assert 'id="labels-table"' in html and "tabby" in html and "tiger cat" in html
    assert f'src="/v1/images/{_sha(1)}/file"' in html
    assert 'id="review-link"' not in html  # viewers get no review link
    for layer in ("boxes", "landmarks", "ocr", "labels"):
        assert f'data-toggle="{layer}"' in html


def test_image_page_review_link_for_reviewers(client: Any, site: dict[str, Any]) -> None:
    ui_login(client, site["keys"]["reviewer"])
    html = client.get(f"/images/{site['xss']}").text
    assert f'href="/review?sha={site["xss"]}"' in html


@pytest.mark.parametrize("sha, status", [("0" * 64, 404), ("not-a-sha", 404), ("A" * 64, 404)])
def test_image_page_unknown_or_bad_sha(client: Any, site: dict[str, Any], sha: str, status: int) -> None:
    ui_login(client, site["keys"]["viewer"])
    r = client.get(f"/images/{sha}")
    assert r.status_code == status
    assert 'id="error-message"' in r.text


def test_review_page_by_role(client: Any, site: dict[str, Any]) -> None:
    ui_login(client, site["keys"]["viewer"])
    viewer = client.get("/review").text
    assert 'id="read-only"' in viewer and 'data-action="accept"' not in viewer
    ui_login(client, site["keys"]["reviewer"])
    reviewer = client.get("/review", params={"sha": site["xss"]}).text
    assert 'id="read-only"' not in reviewer
    for action in ("accept", "reject", "relabel", "fix", "skip", "help"):
        assert f'data-action="{action}"' in reviewer
    assert f'data-sha="{site["xss"]}"' in reviewer
    assert 'data-sha=""' in client.get("/review", params={"sha": "../../etc/passwd"}).text


def test_models_page_lists_the_registry(client: Any, site: dict[str, Any]) -> None:
    ui_login(client, site["keys"]["viewer"])
    html = client.get("/models").text
    assert 'data-name="efficientnet-lite0"' in html
    assert "Apache-2.0" in html and "classify" in html
