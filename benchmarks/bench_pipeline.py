"""The whole default pipeline vs the straightforward script a user would write.

Baseline (same models, the obvious way): for each file, PIL decode + PyTorch eager
EfficientNet-Lite0 (classify + pooled features), ``RapidOCR()(path)`` on the file, and
face_recognition-style dlib on a freshly decoded image (HOG detector with upsample 1,
5-point landmarks, 128-D descriptor per face).

pixsight: ``Analyzer`` with the default tasks into a fresh catalog.

Prints images/s for both, the ratio, and how often the answers agree (top-1 label, face
count, OCR text similarity). Model loading is excluded from both timings (reported apart).

    python benchmarks/bench_pipeline.py [--n-copies 2] [--out folder]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def make_photos(folder: Path, *, copies: int, seed: int = 0) -> list[Path]:
    """Real photos (scikit-image samples + a rendered page photo) at native and ~2.5x size,
    each copy with a little noise so every file is distinct content."""
    from skimage import data

    from pixsight.data.documents import photograph_page, render_page, sample_text

    base = {
        "astronaut": data.astronaut(), "chelsea": data.chelsea(), "coffee": data.coffee(),
        "rocket": data.rocket(), "motorcycle": data.stereo_motorcycle()[0], "camera": data.camera(),
        "page": data.page(), "hubble": data.hubble_deep_field(), "retina": data.retina(),
        "document": photograph_page(render_page(sample_text(3, n_words=90), width=1000, seed=3), seed=3,
                                    jpeg_quality=None),
    }
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for c in range(copies):
        for name, pixels in base.items():
            img = Image.fromarray(pixels).convert("RGB")
            for scale in (1.0, 2.5):
                im = img if scale == 1.0 else img.resize((int(img.width * scale), int(img.height * scale)), Image.Resampling.BICUBIC)
                arr = np.asarray(im).astype(np.int16) + rng.integers(-3, 4, (im.height, im.width, 3))
                path = folder / f"{name}_{scale:g}x_{c}.jpg"
                Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, "JPEG", quality=92)
                paths.append(path)
    return paths


def run_baseline(paths: list[Path]) -> tuple[float, float, list[dict]]:
    import dlib
    import torch
    from rapidocr import RapidOCR

    from pixsight.models.efficientnet_lite import efficientnet_lite0
    from pixsight.models.registry import get_registry
    from pixsight.models.weights import package_file, resolve_weights

    t_load = time.perf_counter()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    model = efficientnet_lite0().eval()
    labels = (Path(__file__).resolve().parents[1] / "src/pixsight/resources/imagenet_classes.txt").read_text().splitlines()
    ocr_spec = get_registry().get("rapidocr-ppocrv6")
    ocr = RapidOCR(params={
        "Det.model_path": str(resolve_weights(ocr_spec, "det")),
        "Rec.model_path": str(resolve_weights(ocr_spec, "rec")),
        "Cls.model_path": str(resolve_weights(ocr_spec, "cls")),
    })
    rel = "face_recognition_models/models/"
    detector = dlib.get_frontal_face_detector()
    shape = dlib.shape_predictor(str(package_file("face-recognition-models", rel + "shape_predictor_5_face_landmarks.dat")))
    rec = dlib.face_recognition_model_v1(str(package_file("face-recognition-models", rel + "dlib_face_recognition_resnet_model_v1.dat")))
    load_s = time.perf_counter() - t_load

    out = []
    t0 = time.perf_counter()
    with torch.inference_mode():
        for path in paths:
            img = Image.open(path).convert("RGB")
            w, h = img.size
            r = 256 / min(w, h)
            small = img.resize((max(224, round(w * r)), max(224, round(h * r))), Image.Resampling.BILINEAR)
            left, top = (small.width - 224) // 2, (small.height - 224) // 2
            x = (np.asarray(small.crop((left, top, left + 224, top + 224)), np.float32) - 127.0) / 128.0
            logits, _features = model(torch.from_numpy(x.transpose(2, 0, 1)).unsqueeze(0), with_features=True)
            label = labels[int(logits.argmax(1))]
            res = ocr(str(path))
            text = "\n".join(res.txts) if res.txts else ""
            arr = np.asarray(Image.open(path).convert("RGB"))
            faces = detector(arr, 1)
            for d in faces:
                rec.compute_face_descriptor(arr, shape(arr, d))
            out.append({"label": label, "faces": len(faces), "text": text})
    return time.perf_counter() - t0, load_s, out


def run_pixsight(paths: list[Path], db: Path) -> tuple[float, float, list[dict]]:
    from pixsight.catalog.store import Catalog
    from pixsight.core.config import AnalyzeConfig
    from pixsight.pipeline.analyzer import Analyzer

    t_load = time.perf_counter()
    analyzer = Analyzer(AnalyzeConfig())
    load_s = time.perf_counter() - t_load
    results: dict[str, dict] = {}

    def on_result(a, _image) -> None:
        results[a.path] = {
            "label": a.results["classify"].top_label if "classify" in a.results else None,
            "faces": len(a.results["faces"]) if "faces" in a.results else None,
            "text": a.results["ocr"].text if "ocr" in a.results else "",
        }

    with analyzer, Catalog(db) as catalog:
        t0 = time.perf_counter()
        summary = analyzer.run([str(p) for p in paths], catalog=catalog, on_result=on_result)
        elapsed = time.perf_counter() - t0
    assert summary.failed == 0, summary
    print(f"pixsight tasks: {', '.join(summary.tasks)}")
    return elapsed, load_s, [results[str(p)] for p in paths]


def _similarity(a: str, b: str) -> float:
    from rapidfuzz.distance import Levenshtein

    a, b = " ".join(a.split()), " ".join(b.split())
    if not a and not b:
        return 1.0
    return 1.0 - Levenshtein.distance(a, b) / max(len(a), len(b))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-copies", type=int, default=2, help="copies of the 20-photo set")
    ap.add_argument("--out", type=Path, help="folder for the generated photos (default: a temp folder)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out or Path(tmp) / "photos"
        paths = make_photos(folder, copies=args.n_copies)
        mp = np.mean([Image.open(p).width * Image.open(p).height for p in paths]) / 1e6
        print(f"{len(paths)} JPEG photos, mean {mp:.2f} MP, cores: {len(os.sched_getaffinity(0))}")
        px_s, px_load, px = run_pixsight(paths, Path(tmp) / "bench.sqlite")
        bl_s, bl_load, bl = run_baseline(paths)
    n = len(paths)
    print(f"{'':24}{'images/s':>10}{'s total':>10}{'load s':>9}")
    print(f"{'baseline (naive script)':24}{n / bl_s:10.2f}{bl_s:10.1f}{bl_load:9.1f}")
    print(f"{'pixsight analyze':24}{n / px_s:10.2f}{px_s:10.1f}{px_load:9.1f}")
    print(f"speed-up: {bl_s / px_s:.2f}x")
    label_agree = np.mean([a["label"] == b["label"] for a, b in zip(px, bl)])
    faces_agree = np.mean([a["faces"] == b["faces"] for a, b in zip(px, bl)])
    faces_px, faces_bl = sum(a["faces"] for a in px), sum(b["faces"] for b in bl)
    texty = [(a, b) for a, b in zip(px, bl) if b["text"].strip() and len(b["text"]) > 40]
    text_sim = np.mean([_similarity(a["text"], b["text"]) for a, b in texty]) if texty else float("nan")
    print(f"same top-1 label: {label_agree:.0%}; same face count: {faces_agree:.0%} "
          f"(faces found: pixsight {faces_px}, baseline {faces_bl}); "
          f"OCR text similarity on {len(texty)} text images: {text_sim:.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
