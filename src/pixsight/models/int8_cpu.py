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

A model quantised for one kind is valid only on that kind, so the INT8 cache keys files
by kind and the sidecar records the CPU features a file was built for
(:func:`pixsight.models.quantize.ensure_int8_onnx`).

>>> detect_int8_cpu("flags : fpu sse avx2 fma avx512f avx512bw avx512_vnni", machine="x86_64").kind
'vnni'
>>> detect_int8_cpu("flags : fpu sse avx2 fma", machine="x86_64").kind
'avx2'
>>> recipe_for("avx2").gemm_weight_type
'QUInt8'
"""

from __future__ import annotations

import platform
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["CPU_KINDS", "CpuInt8", "Int8Recipe", "detect_int8_cpu", "gemm_weight_overrides", "recipe_for"]

#: CPU kinds an INT8 build is made for (see the module docstring).
CPU_KINDS: tuple[str, ...] = ("vnni", "avx2", "generic")
#: Flags (from /proc/cpuinfo) that give ONNX Runtime exact U8S8 kernels.
_VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
#: Flags recorded in the INT8 sidecar (what the integer kernels depend on).
_RECORDED_FLAGS = ("sse4_1", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")


@dataclass(frozen=True)
class CpuInt8:
    """The CPU an INT8 model is built for: its kind and the flags that decided it."""

    kind: str
    machine: str
    flags: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "machine": self.machine, "flags": list(self.flags)}


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


def detect_int8_cpu(cpuinfo: str | None = None, *, machine: str | None = None) -> CpuInt8:
    """This CPU's kind for INT8 (``/proc/cpuinfo`` is read unless ``cpuinfo`` is given).

    Only x86-64 is told apart; other architectures, and machines without a readable
    ``/proc/cpuinfo``, are ``generic`` (the recipe that is exact everywhere).

    >>> detect_int8_cpu("flags : avx2 avx_vnni", machine="AMD64").kind
    'vnni'
    >>> detect_int8_cpu("Features : fp asimd", machine="aarch64").kind
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
    if machine not in ("x86_64", "amd64") or not have:
        kind = "generic"
    elif any(f in have for f in _VNNI_FLAGS):
        kind = "vnni"
    else:
        kind = "avx2"
    return CpuInt8(kind=kind, machine=machine, flags=flags)


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
