"""Character error rate and time per page: raw engines vs pixsight's OCR pipeline.

Pages: scikit-image's ``page.png`` (a real photo of a printed page with uneven light,
transcribed in ``tests/data/ocr/page_gt.txt``) and synthetic pages rendered with
:func:`pixsight.data.documents.render_page` then "photographed" with uneven light, tilt,
blur, noise and JPEG (:func:`photograph_page`). Also the time on text-free photos.

Methods:
- ``rapidocr raw``: ``rapidocr.RapidOCR`` with its default settings (the package's own
  PP-OCRv6 files given explicitly), called on the RGB image - what a naive script does.
- ``tesseract raw``: ``pytesseract.image_to_string`` on the RGB image.
- ``pixsight-ocr``: the default ``ocr`` stage. Ablations: ``no flatten`` (registry entry
  ``rapidocr-ppocrv6``: same pipeline on raw pixels) and ``tesseract+flatten``.

CER = jiwer character error rate after collapsing all whitespace to single spaces
(line breaks are layout, not content). Run::

    python benchmarks/bench_ocr_cer.py            # 8 synthetic pages
    python benchmarks/bench_ocr_cer.py --pages 3  # quicker
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GT_PAGE = ROOT / "tests" / "data" / "ocr" / "page_gt.txt"
LIGHTINGS = ("gradient", "vignette", "shadow", "mixed")
FONTS = ("sans", "serif", "mono")


def normalise(text: str) -> str:
    return " ".join(text.split())


def cer(truth: str, hypothesis: str) -> float:
    import jiwer

    return float(jiwer.cer(normalise(truth), normalise(hypothesis) or " "))


def synthetic_pages(n: int) -> list[tuple[str, np.ndarray, str]]:
    """``n`` photographed pages: lighting, font, size, blur and noise vary with the seed."""
    from pixsight.data.documents import photograph_page, render_page, sample_text

    pages = []
    for i in range(n):
        text = sample_text(100 + i, n_words=110)
        size = (18, 22, 26, 20, 24, 28)[i % 6]
        page = render_page(text, width=1200, font_size=size, font=FONTS[i % 3], seed=i)
        light = LIGHTINGS[i % len(LIGHTINGS)]
        photo = photograph_page(page, seed=i, lighting=light, strength=0.75, blur=0.6 + 0.15 * (i % 5),
                                noise=5.0, jpeg_quality=70)
        pages.append((f"synthetic-{i}-{light}-{size}px", photo, text))
    return pages


def methods() -> dict[str, Callable[[np.ndarray], str]]:
    from rapidocr import RapidOCR

    from pixsight.core.config import AnalyzeConfig, OcrOptions
    from pixsight.models.weights import resolve_weights
    from pixsight.models.zoo.ocr import SPECS
    from pixsight.tasks.ocr import create_stage
    from pixsight.tasks.ocr_engines import TesseractEngine

    spec = {s.name: s for s in SPECS}
    default = spec["pixsight-ocr"]
    raw = RapidOCR(params={
        "Det.model_path": str(resolve_weights(default, "det")),
        "Rec.model_path": str(resolve_weights(default, "rec")),
        "Cls.model_path": str(resolve_weights(default, "cls")),
        "Global.log_level": "error",
    })

    def rapid_raw(img: np.ndarray) -> str:
        out = raw(img)
        return "\n".join(out.txts or ())

    cfg = AnalyzeConfig()
    pix = create_stage(default, cfg, ("ocr",))
    noflat = create_stage(spec["rapidocr-ppocrv6"], cfg, ("ocr",))
    found: dict[str, Callable[[np.ndarray], str]] = {"rapidocr raw": rapid_raw}
    if TesseractEngine.available():
        import pytesseract

        found["tesseract raw"] = lambda img: pytesseract.image_to_string(img)
        tess = create_stage(default, dataclasses.replace(cfg, ocr=OcrOptions(engine="tesseract")), ("ocr",))
        found["tesseract+flatten"] = lambda img: tess.read(img).text
    found["pixsight no flatten"] = lambda img: noflat.read(img).text
    found["pixsight-ocr"] = lambda img: pix.read(img).text
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=8, help="number of synthetic pages")
    args = parser.parse_args()
    from skimage import data

    pages = [("page.png (real photo)", data.page(), GT_PAGE.read_text())] + synthetic_pages(args.pages)
    photos = [(name, getattr(data, name)()) for name in ("chelsea", "coffee", "astronaut")]
    runs = methods()
    for fn in runs.values():  # warm up: load sessions, first-call allocations
        fn(pages[0][1])
    names = list(runs)
    cers = {m: [] for m in names}
    times = {m: [] for m in names}
    print("| page | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for title, img, truth in pages:
        cells = []
        for m in names:
            t0 = time.perf_counter()
            text = runs[m](img)
            dt = time.perf_counter() - t0
            c = cer(truth, text)
            cers[m].append(c)
            times[m].append(dt)
            cells.append(f"{c:.3f} ({dt:.2f}s)")
        print(f"| {title} | " + " | ".join(cells) + " |", flush=True)
    synth = slice(1, None)
    print("| **mean CER, synthetic** | " + " | ".join(f"**{np.mean(cers[m][synth]):.3f}**" for m in names) + " |")
    print("| **mean CER, all** | " + " | ".join(f"**{np.mean(cers[m]):.3f}**" for m in names) + " |")
    print("| mean s/page | " + " | ".join(f"{np.mean(times[m]):.2f}" for m in names) + " |")
    for title, img in photos:
        cells = []
        for m in names:
            t0 = time.perf_counter()
            text = runs[m](img)
            dt = time.perf_counter() - t0
            cells.append(f"{dt:.2f}s, {len(normalise(text))} chars")
        print(f"| {title} {img.shape[1]}x{img.shape[0]} (no text) | " + " | ".join(cells) + " |", flush=True)
    big = np.asarray(__import__("PIL.Image", fromlist=["Image"]).fromarray(data.coffee()).resize((2560, 1707)))
    cells = []
    for m in names:
        t0 = time.perf_counter()
        text = runs[m](big)
        cells.append(f"{time.perf_counter() - t0:.2f}s, {len(normalise(text))} chars")
    print("| coffee 2560x1707 (no text) | " + " | ".join(cells) + " |")
    base = np.mean(times["rapidocr raw"])
    print(f"\npixsight-ocr time per page / rapidocr raw: {np.mean(times['pixsight-ocr']) / base:.2f}x")


if __name__ == "__main__":
    main()
