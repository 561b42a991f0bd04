"""Which INT8 recipe suits this CPU: ONNX Runtime's integer kernels differ by CPU kind.

ONNX Runtime (MLAS) multiplies uint8 activations by int8 weights (U8S8) with a different
instruction on each kind of x86-64 CPU:

- **VNNI** (AVX-512 VNNI, AVX-VNNI or AMX-INT8): ``vpdpbusd`` adds the four products of a
  group straight into an int32 accumulator. Exact.
- **AVX2 and AVX-512 without VNNI** (most laptops, many cloud machines, Skylake-SP):
  ``vpmaddubsw`` first adds *pairs* of products into int16, which saturates at 32767.
  A pair of large activations (255) and large weights (127) gives 64770, clipped to 32767,
  so matrix products that see such pairs come out wrong. Depthwise convolutions use
  another kernel that accumulates in int32 and are exact on every CPU.

U8U8 (uint8 weights) widens both operands to int16 first and never saturates, but its
kernels are slower, and its depthwise kernel is slower than FP32. So the recipe follows
the CPU (:func:`recipe_for`):

========  =========================================================================
kind      recipe
========  =========================================================================
vnni      U8S8 everywhere (int8 per-channel weights): the fast exact VNNI kernels.
avx2      U8S8 for depthwise convolutions, **U8U8 for matrix-product nodes**
          (1x1/full convolutions, Gemm, MatMul): no int16 saturation anywhere.
generic   as avx2 (another architecture or an unreadable CPU: the recipe that is
          exact on every kernel ONNX Runtime has).
========  =========================================================================

The kind is *measured*, not only read from the flags: :func:`u8s8_saturates` runs a
two-number ``MatMulInteger`` in ONNX Runtime that comes out exact with VNNI kernels and
clipped with AVX2 ones. It decides on x86-64 (it also catches a VM or an OS that reports
flags the kernels do not use); the ``/proc/cpuinfo`` flags are recorded beside it.

A model quantised for one kind is valid only on that kind, so the INT8 cache keys files
by kind and the sidecar records the CPU features a file was built for
(:func:`pixsight.models.quantize.ensure_int8_onnx`).

>>> detect_int8_cpu("flags : fpu sse avx2 fma avx512f avx512bw avx512_vnni", machine="x86_64", probe=False).kind
'vnni'
>>> detect_int8_cpu("flags : fpu sse avx2 fma", machine="x86_64", probe=False).kind
'avx2'
>>> recipe_for("avx2").gemm_weight_type
'QUInt8'
"""

from __future__ import annotations

import base64
import functools
import logging
import platform
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["CPU_KINDS", "CpuInt8", "Int8Recipe", "detect_int8_cpu", "gemm_weight_overrides", "recipe_for",
           "saturation_probe", "u8s8_saturates"]

log = logging.getLogger(__name__)

#: CPU kinds an INT8 build is made for (see the module docstring).
CPU_KINDS: tuple[str, ...] = ("vnni", "avx2", "generic")
#: Flags (from /proc/cpuinfo) that give ONNX Runtime exact U8S8 kernels.
_VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
#: Flags recorded in the INT8 sidecar (what the integer kernels depend on).
_RECORDED_FLAGS = ("sse4_1", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")


#: ``MatMulInteger(A uint8 [1, 64], B int8 [64, 1])`` with B all 127, serialised (163 bytes, ONNX
#: opset 13) so that the probe needs onnxruntime only; a test rebuilds it with ``onnx.helper``.
_PROBE_MODEL = base64.b64decode(
    "CAc6mAEKGAoBQQoBQhIBWSINTWF0TXVsSW50ZWdlchIFcHJvYmUqSwhACAEQA0IBQkpAf39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/"
    "f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f1oTCgFBEg4KDAgCEggKAggBCgIIQGITCgFZEg4KDAgGEggKAggBCgIIAUIECgAQDQ==")
_PROBE_K = 64


@dataclass(frozen=True)
class CpuInt8:
    """The CPU an INT8 model is built for: its kind, the flags read and the probe's answer."""

    kind: str
    machine: str
    flags: tuple[str, ...]
    u8s8_saturates: bool | None = None  # measured by :func:`u8s8_saturates`; None: not measured

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "machine": self.machine, "flags": list(self.flags),
                "u8s8_saturates": self.u8s8_saturates}


def saturation_probe() -> dict[str, Any]:
    """Multiply 64 x 255 by 64 x 127 in ONNX Runtime (U8S8) and compare with the exact sum.

    Exact VNNI/AMX kernels give 255 * 127 * 64 = 2072640; AVX2 and AVX-512 (without VNNI)
    kernels clip each int16 pair sum to 32767 and give 32 * 32767 = 1048544.

    >>> saturation_probe()["exact"]
    2072640
    """
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(_PROBE_MODEL, opts, providers=["CPUExecutionProvider"])
    got = int(session.run(None, {"A": np.full((1, _PROBE_K), 255, np.uint8)})[0][0, 0])
    exact = 255 * 127 * _PROBE_K
    return {"got": got, "exact": exact, "saturates": got != exact}


@functools.lru_cache(maxsize=1)
def u8s8_saturates() -> bool | None:
    """Whether ONNX Runtime's U8S8 kernels saturate on this CPU (``None``: could not tell).

    Measured once per process by :func:`saturation_probe` (a few milliseconds).
    """
    try:
        return bool(saturation_probe()["saturates"])
    except Exception as err:  # noqa: BLE001 - no onnxruntime, or an EP that cannot run it: fall back to flags
        log.debug("INT8 saturation probe failed: %s", err)
        return None


@dataclass(frozen=True)
class Int8Recipe:
    """Quantisation settings for one CPU kind (stored in the INT8 sidecar as ``settings``)."""

    name: str
    activation_type: str = "QUInt8"
    weight_type: str = "QInt8"         # depthwise convolutions (and everything on VNNI)
    gemm_weight_type: str = "QInt8"    # weights of matrix-product nodes
    per_channel: bool = True
    reduce_range: bool = False
    calibrate_method: str = "MinMax"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_RECIPES: dict[str, Int8Recipe] = {
    "vnni": Int8Recipe(name="u8s8"),
    "avx2": Int8Recipe(name="u8s8-depthwise-u8u8-gemm", gemm_weight_type="QUInt8"),
    "generic": Int8Recipe(name="u8s8-depthwise-u8u8-gemm", gemm_weight_type="QUInt8"),
}


def recipe_for(kind: str) -> Int8Recipe:
    """The recipe for a CPU kind (one of :data:`CPU_KINDS`).

    >>> recipe_for("vnni").name
    'u8s8'
    """
    try:
        return _RECIPES[kind]
    except KeyError:
        raise ValueError(f"unknown CPU kind {kind!r}; expected one of {', '.join(CPU_KINDS)}") from None


def detect_int8_cpu(cpuinfo: str | None = None, *, machine: str | None = None,
                    saturates: bool | None = None, probe: bool = True) -> CpuInt8:
    """This CPU's kind for INT8.

    ``/proc/cpuinfo`` is read unless ``cpuinfo`` is given; the probe (:func:`u8s8_saturates`)
    runs unless ``saturates`` is given or ``probe`` is false. On x86-64 the probe decides
    (``vnni`` when exact, ``avx2`` when it saturates) and the flags decide only when it
    cannot run; a disagreement is logged. Other architectures are ``generic`` (the recipe
    that is exact everywhere).

    >>> detect_int8_cpu("flags : avx2 avx_vnni", machine="AMD64", probe=False).kind
    'vnni'
    >>> detect_int8_cpu("flags : avx2 avx512_vnni", machine="x86_64", saturates=True).kind
    'avx2'
    >>> detect_int8_cpu("Features : fp asimd", machine="aarch64", probe=False).kind
    'generic'
    """
    machine = (machine or platform.machine() or "unknown").lower()
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            cpuinfo = ""
    first = re.search(r"^(?:flags|Features)\s*:(.*)$", cpuinfo, flags=re.MULTILINE)
    have = set(first.group(1).split()) if first else set()
    flags = tuple(f for f in _RECORDED_FLAGS if f in have)
    if saturates is None and probe:
        saturates = u8s8_saturates()
    by_flags = ("vnni" if any(f in have for f in _VNNI_FLAGS) else "avx2") if have else None
    if machine not in ("x86_64", "amd64"):
        kind = "generic"
    elif saturates is not None:
        kind = "avx2" if saturates else "vnni"
        if by_flags is not None and by_flags != kind:
            log.warning("the CPU flags say %s but ONNX Runtime's integer kernels %s: building INT8 for %s",
                        by_flags, "saturate" if saturates else "are exact", kind)
    else:
        kind = by_flags or "generic"
    return CpuInt8(kind=kind, machine=machine, flags=flags, u8s8_saturates=saturates)


def gemm_weight_overrides(graph: Any, recipe: Int8Recipe) -> dict[str, list[dict[str, Any]]]:
    """``TensorQuantOverrides`` giving matrix-product weights the recipe's weight type.

    ``graph`` is an ``onnx.GraphProto``. Matrix-product nodes are convolutions with
    ``group == 1`` (1x1 and full convolutions run as im2col + GEMM), ``Gemm`` and
    ``MatMul`` with a constant weight; depthwise convolutions keep ``weight_type``.
    Returns ``{}`` when the recipe uses one weight type for all.
    """
    if recipe.gemm_weight_type == recipe.weight_type:
        return {}
    from onnxruntime.quantization import QuantType

    qtype = getattr(QuantType, recipe.gemm_weight_type)
    constants = {t.name for t in graph.initializer}
    out: dict[str, list[dict[str, Any]]] = {}
    for node in graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul") or len(node.input) < 2 or node.input[1] not in constants:
            continue
        attrs = {a.name: a.i for a in node.attribute}
        if node.op_type == "Conv" and attrs.get("group", 1) != 1:
            continue  # depthwise / grouped: exact int32 kernel
        # the output-channel axis of the weight, as the per-channel quantiser expects it
        axis = 0 if node.op_type == "Conv" or (node.op_type == "Gemm" and attrs.get("transB", 0)) else 1
        override: dict[str, Any] = {"quant_type": qtype}
        if recipe.per_channel:
            override["axis"] = axis
        out[node.input[1]] = [override]
    return out
