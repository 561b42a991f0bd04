"""Known faces through the HTTP API, with the real dlib faces model: an admin enrols a person
from an upload, a later upload of the same person (flipped and rescaled) is named in the
analyze answer, the image page and the person filter find it, and a viewer cannot enrol."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from skimage import data

from pixsight.core.config import AnalyzeConfig
from pixsight.pipeline.analyzer import Analyzer
from tests.unit.serve.kit import auth, make_app

pytestmark = pytest.mark.slow


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def analyzer():
    with Analyzer(AnalyzeConfig(tasks=("faces", "embed"))) as a:
        yield a


def test_enrol_over_http_then_uploads_of_that_person_are_named(tmp_path, analyzer):
    app, keys = make_app(tmp_path, analyzer=analyzer, tasks=("faces", "embed"))
    astronaut = data.astronaut()
    probe = np.asarray(Image.fromarray(astronaut[:, ::-1]).resize((400, 400)))  # flipped, smaller
    with TestClient(app) as client:
        files = [("files", ("eileen.png", _png(astronaut), "image/png"))]
        assert client.post("/v1/people/eileen/enroll", files=files, headers=auth(keys["viewer"])).status_code == 403
        r = client.post("/v1/people/eileen/enroll", files=files, headers=auth(keys["admin"]))
        assert r.status_code == 200, r.text
        assert r.json()["enrolled"] == 1 and r.json()["results"][0]["ok"]

        r = client.post("/v1/analyze", files={"file": ("probe.png", _png(probe))}, headers=auth(keys["viewer"]))
        assert r.status_code == 200, r.text
        faces = r.json()["faces"]["faces"]
        assert [f["person"] for f in faces] == ["eileen"]
        assert 0 <= faces[0]["person_distance"] < 0.6
        sha = r.json()["sha256"]

        r = client.post("/v1/analyze", files={"file": ("coffee.png", _png(data.coffee()))},
                        headers=auth(keys["viewer"]))
        assert r.status_code == 200 and all(f["person"] == "unknown" for f in r.json()["faces"]["faces"])

        detail = client.get(f"/v1/images/{sha}", headers=auth(keys["viewer"])).json()
        assert detail["people"] == ["eileen"]
        listed = client.get("/v1/images?person=eileen", headers=auth(keys["viewer"])).json()["items"]
        assert sha in {item["sha256"] for item in listed}
        assert all("eileen" in item["people"] for item in listed)
        people = client.get("/v1/people", headers=auth(keys["viewer"])).json()["people"]
        assert [p["name"] for p in people] == ["eileen"]
        assert client.delete("/v1/people/eileen", headers=auth(keys["admin"])).status_code == 200
        r = client.post("/v1/analyze", files={"file": ("probe2.png", _png(probe[:, ::-1]))},
                        headers=auth(keys["viewer"]))
        assert "person" not in r.json()["faces"]["faces"][0]  # no gallery left: nothing to name against
