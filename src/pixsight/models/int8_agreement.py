"""Compare an INT8 model with its FP32 twin on saved inputs, in a process of its own.

Run as ``python -m pixsight.models.int8_agreement FP32 INT8.onnx CROPS.npy``; it prints
one JSON object: the numbers :data:`pixsight.models.quantize.GATE` checks
(:func:`pixsight.models.quantize.agreement`) and the result of the int16-saturation probe
(:func:`pixsight.models.int8_cpu.saturation_probe`) that tells which integer kernels this
CPU gives ONNX Runtime. Only numpy and
onnxruntime are needed, so it runs quickly under an emulated CPU, e.g. an AVX2-only one:

    qemu-x86_64 -cpu Haswell .venv/bin/python -m pixsight.models.int8_agreement ...

which is how the tests and ``benchmarks/bench_int8.py`` check the AVX2 recipe on a machine
that has VNNI. ``FP32`` is the FP32 model, or an ``.npz`` of its outputs on the same crops
(``logits``, ``features``) computed elsewhere: FP32 answers do not depend on the CPU's
integer kernels, and emulating them is the slow half.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np

from .int8_cpu import saturation_probe

__all__ = ["compare"]


def compare(fp32_path: str, int8_path: str, crops_path: str, *, threads: int = 2) -> dict[str, Any]:
    """Agreement of ``int8_path`` with ``fp32_path`` on the (N, 3, H, W) float32 batch in ``crops_path``.

    ``fp32_path`` may be an ``.npz`` holding the FP32 model's ``logits`` and ``features``.
    """
    import onnxruntime as ort

    from .quantize import agreement

    crops = np.load(crops_path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads

    def run(path: str) -> tuple[np.ndarray, np.ndarray]:
        session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        parts = [session.run(["logits", "features"], {"input": crops[i:i + 16]}) for i in range(0, len(crops), 16)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    if fp32_path.endswith(".npz"):
        with np.load(fp32_path) as saved:
            ref = (saved["logits"], saved["features"])
    else:
        ref = run(fp32_path)
    return {**agreement(ref, run(int8_path)), "images": int(len(crops)), "probe": saturation_probe()}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python -m pixsight.models.int8_agreement FP32.onnx|FP32.npz INT8.onnx CROPS.npy", file=sys.stderr)
        return 2
    print(json.dumps(compare(*args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
