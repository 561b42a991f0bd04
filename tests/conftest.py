"""Shared test set-up.

PIXSIGHT_HOME points at one folder for the whole run (``make test`` sets it to
``.pixsight-home``) so the EfficientNet-Lite0 ONNX export happens once, not per test.
Tests that change the registry use their own ``PIXSIGHT_HOME`` via ``monkeypatch``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PIXSIGHT_HOME", str(ROOT / ".pixsight-home"))


@pytest.fixture(scope="session")
def pixsight_home() -> Path:
    home = Path(os.environ["PIXSIGHT_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    return home
