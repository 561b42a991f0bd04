"""The faces task on real photos (scikit-image samples) and composites of real faces."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("dlib")
from skimage import data  # noqa: E402

from pixsight.core.config import AnalyzeConfig  # noqa: E402
from pixsight.core.errors import ConfigError, PixsightError  # noqa: E402
from pixsight.core.image import LoadedImage  # noqa: E402
from pixsight.core.types import Faces  # noqa: E402
from pixsight.models.zoo.faces import SPECS  # noqa: E402
from pixsight.tasks.faces import PLANS, FacesStage, calibrate_score, create_stage, nms  # noqa: E402

ASTRONAUT_FACE = np.array([175, 75, 260, 170], dtype=np.float32)  # hand-measured on the 512x512 image
AST_CROP = (135, 35, 300, 210)  # a crop around the astronaut's head (with hair and neck)


def _img(pixels: np.ndarray) -> LoadedImage:
    h, w = pixels.shape[:2]
    return LoadedImage(pixels=pixels, width=w, height=h, format="PNG", sha256="", nbytes=0)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def stage() -> FacesStage:
    s = create_stage(SPECS[0], AnalyzeConfig(), ("faces",))
    yield s
    s.close()


@pytest.fixture(scope="module")
def astronaut_faces(stage: FacesStage) -> Faces:
    out = stage.run([_img(data.astronaut())])[0]
    assert not isinstance(out, Exception), out
    return out["faces"]


def _group_photo() -> tuple[np.ndarray, list[np.ndarray]]:
    """Coffee photo at 1024x768 with the astronaut's head pasted 4 times (sizes, mirror)."""
    bg = Image.fromarray(data.coffee()).resize((1024, 768), Image.Resampling.BILINEAR)
    head = Image.fromarray(data.astronaut()[AST_CROP[1]:AST_CROP[3], AST_CROP[0]:AST_CROP[2]])
    face_in_head = ASTRONAUT_FACE - np.array([AST_CROP[0], AST_CROP[1]] * 2, dtype=np.float32)
    truth = []
    for (x, y), scale, mirror in [((40, 40), 1.0, False), ((420, 60), 1.4, True), ((760, 380), 0.8, False),
                                  ((250, 420), 1.2, True)]:
        h = head.resize((round(head.width * scale), round(head.height * scale)), Image.Resampling.BICUBIC)
        box = face_in_head * scale
        if mirror:
            h = h.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            box = np.array([h.width - box[2], box[1], h.width - box[0], box[3]], dtype=np.float32)
        bg.paste(h, (x, y))
        truth.append(box + np.array([x, y, x, y], dtype=np.float32))
    return np.asarray(bg), truth


def test_astronaut_has_exactly_one_face_around_the_real_face(astronaut_faces: Faces) -> None:
    assert len(astronaut_faces) == 1
    assert _iou(astronaut_faces.boxes[0], ASTRONAUT_FACE) > 0.6
    assert 0.5 < astronaut_faces.scores[0] <= 1.0
    assert astronaut_faces.data["detector"][0].startswith("hog-front")


def test_astronaut_landmarks_lie_inside_the_face(astronaut_faces: Faces) -> None:
    lm = astronaut_faces.landmarks[0]
    x1, y1, x2, y2 = astronaut_faces.boxes[0]
    assert lm.shape == (5, 2)
    assert np.all((lm[:, 0] >= x1) & (lm[:, 0] <= x2) & (lm[:, 1] >= y1) & (lm[:, 1] <= y2))
    # dlib's 5 points: eye corners (0-3) are above the nose tip (4)
    assert lm[:4, 1].max() < lm[4, 1]


def test_embedding_is_128_finite_and_identity_preserving(stage: FacesStage, astronaut_faces: Faces) -> None:
    emb = astronaut_faces.embeddings
    assert emb.shape == (1, 128) and np.all(np.isfinite(emb))
    ast = data.astronaut()
    other = np.asarray(Image.fromarray(ast[:, ::-1]).resize((360, 360), Image.Resampling.BILINEAR))
    again = stage.detect(other)
    assert len(again) == 1
    same = float(np.linalg.norm(again.embeddings[0] - emb[0]))
    assert same < 0.6
    # different people: LFW faces (real photos, upscaled) pasted on a background
    faces = (data.lfw_subset()[:100:10] * 255).astype(np.uint8)  # floats in [0, 1]
    bg = Image.new("RGB", (1000, 200), (128, 128, 128))
    for i, f in enumerate(faces):
        bg.paste(Image.fromarray(f).convert("RGB").resize((90, 90), Image.Resampling.BICUBIC), (5 + i * 99, 50))
    strangers = stage.detect(np.asarray(bg))
    assert len(strangers) >= 3
    dists = np.linalg.norm(strangers.embeddings - emb[0], axis=1)
    assert np.all(dists > same) and np.all(dists > 0.6)


@pytest.mark.parametrize("name", ["coffee", "rocket"])
def test_photos_without_people_give_no_faces(stage: FacesStage, name: str) -> None:
    out = stage.run([_img(getattr(data, name)())])[0]
    assert len(out["faces"]) == 0
    assert out["faces"].embeddings.shape == (0, 128)


def test_grayscale_photo_still_finds_the_face(stage: FacesStage) -> None:
    gray = (np.asarray(Image.fromarray(data.astronaut()).convert("L")))
    faces = stage.detect(gray)
    assert len(faces) == 1 and _iou(faces.boxes[0], ASTRONAUT_FACE) > 0.6


@pytest.mark.parametrize("shape", [(1, 1, 3), (8, 8, 3), (20, 33, 3), (3, 500, 3)])
def test_tiny_images_give_no_faces_and_no_error(stage: FacesStage, shape: tuple[int, int, int]) -> None:
    out = stage.run([_img(np.full(shape, 127, dtype=np.uint8))])[0]
    assert not isinstance(out, Exception) and len(out["faces"]) == 0


def test_group_photo_finds_every_face_with_valid_scores(stage: FacesStage) -> None:
    pixels, truth = _group_photo()
    faces = stage.detect(pixels)
    assert len(faces) == len(truth)
    for box in truth:
        assert max(_iou(box, b) for b in faces.boxes) > 0.5
    assert np.all((faces.scores >= 0) & (faces.scores <= 1))
    assert faces.landmarks.shape == (len(truth), 5, 2) and faces.embeddings.shape == (len(truth), 128)
    # four copies of one person: every pair of embeddings says "same person"
    d = np.linalg.norm(faces.embeddings[:, None] - faces.embeddings[None], axis=2)
    assert d.max() < 0.6


def test_a_bad_image_fails_alone(stage: FacesStage) -> None:
    bad = _img(np.zeros((32, 32, 3), dtype=np.float32))
    out = stage.run([bad, _img(data.astronaut())])
    assert isinstance(out[0], PixsightError) and "uint8" in str(out[0])
    assert len(out[1]["faces"]) == 1


def test_faces_round_trip_through_dict(astronaut_faces: Faces) -> None:
    back = Faces.from_dict(astronaut_faces.to_dict(with_vectors=True))
    np.testing.assert_allclose(back.boxes, astronaut_faces.boxes, atol=0.06)
    np.testing.assert_allclose(back.scores, astronaut_faces.scores, atol=1e-4)
    np.testing.assert_allclose(back.landmarks, astronaut_faces.landmarks, atol=0.06)
    np.testing.assert_allclose(back.embeddings, astronaut_faces.embeddings, atol=1e-5)
    assert back.data["detector"] == astronaut_faces.data["detector"]


def test_config_picks_the_detector_and_rejects_unknown_ones() -> None:
    cfg = AnalyzeConfig.from_mapping({"faces": {"detector": "accurate", "with_embeddings": False}})
    s = create_stage(SPECS[0], cfg, ("faces",))
    assert s.plan == PLANS["accurate"] and s.info.extra["detector"] == "accurate"
    with pytest.raises(ConfigError, match="fast"):
        create_stage(SPECS[0], AnalyzeConfig.from_mapping({"faces": {"detector": "turbo"}}), ("faces",))


def test_calibration_is_monotone_and_bounded() -> None:
    raw = np.linspace(-5, 5, 101)
    for det in ("hog-front", "mmod"):
        unit = calibrate_score(raw, det)
        assert np.all(np.diff(unit) >= 0) and unit.min() >= 0 and unit.max() <= 1
    # a HOG margin at dlib's own threshold (0.0) is below the default conf_threshold: FPs live there
    assert float(calibrate_score(0.0, "hog-right")) < AnalyzeConfig().faces.conf_threshold
    assert float(calibrate_score(0.0, "mmod")) == pytest.approx(0.5)


def test_nms_merges_overlapping_and_nested_boxes() -> None:
    boxes = np.array([[0, 0, 100, 100], [5, 5, 105, 105], [20, 20, 60, 60], [300, 300, 350, 350]], float)
    groups = nms(boxes, np.array([0.9, 0.8, 0.7, 0.6]))
    assert groups == [[0, 1, 2], [3]]


@pytest.mark.slow
def test_accurate_mode_merges_hog_and_mmod_on_one_face() -> None:
    s = FacesStage(SPECS[0], detector="accurate", with_embeddings=False)
    faces = s.detect(data.astronaut())
    assert len(faces) == 1 and _iou(faces.boxes[0], ASTRONAUT_FACE) > 0.5
    assert "mmod" in faces.data["detector"][0] and "hog" in faces.data["detector"][0]
    assert 0.5 < faces.scores[0] <= 1.0


@pytest.mark.slow
def test_68_point_model_gives_68_landmarks() -> None:
    s = FacesStage(SPECS[1], with_embeddings=False)
    faces = s.detect(data.astronaut())
    assert faces.landmarks.shape == (1, 68, 2)
