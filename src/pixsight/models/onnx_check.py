"""Check an untrusted ONNX file before ONNX Runtime opens it (SECURITY.md item 8).

An ONNX tensor may keep its bytes in an "external data" file named by a ``location``
string. ONNX Runtime reads that file relative to the model's folder, so a crafted model
could point it at ``/etc/shadow``, ``../../secret`` or a symlink leading out of the folder.
:func:`check_onnx_file` reads the model *without* loading external data and refuses any
tensor whose location is absolute, contains ``..``, or resolves (symlinks followed)
outside the model's folder.

The model is parsed with ``onnx.load(load_external_data=False)`` when ``onnx`` is
installed; otherwise a small protobuf reader walks the same fields, so the check never
depends on an optional package.

>>> import tempfile, onnx
>>> from onnx import helper, TensorProto
>>> g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
>>> path = tempfile.mkdtemp() + "/m.onnx"
>>> onnx.save(helper.make_model(g), path)
>>> check_onnx_file(path)
[]
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Iterator

from ..core.errors import WeightsError

__all__ = ["ExternalTensor", "check_onnx_file", "external_tensors"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExternalTensor:
    """One tensor whose data lives in another file: its name and ``external_data`` entries."""

    name: str
    location: str
    offset: int | None = None
    length: int | None = None


def check_onnx_file(path: str | os.PathLike[str]) -> list[ExternalTensor]:
    """Validate ``path`` as an ONNX model whose external data stays inside its folder.

    Returns the external tensors found (empty for a self-contained model).

    Raises:
        WeightsError: the file is missing or not ONNX, or a tensor's external data is
            absolute, uses ``..``, escapes the folder through a symlink, is missing, or is
            shorter than its declared ``offset + length``. The message names the tensor.

    >>> check_onnx_file("/nonexistent.onnx")
    Traceback (most recent call last):
    ...
    pixsight.core.errors.WeightsError: /nonexistent.onnx: ONNX model file not found
    """
    model = Path(path)
    if not model.is_file():
        raise WeightsError("ONNX model file not found", path=str(model))
    tensors = external_tensors(model)
    folder = model.absolute().parent.resolve()
    for t in tensors:
        _check_location(t, folder, model)
    return tensors


def external_tensors(path: str | os.PathLike[str]) -> list[ExternalTensor]:
    """Every tensor of the model at ``path`` that declares external data (not loaded)."""
    try:
        import onnx
    except ImportError:
        return _scan_without_onnx(Path(path))
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf raises DecodeError and friends
        raise WeightsError(f"not a valid ONNX model ({err}); check the file is a complete .onnx export", path=str(path)) from err
    return [_from_proto(t) for t in _proto_tensors(proto)]


def _check_location(t: ExternalTensor, folder: Path, model: Path) -> None:
    where = f"tensor {t.name!r}: external data location {t.location!r}"
    fix = "re-save the model with its external data files next to it (onnx.save(..., location='name.data'))"
    if not t.location:
        raise WeightsError(f"{where} is empty; {fix}", path=str(model))
    if "\x00" in t.location or "\\" in t.location:
        raise WeightsError(f"{where} contains a NUL or backslash; {fix}", path=str(model))
    if PurePosixPath(t.location).is_absolute() or PureWindowsPath(t.location).drive:
        raise WeightsError(f"{where} is an absolute path; external data must stay in the model's folder {folder}", path=str(model))
    if ".." in PurePosixPath(t.location).parts:
        raise WeightsError(f"{where} uses '..'; external data must stay in the model's folder {folder}", path=str(model))
    target = (folder / t.location).resolve()
    if not target.is_relative_to(folder) or target == folder:
        raise WeightsError(
            f"{where} resolves to {target}, outside the model's folder {folder} (a symlink out?); {fix}", path=str(model)
        )
    if not target.is_file():
        raise WeightsError(f"{where}: file {target} is missing; copy it next to the model", path=str(model))
    if t.offset is not None and t.length is not None and t.offset + t.length > target.stat().st_size:
        raise WeightsError(
            f"{where}: offset {t.offset} + length {t.length} is past the end of {target} "
            f"({target.stat().st_size} bytes); the data file is truncated or belongs to another model",
            path=str(model),
        )


def _entry(name: str, pairs: list[tuple[str, str]]) -> ExternalTensor:
    info = dict(pairs)

    def _int(key: str) -> int | None:
        try:
            return int(info[key]) if key in info else None
        except ValueError:
            raise WeightsError(f"tensor {name!r}: external data {key}={info[key]!r} is not an integer") from None

    return ExternalTensor(name=name, location=info.get("location", ""), offset=_int("offset"), length=_int("length"))


def _from_proto(tensor) -> ExternalTensor:  # onnx.TensorProto
    return _entry(tensor.name, [(e.key, e.value) for e in tensor.external_data])


def _proto_tensors(model) -> Iterator:
    """Tensors with external data in a parsed ``onnx.ModelProto`` (graphs, subgraphs, functions)."""

    def from_attr(attr) -> Iterator:
        if attr.HasField("t"):
            yield attr.t
        yield from attr.tensors
        for sp in [attr.sparse_tensor] if attr.HasField("sparse_tensor") else []:
            yield from (sp.values, sp.indices)
        for sp in attr.sparse_tensors:
            yield from (sp.values, sp.indices)
        if attr.HasField("g"):
            yield from from_graph(attr.g)
        for g in attr.graphs:
            yield from from_graph(g)

    def from_nodes(nodes) -> Iterator:
        for node in nodes:
            for attr in node.attribute:
                yield from from_attr(attr)

    def from_graph(graph) -> Iterator:
        yield from graph.initializer
        for sp in graph.sparse_initializer:
            yield from (sp.values, sp.indices)
        yield from from_nodes(graph.node)

    def all_tensors() -> Iterator:
        yield from from_graph(model.graph)
        for info in model.training_info:
            yield from from_graph(info.initialization)
            yield from from_graph(info.algorithm)
        for fn in model.functions:
            yield from from_nodes(fn.node)
            for attr in fn.attribute_proto:
                yield from from_attr(attr)

    for t in all_tensors():
        if len(t.external_data) or t.data_location == 1:  # TensorProto.EXTERNAL
            yield t


# --- fallback: a minimal protobuf reader for the fields above -------------------------
# field numbers from onnx.proto: message -> {field number: child message kind}
_CHILDREN: dict[str, dict[int, str]] = {
    "model": {7: "graph", 20: "training", 25: "function"},
    "training": {1: "graph", 2: "graph"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "function": {7: "node", 11: "attr"},
    "node": {5: "attr"},
    "attr": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
}
_MAX_DEPTH = 64


def _fields(buf: memoryview) -> Iterator[tuple[int, int, memoryview | int]]:
    """(field number, wire type, value) for one protobuf message; raises ValueError if malformed."""
    pos, end = 0, len(buf)

    def varint() -> int:
        nonlocal pos
        result = shift = 0
        while True:
            if pos >= end or shift > 63:
                raise ValueError("truncated varint")
            b = buf[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    while pos < end:
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            yield number, wire, varint()
        elif wire == 1 or wire == 5:
            size = 8 if wire == 1 else 4
            if pos + size > end:
                raise ValueError("truncated fixed field")
            pos += size
        elif wire == 2:
            size = varint()
            if pos + size > end:
                raise ValueError("truncated length-delimited field")
            yield number, wire, buf[pos : pos + size]
            pos += size
        else:
            raise ValueError(f"unsupported wire type {wire}")


def _scan(buf: memoryview, kind: str, depth: int, out: list[ExternalTensor]) -> None:
    if depth > _MAX_DEPTH:
        raise ValueError("messages nested too deeply")
    if kind == "tensor":
        name, pairs, external = "", [], False
        for number, wire, value in _fields(buf):
            if number == 8 and wire == 2:
                name = bytes(value).decode("utf-8", "replace")  # type: ignore[arg-type]
            elif number == 13 and wire == 2:
                entry = {n: bytes(v).decode("utf-8", "replace") for n, w, v in _fields(value) if w == 2}  # type: ignore[arg-type]
                pairs.append((entry.get(1, ""), entry.get(2, "")))
            elif number == 14 and wire == 0 and value == 1:
                external = True
        if pairs or external:
            out.append(_entry(name, pairs))
        return
    children = _CHILDREN[kind]
    for number, wire, value in _fields(buf):
        if wire == 2 and number in children:
            _scan(value, children[number], depth + 1, out)  # type: ignore[arg-type]


def _scan_without_onnx(path: Path) -> list[ExternalTensor]:
    out: list[ExternalTensor] = []
    try:
        _scan(memoryview(path.read_bytes()), "model", 0, out)
    except (ValueError, IndexError) as err:
        raise WeightsError(f"not a valid ONNX model ({err}); check the file is a complete .onnx export", path=str(path)) from err
    return out
