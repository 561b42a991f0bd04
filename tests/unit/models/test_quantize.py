"""The INT8 variant of EfficientNet-Lite0: gate, cache, CPU kinds, numerics and stage wiring.

Builds use 48 calibration and 48 held-out crops (the real build uses 256 of each) so that
each takes a few seconds; they run in a private PIXSIGHT_HOME seeded with a copy of the
shared FP32 export. Every test passes on VNNI and AVX2-only CPUs alike: the fixture builds
the recipe of whatever CPU runs it, and the AVX2 recipe is also checked on an emulated
AVX2-only CPU (qemu-user, which ``make`` installs) wherever the suite runs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pixsight.core.errors import ConfigError, WeightsError
from pixsight.models import quantize as quant_mod
from pixsight.models.export import ensure_onnx, read_sidecar, sha256_file
from pixsight.models.int8_cpu import CpuInt8, detect_int8_cpu, recipe_for
from pixsight.models.quantize import agreement, ensure_int8_onnx, int8_cache_name, quantize_int8, real_crops
from pixsight.models.zoo.imagenet import SPECS, with_precision

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxruntime.quantization")
pytest.importorskip("skimage")

CATS = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}
COFFEE = {"espresso", "cup", "coffee mug"}
#: Gates this model passes (INT8 misses the default 95 % overall top-1 agreement; see the docs).
PASSABLE_GATE = {"top1_agreement_confident": 0.95, "feature_cosine_mean": 0.98}
DEFAULT_GATE = dict(quant_mod.GATE)


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
def test_cache_name_carries_the_cpu_kind_and_the_fp32_hash() -> None:
    assert int8_cache_name("efficientnet-lite0", "ab" * 32, "avx2") == "efficientnet-lite0-int8-avx2-abababababababab.onnx"


@pytest.mark.parametrize("flags, machine, kind", [
    ("fpu sse4_1 avx2 fma avx512f avx512bw avx512_vnni", "x86_64", "vnni"),   # Cascade Lake .. Zen 4
    ("fpu sse4_1 avx2 fma avx_vnni", "x86_64", "vnni"),                        # Alder Lake, Zen 5 (AVX-VNNI)
    ("fpu sse4_1 avx2 fma avx512f avx512bw amx_int8", "x86_64", "vnni"),
    ("fpu sse4_1 avx2 fma avx512f avx512bw", "x86_64", "avx2"),                # Skylake-SP: vpmaddubsw saturates
    ("fpu sse4_1 avx2 fma", "x86_64", "avx2"),                                 # Haswell .. Zen 3
    ("fpu sse4_1", "x86_64", "avx2"),
    ("fp asimd asimddp", "aarch64", "generic"),
    ("", "x86_64", "generic"),                                                 # no /proc/cpuinfo
])
def test_cpu_kind_from_cpuinfo(flags: str, machine: str, kind: str) -> None:
    text = f"processor : 0\nflags\t\t: {flags}\n" if flags else ""
    cpu = detect_int8_cpu(text, machine=machine, probe=False)
    assert cpu.kind == kind and cpu.u8s8_saturates is None
    assert set(cpu.flags) <= set(flags.split())


@pytest.mark.parametrize("flags, saturates, kind", [
    ("avx2 avx512_vnni", False, "vnni"),
    ("avx2 avx512_vnni", True, "avx2"),   # the kernels saturate whatever the flags say: trust them
    ("avx2", False, "vnni"),
    ("", True, "avx2"),                   # no /proc/cpuinfo (macOS, Windows): the probe still decides
])
def test_the_probe_decides_the_kind_on_x86(flags: str, saturates: bool, kind: str) -> None:
    cpu = detect_int8_cpu(f"flags : {flags}\n" if flags else "", machine="x86_64", saturates=saturates)
    assert cpu.kind == kind and cpu.to_dict()["u8s8_saturates"] is saturates


def test_embedded_probe_model_is_the_documented_matmulinteger() -> None:
    from onnx import TensorProto, helper

    from pixsight.models import int8_cpu

    k = 64
    weights = helper.make_tensor("B", TensorProto.INT8, [k, 1], np.full((k, 1), 127, np.int8).tobytes(), raw=True)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "probe",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [1, k])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [1, 1])], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)
    assert model.SerializeToString() == int8_cpu._PROBE_MODEL


def test_probe_agrees_with_the_cpu_flags_here() -> None:
    """Holds on VNNI and AVX2-only machines alike: the kernels ORT picks follow the CPU's flags."""
    from pixsight.models.int8_cpu import saturation_probe

    probe = saturation_probe()
    assert probe["got"] in (probe["exact"], 32 * 32767)
    by_flags = detect_int8_cpu(probe=False)
    if by_flags.kind in ("vnni", "avx2"):
        assert probe["saturates"] == (by_flags.kind == "avx2")


def test_recipes_avoid_the_saturating_kernels_where_the_cpu_has_them() -> None:
    assert recipe_for("vnni").gemm_weight_type == "QInt8"  # exact VNNI kernels everywhere
    for kind in ("avx2", "generic"):
        assert recipe_for(kind).gemm_weight_type == "QUInt8" and recipe_for(kind).weight_type == "QInt8"
    with pytest.raises(ValueError, match="unknown CPU kind"):
        recipe_for("sse2")


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
    cpu = detect_int8_cpu()
    assert path.name == int8_cache_name("efficientnet-lite0", fp32_sha, cpu.kind)
    meta = read_sidecar(path)
    assert meta["cpu"] == cpu.to_dict() and meta["settings"]["name"] == recipe_for(cpu.kind).name
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
    assert not quant_mod._cached_ok(path, read_sidecar(path)["fp32_sha256"], detect_int8_cpu())
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
        rc, gc = r["classify"], g["classify"]
        if float(rc.scores[0]) >= 0.5:  # FP32 is sure (coffee: espresso 0.96): INT8 must say the same
            assert gc.top_label == rc.top_label
        else:  # a near-tie (chelsea: Egyptian cat 0.380 vs tiger cat 0.376) may flip, but only within it
            assert gc.top_label in rc.labels[:2]
        assert abs(float(gc.scores[0]) - float(rc.scores[list(rc.labels).index(gc.top_label)])) < 0.05
        assert float(r["embed"].vector @ g["embed"].vector) > 0.98


@pytest.mark.slow
def test_a_file_built_for_another_cpu_kind_is_rebuilt(int8_home, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever this CPU is, pretend the next machine is of the other kind: it gets its own file."""
    _, path, _ = int8_home
    here = detect_int8_cpu()
    other = CpuInt8(kind="avx2" if here.kind == "vnni" else "vnni", machine="x86_64", flags=())
    fp32_sha = read_sidecar(path)["fp32_sha256"]
    assert not quant_mod._cached_ok(path, fp32_sha, other)  # the sidecar says which kind it was built for
    built: list[CpuInt8] = []

    def record_build(fp32_path, dest, *, preprocess, cpu):
        built.append(cpu)
        shutil.copy2(path, dest)

    monkeypatch.setattr(quant_mod, "detect_int8_cpu", lambda: other)
    monkeypatch.setattr(quant_mod, "quantize_int8", record_build)
    got = ensure_int8_onnx(SPECS[0])
    assert built == [other] and got.name == int8_cache_name("efficientnet-lite0", fp32_sha, other.kind)
    assert path.is_file()  # the first kind's file stays for machines of that kind sharing the home


def _initializer_types(model_path: Path) -> dict[str, set[str]]:
    """Element types of the quantised weights feeding depthwise vs matrix-product convolutions."""
    import onnx

    model = onnx.load(str(model_path))
    inits = {t.name: onnx.TensorProto.DataType.Name(t.data_type) for t in model.graph.initializer}
    dq_source = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    out: dict[str, set[str]] = {"depthwise": set(), "gemm": set()}
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm") and node.input[1] in dq_source:
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            out["depthwise" if group > 1 else "gemm"].add(inits[dq_source[node.input[1]]])
    return out


@pytest.fixture(scope="module")
def avx2_build(shared_fp32: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The AVX2 recipe, built here whatever this CPU is (its gate is judged on an AVX2 CPU below)."""
    dest = tmp_path_factory.mktemp("avx2") / "int8-avx2.onnx"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(quant_mod, "N_CALIBRATION", 48)
        mp.setattr(quant_mod, "N_HELDOUT", 16)
        quantize_int8(shared_fp32, dest, preprocess=SPECS[0].preprocess, enforce_gate=False,
                      cpu=CpuInt8(kind="avx2", machine="x86_64", flags=("avx2",)))
    return dest


@pytest.mark.slow
def test_avx2_recipe_keeps_int8_weights_only_where_the_kernel_is_exact(avx2_build: Path) -> None:
    types = _initializer_types(avx2_build)
    assert types == {"depthwise": {"INT8"}, "gemm": {"UINT8"}}
    assert read_sidecar(avx2_build)["settings"]["gemm_weights_overridden"] > 30


def _qemu() -> str:
    exe = shutil.which("qemu-x86_64") or shutil.which("qemu-x86_64-static")
    if exe is None or detect_int8_cpu().machine not in ("x86_64", "amd64"):
        pytest.skip("needs qemu-user (Debian package qemu-user, installed by make) on an x86-64 machine")
    return exe


def test_an_emulated_avx2_only_cpu_is_detected_as_avx2() -> None:
    """qemu-user shows the host's /proc/cpuinfo (VNNI here, perhaps), but the probe sees AVX2 kernels."""
    qemu = _qemu()
    code = "from pixsight.models.int8_cpu import detect_int8_cpu; print(detect_int8_cpu().kind)"
    proc = subprocess.run([qemu, "-cpu", "Haswell", sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "avx2"


@pytest.mark.slow
def test_avx2_recipe_passes_the_gate_on_an_emulated_avx2_only_cpu(avx2_build: Path, shared_fp32: Path,
                                                                    tmp_path: Path) -> None:
    """Explicitly about AVX2-only CPUs: run both models under qemu's Haswell (AVX2, no VNNI)."""
    qemu = _qemu()
    crops, ref = tmp_path / "crops.npy", tmp_path / "fp32.npz"
    x = real_crops(48, seed=quant_mod.HELDOUT_SEED, preprocess=SPECS[0].preprocess)
    np.save(crops, x)
    logits, features = ort.InferenceSession(str(shared_fp32), providers=["CPUExecutionProvider"]).run(
        ["logits", "features"], {"input": x})
    np.savez(ref, logits=logits, features=features)  # FP32 needs no emulation: it has no integer kernels
    proc = subprocess.run([qemu, "-cpu", "Haswell", sys.executable, "-m", "pixsight.models.int8_agreement",
                           str(ref), str(avx2_build), str(crops)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["probe"]["saturates"], "the emulated CPU must use the saturating AVX2 kernels, or this test proves nothing"
    assert got["top1_agreement_confident"] >= PASSABLE_GATE["top1_agreement_confident"]
    assert got["feature_cosine_mean"] >= PASSABLE_GATE["feature_cosine_mean"]
    assert got["top1_agreement"] >= DEFAULT_GATE["top1_agreement"] - 0.05  # 48 crops: a little noisier than 256
