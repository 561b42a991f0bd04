"""Trained runs as registry entries: a run folder (``model.json`` + ``model.onnx``) is a model.

``pixsight train`` writes ``runs/<task>/<name>/`` (docs/design/learning.md). This module
reads such a folder without torch: :func:`read_run_meta` validates ``model.json``,
:func:`run_spec` turns the folder into a :class:`~pixsight.models.spec.ModelSpec` whose
version is the sha256 prefix of ``model.onnx`` (so the catalog re-analyses when the weights
change), and :func:`add_run` registers it (``pixsight models add RUN_DIR``), exporting the
ONNX file through :mod:`pixsight.train.run` first when it is missing (torch is fine there).

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

__all__ = ["RUN_FORMAT", "TRAINED_TASKS", "DEFAULT_POSTPROCESS", "is_run_dir", "read_run_meta", "run_spec",
           "add_run", "check_run_outputs", "refresh"]

log = logging.getLogger(__name__)

#: ``model.json`` ``format`` this reader understands.
RUN_FORMAT = "pixsight-run/1"
#: Tasks a run folder can hold.
TRAINED_TASKS: tuple[str, ...] = ("classify", "detect", "segment")
#: Detection post-processing defaults (model.json ``postprocess`` overrides them).
DEFAULT_POSTPROCESS: dict[str, float] = {"score_threshold": 0.05, "iou_threshold": 0.6, "max_detections": 100,
                                         "analyze_score_threshold": 0.3}
_MAX_META_BYTES = 4 << 20  # model.json is small; refuse anything that is not


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a folder with a ``model.json`` (a training run).

    >>> is_run_dir("/nonexistent")
    False
    """
    p = Path(path).expanduser()
    return p.is_dir() and (p / "model.json").is_file()


def _safe_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.").lower()
    return name or "trained-model"


def read_run_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a run folder's ``model.json``; returns it with defaults filled in.

    Raises:
        ConfigError: not a run folder, or ``model.json`` is not a valid ``pixsight-run/1``
            file (the message names the field and says how to fix it).

    >>> read_run_meta("/nonexistent")
    Traceback (most recent call last):
    ...
    pixsight.core.errors.ConfigError: /nonexistent: not a pixsight run folder (no model.json); ...
    """
    run = Path(path).expanduser()
    meta_path = run / "model.json"
    if not is_run_dir(run):
        raise ConfigError("not a pixsight run folder (no model.json); train one with `pixsight train TASK ...`, "
                          "or register an .onnx file with `pixsight models add FILE.onnx --task ...`", path=str(run))
    where = str(meta_path)
    try:
        if meta_path.stat().st_size > _MAX_META_BYTES:
            raise ConfigError(f"model.json is larger than {_MAX_META_BYTES >> 20} MiB; it is not a run file", path=where)
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"cannot read model.json ({err})", path=where) from err
    if not isinstance(meta, dict):
        raise ConfigError("model.json must hold a JSON object", path=where)
    if meta.get("format") != RUN_FORMAT:
        raise ConfigError(f"model.json format is {meta.get('format')!r}, expected {RUN_FORMAT!r}; "
                          "it was written by another tool or a newer pixsight", path=where)
    task = meta.get("task")
    if task not in TRAINED_TASKS:
        raise ConfigError(f"model.json task is {task!r}; a run holds one of {', '.join(TRAINED_TASKS)}", path=where)
    classes = meta.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) and c for c in classes) \
            or len(set(classes)) != len(classes):
        raise ConfigError("model.json classes must be a non-empty list of distinct class names", path=where)
    try:
        pre = parse_preprocess(meta.get("preprocess"))  # type: ignore[arg-type]
    except ConfigError as err:
        raise ConfigError(f"model.json {err.message}", path=where) from None
    post = dict(DEFAULT_POSTPROCESS)
    given = meta.get("postprocess") or {}
    if not isinstance(given, dict):
        raise ConfigError("model.json postprocess must be an object", path=where)
    for key, value in given.items():
        if key in DEFAULT_POSTPROCESS:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise ConfigError(f"model.json postprocess.{key} must be a non-negative number, got {value!r}", path=where)
            post[key] = value
    post["max_detections"] = int(post["max_detections"])
    metrics = meta.get("metrics") or {}
    return {
        **meta,
        "name": str(meta.get("name") or run.resolve().name),
        "classes": list(classes),
        "preprocess": pre.to_dict(),
        "postprocess": post,
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if isinstance(metrics, dict) else {},
    }


def _onnx_file(run: Path, meta: dict[str, Any]) -> Path:
    """``model.onnx`` (or ``onnx.file`` when it is a plain file name): always inside the run."""
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
        ConfigError: not a valid run folder.
        WeightsError: ``model.onnx`` is missing (``pixsight models add RUN`` exports it).
    """
    run = Path(path).expanduser().absolute()
    meta = read_run_meta(run)
    onnx_path = _onnx_file(run, meta)
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


def _export_onnx(run: Path) -> None:
    """Make ``model.onnx`` from the run's best weights (training side; imports torch)."""
    try:
        from ..train.run import load_run
    except ImportError as err:
        raise WeightsError(f"the run has no model.onnx and it cannot be exported here ({err}); "
                           "install the training extra: pip install 'pixsight[train]'", path=str(run)) from err
    log.info("exporting %s/model.onnx from the run's best weights", run)
    load_run(run).onnx_path(export_if_missing=True)


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

    The ONNX file is exported first when missing (through ``pixsight.train.run``, which needs
    torch), then opened in ONNX Runtime and checked against the task's output contract.
    ``default=True`` makes it the model ``--tasks <its task>`` picks; otherwise the most
    recently added model of a task is picked.

    Raises:
        ConfigError: not a run folder, invalid model.json, bad name, or the name is taken
            (pass ``replace=True``, ``--replace`` on the CLI).
        WeightsError: the ONNX file is missing and cannot be exported, or does not follow
            the contract.

    Example::

        add_run("runs/detect/shapes", name="shapes-v2", default=True)
    """
    run = Path(path).expanduser().absolute()
    meta = read_run_meta(run)
    if not _onnx_file(run, meta).is_file():
        _export_onnx(run)
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
