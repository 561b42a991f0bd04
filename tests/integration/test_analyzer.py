"""The analyzer with every default model on real images (scikit-image photos, a rendered page)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from pixsight.catalog.store import Catalog
from pixsight.core.config import AnalyzeConfig, ReviewThresholds
from pixsight.core.types import Analysis
from pixsight.pipeline.analyzer import Analyzer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("examples")
    subprocess.run([sys.executable, str(ROOT / "examples" / "make_examples.py"), str(out)], check=True,
                   capture_output=True)
    # a non-square crop of the astronaut, stored sideways with an EXIF "rotate 90 CW" tag
    crop = data.astronaut()[:400, :]
    Image.fromarray(crop).save(out / "astronaut_crop.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(crop).transpose(Image.Transpose.ROTATE_90).save(out / "astronaut_crop_exif6.jpg", quality=95,
                                                                    exif=exif.tobytes())
    return out


@pytest.fixture(scope="module")
def results(examples: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Analysis]:
    found: dict[str, Analysis] = {}
    db = tmp_path_factory.mktemp("db") / "c.sqlite"
    with Analyzer(AnalyzeConfig()) as analyzer, Catalog(db) as catalog:
        assert set(analyzer.tasks) == {"classify", "ocr", "faces", "embed"}
        summary = analyzer.run(sorted(str(p) for p in examples.iterdir() if p.suffix in (".jpg", ".png")),
                               catalog=catalog, on_result=lambda a, _img: found.__setitem__(Path(a.path).name, a))
    assert summary.failed == 0
    return found


@pytest.mark.slow
def test_default_pipeline_answers_on_real_images(results: dict[str, Analysis]) -> None:
    cat = results["cat.jpg"]
    assert "cat" in cat.results["classify"].top_label
    assert len(cat.results["faces"]) == 0
    assert cat.results["embed"].dim == 1280
    assert abs(float(np.linalg.norm(cat.results["embed"].vector)) - 1) < 1e-3
    assert "espresso" in results["coffee.jpg"].results["classify"].labels[:2] or \
        "cup" in results["coffee.jpg"].results["classify"].labels[:2]
    astro = results["astronaut.jpg"].results["faces"]
    assert len(astro) >= 1
    best = int(np.argmax(astro.scores))
    x1, y1, x2, y2 = astro.boxes[best]
    assert 150 < (x1 + x2) / 2 < 260 and 60 < (y1 + y2) / 2 < 160  # her face, not the flag
    assert astro.landmarks.shape[1:] == (5, 2) and astro.embeddings.shape[1] == 128
    doc = results["document_photo.jpg"].results["ocr"].text
    assert "forty-two sample plots" in doc and "Soil moisture" in doc
    page = results["page_photo.png"].results["ocr"].text
    assert "Region-based segmentation" in page
    for name, a in results.items():
        assert a.status == "ok" and not a.task_errors, (name, a.task_errors)
        for result in a.results.values():
            boxes = getattr(result, "boxes", None)
            if boxes is not None and len(boxes):
                assert boxes[:, [0, 2]].min() >= -2 and boxes[:, [0, 2]].max() <= a.width + 2, name
                assert boxes[:, [1, 3]].min() >= -2 and boxes[:, [1, 3]].max() <= a.height + 2, name


@pytest.mark.slow
def test_boxes_land_on_the_exif_oriented_image(results: dict[str, Analysis]) -> None:
    plain, rotated = results["astronaut_crop.jpg"], results["astronaut_crop_exif6.jpg"]
    assert (rotated.width, rotated.height) == (plain.width, plain.height) == (512, 400)
    a, b = plain.results["faces"], rotated.results["faces"]
    assert len(a) >= 1 and len(b) >= 1
    ia, ib = int(np.argmax(a.scores)), int(np.argmax(b.scores))
    assert np.abs(a.boxes[ia] - b.boxes[ib]).max() < 12


@pytest.mark.slow
def test_faces_run_in_their_own_process_when_two_cores() -> None:
    from pixsight.models.runtime import default_threads

    with Analyzer(AnalyzeConfig(tasks=("faces",))) as analyzer:
        kinds = {type(s).__name__ for s in analyzer.stages}
        analysis = analyzer.analyze_bytes(_jpeg(data.astronaut()), name="astro.jpg")
    assert kinds == ({"ProcessStage"} if default_threads() > 1 else {"FacesStage"})
    assert analysis.status == "ok" and len(analysis.results["faces"]) >= 1


def _jpeg(pixels: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def test_review_thresholds_are_configuration() -> None:
    strict = AnalyzeConfig(tasks=("classify",), review=ReviewThresholds(classify_conf_threshold=0.99))
    with Analyzer(strict) as analyzer:
        a = analyzer.analyze_bytes(_jpeg(data.chelsea()), name="cat.jpg")
    assert a.needs_review and a.review_reasons[0].startswith("classify:")
    label = a.results["classify"].top_label
    lenient = AnalyzeConfig(tasks=("classify",),
                            review=ReviewThresholds(classify_conf_threshold=0.99, classify_per_class={label: 0.01}))
    with Analyzer(lenient) as analyzer:
        b = analyzer.analyze_bytes(_jpeg(data.chelsea()), name="cat.jpg")
    assert not b.needs_review and b.review_reasons == []


def test_a_stage_failing_on_one_image_keeps_the_rest(tmp_path: Path) -> None:
    files = []
    for name, pixels in (("a.jpg", data.chelsea()), ("b.jpg", data.coffee()), ("c.jpg", data.rocket())):
        (tmp_path / name).write_bytes(_jpeg(pixels))
        files.append(str(tmp_path / name))
    seen: dict[str, Analysis] = {}
    with Analyzer(AnalyzeConfig(tasks=("classify",), batch_size=3)) as analyzer:
        stage = analyzer.stages[0]
        real_run = stage.run

        def flaky(images):  # the real model, but the second image raises inside the stage
            out = real_run(images)
            return [RuntimeError("boom") if img.path.endswith("b.jpg") else o for img, o in zip(images, out)]

        stage.run = flaky  # type: ignore[method-assign]
        summary = analyzer.run(files, on_result=lambda a, _i: seen.__setitem__(Path(a.path).name, a))
    assert summary.failed == 0 and summary.images == 3
    assert seen["b.jpg"].task_errors["classify"]["type"] == "RuntimeError"
    assert seen["b.jpg"].needs_review and "classify" not in seen["b.jpg"].results
    assert "classify" in seen["a.jpg"].results and "classify" in seen["c.jpg"].results
