"""Face gallery on real faces: scikit-image's astronaut (Eileen Collins) through the real dlib stage."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("dlib")
from skimage import data  # noqa: E402

import pixsight  # noqa: E402
from pixsight.catalog.store import Catalog  # noqa: E402
from pixsight.core.errors import ConfigError  # noqa: E402
from pixsight.core.types import Faces  # noqa: E402
from pixsight.faces import gallery  # noqa: E402


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def _save(path, pixels: np.ndarray):
    path.write_bytes(_png(pixels))
    return path


@pytest.fixture(scope="module")
def analyzer():
    with pixsight.Analyzer(pixsight.AnalyzeConfig(tasks=("faces",))) as an:
        yield an


@pytest.fixture()
def enrolled(tmp_path, analyzer):
    db = tmp_path / "c.sqlite"
    img = _save(tmp_path / "astronaut.png", data.astronaut())
    res = gallery.enroll(db, "eileen", [img], analyzer=analyzer)
    assert [r.ok for r in res] == [True] and res[0].faces == 1 and res[0].note == ""
    return db


def _variants() -> dict[str, np.ndarray]:
    astro = data.astronaut()
    small = np.asarray(Image.fromarray(astro).resize((307, 307), Image.BILINEAR))
    bright = np.clip(astro.astype(np.int16) + 40, 0, 255).astype(np.uint8)
    return {"flipped": astro[:, ::-1].copy(), "rescaled_0.6": small, "brighter_+40": bright}


def test_enroll_list_remove(enrolled):
    assert [(p.name, p.images) for p in gallery.people(enrolled)] == [("eileen", 1)]
    assert gallery.remove(enrolled, "eileen") == 1
    assert gallery.people(enrolled) == []
    with pytest.raises(gallery.UnknownPersonError, match="faces list"):
        gallery.remove(enrolled, "eileen")


@pytest.mark.parametrize("variant", sorted(_variants()))
def test_same_person_under_changes(enrolled, analyzer, variant):
    analysis = analyzer.analyze_bytes(_png(_variants()[variant]))
    faces = analysis.results["faces"]
    names = gallery.recognise(enrolled, faces, model=analysis.models["faces"])
    areas = (faces.boxes[:, 2] - faces.boxes[:, 0]) * (faces.boxes[:, 3] - faces.boxes[:, 1])
    who, dist = names[int(np.argmax(areas))]  # a changed image may add a tiny spurious detection
    assert who == "eileen", names
    assert 0 <= dist < 0.6


def test_face_free_image_is_not_enrolled(tmp_path, analyzer):
    db = tmp_path / "c.sqlite"
    res = gallery.enroll(db, "nobody", [_save(tmp_path / "coffee.png", data.coffee())], analyzer=analyzer)
    assert not res[0].ok and res[0].note == "no face found"
    assert gallery.people(db) == []


def test_several_faces_keep_largest(tmp_path, analyzer):
    astro = data.astronaut()
    small = np.asarray(Image.fromarray(astro).resize((384, 384), Image.BILINEAR))
    canvas = np.zeros((512, 512 + 384, 3), np.uint8)
    canvas[:, :512] = astro
    canvas[:384, 512:] = small
    res = gallery.enroll(tmp_path / "c.sqlite", "eileen", [_save(tmp_path / "two.png", canvas)], analyzer=analyzer)
    assert res[0].ok and res[0].faces == 2 and "largest" in res[0].note
    assert res[0].box[2] <= 512  # the full-size face, on the left


def test_unknown_beyond_threshold(enrolled):
    far = Faces(boxes=[[0, 0, 10, 10]], scores=[0.9], embeddings=np.full((1, 128), 0.5, np.float32))
    [(who, dist)] = gallery.recognise(enrolled, far)
    assert who is None and dist > 0.6
    # the empty gallery and a model with no enrolled vectors both answer unknown
    assert gallery.recognise(enrolled, far, model="other-model") == [(None, math.inf)]
    with pytest.raises(ConfigError):
        gallery.recognise(enrolled, far, threshold=-1)


def test_find_person_in_catalog(tmp_path, enrolled, analyzer):
    (tmp_path / "photos").mkdir()
    photo = _save(tmp_path / "photos" / "flip.png",
                  data.astronaut()[:, ::-1].copy())
    coffee = _save(tmp_path / "photos" / "coffee.png", data.coffee())
    with Catalog(enrolled) as cat:
        for path in (photo, coffee):
            cat.save(analyzer.analyze_bytes(path.read_bytes(), name=str(path)), path=str(path))
    hits = gallery.find_person(enrolled, "eileen")
    assert [h[1] for h in hits] == [[str(photo)]]
    assert hits[0][2] < 0.6
    assert gallery.find_person(enrolled, "eileen", threshold=1e-6) == []
    with pytest.raises(gallery.UnknownPersonError):
        gallery.find_person(enrolled, "bob")
