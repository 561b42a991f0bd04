"""Property-based API fuzzing (schemathesis): no route answers a 5xx to any input.

Every operation of the app's OpenAPI schema is called with generated parameters and bodies,
with an admin key, against an app serving a real Analyzer (classify, embed) over a small
catalog. Bounded: 12 examples per operation and generation mode (valid / invalid inputs).
"""

from __future__ import annotations

import io

import pytest

schemathesis = pytest.importorskip("schemathesis")

from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from PIL import Image  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from skimage import data  # noqa: E402

from pixsight.core.config import AnalyzeConfig  # noqa: E402
from pixsight.pipeline.analyzer import Analyzer  # noqa: E402
from tests.unit.serve.kit import auth, make_app  # noqa: E402

pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with Analyzer(AnalyzeConfig(tasks=("classify", "embed"))) as analyzer:
        app, keys = make_app(tmp_path_factory.mktemp("fuzz"), analyzer=analyzer,
                             rate_limit_per_min=1e6, rate_limit_burst=100_000)
        with TestClient(app, raise_server_exceptions=False) as client:  # the lifespan runs once: batcher up
            buf = io.BytesIO()
            Image.fromarray(data.chelsea()).save(buf, "JPEG")
            r = client.post("/v1/analyze", files={"file": ("cat.jpg", buf.getvalue())}, headers=auth(keys["admin"]))
            assert r.status_code == 200, r.text  # one image in the catalog for the read routes
            yield app, keys, client


def _operations(client, headers):
    # from_dict, not from_asgi: schemathesis' ASGI client would run the app's lifespan again,
    # whose shutdown drains the batcher of the app under test
    schema = schemathesis.openapi.from_dict(client.get("/openapi.json", headers=headers).json())
    return [result.ok() for result in schema.get_all_operations()]


def _bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _file(value: object) -> object:
    """One multipart part with bytes content (generated values may be any JSON type)."""
    if isinstance(value, tuple):
        filename, content, *rest = value
        return (str(filename) if filename is not None else None, _bytes(content), *rest)
    return _bytes(value)


def _httpx_kwargs(kwargs: dict) -> dict:
    """schemathesis' requests-style keyword arguments for an httpx client."""
    out = {k: v for k, v in kwargs.items() if k in ("method", "url", "params", "cookies", "files", "data", "json")}
    out["headers"] = dict(kwargs.get("headers") or {})
    if out.get("files"):
        out["files"] = [(name, _file(value)) for name, value in out["files"]]
        out["headers"] = {k: v for k, v in out["headers"].items() if k.lower() != "content-type"}  # httpx: boundary
        if not isinstance(out.get("data"), dict):
            out.pop("data", None)
    else:
        out.pop("files", None)
        if isinstance(out.get("data"), (bytes, str)):
            out["content"] = out.pop("data")
    return out


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_server_errors(served, mode):
    # schemathesis' own pytest plugin does not run under this pytest (9.x), so each operation's
    # strategy is driven by hypothesis here; the check is schemathesis' not_a_server_error.
    app, keys, client = served
    headers = auth(keys["admin"])
    operations = _operations(client, headers)
    assert len(operations) >= 3
    failures: list[str] = []
    for operation in operations:
        strategy = operation.as_strategy(GenerationMode(mode))

        @given(strategy)
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                  phases=[Phase.generate])
        def run(case) -> None:
            # sent through the module's client: schemathesis' own ASGI client would re-run the lifespan
            kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
            response = client.request(**_httpx_kwargs(kwargs))
            response.request.read()  # a streamed multipart request: let the check see its body
            try:
                case.validate_response(response, checks=[not_a_server_error])
            except (Exception, BaseExceptionGroup) as err:  # noqa: BLE001 - collected per operation
                failures.append(f"{operation.method.upper()} {operation.path}: {response.status_code} "
                                f"{response.text[:200]!r} ({type(err).__name__})")

        try:
            run()
        except Unsatisfiable:
            assert mode == "negative"  # no parameter of this operation can be made invalid
    assert not failures, "\n".join(dict.fromkeys(failures))
