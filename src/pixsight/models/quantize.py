"""An INT8 (VNNI) variant of the EfficientNet-Lite0 ONNX export, built offline and gated.

:func:`ensure_int8_onnx` turns the verified FP32 file of :func:`~pixsight.models.export.ensure_onnx`
into a statically quantised one, once, and caches it beside the FP32 file:

1. calibration: a few hundred deterministic crops, flips and rescales of scikit-image's
   bundled photos (astronaut, chelsea, coffee, rocket, motorcycle, camera, page, Hubble,
   retina, IHC, ...), preprocessed exactly as :class:`~pixsight.tasks.imagenet.ImageNetStage`
   does (:func:`~pixsight.core.preprocess.preprocess_into`, then ``(x - mean) / std``);
2. ``onnxruntime.quantization.quantize_static``: QDQ format, uint8 activations, int8
   per-channel weights (U8S8, the VNNI kernel), MinMax calibration. The stem and MBConv
   block 0 stay FP32 (:data:`FP32_NODES`): quantising the 9-tap depthwise weights of block 0
   alone flips ~10 % of top-1 answers on the held-out crops;
3. verification against FP32 on *other* crops (another seed): top-1 agreement overall and on
   the images FP32 is >= 50 % sure of, mean |delta top-1 probability|, cosine similarity of
   the ``features`` output. Below :data:`GATE` it raises
   :class:`~pixsight.core.errors.WeightsError` and writes nothing;
4. ``<export_name>-int8-<sha256 of the FP32 file, 16 hex>.onnx`` written atomically, with a
   sidecar ``.json`` holding the numbers, the gate and the INT8 file's own sha256.

Only numpy and pixsight are imported at module import time (no torch, no onnx);
onnxruntime.quantization is imported when a build is needed.

>>> from pixsight.models.registry import get_registry                   # doctest: +SKIP
>>> ensure_int8_onnx(get_registry().get("efficientnet-lite0")).name      # doctest: +SKIP
'efficientnet-lite0-int8-1c0ffee0....onnx'
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
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
from .export import _export_lock, ensure_onnx, read_sidecar, sha256_file
from .spec import ModelSpec

__all__ = ["GATE", "FP32_NODES", "Int8Report", "agreement", "ensure_int8_onnx", "int8_cache_name", "quantize_int8", "real_crops"]

log = logging.getLogger(__name__)

#: Bump when the recipe (calibration, settings, excluded nodes, gate) changes: old caches are rebuilt.
INT8_FORMAT = 2
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
_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle", "camera", "page", "hubble_deep_field",
           "retina", "immunohistochemistry", "clock", "coins", "text", "colorwheel", "logo", "moon", "brick", "grass",
           "gravel")


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
    cpu_vnni: bool | None
    versions: dict[str, str] = field(default_factory=dict)
    format: int = INT8_FORMAT
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def int8_cache_name(stem: str, fp32_sha256: str) -> str:
    """``<stem>-int8-<first 16 hex of the FP32 file's sha256>.onnx``.

    >>> int8_cache_name("efficientnet-lite0", "0123456789abcdef0123")
    'efficientnet-lite0-int8-0123456789abcdef.onnx'
    """
    return f"{stem}-int8-{fp32_sha256[:16]}.onnx"


# -- real images ----------------------------------------------------------------------------
def _photos() -> list[np.ndarray]:
    try:
        from skimage import data
    except ImportError as err:
        raise ModelUnavailableError(
            "scikit-image is needed once to calibrate the INT8 model (its bundled photos); "
            "pip install scikit-image, or use the FP32 model"
        ) from err
    out = []
    for name in _PHOTOS:
        try:
            img = data.stereo_motorcycle()[0] if name == "stereo_motorcycle" else getattr(data, name)()
        except Exception as err:  # noqa: BLE001 - a photo that needs a download is skipped
            log.debug("skimage photo %s unavailable: %s", name, err)
            continue
        img = np.asarray(img)
        img = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]
        out.append(np.ascontiguousarray(img.astype(np.uint8)))
    if len(out) < 4:
        raise ModelUnavailableError("too few scikit-image photos are available to calibrate the INT8 model")
    return out


def real_crops(n: int, *, seed: int, preprocess: Mapping[str, Any], jpeg_quality: int | None = None) -> np.ndarray:
    """``n`` deterministic crops/flips/rescales of skimage photos, as the model's input batch.

    Each crop keeps 35-100 % of the photo's area with a jittered aspect ratio, is flipped
    with probability 1/2 and rescaled by 0.5-1.5x, then goes through
    :func:`~pixsight.core.preprocess.preprocess_into` and ``(x - mean) / std`` exactly as
    in :class:`~pixsight.tasks.imagenet.ImageNetStage`. Returns (n, 3, size, size) float32.
    With ``jpeg_quality`` each crop is JPEG re-encoded first (same crops, same seed): FP32's
    agreement with itself on those is the noise floor the INT8 numbers are compared with.

    >>> real_crops(2, seed=0, preprocess={"size": 224}).shape         # doctest: +SKIP
    (2, 3, 224, 224)
    """
    from PIL import Image

    from ..core.preprocess import preprocess_into

    size = int(preprocess.get("size", 224))
    kw = {"size": size, "crop_pct": float(preprocess.get("crop_pct", 0.875)),
          "resize": str(preprocess.get("resize", "center_crop")),
          "interpolation": str(preprocess.get("interpolation", "bilinear"))}
    mean = np.asarray(preprocess.get("mean", [127.0] * 3), np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(preprocess.get("std", [128.0] * 3), np.float32).reshape(1, 3, 1, 1)
    photos = _photos()
    rng = np.random.default_rng(seed)
    out = np.empty((n, 3, size, size), np.float32)
    for i in range(n):
        img = photos[i % len(photos)]
        h, w = img.shape[:2]
        frac = np.sqrt(rng.uniform(0.35, 1.0))
        ch = max(16, int(h * frac))
        cw = min(w, max(16, int(w * frac * rng.uniform(0.8, 1.25))))
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop = img[y0:y0 + ch, x0:x0 + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        scale = rng.uniform(0.5, 1.5)
        pil = Image.fromarray(np.ascontiguousarray(crop))
        small = pil.resize((max(8, int(cw * scale)), max(8, int(ch * scale))), Image.Resampling.BILINEAR)
        if jpeg_quality is not None:
            buf = io.BytesIO()
            small.save(buf, "JPEG", quality=jpeg_quality)
            buf.seek(0)
            small = Image.open(buf).convert("RGB")
        crop = np.asarray(small)
        preprocess_into(np.ascontiguousarray(crop), out[i], **kw)
    out -= mean
    out /= std
    return out


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


def _excluded_nodes(model_path: Path, patterns: Sequence[str]) -> list[str]:
    """Nodes matching ``patterns`` plus the ``Clip`` (ReLU6) nodes next to them.

    The Clips must stay FP32 too: the quantiser otherwise folds a Clip into the range of its
    neighbour's quantised output, and with that neighbour in FP32 the ReLU6 is lost.
    """
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    chosen = {n.name for n in graph.node if any(re.search(p, n.name) for p in patterns)}
    outs = {o for n in graph.node if n.name in chosen for o in n.output}
    ins = {i for n in graph.node if n.name in chosen for i in n.input}
    chosen |= {n.name for n in graph.node if n.op_type == "Clip" and (n.input[0] in outs or n.output[0] in ins)}
    return sorted(chosen)


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


def _cpu_has_vnni() -> bool | None:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return bool(re.search(r"\b(avx512_vnni|avx_vnni|amx_int8)\b", text))


def quantize_int8(
    fp32_path: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    preprocess: Mapping[str, Any],
    n_calibration: int | None = None,
    n_heldout: int | None = None,
    fp32_nodes: Sequence[str] | None = None,
    gate: Mapping[str, float] | None = None,
) -> Int8Report:
    """Quantise the FP32 model ``fp32_path`` to ``dest`` and verify it; see the module docstring.

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
    fp32_path, dest = Path(fp32_path), Path(dest)
    fp32_sha = sha256_file(fp32_path)
    calib = real_crops(n_calibration, seed=CALIBRATION_SEED, preprocess=preprocess)
    held = real_crops(n_heldout, seed=HELDOUT_SEED, preprocess=preprocess)
    settings = {"per_channel": True, "activation_type": "QUInt8", "weight_type": "QInt8",
                "calibrate_method": "MinMax", "calibration_seed": CALIBRATION_SEED, "heldout_seed": HELDOUT_SEED}

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
            excluded = _excluded_nodes(pre, fp32_nodes)
            q.quantize_static(str(pre), str(tmp), _Reader(), quant_format=q.QuantFormat.QDQ, per_channel=True,
                              activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
                              calibrate_method=q.CalibrationMethod.MinMax, nodes_to_exclude=excluded)
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
        if failed:
            raise WeightsError(
                f"the INT8 model misses the accuracy gate against FP32 on {n_heldout} held-out crops "
                f"({'; '.join(failed)}; mean |delta top-1 prob| {numbers['mean_abs_delta_top1_prob']:.4f}, "
                f"feature cosine {numbers['feature_cosine_mean']:.4f}; for scale, FP32 on JPEG q90 copies of the "
                f"same crops agrees {numbers['fp32_jpeg90_top1_agreement']:.4f} with itself); "
                "nothing was cached. Use the FP32 model (precision 'fp32')",
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
        gate=gate, cpu_vnni=_cpu_has_vnni(), versions=_versions(),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    atomic_write_text(dest.with_suffix(".json"), json.dumps(report.to_dict(), indent=2) + "\n")
    log.info("built %s: top-1 agreement %.1f%% (%.1f%% when FP32 is sure), feature cosine %.4f",
             dest.name, 100 * report.top1_agreement, 100 * report.top1_agreement_confident, report.feature_cosine_mean)
    return report


def _versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for name in ("onnx", "onnxruntime"):
        with contextlib.suppress(ImportError):
            out[name] = __import__(name).__version__
    return out


# -- the cache ------------------------------------------------------------------------------
def _cached_ok(path: Path, fp32_sha: str) -> bool:
    if not path.is_file():
        return False
    meta = read_sidecar(path)
    if not meta or meta.get("format") != INT8_FORMAT or meta.get("fp32_sha256") != fp32_sha:
        log.warning("cached INT8 model %s has no valid sidecar; building it again", path)
        return False
    if sha256_file(path) != meta.get("onnx_sha256"):
        log.warning("cached INT8 model %s does not match its recorded sha256; building it again", path)
        return False
    return True


def ensure_int8_onnx(spec: ModelSpec, *, force: bool = False) -> Path:
    """The verified INT8 ONNX file for ``spec``: from the cache, or built once now (~20 s).

    The FP32 file comes from :func:`~pixsight.models.export.ensure_onnx`; the INT8 file's
    name carries the FP32 file's sha256, so a new export gives a new INT8 build.

    Raises:
        WeightsError: the FP32 export is unavailable, or the INT8 model misses :data:`GATE`.
        ModelUnavailableError: a build is needed and onnx/onnxruntime.quantization/scikit-image
            is missing.

    >>> from pixsight.models.zoo.imagenet import SPECS           # doctest: +SKIP
    >>> ensure_int8_onnx(SPECS[0]).name.startswith("efficientnet-lite0-int8-")  # doctest: +SKIP
    True
    """
    fp32_path = ensure_onnx(spec)
    meta = read_sidecar(fp32_path) or {}
    fp32_sha = str(meta.get("onnx_sha256") or sha256_file(fp32_path))
    stem = str(spec.options.get("export_name") or spec.name)
    path = fp32_path.with_name(int8_cache_name(stem, fp32_sha))
    if not force and _cached_ok(path, fp32_sha):
        return path
    with _export_lock(path):
        if not force and _cached_ok(path, fp32_sha):
            return path
        log.info("building the INT8 variant of %s once (about 20 s)", spec.name)
        quantize_int8(fp32_path, path, preprocess=spec.preprocess)
    return path
