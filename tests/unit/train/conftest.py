"""Shared fixtures for training tests: tiny seeded synthetic datasets and one trained run."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_classify(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """36 images (3 classes, 64 px; 29 train / 7 val), as class folders with splits."""
    from pixsight.data.synth import synth_dataset

    out = tmp_path_factory.mktemp("synth") / "classify"
    synth_dataset(out, task="classify", n=36, image_size=(64, 64), seed=3)
    return out


@pytest.fixture(scope="session")
def trained_run(tiny_classify: Path, tmp_path_factory: pytest.TempPathFactory):
    """A finished 2-epoch classify run (shared, read-only)."""
    from pixsight.train import train

    out = tmp_path_factory.mktemp("runs") / "shapes"
    return train("classify", tiny_classify, out=out, epochs=2, size=64, batch_size=8, seed=0)
