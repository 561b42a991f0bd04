"""TrainConfig: defaults, TOML, precedence, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixsight.core.errors import ConfigError
from pixsight.train.config import TrainConfig, resolve_config


@pytest.mark.parametrize("data, word", [
    ({"epoch": 3}, "epochs"),                 # unknown key, with a suggestion
    ({"epochs": "3"}, "epochs"),              # wrong type
    ({"batch_size": True}, "batch_size"),     # a bool is not an int
    ({"lr": -1.0}, "lr"),
    ({"optimizer": "adam"}, "optimizer"),
    ({"schedule": "step"}, "schedule"),
    ({"class_weights": "inverse"}, "class_weights"),
    ({"amp": "yes"}, "amp"),
    ({"size": 8}, "size"),
    ({"time_limit_min": 0}, "time_limit_min"),
])
def test_bad_values_name_the_key(data: dict, word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        TrainConfig.from_mapping(data)


def test_toml_file_and_precedence(tmp_path: Path) -> None:
    path = tmp_path / "train.toml"
    path.write_text('epochs = 7\nlr = 2e-3\nclass_weights = "auto"\n[augment]\npreset = "heavy"\nhflip = 0.0\n')
    cfg = resolve_config(path, task_defaults={"label_smoothing": 0.1, "epochs": 99}, overrides={"lr": 1e-4, "seed": None})
    assert cfg.epochs == 7 and cfg.lr == 1e-4 and cfg.label_smoothing == 0.1 and cfg.seed == 0
    assert cfg.augment == {"preset": "heavy", "hflip": 0.0} and cfg.class_weights == "auto"
    assert TrainConfig.from_mapping({"lr": 1}).lr == 1.0  # an int where a float is expected is fine


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = \n")
    with pytest.raises(ConfigError, match="bad.toml"):
        resolve_config(bad)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("epochs = 2\nmomentun = 0.9\n")
    with pytest.raises(ConfigError, match=r"wrong.toml.*momentun.*momentum"):
        resolve_config(wrong)
    with pytest.raises(ConfigError, match="cannot read"):
        resolve_config(tmp_path / "missing.toml")
