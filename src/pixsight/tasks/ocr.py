"""The ``ocr`` task: text lines with score, box and polygon, and the full text in reading order.

Design (measured in docs/ocr.md): photos of pages with uneven light are the common case.

1. The image is turned grey and its lighting flattened (:func:`flatten_illumination`);
   tiny images are enlarged so that letters are big enough for the detector.
2. PP-OCRv6 detects lines on the flattened page at a bounded size (``det_max_side``);
   when it finds nothing (most ordinary photos) the image is done: no recognition runs.
3. PP-OCRv6 reads each line from the flattened page; a line read with a score below
   ``recheck_below`` is read again from the raw pixels and the better reading is kept.
4. Lines scoring below ``config.ocr.conf_threshold`` are dropped; the rest are put in
   reading order (deskew, column gutters, rows; see :mod:`pixsight.tasks.ocr_layout`).

Tesseract is the second engine: ``engine="tesseract"`` uses it (still on the flattened
page), and ``engine="auto"`` falls back to it when rapidocr cannot run.

>>> from pixsight.core.config import AnalyzeConfig
>>> from pixsight.core.image import load_image
>>> from pixsight.models.zoo.ocr import SPECS
>>> import io, PIL.Image
>>> from skimage import data
>>> buf = io.BytesIO(); PIL.Image.fromarray(data.page()).save(buf, "PNG")
>>> stage = create_stage(SPECS[0], AnalyzeConfig(), ("ocr",))
>>> lines = stage.run([load_image(buf.getvalue())])[0]["ocr"]
>>> lines.texts[0]
'Region-based segmentation'
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..core.config import AnalyzeConfig
from ..core.deprecation import renamed_fields
from ..core.errors import ConfigError, ModelUnavailableError, PixsightError, WeightsError
from ..core.image import LoadedImage
from ..core.types import TextLines
from ..models.spec import ModelSpec
from ..models.weights import resolve_weights
from .base import StageInfo, StageOutput
from .ocr_engines import RapidOcrEngine, TesseractEngine, crop_line
from .ocr_layout import join_rows, reading_order
from .ocr_preprocess import flatten_illumination, ocr_scale, to_gray

__all__ = ["OcrSettings", "OcrStage", "create_stage", "ENGINES"]

log = logging.getLogger(__name__)

#: Values ``config.ocr.engine`` accepts.
ENGINES: tuple[str, ...] = ("auto", "rapidocr", "tesseract")
#: Largest image side the analyzer needs to decode for OCR.
OCR_MAX_SIDE = 2560


@renamed_fields(min_line_score="conf_threshold")
@dataclass(frozen=True)
class OcrSettings:
    """Resolved pipeline options (from the model spec's ``options`` and ``config.ocr``)."""

    engine: str = "rapidocr"  # the engine that actually runs: rapidocr | tesseract
    flatten: bool = True  # divide out uneven lighting before OCR
    recheck_below: float = 0.9  # re-read lines scoring below this from the raw pixels
    det_max_side: int = 1280  # the detector sees at most this many pixels per side
    probe_side: int = 640  # first look for any text at this size; none found -> done (0: off)
    conf_threshold: float = 0.5  # lines below are dropped as noise
    upscale_below: int = 200  # images smaller than this (longer side) are enlarged
    rec_min_height: int = 48  # line crops lower than this are enlarged (bicubic) before reading
    lang: str = "eng"  # Tesseract language


class OcrStage:
    """Stage answering ``ocr`` (see the module docstring for the pipeline).

    Build it with :func:`create_stage`; ``run`` returns one ``{"ocr": TextLines}`` (or an
    exception) per image, in the coordinates of ``image.pixels``.
    """

    def __init__(self, settings: OcrSettings, *, model_key: str,
                 rapid: RapidOcrEngine | None = None, tesseract: TesseractEngine | None = None) -> None:
        if settings.engine == "rapidocr" and rapid is None:
            raise ValueError("OcrStage: engine 'rapidocr' needs a RapidOcrEngine")
        if settings.engine == "tesseract" and tesseract is None:
            raise ValueError("OcrStage: engine 'tesseract' needs a TesseractEngine")
        self.settings = settings
        self._rapid = rapid
        self._tesseract = tesseract
        self.info = StageInfo(tasks=("ocr",), models={"ocr": model_key}, max_side=OCR_MAX_SIDE,
                              batch_size=1, extra={"engine": settings.engine, "flatten": settings.flatten})

    @property
    def engine_name(self) -> str:
        return "rapidocr-ppocrv6" if self.settings.engine == "rapidocr" else f"tesseract-{self.settings.lang}"

    def run(self, images: Sequence[LoadedImage]) -> list[StageOutput]:
        """OCR each image; a failing image gives its exception, the others still get results."""
        out: list[StageOutput] = []
        for image in images:
            try:
                out.append({"ocr": self.read(image.pixels)})
            except PixsightError as err:
                out.append(err)
            except Exception as err:  # an engine crash on one image must not lose the batch
                log.warning("ocr failed on %s: %s", image.path or "<bytes>", err)
                out.append(err)
        return out

    def read(self, pixels: np.ndarray) -> TextLines:
        """OCR one RGB or grey uint8 image; coordinates are those of ``pixels``.

        >>> from skimage import data
        >>> from pixsight.models.zoo.ocr import SPECS
        >>> create_stage(SPECS[0], AnalyzeConfig()).read(data.chelsea()).texts  # a cat, no text
        []
        """
        s = self.settings
        gray = to_gray(pixels)
        h, w = gray.shape
        if min(h, w) < 8:
            return TextLines.empty(self.engine_name)
        scale = ocr_scale(h, w, min_side=s.upscale_below, max_side=10**9) if max(h, w) < s.upscale_below else 1.0
        if scale != 1.0:
            import cv2

            gray = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC)
        if s.engine == "rapidocr":
            texts, scores, polys = self._read_rapid(gray)
        else:
            texts, scores, polys = self._read_tesseract(flatten_illumination(gray) if s.flatten else gray)
        keep = [i for i, (t, sc) in enumerate(zip(texts, scores))
                if t.strip() and sc >= s.conf_threshold and not _looks_like_noise(t, sc)]
        if not keep:
            return TextLines.empty(self.engine_name)
        texts = [texts[i].strip() for i in keep]
        scores = np.clip(np.asarray(scores, np.float32)[keep], 0.0, 1.0)
        polys = np.asarray(polys, np.float32)[keep] / np.float32(scale)
        polys[..., 0] = np.clip(polys[..., 0], 0, w)
        polys[..., 1] = np.clip(polys[..., 1], 0, h)
        rows = reading_order(polys)
        order = [i for row in rows for i in row]
        remap = {old: new for new, old in enumerate(order)}
        boxes = np.concatenate([polys[order].min(axis=1), polys[order].max(axis=1)], axis=1)
        return TextLines(
            texts=[texts[i] for i in order],
            scores=scores[order],
            boxes=boxes,
            polygons=polys[order],
            model=self.engine_name,
            text=join_rows([[remap[i] for i in row] for row in rows], [texts[i] for i in order]),
        )

    def _read_rapid(self, gray: np.ndarray) -> tuple[list[str], list[float], np.ndarray]:
        assert self._rapid is not None  # guaranteed by __init__
        s = self.settings
        h, w = gray.shape
        # detect on a copy at most det_max_side wide: the no-text case never touches full size.
        # A cheap probe at probe_side first: most photos have no text and stop there.
        det_scale = min(1.0, s.det_max_side / max(h, w))
        small = _resized(gray, det_scale)
        small = flatten_illumination(small) if s.flatten else small
        small3 = np.repeat(small[..., None], 3, axis=2)
        if s.probe_side and max(small.shape) > s.probe_side * 1.25:
            if not len(self._rapid.detect(small3, max_side=s.probe_side)):
                return [], [], np.zeros((0, 4, 2), np.float32)
        found = self._rapid.detect(small3, max_side=s.det_max_side)
        if not len(found):
            return [], [], np.zeros((0, 4, 2), np.float32)
        polygons = found.polygons / np.float32(det_scale)
        work = flatten_illumination(gray) if s.flatten else gray
        work3 = np.repeat(work[..., None], 3, axis=2)
        results = self._rapid.recognize([crop_line(work3, p, min_height=s.rec_min_height) for p in polygons])
        doubtful = [i for i, (_, sc) in enumerate(results) if sc < s.recheck_below] if s.flatten else []
        if doubtful:
            raw3 = np.repeat(gray[..., None], 3, axis=2)
            again = self._rapid.recognize([crop_line(raw3, polygons[i], min_height=s.rec_min_height) for i in doubtful])
            for i, second in zip(doubtful, again):
                if second[1] > results[i][1]:
                    results[i] = second
        return [t for t, _ in results], [sc for _, sc in results], polygons

    def _read_tesseract(self, work: np.ndarray) -> tuple[list[str], list[float], np.ndarray]:
        assert self._tesseract is not None  # guaranteed by __init__
        lines = self._tesseract.read_page(work)
        polys = np.float32([[[x0, y0], [x1, y0], [x1, y1], [x0, y1]] for _, _, (x0, y0, x1, y1) in lines])
        return [t for t, _, _ in lines], [sc for _, sc, _ in lines], polys.reshape(-1, 4, 2)

    def close(self) -> None:
        """Drop the engines (ONNX sessions are freed with them). Safe to call twice."""
        self._rapid = None
        self._tesseract = None


def _resized(gray: np.ndarray, scale: float) -> np.ndarray:
    if scale >= 1.0:
        return gray
    import cv2

    h, w = gray.shape
    return cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def _looks_like_noise(text: str, score: float) -> bool:
    """A lone symbol or letter read without certainty: texture in a photo, not text."""
    return sum(ch.isalnum() for ch in text) <= 1 and score < 0.95


def _load_rapid(spec: ModelSpec) -> RapidOcrEngine:
    try:
        det = resolve_weights(spec, "det")
        rec = resolve_weights(spec, "rec")
    except WeightsError as err:
        raise ModelUnavailableError(f"model {spec.name!r}: {err.message}") from err
    return RapidOcrEngine(det, rec)


def create_stage(spec: ModelSpec, config: AnalyzeConfig, tasks: tuple[str, ...] = ("ocr",)) -> OcrStage:
    """Build the OCR stage for registry entry ``spec`` under ``config.ocr``.

    ``config.ocr.engine``: ``auto`` (the spec's engine; when it cannot run, the other one,
    with a warning), ``rapidocr`` or ``tesseract`` (that engine; ``tesseract`` falls back to
    rapidocr with a warning when the executable is missing and the spec allows it).

    Raises:
        ConfigError: an unknown engine name or a task other than ``ocr``.
        ModelUnavailableError: no engine can run here; the message says what to install.

    >>> from pixsight.models.zoo.ocr import SPECS
    >>> create_stage(SPECS[0], AnalyzeConfig(), ("ocr",)).info.tasks
    ('ocr',)
    """
    if set(tasks) - {"ocr"}:
        raise ConfigError(f"the OCR stage answers only 'ocr', not {sorted(set(tasks) - {'ocr'})}")
    opts = config.ocr
    if opts.engine not in ENGINES:
        raise ConfigError(f"ocr.engine must be one of {ENGINES}, got {opts.engine!r}")
    o = spec.options
    wanted = o.get("engine", spec.backend) if opts.engine == "auto" else opts.engine
    fallback_ok = opts.engine == "auto" or bool(o.get("fallback"))
    order = [wanted] + ([e for e in ("rapidocr", "tesseract") if e != wanted] if fallback_ok else [])
    errors: list[str] = []
    for engine in order:
        try:
            if engine == "rapidocr":
                rapid_spec = spec if spec.files.get("det") else _spec_with_rapid_files(spec)
                rapid, tess = _load_rapid(rapid_spec), None
            else:
                rapid, tess = None, TesseractEngine(lang=o.get("lang", "eng"))
        except ModelUnavailableError as err:
            errors.append(f"{engine}: {err.message}")
            continue
        if engine != wanted:
            log.warning("OCR engine %r cannot run here (%s); using %r instead", wanted, errors[-1], engine)
        settings = OcrSettings(
            engine=engine,
            flatten=bool(o.get("flatten", True)),
            recheck_below=float(o.get("recheck_below", 0.9)),
            det_max_side=int(o.get("det_max_side", 1280)),
            probe_side=int(o.get("probe_side", 640)),
            conf_threshold=float(opts.conf_threshold),
            lang=str(o.get("lang", "eng")),
        )
        return OcrStage(settings, model_key=spec.key, rapid=rapid, tesseract=tess)
    raise ModelUnavailableError(f"no OCR engine can run for model {spec.name!r}: " + "; ".join(errors))


def _spec_with_rapid_files(spec: ModelSpec) -> ModelSpec:
    from dataclasses import replace

    from ..models.zoo.ocr import RAPIDOCR_FILES

    return replace(spec, files=RAPIDOCR_FILES)
