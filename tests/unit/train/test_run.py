"""The run folder: contents, load_run, rebuilt model, ONNX equal to torch, clear errors."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pixsight.core.image import load_image
from pixsight.core.preprocess import prepare_input
from pixsight.train.run import RunError, load_run


def test_run_folder_has_everything(trained_run) -> None:
    p = trained_run.path
    for name in ("model.json", "config.json", "metrics.csv", "metrics.json", "plots/loss.png", "plots/metrics.png",
                 "weights/best.safetensors", "weights/last.safetensors", "checkpoint/last.pt", "model.onnx"):
        assert (p / name).is_file(), name
    meta = json.loads((p / "model.json").read_text())
    assert meta["format"] == "pixsight-run/1" and meta["task"] == "classify"
    assert meta["classes"] == ["circle", "square", "triangle"]
    assert meta["preprocess"] == {"size": [64, 64], "mean": [127.0] * 3, "std": [128.0] * 3, "resize": "stretch"}
    assert meta["primary_metric"] == "accuracy" and 0 <= meta["metrics"]["accuracy"] <= 1
    assert meta["training"]["epochs"] == 2 and meta["training"]["seed"] == 0
    assert meta["data"]["train"]["images"] == 29 and meta["data"]["val"]["images"] == 7
    assert len(meta["data"]["train"]["fingerprint"]) == 64
    rows = list(csv.DictReader((p / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"epoch", "lr", "train_loss", "val_loss", "accuracy", "seconds"} <= set(rows[0])
    cfg = json.loads((p / "config.json").read_text())
    assert cfg["config"]["epochs"] == 2 and cfg["config"]["label_smoothing"] == 0.1  # task default applied
    state = torch.load(p / "checkpoint" / "last.pt", weights_only=True)  # safe to load
    assert state["epoch"] == 2


def test_onnx_equals_torch_on_real_preprocessed_images(trained_run, tiny_classify: Path) -> None:
    import onnxruntime as ort

    run = load_run(trained_run.path)
    model = run.build_model()
    assert not model.training
    files = sorted(tiny_classify.glob("val/*/*.jpg"))[:3]
    x = np.stack([prepare_input(load_image(f).pixels, run.preprocess)[0].transpose(2, 0, 1) for f in files])
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(run.onnx_path()), providers=["CPUExecutionProvider"])
    (got,) = sess.run(["logits"], {"images": x})
    assert got.shape == (3, 3) and np.abs(got - ref).max() < 1e-4
    assert run.meta["onnx"]["max_abs_diff"] < 1e-3


def test_load_run_errors(trained_run, tmp_path: Path) -> None:
    with pytest.raises(RunError, match="no model.json"):
        load_run(tmp_path)
    with pytest.raises(RunError, match="not a folder"):
        load_run(tmp_path / "nope")
    copy = tmp_path / "copy"
    shutil.copytree(trained_run.path, copy)
    meta = json.loads((copy / "model.json").read_text())
    for key, value, word in (("format", "x/1", "format"), ("classes", [], "classes"),
                             ("preprocess", {"size": "big"}, "preprocess")):
        (copy / "model.json").write_text(json.dumps({**meta, key: value}))
        with pytest.raises(RunError, match=word):
            load_run(copy)
    (copy / "model.json").write_text("{not json")
    with pytest.raises(RunError, match="cannot read"):
        load_run(copy)


def test_load_run_and_the_registry_share_one_reader(trained_run, tmp_path: Path) -> None:
    from pixsight.core.errors import ConfigError
    from pixsight.models.runs import read_model_json

    copy = tmp_path / "copy"
    shutil.copytree(trained_run.path, copy)
    assert load_run(copy / "model.json").meta == read_model_json(copy)
    (copy / "model.json").write_text(json.dumps({**load_run(copy).meta, "task": "ocr"}))
    with pytest.raises(RunError, match="task is 'ocr'") as from_train:
        load_run(copy)
    with pytest.raises(RunError) as from_models:
        read_model_json(copy)
    assert str(from_train.value) == str(from_models.value) and isinstance(from_train.value, ConfigError)


def test_register_run_exports_a_missing_onnx(trained_run, tmp_path: Path) -> None:
    from pixsight.models.registry import Registry
    from pixsight.train.run import register_run

    copy = tmp_path / "copy"
    shutil.copytree(trained_run.path, copy)
    (copy / "model.onnx").unlink()
    registry = Registry(builtin=[], path=tmp_path / "home" / "registry.json")
    spec = register_run(copy, name="shapes-again", registry=registry)
    assert (copy / "model.onnx").stat().st_size > 1000 and spec.options["run_dir"] == str(copy.absolute())
    assert Registry(builtin=[], path=registry.path).get("shapes-again").key == spec.key


def test_modified_onnx_is_exported_again(trained_run, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(trained_run.path, copy)
    (copy / "model.onnx").write_bytes(b"tampered")
    run = load_run(copy)
    with pytest.raises(RunError, match="no verified"):
        run.onnx_path(export_if_missing=False)
    path = run.onnx_path()
    assert load_run(copy).meta["onnx"]["sha256"] != "" and path.stat().st_size > 1000


def test_ctrl_c_during_a_write_is_held_until_the_write_is_done(tmp_path) -> None:
    import os
    import signal

    from pixsight.train.run import interrupts_deferred

    written = tmp_path / "f"
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)  # arrives mid-"write"
            written.write_text("whole")
    assert written.read_text() == "whole"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
