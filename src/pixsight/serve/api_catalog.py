"""Catalog read API: images (list, detail, file, thumbnail, similar), search, models, stats.
Every route needs a ``viewer`` key. People (the face gallery) are in ``api_people``.

Routes only parse and format: listing is :func:`pixsight.catalog.search.search_page`, detail
is ``Catalog.load_analysis`` + :func:`pixsight.faces.naming.name_faces`, similarity is
:func:`pixsight.catalog.vectors.similar`, models are the registry rows of
``pixsight models list --json``.

Image bytes are served only from paths the catalog recorded for that sha256, and only when
the file still has that content; they leave as stored only when they hold no metadata and
need no rotation, else decoded by the safe loader and re-encoded (EXIF-oriented, no
metadata) once, into a private cache file (SECURITY.md item 14). Decodes hold the server's
pixel budget (``serve.decoding``).
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ..core.errors import ImageDecodeError, ImageTooLargeError
from ..core.fileio import printable, printable_path
from ..catalog.files import catalog_image
from ..catalog.stats import catalog_stats
from ..catalog.storage import Session, open_session
from ..catalog.storage import reads
from ..core.image import encode_clean
from .auth import ApiError, Principal, require

__all__ = ["router", "SHA256", "check_sha", "ImageCard", "ImagesPage"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["catalog"])
viewer = Depends(require("viewer"))

#: A sha256 path parameter.
SHA256 = re.compile(r"^[0-9a-f]{64}$")
THUMB_CACHE_ITEMS = 512  # thumbnails kept in memory (a few KiB each)
IMAGE_CACHE_CONTROL = "private, max-age=86400"  # content-addressed: a sha256 never changes its pixels


# -- response models ------------------------------------------------------------------------
class ImageCard(BaseModel):
    sha256: str
    path: str
    width: int
    height: int
    top_label: str | None = None
    top_score: float | None = None
    needs_review: bool = False
    has_text: bool = False
    has_faces: bool = False
    people: list[str] = Field(default_factory=list)
    reviewed: str | None = Field(None, description="latest review decision, if any")
    updated: float | None = Field(None, description="when the image was last analysed (POSIX time)")


class ImagesPage(BaseModel):
    items: list[ImageCard]
    total: int
    offset: int
    limit: int


class ImageDetail(BaseModel):
    analysis: dict[str, Any]
    paths: list[str]
    people: list[str]
    reviews: list[dict[str, Any]]
    similar_url: str


class SimilarItem(BaseModel):
    sha256: str
    path: str
    score: float


class SimilarPage(BaseModel):
    items: list[SimilarItem]
    note: str | None = Field(None, description="why there are no items, when that is known")


class ModelsPage(BaseModel):
    models: list[dict[str, Any]]


class DayCount(BaseModel):
    day: str
    images: int


class DayLabel(BaseModel):
    day: str
    label: str
    n: int


class LabelCount(BaseModel):
    label: str
    n: int


class Stats(BaseModel):
    images: int
    analyses: int
    needs_review: int
    reviewed: int
    per_day: list[DayCount]
    labels_per_day: list[DayLabel]
    top_labels: list[LabelCount]
    review: dict[str, int]


# -- helpers ----------------------------------------------------------------------------------
def check_sha(sha256: str) -> str:
    """``sha256`` if it is 64 lowercase hex characters, else a 404 (never a file lookup)."""
    if not SHA256.fullmatch(sha256 or ""):
        raise ApiError(404, "NotFound", "no such image: expected a 64-character lowercase hex sha256")
    return sha256


def _db(request: Request) -> Path:
    """The catalog path, created with its schema on first use (a fresh server has none yet)."""
    px = request.app.state.px
    db = Path(px.settings.db)
    if not getattr(request.app.state, "catalog_ready", False):
        from ..catalog.store import Catalog

        Catalog(db).close()
        request.app.state.catalog_ready = True
    return db


def _read(db: Path) -> Session:
    """A read-only session; database errors become ``CatalogError`` (a 400 with the reason)."""
    return open_session(db, mode="readonly", what="cannot read the catalog")


def _known(db: Path, sha: str) -> bool:
    with _read(db) as con:
        return reads.image_known(con, sha)


def _not_found(sha: str) -> ApiError:
    return ApiError(404, "NotFound", f"no image {sha} in the catalog")


def _cards(db: Path, hits: list[Any]) -> list[ImageCard]:
    """Cards for search hits, in order: one query per kind of fact for the whole page."""
    from ..faces.naming import people_in
    from ..review.queue import latest_decisions

    shas = [h.sha256 for h in hits]
    if not shas:
        return []
    with _read(db) as con:
        facts = reads.card_facts(con, shas)
        top = reads.top_labels(con, shas)
    decisions = latest_decisions(db, shas)
    people = people_in(db, [s for s in shas if facts.get(s) and facts[s][5]])
    cards = []
    for hit in hits:
        width, height, updated, needs_review, has_text, has_faces = facts.get(hit.sha256, (0, 0, None, 0, 0, 0))
        label, score = top.get(hit.sha256, (None, None))
        cards.append(ImageCard(
            sha256=hit.sha256, path=printable_path(hit.paths[0]) if hit.paths else hit.sha256,
            width=int(width or 0), height=int(height or 0), top_label=label, top_score=score,
            needs_review=bool(needs_review), has_text=bool(has_text), has_faces=bool(has_faces),
            people=people.get(hit.sha256, []), reviewed=decisions.get(hit.sha256), updated=updated))
    return cards


# -- images -----------------------------------------------------------------------------------
@router.get("/images", response_model=ImagesPage, summary="List or search catalogued images")
def list_images(
    request: Request,
    q: str = Query("", max_length=500, description="words to find in OCR text, labels and file names"),
    label: str | None = Query(None, max_length=200),
    person: str | None = Query(None, max_length=200, description="an enrolled person's name"),
    has_text: bool | None = None,
    has_faces: bool | None = None,
    needs_review: bool | None = None,
    folder: str | None = Query(None, max_length=4096, description="path prefix of the files"),
    since: str | None = Query(None, max_length=40, description="analysed on or after (YYYY-MM-DD)"),
    until: str | None = Query(None, max_length=40, description="analysed on or before (YYYY-MM-DD)"),
    limit: int = Query(48, ge=1, le=200),
    offset: int = Query(0, ge=0, le=10_000_000),
    principal: Principal = viewer,
) -> ImagesPage:
    """Newest analysis first without ``q``; best match first with it. ``total`` counts every match."""
    from ..catalog.search import search_page

    db = _db(request)
    shas = None
    if person:
        from ..faces.gallery import UnknownPersonError, find_person

        try:
            shas = [sha for sha, _, _ in find_person(db, person.strip())]
        except UnknownPersonError:
            shas = []
    page = search_page(db, q or None, label=label or None, has_text=has_text, has_faces=has_faces,
                       needs_review=needs_review, folder=folder or None, since=since or None,
                       until=until or None, shas=shas, limit=limit, offset=offset)
    return ImagesPage(items=_cards(db, page.items), total=page.total, offset=offset, limit=limit)


router.add_api_route("/search", list_images, methods=["GET"], response_model=ImagesPage,
                     summary="Search catalogued images (same as GET /v1/images)")


@router.get("/images/{sha256}", response_model=ImageDetail, summary="One image: analysis, paths, people, reviews")
def get_image(request: Request, sha256: str, principal: Principal = viewer) -> ImageDetail:
    from ..catalog.store import Catalog
    from ..faces.naming import name_faces, names_in
    from ..review.queue import history

    sha = check_sha(sha256)
    db = _db(request)
    with Catalog(db) as cat:
        analysis = cat.load_analysis(sha, with_vectors=False)
    if analysis is None:
        raise _not_found(sha)
    with _read(db) as con:
        paths = reads.paths(con, sha)
    named = name_faces(db, analysis)
    return ImageDetail(analysis=named.to_dict(), paths=[printable_path(p) for p in paths], people=names_in(named),
                       reviews=[r.to_dict() for r in history(db, sha)], similar_url=f"/v1/images/{sha}/similar")


class _ThumbCache:
    """A small thread-safe LRU of encoded thumbnails: ``(sha256, size) -> (bytes, mime)``."""

    def __init__(self, items: int) -> None:
        self.items = items
        self._data: OrderedDict[tuple[str, int], tuple[bytes, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int]) -> tuple[bytes, str] | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: tuple[str, int], value: tuple[bytes, str]) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.items:
                self._data.popitem(last=False)


def _thumbs(request: Request) -> _ThumbCache:
    cache = getattr(request.app.state, "thumbs", None)
    if cache is None:
        cache = request.app.state.thumbs = _ThumbCache(THUMB_CACHE_ITEMS)
    return cache


def _encoded(request: Request, sha: str, *, max_side: int | None) -> tuple[bytes, str]:
    """The image's bytes without metadata: full size (``max_side`` None) or a JPEG thumbnail.

    Full size: the stored bytes themselves when they hold no metadata and need no rotation
    (:func:`~pixsight.core.image.clean_as_stored`), else a copy re-encoded once and kept in a
    private cache file in the upload folder. Every decode holds the server's pixel budget.
    """
    from ..core.image import clean_as_stored, load_image
    from .decoding import decode_slot
    from .storage import clean_copy_path, read_clean_copy, write_clean_copy

    db = _db(request)
    if not _known(db, sha):
        raise _not_found(sha)
    px = request.app.state.px
    if max_side is None:
        cached = read_clean_copy(px.settings.uploads_dir, sha)
        if cached is not None:
            return cached
    found = catalog_image(db, sha)
    if found is None:
        raise ApiError(404, "NotFound", f"image {sha} is catalogued but its file is gone or has changed")
    _, data = found
    if max_side is None:
        mime = clean_as_stored(data)
        if mime is not None:
            return data, mime
    try:
        with decode_slot(px, data, name=sha):
            image = load_image(data, max_side=max_side, name=sha)
            if max_side is not None:
                return encode_clean(image, fmt="JPEG", quality=85, max_side=max_side)
            body, mime = encode_clean(image)
            del image
    except ImageTooLargeError:
        raise  # larger than the whole decode budget: 413 with the reason
    except ImageDecodeError as err:
        raise ApiError(404, "NotFound", f"image {sha} cannot be decoded any more: {printable(err.message)}") from None
    try:
        write_clean_copy(px.settings.uploads_dir, sha, body, mime)
    except OSError as err:  # a read-only upload folder only costs the cache
        log.warning("cannot cache the clean copy of %s at %s: %s", sha[:12],
                    printable_path(clean_copy_path(px.settings.uploads_dir, sha, mime)), err)
    return body, mime


def _image_response(request: Request, body: bytes, mime: str, etag: str) -> Response:
    headers = {"Cache-Control": IMAGE_CACHE_CONTROL, "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=mime, headers=headers)


@router.get("/images/{sha256}/file", summary="The image, EXIF-oriented and re-encoded without metadata",
            response_class=Response, responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}})
def image_file(request: Request, sha256: str, principal: Principal = viewer) -> Response:
    sha = check_sha(sha256)
    etag = f'"{sha}-full"'
    if request.headers.get("if-none-match") == etag and _known(_db(request), sha):
        return _image_response(request, b"", "", etag)
    body, mime = _encoded(request, sha, max_side=None)
    return _image_response(request, body, mime, etag)


@router.get("/images/{sha256}/thumb", summary="A JPEG thumbnail (longer side at most `size`)",
            response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
def image_thumb(request: Request, sha256: str, size: int = Query(256, ge=16, le=1024),
                principal: Principal = viewer) -> Response:
    sha = check_sha(sha256)
    etag = f'"{sha}-{size}"'
    cache = _thumbs(request)
    hit = cache.get((sha, size))
    if hit is None:
        hit = _encoded(request, sha, max_side=size)
        cache.put((sha, size), hit)
    return _image_response(request, hit[0], hit[1], etag)


@router.get("/images/{sha256}/similar", response_model=SimilarPage, summary="Visually similar images")
def similar_images(request: Request, sha256: str, k: int = Query(12, ge=1, le=100),
                   principal: Principal = viewer) -> SimilarPage:
    from ..catalog.errors import UnknownImageError
    from ..catalog.search import hits_for
    from ..catalog.vectors import VectorIndexError, similar

    sha = check_sha(sha256)
    db = _db(request)
    if not _known(db, sha):
        raise _not_found(sha)
    try:
        scored = similar(db, sha, k=k)
    except (VectorIndexError, UnknownImageError) as err:  # no embeddings at all, or none for this image
        return SimilarPage(items=[], note=printable(err.message))
    hits = hits_for(db, scored)
    return SimilarPage(items=[SimilarItem(sha256=h.sha256, path=printable_path(h.paths[0]) if h.paths else h.sha256,
                                          score=h.score) for h in hits])


# -- models -----------------------------------------------------------------------------------
@router.get("/models", response_model=ModelsPage, summary="Registered models (as `pixsight models list --json`)")
def list_models(principal: Principal = viewer) -> ModelsPage:
    from ..models.registry import describe, get_registry

    return ModelsPage(models=[describe(spec) for spec in get_registry().list()])


# -- stats ------------------------------------------------------------------------------------
@router.get("/stats", response_model=Stats, summary="Dashboard numbers")
def get_stats(request: Request, days: int = Query(90, ge=1, le=3650), principal: Principal = viewer) -> Stats:
    from ..review.queue import stats as review_stats

    db = _db(request)
    review = review_stats(db)
    return Stats(**catalog_stats(db, days=days), reviewed=review["reviewed"], review=review)
