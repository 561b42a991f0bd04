"""The model side of an explanation: :class:`ExplainableModel` and :func:`load_explainable`.

:func:`load_explainable` turns a run folder, a loaded :class:`~pixsight.train.run.Run` or the
name of the built-in ImageNet classifier (``"efficientnet-lite0"``) into an
:class:`ExplainableModel`: the torch module in eval mode, its task, classes, preprocessing
and the layers a CAM reads. Any torch module with the contract's outputs
(docs/design/learning.md) can be wrapped directly. torch is imported on first use only.

>>> resolve_class("Square", ["circle", "square"]), resolve_class(0, ["circle", "square"])
(1, 0)
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError, ModelUnavailableError, UnknownModelError
from ..train.run import Run, load_run

__all__ = ["BUILTIN_MODELS", "TASKS", "ExplainableModel", "load_explainable", "resolve_class"]

#: Built-in model names :func:`load_explainable` accepts (the torch twin of the registry entry).
BUILTIN_MODELS: tuple[str, ...] = ("efficientnet-lite0",)
#: Tasks an explanation exists for.
TASKS: tuple[str, ...] = ("classify", "detect", "segment")


@dataclass
class ExplainableModel:
    """A torch module in eval mode plus what explaining it needs.

    Args:
        module: eval-mode module whose ``forward(images)`` returns the contract's outputs
            (classify ``logits [N, C]``; detect ``(boxes [N, L, 4], scores [N, L, C])``; segment
            ``logits [N, K + 1, H, W]``).
        task: ``"classify"``, ``"detect"`` or ``"segment"``.
        classes: class names (ImageNet: 1000 names; segment: without the background).
        preprocess: ``model.json`` ``preprocess`` (``resize`` ``"stretch"``/``"letterbox"``), or
            the ImageNet registry's ``"center_crop"`` block.
        postprocess: ``model.json`` ``postprocess`` (detect thresholds), else ``None``.
        name: what to call the model in results.
        layers: module names (``dict(module.named_modules())`` keys) the CAM reads; ``None``
            picks them (:func:`target_layers`).
    """

    module: Any
    task: str
    classes: list[str]
    preprocess: dict[str, Any]
    postprocess: dict[str, Any] | None = None
    name: str = "model"
    layers: tuple[str, ...] | None = None
    _layer_cache: dict[tuple[Any, ...], tuple[str, ...]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"cannot explain task {self.task!r}; explanations exist for {', '.join(TASKS)}")
        if not self.classes:
            raise ConfigError(f"model {self.name!r} has no class names")


def load_explainable(model: Any) -> ExplainableModel:
    """Resolve ``model`` (run folder path, loaded ``Run``, built-in name, or an
    :class:`ExplainableModel`) into an :class:`ExplainableModel`.

    Raises:
        UnknownModelError: the name is not a built-in model and not a run folder.
        ModelUnavailableError / WeightsError: the model exists but cannot be built here.

    >>> m = load_explainable("efficientnet-lite0")          # doctest: +SKIP
    >>> m.task, len(m.classes), m.preprocess["resize"]      # doctest: +SKIP
    ('classify', 1000, 'center_crop')
    """
    if isinstance(model, ExplainableModel):
        return model
    if isinstance(model, (str, os.PathLike)):
        text = os.fspath(model)
        if text in BUILTIN_MODELS:
            return _builtin_imagenet(text)
        path = Path(text)
        if (path.is_dir() and (path / "model.json").is_file()) or (path.name == "model.json" and path.is_file()):
            return _from_run(load_run(path))
        if path.exists():
            raise UnknownModelError(f"{text} is not a run folder (no model.json inside); pass a folder written "
                                    f"by `pixsight train` or one of: {', '.join(BUILTIN_MODELS)}")
        close = difflib.get_close_matches(text, BUILTIN_MODELS, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UnknownModelError(f"no run folder or built-in model called {text!r}{hint}; explain works with a run "
                                f"folder (runs/<task>/<name>) or: {', '.join(BUILTIN_MODELS)}")
    if isinstance(model, Run):
        return _from_run(model)
    raise ConfigError(f"cannot explain a {type(model).__name__}; pass a run folder, a loaded Run, "
                      f"{' / '.join(BUILTIN_MODELS)}, or an ExplainableModel")


def _from_run(run: Run) -> ExplainableModel:
    """The run's torch module (best weights; needs torch) with its classes and preprocessing."""
    try:
        module = run.build_model()
    except ImportError as err:
        raise ModelUnavailableError(f"cannot build the run's torch model here ({err}); install the training "
                                    "extras: pip install 'pixsight[train]'") from err
    name = str(run.meta.get("name") or run.path.name)
    return ExplainableModel(module, task=str(run.task), classes=list(run.classes),
                            preprocess=dict(run.preprocess), postprocess=dict(run.postprocess or {}) or None,
                            name=name)


def _builtin_imagenet(name: str) -> ExplainableModel:
    from ..models.efficientnet_lite import efficientnet_lite0
    from ..models.zoo.imagenet import PREPROCESS
    from ..tasks.imagenet import load_labels

    return ExplainableModel(efficientnet_lite0(weights="package"), task="classify",
                            classes=load_labels("imagenet_classes.txt", expected=1000),
                            preprocess=dict(PREPROCESS), name=name)


def resolve_class(target: str | int, classes: Sequence[str]) -> int:
    """Class id of ``target`` (a name, case-insensitive if unambiguous, or an id).

    Raises:
        ConfigError: unknown name (with close matches) or id out of range.

    >>> resolve_class("Square", ["circle", "square"]), resolve_class(0, ["circle", "square"])
    (1, 0)
    """
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        if not 0 <= int(target) < len(classes):
            raise ConfigError(f"class id {target} is out of range; the model has {len(classes)} classes")
        return int(target)
    text = str(target).strip()
    if text in classes:
        return list(classes).index(text)
    folded = [i for i, c in enumerate(classes) if c.lower() == text.lower()]
    if folded:
        return folded[0]
    if text.isdigit() and int(text) < len(classes):
        return int(text)
    close = difflib.get_close_matches(text, list(classes), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else (
        f"; the classes are {', '.join(classes[:8])}{', ...' if len(classes) > 8 else ''}")
    raise ConfigError(f"unknown target class {text!r}{hint}")
