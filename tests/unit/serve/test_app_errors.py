"""HTTP error mapping: one ``isinstance`` table, every "not found" is 404, one body shape."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import pixsight
from pixsight.core.errors import (ConfigError, ImageTooLargeError, NotFoundError, PixsightError,
                                  UnknownModelError, UnsupportedFormatError)
from pixsight.serve.app import pixsight_error_status
from pixsight.serve.batcher import DrainingError, QueueFullError
from tests.unit.serve.kit import make_app

SRC = Path(pixsight.__file__).parent


def _not_found_classes_in_source() -> list[tuple[str, str]]:
    """``(module, class)`` for every class in src/ whose name says "unknown X" or "X not found"."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error") and (
                    node.name.startswith("Unknown") or "NotFound" in node.name):
                module = ".".join(("pixsight", *path.relative_to(SRC).with_suffix("").parts))
                found.append((module.removesuffix(".__init__"), node.name))
    return found


NOT_FOUND_CLASSES = _not_found_classes_in_source()


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def _instance(cls: type[PixsightError]) -> PixsightError:
    if issubclass(cls, ImageTooLargeError):
        return cls("too big", path="x.png", limit=1, actual=2)
    return cls(f"the {cls.__name__} message", path="where")


def test_the_source_scan_finds_the_known_not_found_errors():
    names = {name for _, name in NOT_FOUND_CLASSES}
    assert {"NotFoundError", "UnknownModelError", "UnknownDatasetError", "UnknownPersonError"} <= names


@pytest.mark.parametrize(("module", "name"), NOT_FOUND_CLASSES, ids=[f"{m}.{n}" for m, n in NOT_FOUND_CLASSES])
def test_every_not_found_error_derives_from_not_found_error(module, name):
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, NotFoundError), f"{module}.{name} must derive from pixsight.core.errors.NotFoundError"


@pytest.mark.parametrize(("error", "status"), [
    (UnsupportedFormatError("EPS is refused"), 415),
    (ImageTooLargeError("too many pixels", limit=1, actual=2), 413),
    (UnknownModelError("no such model"), 404),
    (QueueFullError("queue full"), 429),
    (DrainingError("draining"), 503),
    (ConfigError("bad key"), 400),
    (PixsightError("anything else"), 400),
])
def test_status_by_class(error, status):
    assert pixsight_error_status(error) == status


def test_a_subclass_of_a_mapped_error_gets_its_status():
    class _Overloaded(QueueFullError):
        pass

    class _Gone(NotFoundError):
        pass

    assert pixsight_error_status(_Overloaded("x")) == 429
    assert pixsight_error_status(_Gone("x")) == 404


def test_every_not_found_subclass_is_404_with_the_error_body(tmp_path):
    for module in {m for m, _ in NOT_FOUND_CLASSES}:
        importlib.import_module(module)  # registers the subclasses
    classes = [NotFoundError, *_subclasses(NotFoundError)]
    assert len(classes) >= 4
    app, keys = make_app(tmp_path)
    raised: dict[str, type[PixsightError]] = {}

    @app.get("/v1/test-raise/{name}")
    async def raise_it(name: str) -> None:
        raise _instance(raised[name])

    with TestClient(app, raise_server_exceptions=False) as client:
        for cls in classes:
            raised[cls.__name__] = cls
            r = client.get(f"/v1/test-raise/{cls.__name__}")
            assert r.status_code == 404, (cls, r.status_code, r.text)
            assert r.json() == {"error": {"type": cls.__name__, "message": f"where: the {cls.__name__} message"}}


def test_overload_and_drain_bodies_and_retry_after(tmp_path):
    app, keys = make_app(tmp_path)

    @app.get("/v1/test-full")
    async def full() -> None:
        raise QueueFullError("the analysis queue is full")

    @app.get("/v1/test-draining")
    async def draining() -> None:
        raise DrainingError("the server is shutting down")

    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/v1/test-full")
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert r.json() == {"error": {"type": "Overloaded", "message": "the analysis queue is full"}}
        r = client.get("/v1/test-draining")
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json() == {"error": {"type": "DrainingError", "message": "the server is shutting down"}}
