"""``pixsight train`` from the outside: a real run, bad input, and Ctrl-C (a real SIGINT) + --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import run_cli

ENV = {"OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pixsight.data.synth import synth_dataset

    out = tmp_path_factory.mktemp("cli_train") / "shapes"
    synth_dataset(out, task="classify", n=30, image_size=(64, 64), seed=5)
    return out


@pytest.mark.slow
def test_train_writes_a_run_and_prints_a_summary(shapes: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = tmp_path / "train.toml"
    cfg.write_text('augment = "light"\nlabel_smoothing = 0.0\n')
    r = run_cli("train", "classify", "--data", str(shapes), "--out", str(out), "--epochs", "1", "--size", "64",
                "--batch-size", "8", "--config", str(cfg), env=ENV)
    assert r.returncode == 0, r.stderr
    assert "best accuracy" in r.stderr and str(out) in r.stderr and "epoch 1/1" in r.stderr
    meta = json.loads((out / "model.json").read_text())
    assert meta["task"] == "classify" and (out / "model.onnx").is_file()
    assert json.loads((out / "config.json").read_text())["config"]["augment"] == "light"


@pytest.mark.slow  # each case starts the CLI (torch import: ~5-10 s on a busy machine)
@pytest.mark.parametrize("args, message", [
    (["detect", "--data", "{shapes}", "--out", "{tmp}/d"], "needs boxes"),
    (["classify", "--data", "{tmp}/missing", "--out", "{tmp}/m"], "missing"),
    (["classify", "--data", "{shapes}", "--out", "{tmp}/c", "--config", "{tmp}/bad.toml"], "epochz"),
    (["classify", "--out", "{tmp}/n"], "--data is required"),
])
def test_user_mistakes_exit_2_without_a_traceback(shapes: Path, tmp_path: Path, args: list, message: str) -> None:
    (tmp_path / "bad.toml").write_text("epochz = 3\n")
    argv = [a.format(shapes=shapes, tmp=tmp_path) for a in args]
    r = run_cli("train", *argv, env=ENV)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_resume_finishes(shapes: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "pixsight", "train", "classify", "--data", str(shapes), "--out",
                             str(out), "--epochs", "50", "--size", "64", "--batch-size", "8"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **ENV})
    deadline = time.monotonic() + 120
    while not (out / "metrics.csv").is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(0.5)  # into the second epoch
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "checkpoint saved to" in err and "Traceback" not in err
    assert (out / "checkpoint" / "last.pt").is_file() and (out / "weights" / "last.safetensors").is_file()
    r = run_cli("train", "classify", "--out", str(out), "--resume", "--time-limit", "0.001", env=ENV)
    assert r.returncode == 0, r.stderr
    meta = json.loads((out / "model.json").read_text())
    assert meta["training"]["stopped"] == "time_limit" and meta["training"]["epochs"] >= 2
