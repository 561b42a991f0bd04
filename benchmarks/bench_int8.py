"""INT8 vs FP32 EfficientNet-Lite0 per CPU kind: agreement on real photos and speed-up.

For each INT8 recipe (``vnni``: U8S8 everywhere; ``avx2``: U8U8 matrix products, U8S8
depthwise; see :mod:`pixsight.models.int8_cpu`) it

1. builds the INT8 file from the FP32 export exactly as ``ensure_int8_onnx`` does (256
   calibration crops), gate measured on this CPU but not enforced, and prints the gate numbers
   on the 256 held-out crops;
2. runs FP32 and INT8 on N photo-size JPEGs made from scikit-image's photos (the ones
   ``bench_classify.py`` uses: random crops, flips, JPEG qualities), decoded and preprocessed
   as ``ImageNetStage`` does, and prints the top-1 agreement overall and on the photos FP32
   is >= 50 % sure of (the target: >= 95 %);
3. times FP32 and INT8 model-only (batch 16 and batch 1, alternating rounds, median) on
   this CPU and prints images per second and the speed-up (the target: >= 1.5x).

With ``--emulate-avx2`` step 2 is repeated with the INT8 models running under qemu-user's
Haswell CPU (AVX2, no VNNI: ONNX Runtime then uses its saturating AVX2 kernels), which is
how the AVX2 agreement is measured on a VNNI machine. Timing under emulation means nothing,
so the AVX2 speed-up can only be measured on a real AVX2-only CPU (run this there).

Run:  python benchmarks/bench_int8.py --n 300 [--emulate-avx2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_classify import make_jpegs  # noqa: E402  (same photos as the classify benchmark)


def photo_inputs(paths: list[Path], preprocess: dict[str, Any]) -> np.ndarray:
    """Decode and preprocess JPEGs exactly as the ImageNet stage does: (N, 3, S, S) float32."""
    from pixsight.core.image import load_image
    from pixsight.core.preprocess import preprocess_into

    size = int(preprocess["size"])
    out = np.empty((len(paths), 3, size, size), np.float32)
    for i, path in enumerate(paths):
        image = load_image(path, max_side=int(preprocess.get("max_side", 320)))
        preprocess_into(image.pixels, out[i], size=size, crop_pct=float(preprocess["crop_pct"]),
                        resize=str(preprocess["resize"]), interpolation=str(preprocess["interpolation"]))
    out -= np.asarray(preprocess["mean"], np.float32).reshape(1, 3, 1, 1)
    out /= np.asarray(preprocess["std"], np.float32).reshape(1, 3, 1, 1)
    return out


def session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run_all(sess: Any, x: np.ndarray, batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    parts = [sess.run(["logits", "features"], {"input": x[i:i + batch]}) for i in range(0, len(x), batch)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def throughput(sessions: dict[str, Any], x: np.ndarray, *, rounds: int, batch: int) -> dict[str, float]:
    """Images per second per model, rounds alternating between the models; median of rounds."""
    n = len(x) if batch > 1 else min(len(x), 64)
    rates: dict[str, list[float]] = {k: [] for k in sessions}
    for s in sessions.values():
        s.run(["logits"], {"input": x[:batch]})  # warm-up
    for _ in range(rounds):
        for name, s in sessions.items():
            t = time.perf_counter()
            for i in range(0, n, batch):
                s.run(["logits"], {"input": x[i:i + batch]})
            rates[name].append(n / (time.perf_counter() - t))
    return {k: statistics.median(v) for k, v in rates.items()}


def emulated(fp32_out: tuple[np.ndarray, np.ndarray], int8_path: Path, x: np.ndarray, tmp: Path) -> dict[str, Any]:
    """Agreement of ``int8_path`` with FP32 when the INT8 model runs on qemu's Haswell (AVX2 only)."""
    qemu = shutil.which("qemu-x86_64") or shutil.which("qemu-x86_64-static")
    if qemu is None:
        raise SystemExit("--emulate-avx2 needs qemu-user (Debian: apt-get install qemu-user)")
    np.save(tmp / "x.npy", x)
    np.savez(tmp / "ref.npz", logits=fp32_out[0], features=fp32_out[1])
    proc = subprocess.run([qemu, "-cpu", "Haswell", sys.executable, "-m", "pixsight.models.int8_agreement",
                           str(tmp / "ref.npz"), str(int8_path), str(tmp / "x.npy")],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "CPU model unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="photo-size JPEGs to compare on (default 300)")
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds (default 5)")
    parser.add_argument("--kinds", default="vnni,avx2", help="recipes to measure (default vnni,avx2)")
    parser.add_argument("--emulate-avx2", action="store_true", help="also run each INT8 model on qemu's Haswell")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="ONNX Runtime threads (default: every CPU this process may use)")
    parser.add_argument("--fp32", type=Path, help="the FP32 ONNX file (default: pixsight's own export)")
    args = parser.parse_args(argv)

    from pixsight.models.export import ensure_onnx
    from pixsight.models.int8_cpu import CpuInt8, detect_int8_cpu, recipe_for
    from pixsight.models.quantize import GATE, agreement, quantize_int8
    from pixsight.models.zoo.imagenet import SPECS

    here = detect_int8_cpu()
    print(f"this CPU: {here.kind} ({', '.join(here.flags) or 'no flags read'}); {_cpu_model()}; "
          f"{len(os.sched_getaffinity(0))} CPUs, {args.threads} threads; load average {os.getloadavg()[0]:.2f}")
    fp32_path = args.fp32 or ensure_onnx(SPECS[0])
    pre = dict(SPECS[0].preprocess)
    with tempfile.TemporaryDirectory(prefix="pixsight-bench-int8-") as tmp_dir:
        tmp = Path(tmp_dir)
        x = photo_inputs(make_jpegs(tmp, args.n), pre)
        sessions = {"fp32": session(fp32_path, args.threads)}
        ref = run_all(sessions["fp32"], x)
        confident = agreement(ref, ref)["confident_images"]
        print(f"{args.n} photo-size JPEGs; FP32 is >= 50 % sure of {confident} of them\n")
        rows = []
        for kind in [k.strip() for k in args.kinds.split(",") if k.strip()]:
            t = time.perf_counter()
            path = tmp / f"int8-{kind}.onnx"
            report = quantize_int8(fp32_path, path, preprocess=pre, enforce_gate=False,
                                   cpu=CpuInt8(kind=kind, machine=here.machine, flags=here.flags))
            build_s = time.perf_counter() - t
            sessions[kind] = session(path, args.threads)
            photos = agreement(ref, run_all(sessions[kind], x))
            passes = all(getattr(report, k) >= v for k, v in GATE.items())
            rows.append((kind, report, photos, build_s, passes, path))
        rate16 = throughput(sessions, x, rounds=args.rounds, batch=16)
        rate1 = throughput(sessions, x, rounds=args.rounds, batch=1)
        print(f"FP32: {rate16['fp32']:.0f} img/s at batch 16, {rate1['fp32']:.0f} img/s at batch 1\n")
        for kind, report, photos, build_s, passes, path in rows:
            recipe = recipe_for(kind).name
            print(f"INT8 recipe '{recipe}' (for {kind} CPUs; built in {build_s:.0f} s, {path.stat().st_size / 1e6:.1f} MB)")
            print(f"  gate on 256 held-out crops, on this {here.kind} CPU: top-1 {report.top1_agreement:.3f}, "
                  f"when FP32 is sure {report.top1_agreement_confident:.3f}, feature cosine "
                  f"{report.feature_cosine_mean:.4f} -> {'passes' if passes else 'MISSES'} the gate")
            print(f"  photos, this CPU: top-1 = FP32 on {photos['top1_agreement']:.1%} of all, "
                  f"{photos['top1_agreement_confident']:.1%} of the {photos['confident_images']} FP32 is sure of; "
                  f"feature cosine {photos['feature_cosine_mean']:.4f}")
            print(f"  speed, this CPU: {rate16[kind]:.0f} img/s at batch 16 ({rate16[kind] / rate16['fp32']:.2f}x FP32), "
                  f"{rate1[kind]:.0f} img/s at batch 1 ({rate1[kind] / rate1['fp32']:.2f}x FP32)")
            if args.emulate_avx2:
                emu = emulated(ref, path, x, tmp)
                print(f"  photos, emulated AVX2-only CPU (probe saturates: {emu['probe']['saturates']}): top-1 = FP32 on "
                      f"{emu['top1_agreement']:.1%} of all, {emu['top1_agreement_confident']:.1%} of the "
                      f"{emu['confident_images']} FP32 is sure of; feature cosine {emu['feature_cosine_mean']:.4f} "
                      "(speed: not measurable under emulation)")
            print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
