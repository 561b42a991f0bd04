"""Tasks: turn registry entries into :class:`~pixsight.tasks.base.Stage` objects.

>>> DEFAULT_TASKS
('classify', 'ocr', 'faces', 'embed')
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Callable

from ..core.config import AnalyzeConfig
from ..core.errors import ConfigError, ModelUnavailableError
from ..models.spec import ModelSpec
from .base import Stage, StageInfo, StageOutput

__all__ = ["DEFAULT_TASKS", "SUPPORTED_TASKS", "Stage", "StageInfo", "StageOutput", "model_for_task",
           "resolve_tasks", "build_stages"]

log = logging.getLogger(__name__)

#: Tasks ``pixsight analyze`` runs by default (when their models are available offline).
DEFAULT_TASKS: tuple[str, ...] = ("classify", "ocr", "faces", "embed")
#: Tasks ``pixsight analyze`` knows how to run.
SUPPORTED_TASKS: tuple[str, ...] = DEFAULT_TASKS

# Which module builds the stage for a spec: by ``spec.options["stage"]``, else by backend.
_STAGE_MODULES: dict[str, str] = {
    "imagenet": "pixsight.tasks.imagenet",
    "ocr": "pixsight.tasks.ocr",
    "faces": "pixsight.tasks.faces",
    "onnx_generic": "pixsight.tasks.onnx_generic",
}
_BACKEND_STAGE: dict[str, str] = {"rapidocr": "ocr", "tesseract": "ocr", "dlib": "faces", "onnx": "onnx_generic"}


def model_for_task(task: str, config: AnalyzeConfig) -> str:
    """The model name configured for ``task``."""
    options: Any = getattr(config, task, None)
    if options is None or not hasattr(options, "model"):
        raise ConfigError(f"unknown task {task!r}; supported: {', '.join(SUPPORTED_TASKS)}")
    return options.model


def resolve_tasks(config: AnalyzeConfig, registry: Any) -> tuple[tuple[str, ...], dict[str, str]]:
    """Pick the tasks to run and explain the ones skipped.

    With ``config.tasks`` set, every named task must be known and available (else a
    :class:`ModelUnavailableError` saying how to get it). With ``None``, every default task
    whose model is available offline runs; the others are returned in ``skipped``
    (task -> reason with a hint).
    """
    from ..models.registry import availability

    wanted = config.tasks if config.tasks is not None else DEFAULT_TASKS
    chosen: list[str] = []
    skipped: dict[str, str] = {}
    for task in wanted:
        if task not in SUPPORTED_TASKS:
            raise ConfigError(f"unknown task {task!r}; supported: {', '.join(SUPPORTED_TASKS)}")
        spec = registry.get(model_for_task(task, config))
        avail = availability(spec)
        if avail.available:
            chosen.append(task)
        elif config.tasks is not None:
            raise ModelUnavailableError(f"task {task!r}: model {spec.name!r} is not available: {avail.reason}. {avail.hint}")
        else:
            skipped[task] = f"{avail.reason}. {avail.hint}".strip()
    return tuple(chosen), skipped


def _stage_module(spec: ModelSpec) -> str:
    kind = spec.options.get("stage") or _BACKEND_STAGE.get(spec.backend)
    if kind not in _STAGE_MODULES:
        raise ConfigError(f"model {spec.name!r}: no stage runs backend {spec.backend!r} for task {spec.task!r}")
    return _STAGE_MODULES[kind]


def build_stages(
    tasks: tuple[str, ...],
    config: AnalyzeConfig,
    registry: Any,
    *,
    isolate: Callable[[str, ModelSpec, AnalyzeConfig, tuple[str, ...]], Stage] | None = None,
) -> list[Stage]:
    """One stage per model family; tasks answered by the same model share one stage.

    (The ImageNet classifier answers ``classify`` and ``embed`` with one forward pass.)
    A task module that declares ``GIL_BOUND = True`` (dlib holds the GIL) is built with
    ``isolate(module_name, spec, config, tasks)`` when given — the analyzer passes a
    factory that runs the stage in its own process.
    """
    groups: dict[tuple[str, str], tuple[ModelSpec, list[str]]] = {}
    for task in tasks:
        spec = registry.get(model_for_task(task, config))
        key = (_stage_module(spec), spec.options.get("shared_weights") or spec.name)
        if key in groups:
            groups[key][1].append(task)
        else:
            groups[key] = (spec, [task])
    stages: list[Stage] = []
    try:
        for (module_name, _), (spec, group_tasks) in groups.items():
            module = importlib.import_module(module_name)
            if isolate is not None and getattr(module, "GIL_BOUND", False):
                stages.append(isolate(module_name, spec, config, tuple(group_tasks)))
            else:
                stages.append(module.create_stage(spec, config, tuple(group_tasks)))
    except BaseException:
        for stage in stages:
            stage.close()
        raise
    return stages
