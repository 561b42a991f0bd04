"""Real (short) classification training: it learns, it is reproducible, it resumes exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import load_file

from pixsight.core.errors import DatasetFormatError
from pixsight.train import TrainingInterrupted, train

FAST = {"epochs": 2, "size": 64, "batch_size": 8, "seed": 0}


def _history(run_dir: Path) -> list[dict]:
    import json

    rows = json.loads((run_dir / "metrics.json").read_text())["epochs"]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.mark.slow
def test_training_learns_the_shapes(tmp_path: Path) -> None:
    from pixsight.data.synth import synth_dataset

    data = synth_dataset(tmp_path / "data", task="classify", n=90, image_size=(96, 96), seed=1)["out_dir"]
    run = train("classify", data, out=tmp_path / "run", epochs=4, size=96, batch_size=16, lr=3e-3)
    # chance is 1/3; ~0.89 measured (4 epochs, 72 training images)
    assert run.metrics["accuracy"] >= 0.7
    assert run.meta["training"]["best_epoch"] >= 1


def test_same_seed_same_metrics(tiny_classify: Path, trained_run, tmp_path: Path) -> None:
    again = train("classify", tiny_classify, out=tmp_path / "again", **FAST)
    assert _history(again.path) == _history(trained_run.path)
    a = load_file(str(again.path / "weights" / "last.safetensors"))
    b = load_file(str(trained_run.path / "weights" / "last.safetensors"))
    assert all((a[k] == b[k]).all() for k in a)


def test_resume_after_an_epoch_is_bitwise_the_same(tiny_classify: Path, trained_run, tmp_path: Path) -> None:
    def stop_after_first_epoch(p) -> None:
        if p.phase == "epoch" and p.epoch == 1:
            raise KeyboardInterrupt

    out = tmp_path / "resumed"
    with pytest.raises(TrainingInterrupted) as info:
        train("classify", tiny_classify, out=out, progress=stop_after_first_epoch, **FAST)
    assert Path(info.value.checkpoint).is_file() and (out / "weights" / "last.safetensors").is_file()
    run = train("classify", None, out=out, resume=True)
    assert _history(run.path) == _history(trained_run.path)
    a = load_file(str(out / "weights" / "last.safetensors"))
    b = load_file(str(trained_run.path / "weights" / "last.safetensors"))
    assert all((a[k] == b[k]).all() for k in a)


def test_interrupt_mid_epoch_then_resume_finishes(tiny_classify: Path, tmp_path: Path) -> None:
    def stop_in_second_step(p) -> None:
        if p.phase == "train" and p.epoch == 1 and p.step == 2:
            raise KeyboardInterrupt

    out = tmp_path / "mid"
    with pytest.raises(TrainingInterrupted):
        train("classify", tiny_classify, out=out, progress=stop_in_second_step, **FAST)
    assert not (out / "model.json").exists()  # no epoch finished: nothing to register yet
    run = train("classify", None, out=out, resume=True, workers=0)
    assert [r["epoch"] for r in _history(run.path)] == [1, 2]
    with pytest.raises(Exception, match="cannot change"):
        train("classify", None, out=out, resume=True, lr=0.5)


@pytest.mark.slow
def test_time_limit_and_early_stop(tiny_classify: Path, tmp_path: Path) -> None:
    run = train("classify", tiny_classify, out=tmp_path / "t", epochs=5, size=64, batch_size=8, time_limit_min=1e-4)
    assert run.meta["training"]["stopped"] == "time_limit" and run.meta["training"]["epochs"] == 1
    run = train("classify", tiny_classify, out=tmp_path / "e", epochs=5, size=64, batch_size=8, lr=1e-9,
                backbone_lr_mult=0.0, patience=1, arch={"dropout": 0.0}, augment="none")
    assert run.meta["training"]["stopped"] == "early_stop" and run.meta["training"]["epochs"] == 2


def test_wrong_kind_of_data_is_a_clear_error(tiny_classify: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match="needs boxes"):
        train("detect", tiny_classify, out=tmp_path / "d", epochs=1)
    with pytest.raises(Exception, match="already exists"):
        (tmp_path / "full").mkdir()
        (tmp_path / "full" / "x").write_text("x")
        train("classify", tiny_classify, out=tmp_path / "full", epochs=1)
