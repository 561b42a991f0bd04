"""``pixsight models add PATH --task ...``: register a user's own ONNX model.

The file is treated as untrusted: its external data is checked to stay in its folder
(:func:`~pixsight.models.onnx_check.check_onnx_file`), it must open in ONNX Runtime and
answer one forward pass on a blank image, and for ``classify`` its output width must match
the labels. The entry keeps the path (the file is not copied) plus the input contract
(size, mean/std, layout) that :mod:`pixsight.tasks.onnx_generic` uses to run it.

Example::

    spec = add_model("~/models/birds.onnx", task="classify", labels="~/models/birds.txt")
    spec.preprocess["size"]   # [224, 224], read from the model's input shape
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.config import pixsight_home
from ..core.errors import ConfigError, WeightsError
from ..core.fileio import atomic_write_text
from .onnx_check import check_onnx_file
from .pull import sha256_file
from .runtime import create_session
from .spec import ModelSpec, WeightsSource

__all__ = ["add_model", "USER_TASKS", "IMAGENET_MEAN", "IMAGENET_STD", "read_labels", "spec_labels", "input_contract"]

log = logging.getLogger(__name__)

#: Tasks a user ONNX model can be registered for (run by ``tasks/onnx_generic.py``).
USER_TASKS: tuple[str, ...] = ("classify", "embed")
#: Default normalisation (torchvision/timm exports): pixels / 255, then (x - mean) / std.
IMAGENET_MEAN: tuple[float, ...] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, ...] = (0.229, 0.224, 0.225)
_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8"}


def read_labels(path: str | os.PathLike[str]) -> list[str]:
    """Class names from a text file, one per line (blank lines at the end are ignored).

    Raises:
        ConfigError: the file cannot be read, is empty, or has a blank line between labels.
    """
    p = Path(path).expanduser()
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read labels file: {err}", path=str(p)) from err
    while lines and not lines[-1].strip():
        lines.pop()
    labels = [ln.strip() for ln in lines]
    if not labels:
        raise ConfigError("labels file is empty; write one class name per line", path=str(p))
    if "" in labels:
        raise ConfigError(f"labels file has a blank line at line {labels.index('') + 1}; one class name per line", path=str(p))
    return labels


def spec_labels(spec: ModelSpec) -> list[str] | None:
    """The labels of a user spec (``spec.labels`` is a file path), or ``None`` if it has none."""
    return read_labels(spec.labels) if spec.labels else None


def input_contract(session: Any, *, size: int | Sequence[int] | None = None) -> dict[str, Any]:
    """Input name, layout, channels, size and dtype from an ORT session's single input.

    Raises:
        WeightsError: the model has more than one input, an unsupported dtype or a shape
            that is not an image batch; or ``size`` is needed (dynamic H/W) but not given,
            or contradicts the model.
    """
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise WeightsError(f"the model has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); an image model has exactly one")
    inp = inputs[0]
    if inp.type not in _DTYPES:
        raise WeightsError(f"input {inp.name!r} has type {inp.type}; supported: {', '.join(_DTYPES)}")
    shape = list(inp.shape)
    if len(shape) != 4:
        raise WeightsError(f"input {inp.name!r} has shape {shape}; expected an image batch (N, C, H, W) or (N, H, W, C)")
    if shape[1] in (1, 3):
        layout, channels, hw = "NCHW", shape[1], shape[2:4]
    elif shape[3] in (1, 3):
        layout, channels, hw = "NHWC", shape[3], shape[1:3]
    else:
        raise WeightsError(f"input {inp.name!r} has shape {shape}; cannot tell the channel axis (expected 1 or 3 channels)")
    fixed = [d if isinstance(d, int) and d > 0 else None for d in hw]
    if size is None:
        if None in fixed:
            raise WeightsError(f"input {inp.name!r} has a dynamic height/width {shape}; give the size (--size N)")
        want = [int(fixed[0]), int(fixed[1])]  # type: ignore[arg-type]
    else:
        want = [int(size), int(size)] if isinstance(size, int) else [int(v) for v in size]
        if len(want) != 2 or min(want) < 1:
            raise ConfigError(f"size must be N or (height, width) with positive values, got {size!r}")
        for axis, (given, model_dim) in enumerate(zip(want, fixed)):
            if model_dim is not None and given != model_dim:
                raise WeightsError(f"size {want} does not match the model's input shape {shape} (axis {'HW'[axis]})")
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    return {"input": inp.name, "layout": layout, "channels": channels, "size": want, "dtype": _DTYPES[inp.type], "batch": batch}


def _default_name(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-.").lower()
    return name or "user-model"


def _norm(values: Sequence[float] | None, default: Sequence[float], channels: int, what: str) -> list[float]:
    if values is None:
        vals = list(default) if channels == 3 else [sum(default) / len(default)]
    else:
        vals = [float(v) for v in values]
    if len(vals) != channels:
        raise ConfigError(f"{what} needs {channels} value(s) for a {channels}-channel input, got {vals}")
    if what == "std" and min(vals) <= 0:
        raise ConfigError(f"std values must be positive, got {vals}")
    return vals


def add_model(
    path: str | os.PathLike[str],
    *,
    task: str,
    name: str | None = None,
    labels: str | os.PathLike[str] | Sequence[str] | None = None,
    size: int | Sequence[int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    license: str = "unknown",
    origin: str | None = None,
    replace: bool = False,
    registry: Any = None,
) -> ModelSpec:
    """Validate an ONNX model and register it as a user entry; return the stored spec.

    ``labels`` is a text file (one class per line) or a list of names; without it a
    classifier's classes are called ``class_0``, ``class_1``, ... ``size`` defaults to
    the model's input shape; ``mean``/``std`` default to ImageNet's (pixels scaled to [0, 1]
    first). The model file stays where it is; its labels are copied to pixsight's folder.

    Raises:
        ConfigError: unsupported task, bad name/labels/mean/std, or the name is taken.
        WeightsError: the file is missing, not loadable, has unsafe external data, or its
            output does not fit the task (e.g. 10 outputs for 5 labels).

    Example::

        add_model("birds.onnx", task="classify", labels=["robin", "wren"], size=224)
    """
    if task not in USER_TASKS:
        raise ConfigError(f"a user ONNX model can be added for task {' or '.join(USER_TASKS)}, not {task!r}")
    model_path = Path(path).expanduser().absolute()
    check_onnx_file(model_path)
    session = create_session(model_path, threads=1, check_external_data=False)  # checked just above
    contract = input_contract(session, size=size)
    channels = contract["channels"]
    pre = {
        **contract,
        "mean": _norm(mean, IMAGENET_MEAN, channels, "mean"),
        "std": _norm(std, IMAGENET_STD, channels, "std"),
        "scale": 1 / 255,
        "channel_order": "RGB",
        "resize": "stretch",
    }
    width = _output_width(session, contract, model_path)
    label_list: list[str] | None
    if labels is None:
        label_list = None
    elif isinstance(labels, (str, os.PathLike)):
        label_list = read_labels(labels)
    else:
        label_list = [str(v).strip() for v in labels]
        if not label_list or "" in label_list:
            raise ConfigError("labels must be a non-empty list of non-empty names")
    if task == "classify" and label_list is not None and len(label_list) != width:
        raise WeightsError(
            f"the model outputs {width} scores but {len(label_list)} labels were given; "
            "give one label per output class, in output order",
            path=str(model_path),
        )
    if task == "embed" and label_list is not None:
        raise ConfigError("an embed model has no labels; drop --labels")

    model_name = name or _default_name(model_path)
    try:
        ModelSpec(name=model_name, task=task, backend="onnx", version="0")
    except ValueError as err:
        raise ConfigError(str(err)) from err
    if registry is None:
        from .registry import get_registry

        registry = get_registry()
    if model_name in registry and not (replace and registry.get(model_name).user):
        what = "a user model" if registry.get(model_name).user else "a builtin model"
        raise ConfigError(f"{what} named {model_name!r} already exists; choose another name (--name)")
    labels_ref = None
    if label_list is not None:
        labels_file = pixsight_home() / "models" / "user" / f"{model_name}.labels.txt"
        atomic_write_text(labels_file, "\n".join(label_list) + "\n")
        labels_ref = str(labels_file)
    digest = sha256_file(model_path)
    spec = ModelSpec(
        name=model_name,
        task=task,
        backend="onnx",
        version=digest[:12],
        weights=(WeightsSource(kind="path", location=str(model_path), sha256=digest, size_bytes=model_path.stat().st_size),),
        preprocess=pre,
        labels=labels_ref,
        license=license,
        origin=origin or f"user file {model_path}",
        description=f"user ONNX {task} model ({width} outputs)",
        requires_modules=("onnxruntime",),
        options={"stage": "onnx_generic", "outputs": width},
        user=True,
    )
    stored = registry.add(spec, replace=replace)
    log.info("added user model %s (%s, %d outputs) from %s", stored.key, task, width, model_path)
    return stored


def _output_width(session: Any, contract: dict[str, Any], path: Path) -> int:
    """Run one blank image through the model and return the width of its first output."""
    h, w = contract["size"]
    c = contract["channels"]
    shape = (contract["batch"] or 1, c, h, w) if contract["layout"] == "NCHW" else (contract["batch"] or 1, h, w, c)
    blank = np.zeros(shape, dtype=np.dtype(contract["dtype"]))
    try:
        out = np.asarray(session.run(None, {contract["input"]: blank})[0])
    except Exception as err:  # onnxruntime raises its own types
        raise WeightsError(f"the model fails on a {h}x{w} input: {err}", path=str(path)) from err
    flat = out.reshape(out.shape[0], -1) if out.ndim >= 1 and out.shape[0] == shape[0] else None
    if flat is None or flat.shape[1] < 1 or (out.ndim > 2 and any(d != 1 for d in out.shape[2:])):
        raise WeightsError(
            f"the model's first output has shape {list(out.shape)}; expected (batch, K) scores or features", path=str(path)
        )
    return int(flat.shape[1])
