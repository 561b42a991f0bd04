"""classify + embed with EfficientNet-Lite0 on ONNX Runtime, on real photos.

The ONNX export is made once per run in the shared PIXSIGHT_HOME (tests/conftest.py).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from pixsight.core.config import AnalyzeConfig
from pixsight.core.errors import PixsightError
from pixsight.core.image import LoadedImage, load_image
from pixsight.core.types import Classification, Embedding
from pixsight.models.zoo.imagenet import SPECS
from pixsight.tasks.imagenet import ImageNetStage, create_stage

pytestmark = pytest.mark.slow  # the first test pays for the one-off ONNX export

CATS = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}
COFFEE = {"espresso", "cup", "coffee mug"}
ROCKET = {"missile", "projectile", "space shuttle"}


def _jpeg(rgb: np.ndarray, *, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="module")
def stage(pixsight_home: Path) -> ImageNetStage:
    st = create_stage(SPECS[0], AnalyzeConfig(), ("classify", "embed"))
    yield st
    st.close()


@pytest.fixture(scope="module")
def photos(stage: ImageNetStage) -> dict[str, LoadedImage]:
    """skimage photos through the real decode path (JPEG, reduced decode at info.max_side)."""
    rgb = {"chelsea": data.chelsea(), "coffee": data.coffee(), "rocket": data.rocket(),
           "mirror": np.ascontiguousarray(data.chelsea()[:, ::-1])}
    return {k: load_image(_jpeg(v), max_side=stage.info.max_side, name=f"{k}.jpg") for k, v in rgb.items()}


def _one(stage: ImageNetStage, image: LoadedImage) -> dict:
    (out,) = stage.run([image])
    assert not isinstance(out, Exception), out
    return out


@pytest.mark.parametrize("name, wanted, min_score", [
    ("chelsea", CATS, 0.3),
    ("coffee", COFFEE, 0.6),
    ("rocket", ROCKET, 0.3),
])
def test_photos_get_the_right_class(stage, photos, name, wanted, min_score) -> None:
    cls = _one(stage, photos[name])["classify"]
    assert isinstance(cls, Classification) and len(cls) == 5
    assert cls.top_label in wanted, cls.to_dict()
    assert cls.top_score >= min_score
    assert list(cls.scores) == sorted(cls.scores, reverse=True)


def test_cat_probability_is_concentrated_on_cats(stage, photos) -> None:
    cls = _one(stage, photos["chelsea"])["classify"]
    cat_mass = sum(float(s) for lab, s in zip(cls.labels, cls.scores) if lab in CATS)
    assert cat_mass > 0.8


def test_embeddings_are_unit_vectors_named_by_their_model(stage, photos) -> None:
    emb = _one(stage, photos["coffee"])["embed"]
    assert isinstance(emb, Embedding) and emb.dim == 1280
    assert np.linalg.norm(emb.vector) == pytest.approx(1.0, abs=1e-4)
    assert emb.model == "efficientnet-lite0-embed@1"
    assert stage.info.models == {"classify": "efficientnet-lite0@1", "embed": "efficientnet-lite0-embed@1"}


def test_mirror_image_is_nearer_than_another_photo(stage, photos) -> None:
    out = stage.run([photos["chelsea"], photos["mirror"], photos["rocket"]])
    cat, mirror, rocket = (o["embed"].vector for o in out)
    assert cat @ mirror > 0.9
    assert cat @ mirror > cat @ rocket + 0.3


def test_batch_results_equal_single_results(stage, photos) -> None:
    images = list(photos.values())
    batch = stage.run(images)
    for image, together in zip(images, batch):
        alone = _one(stage, image)
        assert together["classify"].labels == alone["classify"].labels
        np.testing.assert_allclose(together["classify"].scores, alone["classify"].scores, atol=1e-5)
        np.testing.assert_allclose(together["embed"].vector, alone["embed"].vector, atol=1e-5)


def test_batches_larger_than_the_stage_batch_size_keep_order(photos, pixsight_home) -> None:
    with ImageNetStage(SPECS[0], top_k=1, tasks=("classify",), batch_size=2) as small:
        order = ["coffee", "chelsea", "rocket", "coffee", "chelsea"]
        out = small.run([photos[k] for k in order])
    assert [o["classify"].top_label in {"coffee": COFFEE, "chelsea": CATS, "rocket": ROCKET}[k]
            for o, k in zip(out, order)] == [True] * 5
    assert all(set(o) == {"classify"} and len(o["classify"]) == 1 for o in out)


def test_grayscale_png_is_classified(stage, tmp_path) -> None:
    path = tmp_path / "camera.png"
    Image.fromarray(data.camera()).save(path)  # mode L
    image = load_image(path, max_side=stage.info.max_side)
    cls = _one(stage, image)["classify"]
    assert cls.top_label == "tripod"  # the cameraman stands behind one


@pytest.mark.parametrize("shape", [(1, 1, 3), (3, 5, 3), (7, 400, 3)])
def test_tiny_and_extreme_images_work(stage, shape) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    image = LoadedImage(pixels=pixels, width=shape[1], height=shape[0], format="PNG", sha256="x", nbytes=1)
    out = _one(stage, image)
    assert len(out["classify"]) == 5 and np.isfinite(out["embed"].vector).all()


def test_a_bad_image_does_not_fail_the_batch(stage, photos) -> None:
    bad = LoadedImage(pixels=np.zeros((10, 10), np.float32), width=10, height=10, format="PNG",
                      sha256="x", nbytes=1, path="bad.png")
    out = stage.run([photos["coffee"], bad, photos["chelsea"]])
    assert isinstance(out[1], PixsightError) and "bad.png" in str(out[1])
    assert out[0]["classify"].top_label in COFFEE and out[2]["classify"].top_label in CATS


def test_big_photo_decoded_small_still_classifies(stage, tmp_path) -> None:
    big = np.asarray(Image.fromarray(data.chelsea()).resize((1600, 1064), Image.Resampling.BICUBIC))
    path = tmp_path / "big.jpg"
    path.write_bytes(_jpeg(big))
    image = load_image(path, max_side=stage.info.max_side)
    assert max(image.pixels.shape[:2]) <= 1.25 * stage.info.max_side
    assert (image.width, image.height) == (1600, 1064)
    assert _one(stage, image)["classify"].top_label in CATS


def test_classify_only_stage_returns_no_embedding(photos, pixsight_home) -> None:
    cfg = AnalyzeConfig().replace(classify=AnalyzeConfig().classify.__class__(top_k=3))
    with create_stage(SPECS[0], cfg, ("classify",)) as st:
        out = _one(st, photos["chelsea"])
    assert set(out) == {"classify"} and len(out["classify"]) == 3
