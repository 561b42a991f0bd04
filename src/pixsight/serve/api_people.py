"""The face gallery over HTTP: list enrolled people (viewer), enrol from uploads and forget a
person (admin). Routes only parse and format; the work is :mod:`pixsight.faces.gallery`.
"""

from __future__ import annotations

import functools
from typing import Any

from fastapi import APIRouter, Depends, File, Request, UploadFile
from pydantic import BaseModel, Field

from ..core.errors import PixsightError
from ..core.fileio import printable
from .api_catalog import _db
from .auth import ApiError, Principal, require

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["people"])
viewer = Depends(require("viewer"))
admin = Depends(require("admin"))


class PersonRow(BaseModel):
    name: str
    images: int = Field(description="enrolled images")
    faces: int = Field(description="catalogued images where this person is recognised")


class PeoplePage(BaseModel):
    people: list[PersonRow]


class EnrolledRow(BaseModel):
    file: str
    sha256: str | None
    ok: bool
    faces: int
    box: list[float] | None
    note: str


class EnrollResult(BaseModel):
    name: str
    enrolled: int
    results: list[EnrolledRow]


@router.get("/people", response_model=PeoplePage, summary="Enrolled people")
def list_people(request: Request, principal: Principal = viewer) -> PeoplePage:
    from ..faces.gallery import find_person, people

    db = _db(request)
    return PeoplePage(people=[PersonRow(name=p.name, images=p.images, faces=len(find_person(db, p.name)))
                              for p in people(db)])


class _BatcherAnalyzer:
    """What ``gallery.enroll`` needs (``analyze_bytes``), run through the server's batcher so the
    one Analyzer is only ever used by its worker thread. Call from a threadpool thread."""

    def __init__(self, px: Any) -> None:
        self.px = px

    def analyze_bytes(self, data: bytes, *, name: str = "<upload>") -> Any:
        import anyio.from_thread

        from ..core.image import load_image
        from ..core.types import Analysis

        from .decoding import decode_slot

        analyzer = self.px.analyzer
        try:
            with decode_slot(self.px, data, limits=analyzer.config.limits, name=name):
                image = load_image(data, max_side=analyzer.decode_side, limits=analyzer.config.limits, name=name)
        except PixsightError as err:
            return Analysis(path=name, status="error", error=err.to_dict())
        return anyio.from_thread.run(functools.partial(self.px.batcher.submit, image, name=name, data=data))


@router.post("/people/{name}/enroll", response_model=EnrollResult, summary="Enrol faces of a person (admin)")
def enroll_person(request: Request, name: str, files: list[UploadFile] = File(...),
                  principal: Principal = admin) -> EnrollResult:
    from ..core.image import load_image
    from ..faces.gallery import enroll
    from .decoding import decode_slot
    from .storage import store_upload

    px = request.app.state.px
    if px.batcher is None or px.analyzer is None or "faces" not in (px.tasks or ()):
        raise ApiError(409, "Conflict", "this server runs without the faces task; start it with "
                                        "`pixsight serve --tasks ...,faces` to enrol people")
    if len(files) > px.settings.max_batch_files:
        raise ApiError(400, "BadRequest", f"at most {px.settings.max_batch_files} files per request")
    db = _db(request)
    rows: list[EnrolledRow] = []
    stored: list[tuple[str, str]] = []  # (upload file name, stored path)
    for upload in files:
        label = printable(upload.filename or "<upload>")
        data = upload.file.read()
        try:
            with decode_slot(px, data, limits=px.analyzer.config.limits, name=label):
                image = load_image(data, limits=px.analyzer.config.limits, name=label)
                fmt, sha = image.format, image.sha256
                del image  # only the format and hash are kept: free the pixels before the budget
        except PixsightError as err:
            rows.append(EnrolledRow(file=label, sha256=None, ok=False, faces=0, box=None,
                                    note=printable(err.message)))
            continue
        path = store_upload(px.settings.uploads_dir, data, fmt, sha256=sha, name=label)
        stored.append((label, str(path)))
    if stored:
        by_path = dict((p, f) for f, p in stored)
        for result in enroll(db, name, [p for _, p in stored], analyzer=_BatcherAnalyzer(px)):
            rows.append(EnrolledRow(file=by_path.get(result.path, result.path), sha256=result.sha256, ok=result.ok,
                                    faces=result.faces, box=list(result.box) if result.box else None,
                                    note=result.note))
    return EnrollResult(name=name.strip(), enrolled=sum(r.ok for r in rows), results=rows)


@router.delete("/people/{name}", summary="Forget a person (admin)")
def delete_person(request: Request, name: str, principal: Principal = admin) -> dict[str, Any]:
    from ..faces.gallery import UnknownPersonError, remove

    try:
        n = remove(_db(request), name)
    except UnknownPersonError as err:
        raise ApiError(404, "NotFound", printable(err.message)) from None
    return {"removed": name, "images": n}
