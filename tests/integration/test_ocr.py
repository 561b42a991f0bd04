"""The ``ocr`` task on real and synthetic page photos (real PP-OCRv6 models, CPU, offline)."""

from __future__ import annotations

import dataclasses
import io
import logging
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from pixsight.core.config import AnalyzeConfig, OcrOptions
from pixsight.core.errors import ConfigError, ModelUnavailableError
from pixsight.core.image import load_image
from pixsight.core.types import TextLines
from pixsight.data.documents import photograph_page, render_page, sample_text
from pixsight.models.zoo.ocr import SPECS
from pixsight.tasks import ocr as ocr_mod
from pixsight.tasks.ocr import OcrStage, create_stage
from pixsight.tasks.ocr_engines import TesseractEngine
from pixsight.tasks.ocr_layout import reading_order

GT_PAGE = Path(__file__).resolve().parents[1] / "data" / "ocr" / "page_gt.txt"
SPEC = {s.name: s for s in SPECS}


def cer(truth: str, text: str) -> float:
    import jiwer

    return float(jiwer.cer(" ".join(truth.split()), " ".join(text.split()) or " "))


@pytest.fixture(scope="module")
def stage() -> OcrStage:
    st = create_stage(SPEC["pixsight-ocr"], AnalyzeConfig(), ("ocr",))
    yield st
    st.close()


@pytest.fixture(scope="module")
def page_result(stage: OcrStage) -> TextLines:
    buf = io.BytesIO()
    Image.fromarray(data.page()).save(buf, "PNG")
    return stage.run([load_image(buf.getvalue(), name="page.png")])[0]["ocr"]


def test_page_png_is_read_almost_exactly(page_result: TextLines) -> None:
    # measured 0.003 (">>>" read as ">>"); raw RapidOCR 0.124, raw Tesseract 0.438
    assert cer(GT_PAGE.read_text(), page_result.text) < 0.03
    assert page_result.texts[0] == "Region-based segmentation"
    assert page_result.model == page_result.engine == "rapidocr-ppocrv6"


@pytest.mark.slow
def test_page_png_beats_both_raw_engines(page_result: TextLines) -> None:
    from rapidocr import RapidOCR

    from pixsight.models.weights import resolve_weights

    truth = GT_PAGE.read_text()
    spec = SPEC["pixsight-ocr"]
    raw = RapidOCR(params={"Det.model_path": str(resolve_weights(spec, "det")),
                           "Rec.model_path": str(resolve_weights(spec, "rec")),
                           "Cls.model_path": str(resolve_weights(spec, "cls")),
                           "Global.log_level": "error"})
    rapid_cer = cer(truth, "\n".join(raw(data.page()).txts or ()))
    ours = cer(truth, page_result.text)
    assert ours < 0.5 * rapid_cer
    if TesseractEngine.available():
        import pytesseract

        assert ours < 0.5 * cer(truth, pytesseract.image_to_string(data.page()))


def test_page_lines_have_scores_boxes_and_polygons_inside_the_image(page_result: TextLines) -> None:
    h, w = data.page().shape
    assert len(page_result) == 7
    assert np.all((page_result.scores >= 0.5) & (page_result.scores <= 1))
    b = page_result.boxes
    assert np.all(b[:, 0] >= 0) and np.all(b[:, 1] >= 0) and np.all(b[:, 2] <= w) and np.all(b[:, 3] <= h)
    assert np.all(b[:, 2] > b[:, 0]) and np.all(b[:, 3] > b[:, 1])
    assert page_result.polygons.shape == (7, 4, 2)
    assert np.all(np.diff((b[:, 1] + b[:, 3]) / 2) > 0), "lines must come top to bottom"


def test_textlines_round_trip(page_result: TextLines) -> None:
    back = TextLines.from_dict(page_result.to_dict())
    assert back.texts == page_result.texts and back.text == page_result.text
    assert back.model == page_result.model
    np.testing.assert_allclose(back.boxes, page_result.boxes, atol=0.06)
    np.testing.assert_allclose(back.polygons, page_result.polygons, atol=0.06)
    np.testing.assert_allclose(back.scores, page_result.scores, atol=1e-4)


@pytest.mark.slow
def test_photographed_page_with_shadow_and_tilt(stage: OcrStage) -> None:
    text = sample_text(103, n_words=110)
    page = render_page(text, width=1200, font_size=20, seed=3)
    photo = photograph_page(page, seed=3, lighting="mixed", strength=0.75, blur=1.05, noise=5, jpeg_quality=70)
    result = stage.read(photo)
    assert cer(text, result.text) < 0.03  # measured 0.002; raw RapidOCR 0.073
    h, w = photo.shape[:2]
    assert np.all(result.boxes >= 0) and np.all(result.boxes[:, [0, 2]] <= w) and np.all(result.boxes[:, [1, 3]] <= h)


@pytest.mark.slow
def test_two_columns_under_a_title_are_read_column_by_column(stage: OcrStage) -> None:
    text = sample_text(7, n_words=90, paragraph_every=0)
    page = render_page(text, width=1100, font_size=22, columns=2, title="Quarterly Report", seed=7)
    result = stage.read(page)
    assert result.text.startswith("Quarterly Report")
    assert cer("Quarterly Report " + text, result.text) < 0.03


def test_reading_order_of_known_layout() -> None:
    def quad(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
        return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]

    title = [quad(0, 0, 900, 30)]
    left = [quad(0, 60 + 40 * i, 400, 85 + 40 * i) for i in range(4)]
    right = [quad(500, 60 + 40 * i, 900, 85 + 40 * i) for i in range(4)]
    footer = [quad(0, 300, 900, 325)]
    polys = np.float32(right + footer + left + title)  # shuffled on purpose
    rows = reading_order(polys)
    flat = [i for row in rows for i in row]
    assert flat == [9, 5, 6, 7, 8, 0, 1, 2, 3, 4]
    # a single column where one line is split into two boxes: read left to right
    split = np.float32([quad(300, 0, 600, 20), quad(0, 2, 280, 22), quad(0, 40, 600, 60)])
    assert reading_order(split) == [[1, 0], [2]]


def test_photo_without_text_gives_no_lines_quickly(stage: OcrStage) -> None:
    for name in ("chelsea", "coffee", "rocket"):
        t0 = time.perf_counter()
        result = stage.read(getattr(data, name)())
        elapsed = time.perf_counter() - t0
        assert len(result) == 0, f"{name}: {result.texts}"
        assert result.text == ""
        assert elapsed < 3.0, f"{name} took {elapsed:.2f}s"  # ~0.1-0.3 s on an idle 2-core box


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (30, 400), (12, 3000)])
def test_tiny_and_thin_images_do_not_fail(stage: OcrStage, shape: tuple[int, int]) -> None:
    out = stage.run([load_image(_png(np.full(shape, 255, np.uint8)))])
    assert isinstance(out[0]["ocr"], TextLines) and len(out[0]["ocr"]) == 0


def test_grey_and_rgba_inputs_read_the_same_word(stage: OcrStage) -> None:
    page = render_page("Invoice", width=240, font_size=30, margin=12)
    grey = page[..., 0]
    rgba = np.dstack([page, np.full(page.shape[:2], 255, np.uint8)])
    for pixels in (grey, rgba, page):
        result = stage.read(pixels)
        assert result.texts == ["Invoice"], result.texts


def test_unknown_engine_is_a_config_error() -> None:
    cfg = AnalyzeConfig(ocr=OcrOptions(engine="paddle"))
    with pytest.raises(ConfigError, match="ocr.engine"):
        create_stage(SPEC["pixsight-ocr"], cfg, ("ocr",))


def test_falls_back_to_rapidocr_when_tesseract_is_missing(monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(TesseractEngine, "available", staticmethod(lambda: False))
    cfg = AnalyzeConfig(ocr=OcrOptions(engine="tesseract"))
    with caplog.at_level(logging.WARNING, logger="pixsight.tasks.ocr"):
        st = create_stage(SPEC["pixsight-ocr"], cfg, ("ocr",))
    assert st.settings.engine == "rapidocr"
    assert "tesseract" in caplog.text.lower()
    st2 = create_stage(SPEC["tesseract-eng"], AnalyzeConfig(), ("ocr",))
    assert st2.settings.engine == "rapidocr" and st2.read(data.page()).texts[0] == "Region-based segmentation"


def test_no_engine_at_all_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TesseractEngine, "available", staticmethod(lambda: False))

    def broken(spec):  # rapidocr missing too
        raise ModelUnavailableError("rapidocr is not installed; install it with: pip install rapidocr")

    monkeypatch.setattr(ocr_mod, "_load_rapid", broken)
    with pytest.raises(ModelUnavailableError, match="pip install"):
        create_stage(SPEC["pixsight-ocr"], AnalyzeConfig(), ("ocr",))


@pytest.mark.skipif(not TesseractEngine.available(), reason="tesseract executable not installed")
def test_tesseract_backend_reads_the_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ocr_mod, "_load_rapid", lambda spec: (_ for _ in ()).throw(ModelUnavailableError("no rapidocr")))
    st = create_stage(SPEC["pixsight-ocr"], AnalyzeConfig(), ("ocr",))
    assert st.settings.engine == "tesseract"
    result = st.read(data.page())
    assert result.model == "tesseract-eng"
    assert cer(GT_PAGE.read_text(), result.text) < 0.1  # flattened: 0.017; raw Tesseract 0.438


def test_conf_threshold_drops_lines(page_result: TextLines) -> None:
    cfg = dataclasses.replace(AnalyzeConfig(), ocr=OcrOptions(conf_threshold=0.999))
    strict = create_stage(SPEC["pixsight-ocr"], cfg, ("ocr",)).read(data.page())
    assert len(strict) < len(page_result)
    assert np.all(strict.scores >= 0.999)


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()
