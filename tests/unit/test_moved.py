"""Documented import paths of moved modules keep working, with a DeprecationWarning."""

from __future__ import annotations

import importlib
import sys

import pytest

from pixsight._moved import MOVED


@pytest.mark.parametrize("old, new, name", [
    ("pixsight.evaluate.explain", "pixsight.explain.cam", "save_explanation"),
    ("pixsight.evaluate.cam_targets", "pixsight.explain", "load_explainable"),
    ("pixsight.viz.dataset_report", "pixsight.data.report", "write_stats_html"),
])
def test_old_path_is_the_new_module_and_warns(old: str, new: str, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert MOVED[old] == new
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        module = importlib.import_module(old)
    fresh = importlib.import_module(new)
    assert module is fresh and getattr(module, name) is getattr(fresh, name)
    assert fresh.__spec__.name == new  # the new module keeps its own identity


def test_undocumented_old_paths_are_gone() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("pixsight.viz.eval_report")
