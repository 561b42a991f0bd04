"""The two OCR engines behind the ``ocr`` task, wrapped to a small common shape.

- :class:`RapidOcrEngine`: PP-OCRv6 small text detector (DB) + recogniser (CTC) from the
  ``rapidocr`` package, run by ONNX Runtime. Model files are always given explicitly
  (from the package's own ``rapidocr/models`` folder), so rapidocr never downloads.
- :class:`TesseractEngine`: Tesseract 5 LSTM through ``pytesseract``; available only
  when the ``tesseract`` executable is on ``PATH``.

Both work on numpy images and return plain tuples; :mod:`pixsight.tasks.ocr` turns them
into :class:`~pixsight.core.types.TextLines`.

>>> TesseractEngine.available() in (True, False)
True
"""

from __future__ import annotations

import copy
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.errors import ModelUnavailableError

__all__ = ["DetectedLines", "RapidOcrEngine", "TesseractEngine", "crop_line"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectedLines:
    """Text-line quadrilaterals (N, 4, 2) clockwise from top-left, and detector scores (N,)."""

    polygons: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.polygons)


def crop_line(image: np.ndarray, polygon: np.ndarray, *, min_height: int = 0) -> np.ndarray:
    """Cut a (possibly rotated) text line out of ``image`` as an upright rectangle.

    Crops lower than ``min_height`` pixels are enlarged with bicubic interpolation (the
    recogniser's own bilinear resize loses thin strokes of small print).

    >>> crop_line(np.zeros((50, 80, 3), np.uint8), np.float32([[10, 10], [60, 10], [60, 30], [10, 30]])).shape
    (20, 50, 3)
    """
    from rapidocr.utils.process_img import get_rotate_crop_image

    crop = get_rotate_crop_image(image, copy.deepcopy(np.asarray(polygon, dtype=np.float32)))
    h = crop.shape[0]
    if min_height and 0 < h < min_height:
        import cv2

        f = min_height / h
        crop = cv2.resize(crop, (max(1, round(crop.shape[1] * f)), min_height), interpolation=cv2.INTER_CUBIC)
    return crop


class RapidOcrEngine:
    """PP-OCRv6 detection and recognition with explicit model files.

    Args:
        det_path, rec_path: the ONNX files (see ``pixsight.models.zoo.ocr``).
        threads: ONNX Runtime intra-op threads (default: the CPUs this process may use).

    >>> from pixsight.models.weights import package_file
    >>> eng = RapidOcrEngine(package_file("rapidocr", "rapidocr/models/PP-OCRv6_det_small.onnx"),
    ...                      package_file("rapidocr", "rapidocr/models/PP-OCRv6_rec_small.onnx"))
    >>> len(eng.detect(np.full((64, 64, 3), 255, np.uint8), max_side=960))  # a blank image
    0
    """

    def __init__(self, det_path: str | Path, rec_path: str | Path, *, threads: int | None = None,
                 det_thresh: float = 0.3, box_thresh: float = 0.5, unclip_ratio: float = 1.6) -> None:
        try:
            from rapidocr import RapidOCR
        except ImportError as err:
            raise ModelUnavailableError("rapidocr is not installed; install it with: pip install 'pixsight[models]'") from err
        from ..models.runtime import default_threads

        n = threads or default_threads()
        models_dir = Path(det_path).parent
        params = {
            "Global.log_level": "error",
            "Global.model_root_dir": str(models_dir),
            "Global.use_cls": False,
            "Det.model_path": str(det_path),
            "Det.thresh": det_thresh,
            "Det.box_thresh": box_thresh,
            "Det.unclip_ratio": unclip_ratio,
            "Rec.model_path": str(rec_path),
            "EngineConfig.onnxruntime.intra_op_num_threads": n,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
        try:
            self._rapid = RapidOCR(params=params)
            self._det = self._rapid._load_det_model()
            self._rec = self._rapid._load_rec_model()
        except Exception as err:  # rapidocr raises many types for a bad/missing model
            raise ModelUnavailableError(f"cannot load PP-OCRv6 models ({det_path}, {rec_path}): {err}") from err
        # rapidocr logs every call at INFO; keep the user's log readable
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)

    def detect(self, rgb: np.ndarray, *, max_side: int = 960) -> DetectedLines:
        """Find text lines; the detector sees the image shrunk so its longer side <= ``max_side``."""
        self._det.limit_type = "max"
        self._det.limit_side_len = int(max_side)
        out = self._det(np.ascontiguousarray(rgb))
        if out.boxes is None or len(out.boxes) == 0:
            return DetectedLines(np.zeros((0, 4, 2), np.float32), np.zeros(0, np.float32))
        return DetectedLines(np.asarray(out.boxes, np.float32), np.asarray(out.scores, np.float32))

    def recognize(self, crops: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """Read each line crop (RGB uint8); returns ``(text, score)`` per crop, in order."""
        from rapidocr.ch_ppocr_rec import TextRecInput

        crops = [c if c.ndim == 3 else np.repeat(c[..., None], 3, axis=2) for c in crops]
        if not crops:
            return []
        out = self._rec(TextRecInput(img=list(crops)))
        return [(str(t), float(s)) for t, s in zip(out.txts, out.scores)]


class TesseractEngine:
    """Tesseract through pytesseract, for whole pages or single lines.

    Scores are Tesseract's word confidences (0-100) averaged per line and divided by 100.
    """

    def __init__(self, *, lang: str = "eng") -> None:
        if not self.available():
            raise ModelUnavailableError(
                "Tesseract is not available: install the executable (Debian/Ubuntu: "
                "apt install tesseract-ocr tesseract-ocr-eng) and pytesseract (pip install pytesseract)"
            )
        import pytesseract

        self._tess = pytesseract
        self.lang = lang

    @staticmethod
    def available() -> bool:
        """True when both the ``tesseract`` executable and ``pytesseract`` are installed."""
        if shutil.which("tesseract") is None:
            return False
        try:
            import pytesseract  # noqa: F401
        except ImportError:
            return False
        return True

    def read_page(self, gray: np.ndarray) -> list[tuple[str, float, tuple[float, float, float, float]]]:
        """OCR a whole page (layout analysis by Tesseract, ``--psm 3``).

        Returns ``(text, score, (x0, y0, x1, y1))`` per line, in Tesseract's order.
        """
        data = self._tess.image_to_data(gray, lang=self.lang, config="--psm 3",
                                        output_type=self._tess.Output.DICT)
        lines: dict[tuple[int, int, int], list[int]] = {}
        for i, word in enumerate(data["text"]):
            if str(word).strip():
                lines.setdefault((data["block_num"][i], data["par_num"][i], data["line_num"][i]), []).append(i)
        out = []
        for idx in lines.values():
            words = [str(data["text"][i]).strip() for i in idx]
            confs = [max(0.0, float(data["conf"][i])) for i in idx]
            x0 = min(data["left"][i] for i in idx)
            y0 = min(data["top"][i] for i in idx)
            x1 = max(data["left"][i] + data["width"][i] for i in idx)
            y1 = max(data["top"][i] + data["height"][i] for i in idx)
            out.append((" ".join(words), float(np.mean(confs)) / 100.0, (float(x0), float(y0), float(x1), float(y1))))
        return out
