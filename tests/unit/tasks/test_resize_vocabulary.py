"""Resize modes have one name: ``stretch`` (``squash`` is its former name, still read)."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest

from pixsight.core.config import AnalyzeConfig
from pixsight.core.errors import ConfigError
from pixsight.core.preprocess import preprocess_into
from pixsight.models.user import add_model
from pixsight.tasks.onnx_generic import create_stage
from tests.unit.models.test_user_models import COLOURS, colour_model, image


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXSIGHT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_preprocess_into_stretch_is_what_squash_was() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (30, 70, 3), dtype=np.uint8)
    new, old, crop = (np.empty((3, 16, 16), np.float32) for _ in range(3))
    preprocess_into(pixels, new, size=16, resize="stretch")
    preprocess_into(pixels, old, size=16, resize="squash")
    preprocess_into(pixels, crop, size=16, resize="center_crop")
    assert np.array_equal(new, old) and not np.array_equal(new, crop)
    with pytest.raises(ConfigError, match="'center_crop' or 'stretch'"):
        preprocess_into(pixels, new, size=16, resize="squish")


def test_user_models_are_registered_with_stretch_and_old_squash_ones_still_run(home, tmp_path, caplog) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(COLOURS) + "\n")
    spec = add_model(colour_model(tmp_path / "colour.onnx"), task="classify", labels=labels, license="MIT")
    assert spec.preprocess["resize"] == "stretch"
    old = dataclasses.replace(spec, preprocess={**spec.preprocess, "resize": "squash"})  # written before the rename
    with caplog.at_level(logging.WARNING, logger="pixsight.core.deprecation"):
        stage = create_stage(old, AnalyzeConfig(), ("classify",))
    assert stage.contract["resize"] == "stretch"
    assert "'squash' is deprecated; use 'stretch'" in caplog.text and spec.name in caplog.text
    [new_out] = create_stage(spec, AnalyzeConfig(), ("classify",)).run([image((250, 10, 10))])
    [old_out] = stage.run([image((250, 10, 10))])
    assert old_out["classify"].top_label == new_out["classify"].top_label == "red"
    assert np.allclose(old_out["classify"].scores, new_out["classify"].scores)
