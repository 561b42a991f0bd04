"""The INT8 variant of EfficientNet-Lite0: gate, cache, numerics and stage wiring.

Builds use 48 calibration and 48 held-out crops (the real build uses 256 of each) so that
each takes a few seconds; they run in a private PIXSIGHT_HOME seeded with a copy of the
shared FP32 export.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pixsight.core.errors import ConfigError, WeightsError
from pixsight.models import quantize as quant_mod
from pixsight.models.export import ensure_onnx, read_sidecar, sha256_file
from pixsight.models.quantize import agreement, ensure_int8_onnx, int8_cache_name
from pixsight.models.zoo.imagenet import SPECS, with_precision

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxruntime.quantization")
pytest.importorskip("skimage")

CATS = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}
COFFEE = {"espresso", "cup", "coffee mug"}
#: Gates this model passes (INT8 misses the default 95 % overall top-1 agreement; see the docs).
PASSABLE_GATE = {"top1_agreement_confident": 0.95, "feature_cosine_mean": 0.98}


def _seed_home(home: Path, fp32: Path) -> Path:
    dest = home / "models" / fp32.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(fp32, dest)
    shutil.copy2(fp32.with_suffix(".json"), dest.with_suffix(".json"))
    return dest


@pytest.fixture(scope="module")
def shared_fp32(pixsight_home: Path) -> Path:
    return ensure_onnx(SPECS[0])


@pytest.fixture(scope="module")
def int8_home(shared_fp32: Path, tmp_path_factory: pytest.TempPathFactory):
    """A private home holding the FP32 export and an INT8 build made under PASSABLE_GATE."""
    home = tmp_path_factory.mktemp("int8-home")
    _seed_home(home, shared_fp32)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PIXSIGHT_HOME", str(home))
        mp.setattr(quant_mod, "N_CALIBRATION", 48)
        mp.setattr(quant_mod, "N_HELDOUT", 48)
        mp.setattr(quant_mod, "GATE", dict(PASSABLE_GATE))
        path = ensure_int8_onnx(SPECS[0])
        yield home, path, mp


# -- fast ----------------------------------------------------------------------------------
def test_cache_name_carries_the_fp32_hash() -> None:
    assert int8_cache_name("efficientnet-lite0", "ab" * 32) == "efficientnet-lite0-int8-abababababababab.onnx"


def test_agreement_numbers() -> None:
    logits = np.array([[4.0, 0.0, 0.0], [0.0, 0.3, 0.2], [0.0, 0.0, 5.0]], np.float32)
    feats = np.eye(3, dtype=np.float32)
    flipped = logits.copy()
    flipped[1] = [0.0, 0.2, 0.3]  # an unsure image changes its top-1
    out = agreement((logits, feats), (flipped, feats * 2))
    assert out["top1_agreement"] == pytest.approx(2 / 3)
    assert out["top1_agreement_confident"] == 1.0 and out["confident_images"] == 2
    assert out["feature_cosine_mean"] == pytest.approx(1.0)
    assert out["mean_abs_delta_top1_prob"] > 0


@pytest.mark.parametrize("index, precision, key", [
    (0, "int8", "efficientnet-lite0@1-int8"),
    (1, "int8", "efficientnet-lite0-embed@1-int8"),
    (0, "fp32", "efficientnet-lite0@1"),
])
def test_precision_changes_the_result_key(index: int, precision: str, key: str) -> None:
    spec = with_precision(SPECS[index], precision)
    assert spec.key == key and spec.options["precision"] == precision
    assert with_precision(spec, "fp32").key == SPECS[index].key  # and back


def test_defaults_stay_fp32_and_int8_is_opt_in() -> None:
    defaults = [s for s in SPECS if s.default]
    assert [s.key for s in defaults] == ["efficientnet-lite0@1", "efficientnet-lite0-embed@1"]
    assert all(s.options["precision"] == "fp32" for s in defaults)
    int8 = {s.name: s for s in SPECS if s.options["precision"] == "int8"}
    assert set(int8) == {"efficientnet-lite0-int8", "efficientnet-lite0-int8-embed"}
    # an INT8 classifier never shares a stage (and so a model file) with an FP32 embedder
    assert int8["efficientnet-lite0-int8"].options["shared_weights"] != SPECS[1].options["shared_weights"]
    with pytest.raises(ValueError, match="precision"):
        with_precision(SPECS[0], "fp16")


def test_stage_refuses_an_unknown_precision() -> None:
    from pixsight.tasks.imagenet import ImageNetStage

    spec = SPECS[0].from_dict({**SPECS[0].to_dict(), "options": {**SPECS[0].options, "precision": "int4"}})
    with pytest.raises(ConfigError, match="precision"):
        ImageNetStage(spec)


def test_importing_quantize_does_not_import_torch_or_onnx() -> None:
    code = "import sys, pixsight.models.quantize; print('torch' in sys.modules, 'onnx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


# -- builds --------------------------------------------------------------------------------
@pytest.mark.slow
def test_build_below_the_gate_is_refused_and_writes_nothing(shared_fp32: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXSIGHT_HOME", str(tmp_path / "home"))
    _seed_home(tmp_path / "home", shared_fp32)
    monkeypatch.setattr(quant_mod, "N_CALIBRATION", 32)
    monkeypatch.setattr(quant_mod, "N_HELDOUT", 32)
    monkeypatch.setattr(quant_mod, "GATE", {"top1_agreement": 1.01})  # nothing can pass
    with pytest.raises(WeightsError, match="accuracy gate"):
        ensure_int8_onnx(SPECS[0])
    left = sorted(p.name for p in (tmp_path / "home" / "models").iterdir() if not p.name.endswith(".lock"))
    assert left == sorted([shared_fp32.name, shared_fp32.with_suffix(".json").name])


@pytest.mark.slow
def test_int8_build_is_recorded_and_close_to_fp32(int8_home, shared_fp32: Path) -> None:
    _, path, _ = int8_home
    fp32_sha = sha256_file(shared_fp32)
    assert path.name == int8_cache_name("efficientnet-lite0", fp32_sha)
    meta = read_sidecar(path)
    assert meta["onnx_sha256"] == sha256_file(path) and meta["fp32_sha256"] == fp32_sha
    assert meta["top1_agreement_confident"] >= 0.95 and meta["feature_cosine_mean"] >= 0.98
    assert meta["gate"] == PASSABLE_GATE and meta["quant_format"] == "QDQ"
    assert any("_conv_stem" in n for n in meta["fp32_nodes"])
    assert path.stat().st_size < shared_fp32.stat().st_size / 2  # int8 weights


@pytest.mark.slow
def test_int8_graph_runs_quantised_convolutions(int8_home) -> None:
    _, path, _ = int8_home
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(path.with_name("optimised.onnx"))
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    import onnx

    ops = {n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node}
    path.with_name("optimised.onnx").unlink()
    assert "QLinearConv" in ops or any("Int8" in op or "QLinear" in op for op in ops)


@pytest.mark.slow
def test_valid_cache_is_reused_and_a_tampered_one_rebuilt(int8_home, monkeypatch: pytest.MonkeyPatch) -> None:
    _, path, mp = int8_home
    before = path.stat()

    def no_build(*args, **kwargs):
        raise AssertionError("quantize_int8 must not run when the cache is valid")

    with monkeypatch.context() as m:
        m.setattr(quant_mod, "quantize_int8", no_build)
        assert ensure_int8_onnx(SPECS[0]) == path
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert not quant_mod._cached_ok(path, read_sidecar(path)["fp32_sha256"])
    assert ensure_int8_onnx(SPECS[0]) == path
    assert read_sidecar(path)["onnx_sha256"] == sha256_file(path)


@pytest.mark.slow
def test_int8_stage_gives_the_same_answers_on_photos(int8_home) -> None:
    from skimage import data

    from pixsight.core.config import AnalyzeConfig
    from pixsight.core.image import LoadedImage
    from pixsight.tasks.imagenet import create_stage

    spec = with_precision(SPECS[0], "int8")
    photos = {"chelsea": data.chelsea(), "coffee": data.coffee()}
    images = [LoadedImage(pixels=p, width=p.shape[1], height=p.shape[0], format="PNG", sha256=k, nbytes=1)
              for k, p in photos.items()]
    with create_stage(SPECS[0], AnalyzeConfig(), ("classify", "embed")) as fp32, \
            create_stage(spec, AnalyzeConfig(), ("classify", "embed")) as int8:
        ref, got = fp32.run(images), int8.run(images)
    assert int8.info.models["classify"] == "efficientnet-lite0@1-int8"
    assert int8.info.extra["precision"] == "int8"
    assert got[0]["classify"].top_label in CATS and got[1]["classify"].top_label in COFFEE
    for r, g in zip(ref, got):
        assert r["classify"].top_label == g["classify"].top_label
        assert float(r["embed"].vector @ g["embed"].vector) > 0.98
