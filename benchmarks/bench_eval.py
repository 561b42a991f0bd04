"""Detection evaluation speed: pixsight's COCO mAP vs pycocotools on the same data.

Generates a seeded ground truth of N images (default 5,000; 0-8 objects each, a few crowd
regions, small/medium/large sizes, 5 classes) and D detections (default 50,000: jittered
copies of the ground truth plus false alarms), then times, in the same run:

(a) pixsight: :func:`pixsight.evaluate.metrics.detection_metrics` — building the COCO dicts
    from the :class:`Dataset` and the per-image arrays, evaluation (faster-coco-eval),
    per-class AP and PR curves;
(b) baseline: pycocotools' ``COCO`` / ``loadRes`` / ``COCOeval`` (evaluate, accumulate,
    summarize) on the same data already in COCO form (its conversion is not timed).

It prints both times, the ratio, and checks the 12 stats agree. Issue target: (a) < 30 s.
Not part of the tests.

Run:  python benchmarks/bench_eval.py [--images 5000] [--detections 50000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
import warnings

import numpy as np


def make_data(n_images: int, n_detections: int, seed: int = 0):
    from pixsight.data.dataset import Annotation, Dataset, ImageRecord

    rng = np.random.default_rng(seed)
    images, gts = [], []
    for i in range(n_images):
        w, h = int(rng.integers(320, 1024)), int(rng.integers(240, 768))
        anns = []
        for _ in range(int(rng.integers(0, 9))):
            side = float(rng.choice([rng.uniform(6, 30), rng.uniform(33, 95), rng.uniform(100, 300)]))
            bw, bh = min(side * rng.uniform(0.6, 1.5), w - 1), min(side * rng.uniform(0.6, 1.5), h - 1)
            x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            anns.append(Annotation(int(rng.integers(0, 5)), [x, y, x + bw, y + bh], iscrowd=bool(rng.random() < 0.02)))
        images.append(ImageRecord(f"img_{i:06d}.jpg", w, h, anns))
        gts.append(anns)
    # detections: spread n_detections over images, ~60% near a GT box, the rest random
    per_image = rng.multinomial(n_detections, np.full(n_images, 1.0 / n_images))
    preds = []
    for rec, k in zip(images, per_image):
        boxes, scores, cls = np.zeros((k, 4)), rng.random(k), rng.integers(0, 5, k)
        for j in range(k):
            if rec.annotations and rng.random() < 0.6:
                a = rec.annotations[int(rng.integers(0, len(rec.annotations)))]
                b = a.box + rng.normal(0, 0.1 * (a.box[2] - a.box[0]), 4)
                cls[j] = a.class_id if rng.random() < 0.9 else cls[j]
            else:
                x, y = rng.uniform(0, rec.width - 20), rng.uniform(0, rec.height - 20)
                b = np.array([x, y, x + rng.uniform(5, 200), y + rng.uniform(5, 200)])
            b = np.clip(b, 0, [rec.width, rec.height, rec.width, rec.height])
            b[2:] = np.maximum(b[2:], b[:2] + 1)
            boxes[j] = b
        preds.append((boxes, scores, cls.astype(np.int64)))
    return Dataset("/nonexistent", [f"class_{k}" for k in range(5)], images, "detect"), preds


def time_pixsight(gt, preds) -> tuple[float, list[float]]:
    from pixsight.evaluate.metrics import detection_metrics

    t0 = time.perf_counter()
    m = detection_metrics(gt, preds)
    return time.perf_counter() - t0, m["stats"]


def time_pycocotools(gt, preds) -> tuple[float, list[float]]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from pixsight.evaluate.detection import coco_ground_truth, coco_results

    doc = coco_ground_truth(gt)
    results = coco_results(preds, num_classes=len(gt.classes))
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        coco = COCO()
        coco.dataset = doc
        coco.createIndex()
        dt = coco.loadRes(results)
        ev = COCOeval(coco, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return time.perf_counter() - t0, [float(v) for v in ev.stats]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--detections", type=int, default=50000)
    ap.add_argument("--repeat", type=int, default=1, help="timed rounds (best of)")
    ap.add_argument("--skip-baseline", action="store_true", help="time pixsight only")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    gt, preds = make_data(args.images, args.detections)
    print(f"data: {len(gt.images)} images, {gt.num_instances()} ground-truth boxes, "
          f"{sum(len(p[1]) for p in preds)} detections (generated in {time.perf_counter() - t0:.1f} s)")
    ours, theirs = [], []
    for _ in range(args.repeat):
        s, stats = time_pixsight(gt, preds)
        ours.append(s)
        if not args.skip_baseline:
            b, base_stats = time_pycocotools(gt, preds)
            theirs.append(b)
    print(f"pixsight detection_metrics: {min(ours):.2f} s   (target < 30 s: {'ok' if min(ours) < 30 else 'MISSED'})")
    if theirs:
        print(f"pycocotools COCOeval:       {min(theirs):.2f} s")
        print(f"speed-up: {min(theirs) / min(ours):.1f}x")
        same = np.allclose(stats, base_stats, atol=1e-12, rtol=0)
        print(f"12 COCO stats identical: {same}  (mAP {stats[0]:.4f}, mAP50 {stats[1]:.4f})")
        if not same:
            print("pixsight:   ", np.round(stats, 6).tolist(), "\npycocotools:", np.round(base_stats, 6).tolist())
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
