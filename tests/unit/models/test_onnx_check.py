"""SECURITY.md item 8: ONNX external data must stay inside the model's folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pixsight.core.errors import WeightsError
from pixsight.models import onnx_check
from pixsight.models.onnx_check import check_onnx_file
from pixsight.models.runtime import create_session


def _model_with_external(folder: Path, location: str, *, in_constant: bool = False) -> Path:
    """y = x + w where w (4 floats) is stored externally at ``location``."""
    w = numpy_helper.from_array(np.arange(4, dtype=np.float32), name="w")
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    w.ClearField("raw_data")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    if in_constant:  # the tensor hides in a Constant node's attribute inside an If subgraph
        const = helper.make_node("Constant", [], ["w"], value=w)
        branch = helper.make_graph([const, helper.make_node("Add", ["x", "w"], ["z"])], "b", [],
                                   [helper.make_tensor_value_info("z", TensorProto.FLOAT, [4])])
        cond = helper.make_tensor("c", TensorProto.BOOL, [], [True])
        nodes = [helper.make_node("Constant", [], ["cond"], value=cond),
                 helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=branch)]
        graph = helper.make_graph(nodes, "g", [x], [y])
    else:
        graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [y], initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture(params=["onnx", "fallback"])
def parser(request, monkeypatch):
    """Run every test with onnx's parser and with the dependency-free fallback reader."""
    if request.param == "fallback":
        monkeypatch.setattr(onnx_check, "external_tensors", lambda path: onnx_check._scan_without_onnx(Path(path)))
    return request.param


def _data(path: Path) -> None:
    path.write_bytes(np.arange(4, dtype=np.float32).tobytes())


def test_valid_external_data_inside_folder_is_accepted_and_runs(tmp_path, parser):
    _data(tmp_path / "w.bin")
    model = _model_with_external(tmp_path, "w.bin")
    found = check_onnx_file(model)
    assert [(t.name, t.location) for t in found] == [("w", "w.bin")]
    out = create_session(model).run(None, {"x": np.ones(4, np.float32)})[0]
    np.testing.assert_allclose(out, [1, 2, 3, 4])


def test_subfolder_location_is_accepted(tmp_path, parser):
    (tmp_path / "data").mkdir()
    _data(tmp_path / "data" / "w.bin")
    assert len(check_onnx_file(_model_with_external(tmp_path, "data/w.bin"))) == 1


@pytest.mark.parametrize(
    "location, message",
    [
        ("../secret.bin", "'..'"),
        ("data/../../secret.bin", "'..'"),
        ("ABSOLUTE", "absolute path"),
        ("data\\..\\..\\secret.bin", "backslash"),
        ("", "empty"),
    ],
)
def test_escaping_locations_are_refused(tmp_path, parser, location, message):
    secret = tmp_path / "secret.bin"
    _data(secret)
    folder = tmp_path / "model"
    folder.mkdir()
    loc = str(secret) if location == "ABSOLUTE" else location
    model = _model_with_external(folder, loc)
    with pytest.raises(WeightsError, match=message) as info:
        check_onnx_file(model)
    assert "tensor 'w'" in str(info.value) and str(model) in str(info.value)


def test_symlink_out_of_the_folder_is_refused(tmp_path, parser):
    secret = tmp_path / "secret.bin"
    _data(secret)
    folder = tmp_path / "model"
    folder.mkdir()
    os.symlink(secret, folder / "w.bin")
    model = _model_with_external(folder, "w.bin")
    with pytest.raises(WeightsError, match="outside the model's folder"):
        check_onnx_file(model)
    # and create_session refuses it before onnxruntime reads the secret
    with pytest.raises(WeightsError, match="outside the model's folder"):
        create_session(model)


def test_tensor_hidden_in_a_subgraph_attribute_is_checked(tmp_path, parser):
    _data(tmp_path / "secret.bin")
    (tmp_path / "m").mkdir()
    model = _model_with_external(tmp_path / "m", "../secret.bin", in_constant=True)
    with pytest.raises(WeightsError, match="'..'"):
        check_onnx_file(model)


def test_missing_or_short_data_file_is_refused(tmp_path, parser):
    model = _model_with_external(tmp_path, "w.bin")
    with pytest.raises(WeightsError, match="missing"):
        check_onnx_file(model)
    (tmp_path / "w.bin").write_bytes(b"\0" * 8)  # 8 bytes, the tensor needs 16
    with pytest.raises(WeightsError, match="past the end"):
        check_onnx_file(model)


def test_garbage_file_is_a_weights_error(tmp_path, parser):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x0a\xff\xff\xff\xff\x0f")  # a length prefix far past the end
    with pytest.raises(WeightsError, match="not a valid ONNX model"):
        check_onnx_file(bad)


def test_self_contained_model_has_no_external_tensors(tmp_path, parser):
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph), str(path))
    assert check_onnx_file(path) == []
