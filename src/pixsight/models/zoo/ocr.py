"""Registry entries for the ``ocr`` task.

- ``pixsight-ocr`` (default): pixsight's pipeline. Light flattening, PP-OCRv6 detection
  at a bounded size, PP-OCRv6 recognition on the flattened lines with a second reading of
  the raw pixels for doubtful lines, reading order with column detection. Falls back to
  Tesseract (on the flattened page) when rapidocr cannot run.
- ``rapidocr-ppocrv6``: the PP-OCRv6 engine on the raw pixels (no flattening).
- ``tesseract-eng``: Tesseract 5 LSTM on the raw pixels; needs the ``tesseract`` executable.

Metrics are character error rates measured by ``benchmarks/bench_ocr_cer.py`` (see
docs/ocr.md for the full table and how they were measured).

>>> [s.name for s in SPECS]
['pixsight-ocr', 'rapidocr-ppocrv6', 'tesseract-eng']
"""

from __future__ import annotations

from ..spec import ModelSpec, WeightsSource

__all__ = ["SPECS", "RAPIDOCR_FILES"]

_PKG = "rapidocr"
#: The PP-OCRv6 files shipped inside the ``rapidocr`` wheel (never downloaded).
RAPIDOCR_FILES: dict[str, tuple[WeightsSource, ...]] = {
    "det": (WeightsSource(kind="package", location=f"{_PKG}:rapidocr/models/PP-OCRv6_det_small.onnx"),),
    "rec": (WeightsSource(kind="package", location=f"{_PKG}:rapidocr/models/PP-OCRv6_rec_small.onnx"),),
    "cls": (WeightsSource(kind="package", location=f"{_PKG}:rapidocr/models/ch_ppocr_mobile_v2.0_cls_mobile.onnx"),),
}
_RAPID_HINT = "install it with: pip install 'rapidocr>=3.4' (the PP-OCRv6 ONNX files ship inside the wheel)"
_TESS_HINT = "install Tesseract: apt install tesseract-ocr tesseract-ocr-eng && pip install pytesseract"
_ORIGIN_PP = "PaddleOCR PP-OCRv6 small (Baidu), ONNX conversion by RapidAI/RapidOCR 3.10"

SPECS: list[ModelSpec] = [
    ModelSpec(
        name="pixsight-ocr",
        task="ocr",
        backend="rapidocr",
        version="1",
        files=RAPIDOCR_FILES,
        license="Apache-2.0",
        origin=_ORIGIN_PP + "; Tesseract 5 (Apache-2.0) as fallback",
        description="Photos of pages: light flattening + PP-OCRv6 + raw re-read of doubtful lines + reading order",
        # benchmarks/bench_ocr_cer.py --pages 8 (docs/ocr.md): raw rapidocr 0.124 / 0.017,
        # raw tesseract 0.438 / 0.577 on the same images
        metrics={"cer_page_png": 0.003, "cer_synthetic_photos_8": 0.001},
        requires_modules=("rapidocr", "cv2"),
        install_hint=_RAPID_HINT,
        default=True,
        options={"engine": "rapidocr", "flatten": True, "recheck_below": 0.9, "det_max_side": 1280,
                 "fallback": "tesseract"},
    ),
    ModelSpec(
        name="rapidocr-ppocrv6",
        task="ocr",
        backend="rapidocr",
        version="3.10",
        files=RAPIDOCR_FILES,
        license="Apache-2.0",
        origin=_ORIGIN_PP,
        description="PP-OCRv6 small det + rec on the raw pixels",
        requires_modules=("rapidocr", "cv2"),
        install_hint=_RAPID_HINT,
        options={"engine": "rapidocr", "flatten": False, "recheck_below": 0.0, "det_max_side": 1280},
    ),
    ModelSpec(
        name="tesseract-eng",
        task="ocr",
        backend="tesseract",
        version="5",
        license="Apache-2.0",
        origin="Tesseract OCR 5 LSTM, English traineddata (Debian tesseract-ocr-eng)",
        description="Tesseract on the raw pixels (good on clean scans, weak on photos of pages)",
        requires_modules=("pytesseract",),
        requires_executables=("tesseract",),
        install_hint=_TESS_HINT,
        options={"engine": "tesseract", "flatten": False, "lang": "eng"},
    ),
]
