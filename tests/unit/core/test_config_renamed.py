"""One threshold vocabulary (``conf_threshold``): the former config keys, keyword arguments
and resize mode still work, and each use names its new spelling."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from pixsight.core.config import AnalyzeConfig, DetectOptions, FacesOptions, OcrOptions, ReviewThresholds
from pixsight.core.deprecation import canonical_resize, rename_keys, renamed_kwargs
from pixsight.core.errors import ConfigError

#: (TOML, where the value lands, former key, new key)
RENAMED = [
    ("[review]\nclassify_min_score = 0.45\n", ("review", "classify_conf_threshold"),
     "review.classify_min_score", "review.classify_conf_threshold"),
    ("[review]\nocr_min_line_score = 0.45\n", ("review", "ocr_conf_threshold"),
     "review.ocr_min_line_score", "review.ocr_conf_threshold"),
    ("[review]\nfaces_min_score = 0.45\n", ("review", "faces_conf_threshold"),
     "review.faces_min_score", "review.faces_conf_threshold"),
    ("[review]\ndetect_min_score = 0.45\n", ("review", "detect_conf_threshold"),
     "review.detect_min_score", "review.detect_conf_threshold"),
    ("[ocr]\nmin_line_score = 0.45\n", ("ocr", "conf_threshold"), "ocr.min_line_score", "ocr.conf_threshold"),
    ("[faces]\nmin_score = 0.45\n", ("faces", "conf_threshold"), "faces.min_score", "faces.conf_threshold"),
    ("[detect]\nscore_threshold = 0.45\n", ("detect", "conf_threshold"), "detect.score_threshold",
     "detect.conf_threshold"),
]


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pixsight.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("text", "where", "old", "new"), RENAMED, ids=[r[2] for r in RENAMED])
def test_former_config_keys_still_work_and_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                text: str, where: tuple[str, str], old: str, new: str) -> None:
    with caplog.at_level(logging.WARNING, logger="pixsight.core.deprecation"):
        cfg = AnalyzeConfig.from_file(_toml(tmp_path, text))
    section, key = where
    assert getattr(getattr(cfg, section), key) == 0.45
    assert getattr(AnalyzeConfig(), section) != getattr(cfg, section)  # the value did land
    [record] = [r for r in caplog.records if "deprecated" in r.getMessage()]
    message = record.getMessage()
    assert record.levelno == logging.WARNING and old in message and f"use {new}" in message
    assert "pixsight.toml" in message  # says which file


@pytest.mark.parametrize(("text", "where", "old", "new"), RENAMED, ids=[r[3] for r in RENAMED])
def test_new_config_keys_work_without_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                text: str, where: tuple[str, str], old: str, new: str) -> None:
    section, key = where
    with caplog.at_level(logging.WARNING):
        cfg = AnalyzeConfig.from_file(_toml(tmp_path, f"[{section}]\n{key} = 0.45\n"))
    assert getattr(getattr(cfg, section), key) == 0.45
    assert not [r for r in caplog.records if "deprecated" in r.getMessage()]


def test_old_and_new_key_together_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="faces.min_score is the former name of faces.conf_threshold"):
        AnalyzeConfig.from_file(_toml(tmp_path, "[faces]\nmin_score = 0.4\nconf_threshold = 0.5\n"))


def test_a_misspelt_key_is_still_an_unknown_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        AnalyzeConfig.from_file(_toml(tmp_path, "[faces]\nmin_scor = 0.4\n"))


def test_former_value_types_are_still_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="conf_threshold must be float"):
        AnalyzeConfig.from_file(_toml(tmp_path, '[faces]\nmin_score = "high"\n'))


@pytest.mark.parametrize(("make", "new", "old"), [
    (lambda: ReviewThresholds(classify_min_score=0.7), "classify_conf_threshold", "classify_min_score"),
    (lambda: OcrOptions(min_line_score=0.7), "conf_threshold", "min_line_score"),
    (lambda: FacesOptions(min_score=0.7), "conf_threshold", "min_score"),
    (lambda: DetectOptions(score_threshold=0.7), "conf_threshold", "score_threshold"),
])
def test_former_field_names_work_in_python_with_a_deprecation_warning(make, new: str, old: str) -> None:
    with pytest.warns(DeprecationWarning, match=f"{old}=.*use '{new}'"):
        options = make()
    assert getattr(options, new) == getattr(options, old) == 0.7
    assert old not in {f.name for f in dataclasses.fields(options)}
    assert dataclasses.replace(options, **{new: 0.1}).__getattribute__(new) == 0.1


def test_passing_both_names_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="pass only 'conf_threshold'"):
        FacesOptions(min_score=0.1, conf_threshold=0.2)


def test_renamed_kwargs_keeps_the_function_signature_and_docs() -> None:
    @renamed_kwargs(min_score="conf_threshold")
    def keep(scores: list[float], *, conf_threshold: float = 0.5) -> list[float]:
        """Scores at least ``conf_threshold``."""
        return [s for s in scores if s >= conf_threshold]

    assert keep.__name__ == "keep" and "conf_threshold" in (keep.__doc__ or "")
    assert keep([0.2, 0.7]) == [0.7]
    with pytest.warns(DeprecationWarning):
        assert keep([0.2, 0.7], min_score=0.1) == [0.2, 0.7]


def test_rename_keys_does_not_change_its_input() -> None:
    data = {"min_score": 0.3}
    assert rename_keys(data, {"min_score": "conf_threshold"}) == {"conf_threshold": 0.3}
    assert data == {"min_score": 0.3}


def test_squash_is_the_former_name_of_stretch(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pixsight.core.deprecation"):
        assert canonical_resize("squash", where="model 'birds'") == "stretch"
    assert "model 'birds'" in caplog.text and "'stretch'" in caplog.text
    caplog.clear()
    for mode in ("stretch", "letterbox", "center_crop"):
        assert canonical_resize(mode, where="x") == mode
    assert not caplog.records
