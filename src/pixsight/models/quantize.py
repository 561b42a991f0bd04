"""An INT8 variant of the EfficientNet-Lite0 ONNX export, built offline for this CPU and gated.

:func:`ensure_int8_onnx` turns the verified FP32 file of :func:`~pixsight.models.export.ensure_onnx`
into a statically quantised one, once, and caches it beside the FP32 file:

1. calibration: a few hundred deterministic crops, flips and rescales of scikit-image's
   bundled photos (:func:`~pixsight.models.calibration.real_crops`), preprocessed exactly as
   :class:`~pixsight.tasks.imagenet.ImageNetStage` does;
2. ``onnxruntime.quantization.quantize_static``: QDQ format, uint8 activations, per-channel
   weights, MinMax calibration, with the weight types of the recipe for this CPU's kind
   (:mod:`pixsight.models.int8_cpu`): int8 everywhere on VNNI CPUs (U8S8, exact VNNI
   kernels); on AVX2-only CPUs, whose U8S8 matrix kernels saturate int16 pair sums, uint8
   weights for the matrix-product nodes (U8U8) and int8 for depthwise convolutions. The
   stem and MBConv block 0 stay FP32 (:data:`FP32_NODES`): quantising the 9-tap depthwise
   weights of block 0 alone flips ~10 % of top-1 answers on the held-out crops;
3. verification against FP32 on *other* crops (another seed): top-1 agreement overall and on
   the images FP32 is >= 50 % sure of, mean |delta top-1 probability|, cosine similarity of
   the ``features`` output. Below :data:`GATE` it raises
   :class:`~pixsight.core.errors.WeightsError` and writes nothing;
4. ``<export_name>-int8-<cpu kind>-<sha256 of the FP32 file, 16 hex>.onnx`` written
   atomically, with a sidecar ``.json`` holding the numbers, the gate, the recipe, the CPU
   kind and flags it was built for and the INT8 file's own sha256. A cached file built for
   another CPU kind, with another recipe or format, or whose bytes changed, is rebuilt.

Only numpy and pixsight are imported at module import time (no torch, no onnx);
onnxruntime.quantization is imported when a build is needed.

>>> from pixsight.models.registry import get_registry                   # doctest: +SKIP
>>> ensure_int8_onnx(get_registry().get("efficientnet-lite0")).name      # doctest: +SKIP
'efficientnet-lite0-int8-vnni-1c0ffee0....onnx'
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..core.errors import ModelUnavailableError, WeightsError
from ..core.fileio import atomic_write_text
from .calibration import real_crops
from .export import _export_lock, ensure_onnx, read_sidecar, sha256_file
from .int8_cpu import CpuInt8, detect_int8_cpu, gemm_weight_overrides, recipe_for
from .spec import ModelSpec

__all__ = ["GATE", "FP32_NODES", "Int8Report", "agreement", "ensure_int8_onnx", "int8_cache_name", "quantize_int8",
           "real_crops"]

log = logging.getLogger(__name__)

#: Bump when the recipe (calibration, settings, excluded nodes, gate) changes: old caches are rebuilt.
INT8_FORMAT = 3
#: The accuracy gate against FP32 on held-out crops (an INT8 file below it is never written).
GATE: dict[str, float] = {
    # all held-out crops. FP32 agrees with *itself* on only 0.875 of these crops after a
    # JPEG quality-90 re-encode (textures/microscopy with near-tied classes), so INT8 must
    # do at least that well rather than meet an arbitrary 0.95.
    "top1_agreement": 0.88,
    "top1_agreement_confident": 0.99,  # crops FP32 gives >= 50 % to its top-1 class
    "feature_cosine_mean": 0.98,       # cosine(INT8 features, FP32 features), mean over crops
}
#: Node-name patterns kept in FP32 (the stem and MBConv block 0; see the module docstring).
FP32_NODES: tuple[str, ...] = (r"/_conv_stem/", r"/_blocks\.0/")
N_CALIBRATION = 256
N_HELDOUT = 256
CALIBRATION_SEED = 1
HELDOUT_SEED = 2
_CONFIDENT = 0.5


@dataclass(frozen=True)
class Int8Report:
    """How the INT8 file was made and how closely it follows FP32 (stored in the sidecar)."""

    onnx_path: str
    onnx_sha256: str
    fp32_path: str
    fp32_sha256: str
    quant_format: str
    settings: dict[str, Any]
    fp32_nodes: list[str]
    calibration_images: int
    heldout_images: int
    confident_images: int
    top1_agreement: float
    top1_agreement_confident: float
    mean_abs_delta_top1_prob: float
    feature_cosine_mean: float
    feature_cosine_min: float
    fp32_jpeg90_top1_agreement: float  # noise floor: FP32 vs FP32 on JPEG q90 copies of the crops
    fp32_jpeg90_feature_cosine_mean: float
    gate: dict[str, float]
    cpu: dict[str, Any]                # the CPU kind, machine and flags it was built for
    versions: dict[str, str] = field(default_factory=dict)
    format: int = INT8_FORMAT
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def int8_cache_name(stem: str, fp32_sha256: str, cpu_kind: str) -> str:
    """``<stem>-int8-<cpu kind>-<first 16 hex of the FP32 file's sha256>.onnx``.

    >>> int8_cache_name("efficientnet-lite0", "0123456789abcdef0123", "avx2")
    'efficientnet-lite0-int8-avx2-0123456789abcdef.onnx'
    """
    return f"{stem}-int8-{cpu_kind}-{fp32_sha256[:16]}.onnx"


# -- the build ------------------------------------------------------------------------------
def _quant_modules() -> Any:
    try:
        from onnxruntime import quantization
    except ImportError as err:
        raise ModelUnavailableError(
            "onnxruntime.quantization (and onnx) are needed once to build the INT8 model; "
            "pip install onnx onnxruntime, or use the FP32 model"
        ) from err
    return quantization


def _excluded_nodes(graph: Any, patterns: Sequence[str]) -> list[str]:
    """Nodes matching ``patterns`` plus the ``Clip`` (ReLU6) nodes next to them.

    The Clips must stay FP32 too: the quantiser otherwise folds a Clip into the range of its
    neighbour's quantised output, and with that neighbour in FP32 the ReLU6 is lost.
    """
    chosen = {n.name for n in graph.node if any(re.search(p, n.name) for p in patterns)}
    outs = {o for n in graph.node if n.name in chosen for o in n.output}
    ins = {i for n in graph.node if n.name in chosen for i in n.input}
    chosen |= {n.name for n in graph.node if n.op_type == "Clip" and (n.input[0] in outs or n.output[0] in ins)}
    return sorted(chosen)


def _plan(model_path: Path, fp32_patterns: Sequence[str], recipe: Any) -> tuple[list[str], dict[str, Any]]:
    """Nodes kept in FP32 and the per-weight type overrides of ``recipe``."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    excluded = _excluded_nodes(graph, fp32_patterns)
    skip = {n.input[1] for n in graph.node if n.name in excluded and len(n.input) > 1}
    overrides = {k: v for k, v in gemm_weight_overrides(graph, recipe).items() if k not in skip}
    return excluded, overrides


def _run(session: Any, x: np.ndarray, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    parts = [session.run(["logits", "features"], {"input": x[i:i + batch]}) for i in range(0, len(x), batch)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z.astype(np.float64) - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def agreement(ref: tuple[np.ndarray, np.ndarray], got: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    """How closely ``got`` (logits, features) follows ``ref``: the numbers :data:`GATE` checks.

    >>> z = np.eye(3, dtype=np.float32) * 5
    >>> agreement((z, z), (z, z))["top1_agreement"]
    1.0
    """
    ref_p, got_p = _softmax(ref[0]), _softmax(got[0])
    top = ref_p.argmax(1)
    same = top == got_p.argmax(1)
    confident = ref_p.max(1) >= _CONFIDENT
    rows = np.arange(len(top))
    rf, gf = ref[1].astype(np.float64), got[1].astype(np.float64)
    cos = (rf * gf).sum(1) / np.maximum(np.linalg.norm(rf, axis=1) * np.linalg.norm(gf, axis=1), 1e-12)
    return {
        "top1_agreement": float(same.mean()),
        "top1_agreement_confident": float(same[confident].mean()) if confident.any() else 1.0,
        "confident_images": int(confident.sum()),
        "mean_abs_delta_top1_prob": float(np.abs(ref_p[rows, top] - got_p[rows, top]).mean()),
        "feature_cosine_mean": float(cos.mean()),
        "feature_cosine_min": float(cos.min()),
    }


def quantize_int8(
    fp32_path: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    preprocess: Mapping[str, Any],
    n_calibration: int | None = None,
    n_heldout: int | None = None,
    fp32_nodes: Sequence[str] | None = None,
    gate: Mapping[str, float] | None = None,
    cpu: CpuInt8 | None = None,
    enforce_gate: bool = True,
) -> Int8Report:
    """Quantise the FP32 model ``fp32_path`` to ``dest`` and verify it; see the module docstring.

    ``cpu`` (default: this machine's, :func:`~pixsight.models.int8_cpu.detect_int8_cpu`)
    chooses the recipe. The gate is measured on *this* CPU, so a build for another kind is
    for inspection (benchmarks) only. ``enforce_gate=False`` writes the file and its numbers
    even below the gate (benchmarks); pixsight itself never does that.

    Raises:
        WeightsError: the INT8 model misses :data:`GATE` (or ``gate``) on the held-out crops,
            or quantisation fails; nothing is written then.
        ModelUnavailableError: onnxruntime.quantization, onnx or scikit-image is missing.
    """
    q = _quant_modules()
    from .runtime import create_session

    gate = dict(GATE if gate is None else gate)
    n_calibration = N_CALIBRATION if n_calibration is None else n_calibration
    n_heldout = N_HELDOUT if n_heldout is None else n_heldout
    fp32_nodes = FP32_NODES if fp32_nodes is None else fp32_nodes
    cpu = detect_int8_cpu() if cpu is None else cpu
    recipe = recipe_for(cpu.kind)
    fp32_path, dest = Path(fp32_path), Path(dest)
    fp32_sha = sha256_file(fp32_path)
    calib = real_crops(n_calibration, seed=CALIBRATION_SEED, preprocess=preprocess)
    held = real_crops(n_heldout, seed=HELDOUT_SEED, preprocess=preprocess)
    settings = {**recipe.to_dict(), "calibration_seed": CALIBRATION_SEED, "heldout_seed": HELDOUT_SEED}

    class _Reader(q.CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter([{"input": calib[i:i + 16]} for i in range(0, len(calib), 16)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".int8-", dir=dest.parent) as work_dir:
        work = Path(work_dir)
        pre, tmp = work / "pre.onnx", work / "int8.onnx"
        try:
            from onnxruntime.quantization.shape_inference import quant_pre_process

            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
            excluded, overrides = _plan(pre, fp32_nodes, recipe)
            q.quantize_static(str(pre), str(tmp), _Reader(), quant_format=q.QuantFormat.QDQ,
                              per_channel=recipe.per_channel, reduce_range=recipe.reduce_range,
                              activation_type=getattr(q.QuantType, recipe.activation_type),
                              weight_type=getattr(q.QuantType, recipe.weight_type),
                              calibrate_method=getattr(q.CalibrationMethod, recipe.calibrate_method),
                              nodes_to_exclude=excluded, extra_options={"TensorQuantOverrides": overrides})
            settings["gemm_weights_overridden"] = len(overrides)
        except Exception as err:  # the quantiser raises many types
            raise WeightsError(f"INT8 quantisation of {fp32_path.name} failed: {type(err).__name__}: {err}",
                               path=str(dest)) from err
        fp32 = create_session(fp32_path, check_external_data=False)
        int8 = create_session(tmp, check_external_data=False)
        ref = _run(fp32, held)
        numbers = agreement(ref, _run(int8, held))
        jpeg = real_crops(n_heldout, seed=HELDOUT_SEED, preprocess=preprocess, jpeg_quality=90)
        floor = agreement(ref, _run(fp32, jpeg))
        numbers["fp32_jpeg90_top1_agreement"] = floor["top1_agreement"]
        numbers["fp32_jpeg90_feature_cosine_mean"] = floor["feature_cosine_mean"]
        del fp32, int8
        failed = [f"{k} {numbers[k]:.4f} < {v:g}" for k, v in gate.items() if not numbers[k] >= v]
        if failed and enforce_gate:
            raise WeightsError(
                f"the INT8 model misses the accuracy gate against FP32 on {n_heldout} held-out crops "
                f"({'; '.join(failed)}; mean |delta top-1 prob| {numbers['mean_abs_delta_top1_prob']:.4f}, "
                f"feature cosine {numbers['feature_cosine_mean']:.4f}; for scale, FP32 on JPEG q90 copies of the "
                f"same crops agrees {numbers['fp32_jpeg90_top1_agreement']:.4f} with itself; recipe "
                f"{recipe.name} for a {cpu.kind} CPU); nothing was cached. Use the FP32 model (precision 'fp32')",
                path=str(dest),
            )
        os.chmod(tmp, 0o644)
        int8_sha = sha256_file(tmp)
        os.replace(tmp, dest)
    report = Int8Report(
        onnx_path=str(dest), onnx_sha256=int8_sha, fp32_path=str(fp32_path), fp32_sha256=fp32_sha,
        quant_format="QDQ", settings=settings, fp32_nodes=excluded, calibration_images=n_calibration,
        heldout_images=n_heldout, confident_images=numbers["confident_images"],
        top1_agreement=numbers["top1_agreement"], top1_agreement_confident=numbers["top1_agreement_confident"],
        mean_abs_delta_top1_prob=numbers["mean_abs_delta_top1_prob"],
        feature_cosine_mean=numbers["feature_cosine_mean"], feature_cosine_min=numbers["feature_cosine_min"],
        fp32_jpeg90_top1_agreement=numbers["fp32_jpeg90_top1_agreement"],
        fp32_jpeg90_feature_cosine_mean=numbers["fp32_jpeg90_feature_cosine_mean"],
        gate=gate, cpu=cpu.to_dict(), versions=_versions(),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    atomic_write_text(dest.with_suffix(".json"), json.dumps(report.to_dict(), indent=2) + "\n")
    log.info("built %s (%s recipe for a %s CPU): top-1 agreement %.1f%% (%.1f%% when FP32 is sure), "
             "feature cosine %.4f", dest.name, recipe.name, cpu.kind, 100 * report.top1_agreement,
             100 * report.top1_agreement_confident, report.feature_cosine_mean)
    return report


def _versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for name in ("onnx", "onnxruntime"):
        with contextlib.suppress(ImportError):
            out[name] = __import__(name).__version__
    return out


# -- the cache ------------------------------------------------------------------------------
def _cached_ok(path: Path, fp32_sha: str, cpu: CpuInt8) -> bool:
    if not path.is_file():
        return False
    meta = read_sidecar(path)
    if not meta or meta.get("format") != INT8_FORMAT or meta.get("fp32_sha256") != fp32_sha:
        log.warning("cached INT8 model %s has no valid sidecar; building it again", path)
        return False
    built_for = (meta.get("cpu") or {}).get("kind")
    if built_for != cpu.kind or (meta.get("settings") or {}).get("name") != recipe_for(cpu.kind).name:
        log.warning("cached INT8 model %s was built for a %s CPU, this one is %s; building it again",
                    path, built_for or "unknown", cpu.kind)
        return False
    if sha256_file(path) != meta.get("onnx_sha256"):
        log.warning("cached INT8 model %s does not match its recorded sha256; building it again", path)
        return False
    return True


def ensure_int8_onnx(spec: ModelSpec, *, force: bool = False) -> Path:
    """The verified INT8 ONNX file for ``spec``: from the cache, or built once now (~20 s).

    The FP32 file comes from :func:`~pixsight.models.export.ensure_onnx`; the INT8 file's
    name carries this CPU's kind (:func:`~pixsight.models.int8_cpu.detect_int8_cpu`) and the
    FP32 file's sha256, so a new export, or a home shared with a machine of another kind,
    gives a new INT8 build made and gated on this CPU.

    Raises:
        WeightsError: the FP32 export is unavailable, or the INT8 model misses :data:`GATE`.
        ModelUnavailableError: a build is needed and onnx/onnxruntime.quantization/scikit-image
            is missing.

    >>> from pixsight.models.zoo.imagenet import SPECS           # doctest: +SKIP
    >>> ensure_int8_onnx(SPECS[0]).name.startswith("efficientnet-lite0-int8-")  # doctest: +SKIP
    True
    """
    cpu = detect_int8_cpu()
    fp32_path = ensure_onnx(spec)
    meta = read_sidecar(fp32_path) or {}
    fp32_sha = str(meta.get("onnx_sha256") or sha256_file(fp32_path))
    stem = str(spec.options.get("export_name") or spec.name)
    path = fp32_path.with_name(int8_cache_name(stem, fp32_sha, cpu.kind))
    if not force and _cached_ok(path, fp32_sha, cpu):
        return path
    with _export_lock(path):
        if not force and _cached_ok(path, fp32_sha, cpu):
            return path
        log.info("building the INT8 variant of %s for this %s CPU once (about 20 s)", spec.name, cpu.kind)
        quantize_int8(fp32_path, path, preprocess=spec.preprocess, cpu=cpu)
    return path
