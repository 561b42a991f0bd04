"""Training on the user's own data (torch lives here): classify, detect, segment.

See ``docs/design/learning.md`` for the contract between training, evaluation and analyze,
and ``docs/training.md`` for the user's guide. Names are imported on first use (torch is heavy):

>>> from pixsight.train import TrainConfig
>>> TrainConfig().optimizer
'adamw'
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["train", "TrainConfig", "load_run", "Run", "TrainProgress", "TrainingError", "TrainingInterrupted",
           "RunError", "export_run", "build_transforms", "preprocess_array"]

_WHERE = {
    "train": "api", "TrainConfig": "config", "load_run": "run", "Run": "run", "RunError": "run",
    "TrainProgress": "loop", "TrainingError": "loop", "TrainingInterrupted": "loop", "export_run": "export",
    "build_transforms": "transforms", "preprocess_array": "transforms",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
