"""``pixsight models add``: a user's ONNX model is validated, registered and runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pixsight.core.config import AnalyzeConfig
from pixsight.core.errors import ConfigError, WeightsError
from pixsight.core.image import LoadedImage
from pixsight.models.registry import Registry, availability, get_registry
from pixsight.models.spec import ModelSpec
from pixsight.models.user import add_model
from pixsight.tasks.onnx_generic import create_stage

COLOURS = ["red", "green", "blue"]


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXSIGHT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def colour_model(path: Path, *, size: int | str = 16, outputs: int = 3, inputs: int = 1) -> Path:
    """(N, 3, size, size) -> (N, outputs): mean colour per channel, times a matrix (logits)."""
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, size, size])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", outputs])
    weight = np.eye(3, outputs, dtype=np.float32) * 4.0
    nodes = [
        helper.make_node("ReduceMean", ["image", "axes"], ["pooled"], keepdims=0),
        helper.make_node("MatMul", ["pooled", "weight"], ["logits"]),
    ]
    init = [numpy_helper.from_array(np.array([2, 3], np.int64), "axes"), numpy_helper.from_array(weight, "weight")]
    extra = [helper.make_tensor_value_info(f"extra{i}", TensorProto.FLOAT, [1]) for i in range(inputs - 1)]
    graph = helper.make_graph(nodes, "colour", [x, *extra], [y], initializer=init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def image(rgb: tuple[int, int, int], size: int = 40) -> LoadedImage:
    pixels = np.zeros((size, size + 10, 3), np.uint8)
    pixels[:] = rgb
    return LoadedImage(pixels=pixels, width=size + 10, height=size, format="PNG", sha256="0" * 64, nbytes=1)


def test_added_classifier_is_listed_and_runs_with_correct_top_label(home, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(COLOURS) + "\n\n")
    spec = add_model(colour_model(tmp_path / "Colour Net.onnx"), task="classify", labels=labels, license="MIT")
    assert spec.name == "colour-net" and spec.user and spec.preprocess["size"] == [16, 16]
    listed = get_registry().get("colour-net")
    assert listed == spec and availability(listed).available
    assert "colour-net" in [s.name for s in get_registry().list(task="classify")]

    stage = create_stage(listed, AnalyzeConfig(), ("classify",))
    outs = stage.run([image((230, 20, 20)), image((10, 200, 30)), image((0, 0, 255))])
    assert [o["classify"].top_label for o in outs] == COLOURS
    top = outs[0]["classify"]
    assert sorted(top.labels) == sorted(COLOURS) and abs(float(top.scores.sum()) - 1) < 1e-3  # softmaxed
    assert stage.info.models == {"classify": spec.key}
    stage.close()


def test_embed_model_gives_unit_vectors_pointing_at_the_colour(home, tmp_path):
    spec = add_model(colour_model(tmp_path / "emb.onnx"), task="embed", mean=[0, 0, 0], std=[1, 1, 1])
    stage = create_stage(spec, AnalyzeConfig(), ("embed",))
    [red, blue] = stage.run([image((255, 0, 0)), image((0, 0, 255))])
    assert np.isclose(np.linalg.norm(red["embed"].vector), 1.0)
    assert int(np.argmax(red["embed"].vector)) == 0 and int(np.argmax(blue["embed"].vector)) == 2
    assert red["embed"].model == spec.key


def test_one_bad_image_does_not_lose_the_others(home, tmp_path):
    spec = add_model(colour_model(tmp_path / "m.onnx"), task="classify", labels=COLOURS)
    stage = create_stage(spec, AnalyzeConfig(), ("classify",))
    broken = LoadedImage(pixels=np.zeros((0, 0, 3), np.uint8), width=1, height=1, format="PNG", sha256="", nbytes=0)
    outs = stage.run([image((0, 255, 0)), broken, image((0, 0, 255))])
    assert isinstance(outs[1], Exception) and "(H, W, 3)" in str(outs[1])
    assert outs[0]["classify"].top_label == "green" and outs[2]["classify"].top_label == "blue"


def test_labels_count_mismatch_is_refused_and_nothing_registered(home, tmp_path):
    with pytest.raises(WeightsError, match="outputs 3 scores but 4 labels"):
        add_model(colour_model(tmp_path / "m.onnx"), task="classify", labels=[*COLOURS, "purple"])
    assert "m" not in get_registry()
    assert not (home / "models" / "registry.json").exists()


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"task": "detect"}, ConfigError, "classify or embed"),
        ({"task": "classify", "mean": [0.5, 0.5]}, ConfigError, "3 value"),
        ({"task": "classify", "size": 32}, WeightsError, "does not match the model's input shape"),
        ({"task": "embed", "labels": COLOURS}, ConfigError, "no labels"),
    ],
)
def test_bad_options_are_clear_errors(home, tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        add_model(colour_model(tmp_path / "m.onnx"), **kwargs)
    assert get_registry().list() == [s for s in get_registry().list() if not s.user]


def test_dynamic_size_needs_size_and_then_works(home, tmp_path):
    path = colour_model(tmp_path / "dyn.onnx", size="S")
    with pytest.raises(WeightsError, match="--size"):
        add_model(path, task="classify")
    spec = add_model(path, task="classify", size=24)
    assert spec.preprocess["size"] == [24, 24]
    [out] = create_stage(spec, AnalyzeConfig(), ("classify",)).run([image((0, 0, 200))])
    assert out["classify"].top_label == "class_2"  # no labels given


def test_multi_input_and_non_onnx_files_are_refused(home, tmp_path):
    with pytest.raises(WeightsError, match="2 inputs"):
        add_model(colour_model(tmp_path / "two.onnx", inputs=2), task="classify")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"definitely not a model")
    with pytest.raises(WeightsError):
        add_model(junk, task="classify")
    with pytest.raises(WeightsError, match="not found"):
        add_model(tmp_path / "absent.onnx", task="classify")


def test_name_clashes_are_refused_unless_replacing(home, tmp_path):
    path = colour_model(tmp_path / "m.onnx")
    reg = Registry(builtin=[ModelSpec(name="taken", task="classify", backend="onnx", version="1")])
    with pytest.raises(ConfigError, match="builtin model named 'taken'"):
        add_model(path, task="classify", name="taken", registry=reg)
    add_model(path, task="classify", name="mine", labels=COLOURS, registry=reg)
    with pytest.raises(ConfigError, match="already exists"):
        add_model(path, task="classify", name="mine", labels=["a", "b", "c"], registry=reg)
    assert Path(reg.get("mine").labels).read_text().split() == COLOURS  # the old labels were kept
    add_model(path, task="classify", name="mine", labels=["a", "b", "c"], registry=reg, replace=True)
    assert Path(Registry(builtin=[]).get("mine").labels).read_text().split() == ["a", "b", "c"]


def test_stage_refuses_a_task_the_model_does_not_answer(home, tmp_path):
    spec = add_model(colour_model(tmp_path / "m.onnx"), task="classify")
    with pytest.raises(ConfigError, match="answers 'classify', not 'embed'"):
        create_stage(spec, AnalyzeConfig(), ("embed",))
