"""Trained runs as registry entries: a run folder (``model.json`` + ``model.onnx``) is a model.

``pixsight train`` writes ``runs/<task>/<name>/`` (docs/design/learning.md). This module is the
one torch-free reader of such a folder, used by the registry and by :mod:`pixsight.train.run`
alike: :func:`read_model_json` validates ``model.json`` (one set of checks, limits and
:class:`RunError` messages), :func:`read_run_meta` fills in the registry's defaults,
:func:`run_spec` turns the folder into a :class:`~pixsight.models.spec.ModelSpec` whose
version is the sha256 prefix of ``model.onnx`` (so the catalog re-analyses when the weights
change), and :func:`add_run` registers it. Exporting a missing ``model.onnx`` needs torch and
is the training side's job (:func:`pixsight.train.run.register_run`, what
``pixsight models add RUN_DIR`` calls).

Example::

    spec = add_run("runs/detect/shapes")          # registered as "shapes"
    spec.task, spec.options["classes"]            # ('detect', ['circle', 'square'])
    run_spec("runs/detect/shapes").key            # 'shapes@3f2a...' (not registered)
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError, PixsightError, WeightsError
from ..core.fileio import sha256_file
from ..core.preprocess import parse_preprocess
from .spec import ModelSpec, WeightsSource

__all__ = ["RUN_FORMAT", "TRAINED_TASKS", "DEFAULT_POSTPROCESS", "MAX_META_BYTES", "RunError", "is_run_dir",
           "run_folder", "read_model_json", "read_run_meta", "onnx_file", "run_spec", "add_run", "check_run_outputs",
           "refresh"]

log = logging.getLogger(__name__)

#: ``model.json`` ``format`` this reader understands.
RUN_FORMAT = "pixsight-run/1"
#: Tasks a run folder can hold.
TRAINED_TASKS: tuple[str, ...] = ("classify", "detect", "segment")
#: Detection post-processing defaults (model.json ``postprocess`` overrides them).
DEFAULT_POSTPROCESS: dict[str, float] = {"score_threshold": 0.05, "iou_threshold": 0.6, "max_detections": 100,
                                         "analyze_score_threshold": 0.3}
#: model.json is small; anything larger is refused unread.
MAX_META_BYTES = 4 << 20


class RunError(ConfigError):
    """A folder is not a (complete, valid) training run, or its ``model.json`` is invalid.

    A :class:`~pixsight.core.errors.ConfigError`: the message names the file and the field
    and says what to do.
    """


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a folder with a ``model.json`` (a training run).

    >>> is_run_dir("/nonexistent")
    False
    """
    p = Path(path).expanduser()
    return p.is_dir() and (p / "model.json").is_file()


def run_folder(path: str | os.PathLike[str]) -> Path:
    """The run folder of ``path`` (a run folder or its ``model.json``), user-expanded.

    >>> run_folder("runs/classify/shapes/model.json").as_posix()
    'runs/classify/shapes'
    """
    p = Path(path).expanduser()
    return p.parent if p.name == "model.json" and not p.is_dir() else p


def _safe_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.").lower()
    return name or "trained-model"


def read_model_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A run folder's ``model.json`` as written, after validating every field a reader uses.

    ``path`` is the run folder or its ``model.json``. ``format``, ``task``, ``classes`` and
    ``preprocess`` are required; ``name``, ``arch``, ``postprocess``, ``metrics`` and ``onnx``
    are checked when present.

    Raises:
        RunError: not a run folder, an unreadable or oversized (> 4 MiB) file, or an invalid
            field (the message names it and says how to fix it).

    >>> read_model_json("/nonexistent")
    Traceback (most recent call last):
    ...
    pixsight.models.runs.RunError: /nonexistent: is not a folder; expected a pixsight run folder with model.json ...
    """
    run = run_folder(path)
    meta_path = run / "model.json"
    if not run.is_dir():
        raise RunError("is not a folder; expected a pixsight run folder with model.json (train one with "
                       "`pixsight train TASK ...`)", path=str(run))
    if not meta_path.is_file():
        raise RunError("not a pixsight run folder (no model.json); train one with `pixsight train TASK ...`, "
                       "or register an .onnx file with `pixsight models add FILE.onnx --task ...`", path=str(run))
    where = str(meta_path)
    try:
        if meta_path.stat().st_size > MAX_META_BYTES:
            raise RunError(f"model.json is larger than {MAX_META_BYTES >> 20} MiB; it is not a run file", path=where)
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunError(f"cannot read model.json ({err})", path=where) from None
    _check_meta(meta, where)
    return meta


def _check_meta(meta: Any, where: str) -> None:
    """Raise :class:`RunError` on the first invalid field of a parsed ``model.json``."""
    if not isinstance(meta, dict):
        raise RunError("model.json must hold a JSON object", path=where)
    if meta.get("format") != RUN_FORMAT:
        raise RunError(f"model.json format is {meta.get('format')!r}, expected {RUN_FORMAT!r}; "
                       "it was written by another tool or a newer pixsight", path=where)
    task = meta.get("task")
    if task not in TRAINED_TASKS:
        raise RunError(f"model.json task is {task!r}; a run holds one of {', '.join(TRAINED_TASKS)}", path=where)
    classes = meta.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) and c for c in classes) \
            or len(set(classes)) != len(classes):
        raise RunError("model.json classes must be a non-empty list of distinct class names", path=where)
    if "name" in meta and not (isinstance(meta["name"], str) and meta["name"]):
        raise RunError(f"model.json name must be a non-empty string, got {meta['name']!r}", path=where)
    arch = meta.get("arch")
    if arch is not None and (not isinstance(arch, dict) or not isinstance(arch.get("name"), str)
                             or not isinstance(arch.get("params", {}), dict)):
        raise RunError("model.json arch must be {'name': str, 'params': {...}}", path=where)
    try:
        parse_preprocess(meta.get("preprocess"))  # type: ignore[arg-type]
    except ConfigError as err:
        raise RunError(f"model.json {err.message}", path=where) from None
    given = meta.get("postprocess")
    if given is not None and not isinstance(given, dict):
        raise RunError("model.json postprocess must be an object or null", path=where)
    for key, value in (given or {}).items():
        if key in DEFAULT_POSTPROCESS and (isinstance(value, bool) or not isinstance(value, (int, float))
                                           or not np.isfinite(value) or value < 0):
            raise RunError(f"model.json postprocess.{key} must be a non-negative number, got {value!r}", path=where)
    for key in ("metrics", "onnx"):
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            raise RunError(f"model.json {key} must be an object", path=where)


def read_run_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """:func:`read_model_json` with the registry's defaults filled in.

    ``name`` defaults to the folder's name, ``preprocess`` is normalised, ``postprocess``
    holds every :data:`DEFAULT_POSTPROCESS` key, ``metrics`` only its numbers.

    Raises:
        RunError: as :func:`read_model_json`.
    """
    run = run_folder(path)
    meta = read_model_json(run)
    post = dict(DEFAULT_POSTPROCESS)
    post.update({k: v for k, v in (meta.get("postprocess") or {}).items() if k in DEFAULT_POSTPROCESS})
    post["max_detections"] = int(post["max_detections"])
    metrics = meta.get("metrics") or {}
    return {
        **meta,
        "name": str(meta.get("name") or run.resolve().name),
        "classes": list(meta["classes"]),
        "preprocess": parse_preprocess(meta["preprocess"]).to_dict(),
        "postprocess": post,
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
    }


def onnx_file(run: str | os.PathLike[str], meta: dict[str, Any]) -> Path:
    """The run's ONNX file: ``onnx.file`` when it is a plain file name, else ``model.onnx``;
    always inside the run folder.

    >>> onnx_file("runs/x", {"onnx": {"file": "../../etc/passwd"}}).as_posix()
    'runs/x/model.onnx'
    """
    run = Path(run)
    name = (meta.get("onnx") or {}).get("file") if isinstance(meta.get("onnx"), dict) else None
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        name = "model.onnx"
    return run / name


@functools.lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def run_spec(path: str | os.PathLike[str], *, name: str | None = None) -> ModelSpec:
    """The registry entry for a run folder (not registered; see :func:`add_run`).

    ``version`` is the first 12 hex digits of ``model.onnx``'s sha256 (cached per file size
    and mtime), so results stored in the catalog are re-computed when the weights change.

    Raises:
        RunError: not a valid run folder (a ConfigError).
        WeightsError: ``model.onnx`` is missing (``pixsight models add RUN`` exports it).
    """
    run = run_folder(path).absolute()
    meta = read_run_meta(run)
    onnx_path = onnx_file(run, meta)
    if not onnx_path.is_file():
        raise WeightsError(f"the run has no {onnx_path.name}; export it with `pixsight models add {run}` "
                           "(needs torch once), or re-run training", path=str(run))
    st = onnx_path.stat()
    digest = _digest(str(onnx_path), st.st_size, st.st_mtime_ns)
    arch = meta.get("arch") if isinstance(meta.get("arch"), dict) else {}
    primary = meta.get("primary_metric")
    return ModelSpec(
        name=name or _safe_name(meta["name"]),
        task=meta["task"],
        backend="onnx",
        version=digest[:12],
        weights=(WeightsSource(kind="path", location=str(onnx_path), sha256=digest, size_bytes=st.st_size),),
        preprocess=meta["preprocess"],
        license="your own (trained with pixsight)",
        origin=f"pixsight train run {run}",
        description=f"trained {meta['task']} model ({arch.get('name', 'unknown arch')}, {len(meta['classes'])} classes)",
        metrics=meta["metrics"],
        requires_modules=("onnxruntime",),
        options={
            "stage": "trained",
            "run_dir": str(run),
            "classes": meta["classes"],
            "postprocess": meta["postprocess"],
            "primary_metric": primary if isinstance(primary, str) else None,
            "arch": arch.get("name"),
        },
        user=True,
    )


def check_run_outputs(spec: ModelSpec, *, session: Any = None) -> dict[str, tuple[int, ...]]:
    """Run one blank input through the model and check the outputs of its task's contract.

    Returns output name -> shape. classify: ``logits (1, C)``; detect: ``boxes (1, L, 4)``
    and ``scores (1, L, C)``; segment: ``logits (1, C + 1, H, W)``.

    Raises:
        WeightsError: an output is missing or has the wrong shape (the message says which).
    """
    from .runtime import create_session
    from .weights import resolve_weights

    path = resolve_weights(spec)
    sess = session or create_session(path, threads=1, check_external_data=True)
    h, w = spec.preprocess["size"]
    inputs = sess.get_inputs()
    if len(inputs) != 1 or inputs[0].name != "images":
        raise WeightsError(f"the model's input must be one tensor named 'images', got {[i.name for i in inputs]}", path=str(path))
    try:
        values = sess.run(None, {"images": np.zeros((1, 3, h, w), np.float32)})
    except Exception as err:  # onnxruntime raises its own types
        raise WeightsError(f"the model fails on a 1x3x{h}x{w} input: {err}", path=str(path)) from err
    outs = {o.name: tuple(np.asarray(v).shape) for o, v in zip(sess.get_outputs(), values)}
    c = len(spec.options["classes"])
    wanted = {"classify": {"logits": (1, c)}, "segment": {"logits": (1, c + 1, h, w)}}.get(spec.task)
    problems = []
    if spec.task == "detect":
        b, s = outs.get("boxes"), outs.get("scores")
        if b is None or len(b) != 3 or b[0] != 1 or b[2] != 4:
            problems.append(f"boxes should be (1, L, 4), got {b}")
        if s is None or len(s) != 3 or s[0] != 1 or s[2] != c or (b is not None and len(b) == 3 and s[1] != b[1]):
            problems.append(f"scores should be (1, L, {c}) with the same L as boxes, got {s}")
    else:
        for key, shape in (wanted or {}).items():
            if outs.get(key) != shape:
                problems.append(f"{key} should be {shape}, got {outs.get(key)}")
    if problems:
        raise WeightsError(f"the {spec.task} model does not follow the run contract: {'; '.join(problems)} "
                           f"(outputs: {outs})", path=str(path))
    return outs


def add_run(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    replace: bool = False,
    default: bool = False,
    registry: Any = None,
) -> ModelSpec:
    """Validate a run folder and register it (under ``model.json``'s name unless ``name``).

    The ONNX file is opened in ONNX Runtime and checked against the task's output contract.
    It must exist: :func:`pixsight.train.run.register_run` (``pixsight models add RUN_DIR``)
    exports it from the run's weights first when it is missing (that needs torch).
    ``default=True`` makes it the model ``--tasks <its task>`` picks; otherwise the most
    recently added model of a task is picked.

    Raises:
        ConfigError: not a run folder, invalid model.json, bad name, or the name is taken
            (pass ``replace=True``, ``--replace`` on the CLI).
        WeightsError: the ONNX file is missing, or does not follow the contract.

    Example::

        add_run("runs/detect/shapes", name="shapes-v2", default=True)
    """
    run = run_folder(path).absolute()
    meta = read_run_meta(run)
    spec_name = name or _safe_name(meta["name"])
    try:
        spec = run_spec(run, name=spec_name)
    except ValueError as err:  # ModelSpec refuses the name
        raise ConfigError(str(err)) from err
    check_run_outputs(spec)
    if registry is None:
        from .registry import get_registry

        registry = get_registry()
    if spec.name in registry and not (replace and registry.get(spec.name).user):
        raise ConfigError(f"a model named {spec.name!r} already exists; pass --name NEW or --replace")
    spec = ModelSpec.from_dict({**spec.to_dict(), "default": bool(default),
                                "options": {**spec.options, "added": time.time()}})
    stored = registry.add(spec, replace=replace)
    if default:
        registry.set_default(stored.name)
    log.info("registered trained %s model %s from %s", stored.task, stored.key, run)
    return stored


def refresh(spec: ModelSpec) -> ModelSpec:
    """A registered run entry re-read from its folder (new version when the ONNX changed).

    The stored entry is returned unchanged when the folder is gone or broken; availability
    then reports what is missing.
    """
    run_dir = spec.options.get("run_dir")
    if not run_dir:
        return spec
    try:
        fresh = run_spec(run_dir, name=spec.name)
    except (PixsightError, OSError, ValueError) as err:
        log.debug("run %s cannot be re-read (%s); using the registered entry", run_dir, err)
        return spec
    if fresh.version == spec.version and fresh.preprocess == spec.preprocess and fresh.options["classes"] == spec.options.get("classes"):
        return spec
    log.info("run %s changed since it was registered: %s -> %s", run_dir, spec.key, fresh.key)
    return ModelSpec.from_dict({**fresh.to_dict(), "default": spec.default,
                                "options": {**fresh.options, "added": spec.options.get("added")}})
