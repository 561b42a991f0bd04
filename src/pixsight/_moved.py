"""Old import paths of modules that moved between packages, kept working with a warning.

Only paths the documentation gave users are kept (``pixsight.evaluate.explain``,
``pixsight.evaluate.cam_targets``, ``pixsight.viz.dataset_report``). Importing one imports the
new module under the old name too and emits a :class:`DeprecationWarning` naming the new path.
This lives at the top of the package (not in ``evaluate`` or ``viz``) so that no lower layer
imports a higher one.

>>> import warnings
>>> with warnings.catch_warnings():
...     warnings.simplefilter("ignore", DeprecationWarning)
...     from pixsight.viz.dataset_report import write_stats_html
>>> write_stats_html.__module__
'pixsight.data.report'
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType
from typing import Sequence

__all__ = ["MOVED", "install"]

#: old module path -> new module path.
MOVED: dict[str, str] = {
    "pixsight.evaluate.explain": "pixsight.explain.cam",
    "pixsight.evaluate.cam_targets": "pixsight.explain",
    "pixsight.viz.dataset_report": "pixsight.data.report",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old names of :data:`MOVED` and loads them as the new modules."""

    def __init__(self) -> None:
        self._specs: dict[str, importlib.machinery.ModuleSpec | None] = {}

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = MOVED[spec.name]
        warnings.warn(f"{spec.name} moved to {new}; import it from there (the old path will be removed)",
                      DeprecationWarning, stacklevel=2)
        module = importlib.import_module(new)
        self._specs[module.__name__] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run (the new module is imported); give it back its own ``__spec__``,
        which the import system replaced by the old name's."""
        module.__spec__ = self._specs.pop(module.__name__, module.__spec__)


def install() -> None:
    """Put the finder first on :data:`sys.meta_path` (once)."""
    if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
        sys.meta_path.insert(0, _MovedModules())
