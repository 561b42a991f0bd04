"""Classification throughput end to end from JPEG files: a plain script vs pixsight.

Writes N JPEGs made from scikit-image's photos at realistic sizes (2/3 at 640x480, 1/3
at 1600x1200 by upscaling; random crops, flips and JPEG qualities) to a temp folder, then
measures images per second, decode included:

(a) baseline, the straightforward script: PIL open + convert("RGB") + resize the shorter
    side to 256 + centre crop 224 + normalise, torch eager EfficientNet-Lite0, batch 1;
(b) pixsight: ``load_image(path, max_side=stage.info.max_side)`` (reduced JPEG decode) in
    a 2-thread pool feeding :class:`~pixsight.tasks.imagenet.ImageNetStage` (ONNX Runtime)
    in batches of 16.

It prints both rates, their ratio, and how often the two agree on the top-1 class. The
ONNX export is made (or found in the cache) before timing starts. Not part of the tests.

(c) pixsight INT8: the same pipeline on the INT8 variant of the export built for this CPU
    (:mod:`pixsight.models.quantize`), timed in the same rounds as FP32 (alternating), with
    its top-1 agreement with FP32 on the N JPEGs. The INT8 file is built in the temp folder
    with the gate evaluated but not enforced (pixsight itself never caches or uses a file
    that misses it), and the gate numbers are printed. ``--skip-int8`` skips it.

Run:  python benchmarks/bench_classify.py --n 400
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def make_jpegs(folder: Path, n: int, *, seed: int = 0, short_side: int | None = None) -> list[Path]:
    """``n`` JPEG photos in ``folder``: 640x480 (2 of 3) and 1600x1200 (1 of 3), or all with
    the shorter side ``short_side`` (4:3) when given (e.g. 224: the model's own input size)."""
    from skimage import data

    sources = [data.chelsea(), data.coffee(), data.rocket(), data.astronaut(), data.stereo_motorcycle()[0],
               data.hubble_deep_field(), data.immunohistochemistry(), data.retina(),
               np.repeat(data.camera()[..., None], 3, axis=2)]
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        src = Image.fromarray(sources[i % len(sources)])
        w, h = src.size
        frac = np.sqrt(rng.uniform(0.7, 1.0))
        cw, ch = int(w * frac), int(h * frac)
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        size = (1600, 1200) if i % 3 == 2 else (640, 480)
        if short_side:
            size = (round(short_side * 4 / 3), short_side)
        if ch > cw:  # keep portrait photos portrait
            size = size[::-1]
        img = src.resize(size, Image.Resampling.BICUBIC, box=(x0, y0, x0 + cw, y0 + ch))
        if rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        path = folder / f"img_{i:04d}.jpg"
        img.save(path, "JPEG", quality=int(rng.integers(85, 96)))
        paths.append(path)
    return paths


def run_baseline(paths: list[Path]) -> tuple[float, list[int], list[float]]:
    """The straightforward script: PIL + torch eager, batch 1.

    Returns (img/s, top-1 ids, top-1 probabilities)."""
    import torch

    from pixsight.models.efficientnet_lite import efficientnet_lite0

    model = efficientnet_lite0()
    mean, std = 127.0, 128.0

    def prepare(path: Path) -> torch.Tensor:
        img = Image.open(path).convert("RGB")
        w, h = img.size
        r = 256 / min(w, h)
        img = img.resize((max(224, round(w * r)), max(224, round(h * r))), Image.Resampling.BILINEAR)
        left, top = (img.width - 224) // 2, (img.height - 224) // 2
        img = img.crop((left, top, left + 224, top + 224))
        x = (np.asarray(img, np.float32) - mean) / std
        return torch.from_numpy(x.transpose(2, 0, 1)).unsqueeze(0)

    with torch.inference_mode():
        model(prepare(paths[0]))  # warm-up
        top1, conf = [], []
        t0 = time.perf_counter()
        for path in paths:
            p = model(prepare(path)).softmax(1)[0]
            top1.append(int(p.argmax()))
            conf.append(float(p.max()))
        elapsed = time.perf_counter() - t0
    return len(paths) / elapsed, top1, conf


def run_pixsight(paths: list[Path], *, spec: Any = None, batch: int = 16,
                 workers: int = 2) -> tuple[float, list[int], list[float]]:
    """pixsight: reduced decode in a thread pool + ImageNetStage (``spec``: default FP32).

    Returns (img/s, top-1 ids, top-1 scores)."""
    from pixsight.core.image import load_image
    from pixsight.models.zoo.imagenet import SPECS
    from pixsight.tasks.imagenet import ImageNetStage

    stage = ImageNetStage(spec or SPECS[0], top_k=5, tasks=("classify", "embed"), batch_size=batch)
    side = stage.info.max_side
    stage.run([load_image(paths[0], max_side=side)])  # warm-up
    outs: list[Any] = []
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        images = pool.map(lambda p: load_image(p, max_side=side), paths)
        pending = []
        for image in images:
            pending.append(image)
            if len(pending) == batch:
                outs.extend(o["classify"] for o in stage.run(pending))
                pending = []
        if pending:
            outs.extend(o["classify"] for o in stage.run(pending))
    elapsed = time.perf_counter() - t0
    stage.close()
    return len(paths) / elapsed, [int(c.class_ids[0]) for c in outs], [float(c.scores[0]) for c in outs]


def int8_spec(folder: Path) -> tuple[Any, str]:
    """The INT8 variant to time, built in ``folder`` with the gate evaluated but not enforced.

    Returns (spec, a line describing where it came from and its gate numbers)."""
    from pixsight.models.export import ensure_onnx
    from pixsight.models.quantize import GATE, quantize_int8
    from pixsight.models.spec import ModelSpec
    from pixsight.models.zoo.imagenet import SPECS, with_precision

    t = time.perf_counter()
    path = folder / "int8.onnx"  # the same deterministic build ensure_int8_onnx makes, without its gate
    report = quantize_int8(ensure_onnx(SPECS[0]), path, preprocess=SPECS[0].preprocess, gate={}).to_dict()
    passes = all(report[k] >= v for k, v in GATE.items())
    note = ("passes the accuracy gate" if passes else
            "MISSES the accuracy gate: pixsight never caches or uses it; timed here for comparison only")
    meta = report
    line = (f"INT8 model: {path.name} ({time.perf_counter() - t:.1f} s) {note}\n"
            f"  held-out crops: top-1 agreement {meta.get('top1_agreement', 0):.3f} "
            f"(gate {GATE['top1_agreement']}), when FP32 >= 50% sure {meta.get('top1_agreement_confident', 0):.3f} "
            f"(gate {GATE['top1_agreement_confident']}), feature cosine {meta.get('feature_cosine_mean', 0):.4f} "
            f"(gate {GATE['feature_cosine_mean']}), mean |dP top-1| {meta.get('mean_abs_delta_top1_prob', 0):.4f}; "
            f"FP32 vs FP32 on JPEG q90 copies: {meta.get('fp32_jpeg90_top1_agreement', 0):.3f}")
    data = with_precision(SPECS[0], "int8").to_dict()
    data["options"] = {k: v for k, v in data["options"].items() if k not in ("export_from", "precision")}
    data["weights"] = [{"kind": "path", "location": str(path)}]
    return ModelSpec.from_dict(data), line


def breakdown(paths: list[Path], *, spec: Any = None, batch: int = 16) -> tuple[float, float]:
    """(decode-only img/s with 2 threads, ImageNetStage-only img/s on decoded images)."""
    from pixsight.core.image import load_image
    from pixsight.models.zoo.imagenet import SPECS
    from pixsight.tasks.imagenet import ImageNetStage

    with ImageNetStage(spec or SPECS[0], batch_size=batch) as stage:
        side = stage.info.max_side
        t0 = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            images = list(pool.map(lambda p: load_image(p, max_side=side), paths))
        decode = len(paths) / (time.perf_counter() - t0)
        stage.run(images[:batch])
        t0 = time.perf_counter()
        stage.run(images)
        run = len(paths) / (time.perf_counter() - t0)
    return decode, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=400, help="number of JPEGs (default 400)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds, each timing pixsight then the baseline (median and best reported)")
    parser.add_argument("--baseline-n", type=int, default=100,
                        help="images for the (slow) baseline, the first of the N (default 100)")
    parser.add_argument("--short-side", type=int, help="make every JPEG this small (e.g. 224) instead of photo sizes")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-int8", action="store_true", help="do not time the INT8 variant")
    args = parser.parse_args(argv)

    from pixsight.models.export import ensure_onnx
    from pixsight.models.zoo.imagenet import SPECS

    t = time.perf_counter()
    onnx_path = ensure_onnx(SPECS[0])
    print(f"ONNX model: {onnx_path} (ready in {time.perf_counter() - t:.1f} s)")
    print(f"CPUs available: {len(os.sched_getaffinity(0))}; load average: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="pixsight-bench-") as tmp:
        paths = make_jpegs(Path(tmp), args.n, short_side=args.short_side)
        mb = sum(p.stat().st_size for p in paths) / 1e6
        sizes = f"{round(args.short_side * 4 / 3)}x{args.short_side}" if args.short_side else "640x480 and 1600x1200"
        print(f"{len(paths)} JPEGs ({mb:.1f} MB; {sizes}) in {tmp}")
        spec8, int8_line = (None, "") if args.skip_int8 else int8_spec(Path(tmp))
        if int8_line:
            print(int8_line)
        rates_px, rates_bl, rates_8 = [], [], []
        top_px: list[int] = []
        conf_px: list[float] = []
        top_8: list[int] = []
        top_bl: list[int] = []
        conf_bl: list[float] = []
        for _ in range(args.repeats):
            rate, top_px, conf_px = run_pixsight(paths)
            rates_px.append(rate)
            print(f"  pixsight run: {rate:7.1f} img/s")
            if spec8 is not None:
                rate, top_8, _ = run_pixsight(paths, spec=spec8)
                rates_8.append(rate)
                print(f"  INT8 run:     {rate:7.1f} img/s")
            if not args.skip_baseline:
                rate, top_bl, conf_bl = run_baseline(paths[: args.baseline_n])
                rates_bl.append(rate)
                print(f"  baseline run: {rate:7.1f} img/s")
        decode_rate, stage_rate = breakdown(paths[:160])
        stage_rate_8 = breakdown(paths[:160], spec=spec8)[1] if spec8 is not None else 0.0
    px, px_best = statistics.median(rates_px), max(rates_px)
    print(f"pixsight (reduced decode, 2 threads, ONNX Runtime, batch 16): {px:7.1f} img/s median, {px_best:7.1f} best")
    if rates_bl:
        bl, bl_best = statistics.median(rates_bl), max(rates_bl)
        same = np.asarray(top_px[: len(top_bl)]) == np.asarray(top_bl)
        confident = np.asarray(conf_bl) >= 0.5
        print(f"baseline (PIL full decode, torch eager, batch 1):          {bl:7.1f} img/s median, {bl_best:7.1f} best")
        print(f"speed-up: {px / bl:.2f}x median, {px_best / bl_best:.2f}x best")
        print(f"top-1 agreement: {100 * same.mean():.1f}% of {len(top_bl)} images; "
              f"{100 * same[confident].mean():.1f}% of the {int(confident.sum())} the baseline is >= 50% sure of")
    print(f"  breakdown: decode only {decode_rate:.1f} img/s (2 threads), stage only {stage_rate:.1f} img/s")
    if rates_8:
        q8, q8_best = statistics.median(rates_8), max(rates_8)
        same8 = np.asarray(top_8) == np.asarray(top_px)
        sure = np.asarray(conf_px) >= 0.5
        print(f"pixsight INT8 (same pipeline, INT8 model):                {q8:7.1f} img/s median, {q8_best:7.1f} best "
              f"({q8 / px:.2f}x FP32); stage only {stage_rate_8:.1f} img/s ({stage_rate_8 / stage_rate:.2f}x)")
        print(f"  INT8 vs FP32 top-1 agreement on the {len(top_px)} JPEGs: {100 * same8.mean():.1f}%; "
              f"{100 * same8[sure].mean():.1f}% of the {int(sure.sum())} FP32 is >= 50% sure of")
    print(f"load average after: {os.getloadavg()[0]:.2f} (other processes share these cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
