"""Run folders as registry entries: validation, registration, default choice, versions."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from pixsight.core.config import AnalyzeConfig
from pixsight.core.errors import ConfigError, ModelUnavailableError, UnknownModelError, WeightsError
from pixsight.models.registry import Registry, availability, describe
from pixsight.models.runs import add_run, read_run_meta, run_spec
from pixsight.tasks import config_with_models, model_for_task, resolve_tasks
from tests.unit.tasks.runs import make_run


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("built")
    return {task: make_run(root, task) for task in ("classify", "detect", "segment")}


@pytest.fixture
def runs(built: dict[str, Path], tmp_path: Path) -> dict[str, Path]:
    """Fresh copies per test (some tests edit them)."""
    out = {}
    for task, path in built.items():
        out[task] = tmp_path / "runs" / task / path.name
        shutil.copytree(path, out[task])
    return out


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.setenv("PIXSIGHT_HOME", str(tmp_path / "home"))
    return Registry(builtin=[], path=tmp_path / "home" / "models" / "registry.json")


def edit_meta(run: Path, **changes) -> None:
    meta = json.loads((run / "model.json").read_text())
    meta.update(changes)
    (run / "model.json").write_text(json.dumps(meta))


def test_run_spec_reads_model_json_without_registering(runs: dict[str, Path], registry: Registry) -> None:
    spec = run_spec(runs["detect"])
    assert spec.task == "detect" and spec.name == "tiny-detect" and len(spec.version) == 12
    assert spec.options["classes"] == ["white", "red"]
    assert spec.options["postprocess"]["analyze_score_threshold"] == 0.3
    assert spec.preprocess["resize"] == "letterbox" and spec.preprocess["size"] == [64, 64]
    assert availability(spec).available
    row = describe(spec)
    assert row["classes"] == ["white", "red"] and row["metric"] == "map_50 0.875"
    assert "tiny-detect" not in registry
    assert registry.get(str(runs["detect"])).key == spec.key  # a run folder works wherever a name does


@pytest.mark.parametrize("change, words", [
    ({"format": "other/1"}, "format"),
    ({"task": "ocr"}, "task"),
    ({"classes": []}, "classes"),
    ({"preprocess": {"size": [64, 64], "resize": "squish"}}, "resize"),
    ({"postprocess": {"iou_threshold": "high"}}, "iou_threshold"),
])
def test_invalid_model_json_names_the_field(runs: dict[str, Path], change: dict, words: str) -> None:
    edit_meta(runs["detect"], **change)
    with pytest.raises(ConfigError, match=words) as info:
        read_run_meta(runs["detect"])
    assert "model.json" in str(info.value)


def test_not_a_run_folder_and_broken_json(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a pixsight run folder.*pixsight train"):
        read_run_meta(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read model.json"):
        read_run_meta(tmp_path)


def test_missing_onnx_says_how_to_export(runs: dict[str, Path]) -> None:
    (runs["detect"] / "model.onnx").unlink()
    with pytest.raises(WeightsError, match="pixsight models add"):
        run_spec(runs["detect"])


def test_add_run_registers_under_its_name_and_refuses_duplicates(runs: dict[str, Path], registry: Registry) -> None:
    spec = add_run(runs["detect"], registry=registry)
    again = Registry(builtin=[], path=registry.path)
    assert again.get("tiny-detect").key == spec.key and again.get("tiny-detect").user
    with pytest.raises(ConfigError, match="--replace"):
        add_run(runs["detect"], registry=again)
    assert add_run(runs["detect"], registry=again, replace=True).key == spec.key
    assert add_run(runs["detect"], name="other", registry=again).name == "other"


def test_add_run_refuses_a_model_that_breaks_the_contract(runs: dict[str, Path], registry: Registry) -> None:
    shutil.copy(runs["classify"] / "model.onnx", runs["detect"] / "model.onnx")
    with pytest.raises(WeightsError, match="boxes should be"):
        add_run(runs["detect"], registry=registry)
    assert "tiny-detect" not in Registry(builtin=[], path=registry.path)


def test_tasks_pick_the_default_else_the_latest_added(runs: dict[str, Path], registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match=r"pixsight train detect.*pixsight models add"):
        model_for_task("detect", AnalyzeConfig(), registry)
    add_run(runs["detect"], name="first", registry=registry)
    add_run(runs["detect"], name="second", registry=registry)
    assert model_for_task("detect", AnalyzeConfig(), registry) == "second"
    registry.set_default("first")
    assert model_for_task("detect", AnalyzeConfig(), registry) == "first"
    add_run(runs["detect"], name="third", registry=registry, default=True)
    fresh = Registry(builtin=[], path=registry.path)
    assert model_for_task("detect", AnalyzeConfig(), fresh) == "third"
    assert [s.name for s in fresh.list("detect") if s.default] == ["third"]
    tasks, skipped = resolve_tasks(AnalyzeConfig(tasks=("detect",)), fresh)
    assert tasks == ("detect",) and not skipped


def test_version_follows_the_onnx_file(runs: dict[str, Path], registry: Registry) -> None:
    old = add_run(runs["detect"], registry=registry)
    onnx = runs["detect"] / "model.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")  # retrained in place: different bytes
    os.utime(onnx, ns=(onnx.stat().st_atime_ns, onnx.stat().st_mtime_ns + 10**9))
    new = Registry(builtin=[], path=registry.path).get("tiny-detect")
    assert new.version != old.version and new.name == old.name


def test_config_with_models_sets_each_task_and_refuses_two_for_one(runs: dict[str, Path], registry: Registry) -> None:
    cfg = config_with_models(AnalyzeConfig(), [str(runs["detect"]), str(runs["classify"])], registry=registry)
    assert cfg.tasks == ("detect", "classify") and cfg.detect.model == str(runs["detect"])
    assert cfg.classify.model == str(runs["classify"])
    cfg = config_with_models(AnalyzeConfig(tasks=("ocr",)), [str(runs["segment"])], registry=registry)
    assert cfg.tasks == ("ocr", "segment")
    with pytest.raises(ConfigError, match="two models for task 'detect'"):
        config_with_models(AnalyzeConfig(), [str(runs["detect"]), str(runs["detect"])], registry=registry)
    with pytest.raises(UnknownModelError, match="neither a registered model nor a training run"):
        config_with_models(AnalyzeConfig(), ["runs/nowhere/x"], registry=registry)


def test_default_tasks_stay_builtin_even_with_a_registered_run(runs: dict[str, Path], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXSIGHT_HOME", str(tmp_path / "home"))
    registry = Registry(path=tmp_path / "home" / "models" / "registry.json")  # with the builtin models
    add_run(runs["detect"], registry=registry, default=True)
    tasks, skipped = resolve_tasks(AnalyzeConfig(), registry)
    assert "detect" not in tasks and "detect" not in skipped  # trained models run only when asked
    assert resolve_tasks(AnalyzeConfig(tasks=("detect",)), registry)[0] == ("detect",)


def test_one_reader_one_error_type(runs: dict[str, Path], tmp_path: Path) -> None:
    from pixsight.models.runs import RunError, read_model_json

    meta = read_model_json(runs["detect"] / "model.json")  # the file or its folder
    assert meta == json.loads((runs["detect"] / "model.json").read_text())  # as written, no defaults
    assert read_run_meta(runs["detect"])["postprocess"]["max_detections"] == 100  # the registry's view fills them
    edit_meta(runs["detect"], arch={"name": 3})
    with pytest.raises(RunError, match="arch"):
        read_model_json(runs["detect"])
    big = tmp_path / "big"
    big.mkdir()
    (big / "model.json").write_text(" " * (5 << 20))
    with pytest.raises(RunError, match="larger than 4 MiB") as info:
        read_run_meta(big)
    assert isinstance(info.value, ConfigError)


def test_add_run_never_exports_a_missing_onnx(runs: dict[str, Path], registry: Registry) -> None:
    (runs["detect"] / "model.onnx").unlink()
    with pytest.raises(WeightsError, match="no model.onnx"):
        add_run(runs["detect"], registry=registry)
    assert not (runs["detect"] / "model.onnx").exists() and "tiny-detect" not in registry
