"""One module per training task; each exposes ``TASK``, an object implementing
:class:`pixsight.train.tasks.base.TrainTask`.

>>> sorted(TASK_MODULES)
['classify', 'detect', 'segment']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import TrainTask

TASK_MODULES = {"classify": "classify", "detect": "detect", "segment": "segment"}


def get_task(name: str) -> TrainTask:
    """The :class:`TrainTask` for ``name`` (``classify``, ``detect`` or ``segment``)."""
    from ...core.errors import ConfigError

    if name not in TASK_MODULES:
        raise ConfigError(f"unknown training task {name!r}; use one of {', '.join(TASK_MODULES)}")
    return importlib.import_module(f"{__name__}.{TASK_MODULES[name]}").TASK
