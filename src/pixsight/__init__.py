"""pixsight: offline-first image analysis.

The public Python API, flat (imported on first use, so ``pixsight`` itself imports fast):

>>> import pixsight
>>> pixsight.AnalyzeConfig().batch_size
16
>>> sorted(pixsight.__all__)[:3]
['Analysis', 'AnalyzeConfig', 'Analyzer']
"""

from __future__ import annotations

import importlib
from typing import Any

from ._moved import install as _install_moved

__version__ = "0.1.0"
_install_moved()  # documented import paths of moved modules keep working (with a DeprecationWarning)

_EXPORTS = {
    "analyze": "pixsight.pipeline.analyzer",
    "Analyzer": "pixsight.pipeline.analyzer",
    "AnalyzeConfig": "pixsight.core.config",
    "ReviewThresholds": "pixsight.core.config",
    "load_image": "pixsight.core.image",
    "Analysis": "pixsight.core.types",
    "Classification": "pixsight.core.types",
    "TextLines": "pixsight.core.types",
    "Faces": "pixsight.core.types",
    "Embedding": "pixsight.core.types",
    "Detections": "pixsight.core.types",
    "Segmentation": "pixsight.core.types",
    "load_run": "pixsight.train.run",
    "evaluate_model": "pixsight.evaluate",
    "evaluate_predictions": "pixsight.evaluate",
    "open_dataset": "pixsight.data.resolve",
    "read_dataset": "pixsight.data.formats",
    "write_dataset": "pixsight.data.formats",
    "Catalog": "pixsight.catalog.store",
    "get_registry": "pixsight.models.registry",
    "PixsightError": "pixsight.core.errors",
}
#: Subpackages reachable as attributes before they are imported. ``pixsight.train`` and
#: ``pixsight.explain`` are always the packages (their functions: ``pixsight.train.train``,
#: ``pixsight.explain.explain``), never a function that an import would later replace.
_SUBPACKAGES = ("train", "explain")
__all__ = sorted([*_EXPORTS, *_SUBPACKAGES])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"pixsight.{name}")
    raise AttributeError(f"module 'pixsight' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
