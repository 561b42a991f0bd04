"""Tasks: turn registry entries into :class:`~pixsight.tasks.base.Stage` objects.

Built-in tasks run by default; ``detect`` and ``segment`` run models you trained
(``pixsight train``), either the one registered for the task (``pixsight models add RUN``)
or a run folder / name given as the task's model (``--model`` on the CLI).

>>> DEFAULT_TASKS
('classify', 'ocr', 'faces', 'embed')
>>> TRAINED_ONLY_TASKS
('detect', 'segment')
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from typing import Any, Callable, Sequence

from ..core.config import AnalyzeConfig
from ..core.errors import ConfigError, ModelUnavailableError
from ..models.spec import ModelSpec
from .base import Stage, StageInfo, StageOutput

__all__ = ["DEFAULT_TASKS", "SUPPORTED_TASKS", "TRAINED_ONLY_TASKS", "Stage", "StageInfo", "StageOutput", "model_for_task",
           "resolve_tasks", "build_stages", "config_with_models"]

log = logging.getLogger(__name__)

#: Tasks ``pixsight analyze`` runs by default (when their models are available offline).
DEFAULT_TASKS: tuple[str, ...] = ("classify", "ocr", "faces", "embed")
#: Tasks answered only by models trained with ``pixsight train`` (not run by default).
TRAINED_ONLY_TASKS: tuple[str, ...] = ("detect", "segment")
#: Tasks ``pixsight analyze`` knows how to run.
SUPPORTED_TASKS: tuple[str, ...] = DEFAULT_TASKS + TRAINED_ONLY_TASKS

# Which module builds the stage for a spec: by ``spec.options["stage"]``, else by backend.
_STAGE_MODULES: dict[str, str] = {
    "imagenet": "pixsight.tasks.imagenet",
    "ocr": "pixsight.tasks.ocr",
    "faces": "pixsight.tasks.faces",
    "onnx_generic": "pixsight.tasks.onnx_generic",
    "trained": "pixsight.tasks.trained",
}
_BACKEND_STAGE: dict[str, str] = {"rapidocr": "ocr", "tesseract": "ocr", "dlib": "faces", "onnx": "onnx_generic"}


def model_for_task(task: str, config: AnalyzeConfig, registry: Any = None) -> str:
    """The model name (or run folder) configured for ``task``.

    For ``detect``/``segment`` with no model configured, the registered trained model of
    that task (``registry.trained_for``: the default one, else the latest added).

    Raises:
        ConfigError: unknown task.
        ModelUnavailableError: ``detect``/``segment`` and no trained model is registered.
    """
    options: Any = getattr(config, task, None)
    if options is None or not hasattr(options, "model"):
        raise ConfigError(f"unknown task {task!r}; supported: {', '.join(SUPPORTED_TASKS)}")
    if options.model or task not in TRAINED_ONLY_TASKS:
        return options.model
    if registry is None:
        from ..models.registry import get_registry

        registry = get_registry()
    spec = registry.trained_for(task)
    if spec is None:
        raise ModelUnavailableError(
            f"task {task!r} needs a model you trained, and none is registered: train one with "
            f"`pixsight train {task} DATASET`, then `pixsight models add runs/{task}/NAME` "
            f"(or pass the run folder: --model runs/{task}/NAME)"
        )
    return spec.name


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
        spec = registry.get(model_for_task(task, config, registry))
        avail = availability(spec)
        if avail.available:
            chosen.append(task)
        elif config.tasks is not None:
            raise ModelUnavailableError(f"task {task!r}: model {spec.name!r} is not available: {avail.reason}. {avail.hint}")
        else:
            skipped[task] = f"{avail.reason}. {avail.hint}".strip()
    return tuple(chosen), skipped


def config_with_models(config: AnalyzeConfig, models: Sequence[str], *, registry: Any = None) -> AnalyzeConfig:
    """``config`` with each of ``models`` (registered names or training run folders) set as
    the model of its task — what ``pixsight analyze --model`` does.

    Task selection: with ``config.tasks`` given, the models' tasks are added to it; without,
    only the models' tasks run (``--model runs/detect/x`` alone runs just that detector).
    An empty ``models`` returns ``config`` unchanged.

    Raises:
        ConfigError: two models answer the same task, or a model's task cannot be analysed.
        UnknownModelError, WeightsError: a name or folder that cannot be used.

    >>> config_with_models(AnalyzeConfig(), []) == AnalyzeConfig()
    True
    """
    if not models:
        return config
    if registry is None:
        from ..models.registry import get_registry

        registry = get_registry()
    chosen: dict[str, str] = {}
    for ref in models:
        spec = registry.get(ref)
        if spec.task not in SUPPORTED_TASKS:
            raise ConfigError(f"model {ref!r} answers {spec.task!r}, which pixsight analyze does not run")
        if spec.task in chosen:
            raise ConfigError(f"two models for task {spec.task!r} ({chosen[spec.task]!r} and {ref!r}); "
                              "give one --model per task and run again for the other")
        chosen[spec.task] = ref
    changes: dict[str, Any] = {task: dataclasses.replace(getattr(config, task), model=ref) for task, ref in chosen.items()}
    base = config.tasks if config.tasks is not None else ()
    changes["tasks"] = tuple(dict.fromkeys([*base, *chosen]))
    return config.replace(**changes)


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
        spec = registry.get(model_for_task(task, config, registry))
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
