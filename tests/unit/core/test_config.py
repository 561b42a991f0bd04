"""Configuration: TOML files, defaults, nested sections and errors that name the key and file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pixsight.core.config import (
    AnalyzeConfig,
    ClassifyOptions,
    FacesOptions,
    OcrOptions,
    ReviewThresholds,
    cache_dir,
    pixsight_home,
)
from pixsight.core.errors import ConfigError
from pixsight.core.image import ImageLimits


def write_toml(tmp_path: Path, text: str, name: str = "pixsight.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_defaults() -> None:
    cfg = AnalyzeConfig()
    assert cfg.tasks is None and cfg.batch_size == 16 and cfg.workers == 2
    assert cfg.review == ReviewThresholds()
    assert cfg.review.classify_conf_threshold == pytest.approx(0.30)
    assert cfg.review.ocr_conf_threshold == pytest.approx(0.60)
    assert cfg.review.faces_conf_threshold == pytest.approx(0.50)
    assert cfg.review.classify_per_class == {}
    assert cfg.limits == ImageLimits()
    assert cfg.ocr.engine == "auto" and cfg.faces.with_embeddings is True
    assert cfg.with_vectors is False


def test_default_dict_is_not_shared_between_instances() -> None:
    a, b = ReviewThresholds(), ReviewThresholds()
    a.classify_per_class["tabby"] = 0.9
    assert b.classify_per_class == {}
    assert AnalyzeConfig().review.classify_per_class == {}


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    assert AnalyzeConfig.from_file(write_toml(tmp_path, "")) == AnalyzeConfig()


def test_full_file_is_loaded(tmp_path: Path) -> None:
    path = write_toml(tmp_path, """
tasks = ["classify", "ocr"]
batch_size = 4
workers = 1
with_vectors = true

[limits]
max_bytes = 1_000_000
max_pixels = 4_000_000

[review]
classify_conf_threshold = 0.5
ocr_conf_threshold = 1        # an int is a fine float
faces_conf_threshold = 0.25

[review.classify_per_class]
"tabby" = 0.7
"Egyptian cat" = 0.6

[classify]
model = "efficientnet-lite0"
top_k = 3

[ocr]
engine = "tesseract"
conf_threshold = 0.4

[faces]
with_embeddings = false
conf_threshold = 0.6
""")
    cfg = AnalyzeConfig.from_file(path)
    assert cfg.tasks == ("classify", "ocr")
    assert (cfg.batch_size, cfg.workers, cfg.with_vectors) == (4, 1, True)
    assert cfg.limits == ImageLimits(max_bytes=1_000_000, max_pixels=4_000_000)
    assert cfg.review.classify_conf_threshold == 0.5
    assert cfg.review.ocr_conf_threshold == 1
    assert cfg.review.faces_conf_threshold == 0.25
    assert cfg.review.classify_per_class == {"tabby": 0.7, "Egyptian cat": 0.6}
    assert cfg.classify == ClassifyOptions(model="efficientnet-lite0", top_k=3)
    assert cfg.ocr == OcrOptions(engine="tesseract", conf_threshold=0.4)
    assert cfg.faces.with_embeddings is False and cfg.faces.conf_threshold == 0.6
    # untouched keys keep their defaults
    assert cfg.faces.model == FacesOptions().model and cfg.ocr.model == OcrOptions().model


def test_partial_section_keeps_other_defaults(tmp_path: Path) -> None:
    cfg = AnalyzeConfig.from_file(write_toml(tmp_path, "[review]\nfaces_conf_threshold = 0.9\n"))
    assert cfg.review == dataclasses.replace(ReviewThresholds(), faces_conf_threshold=0.9)
    assert cfg.batch_size == 16 and cfg.ocr == OcrOptions()


def test_inline_table_for_per_class_thresholds(tmp_path: Path) -> None:
    cfg = AnalyzeConfig.from_file(write_toml(tmp_path, '[review]\nclassify_per_class = { "tabby" = 0.5, "pug" = 1 }\n'))
    assert cfg.review.classify_per_class == {"tabby": 0.5, "pug": 1}


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("batchsize = 4\n", ["batchsize"]),
        ("[review]\nclassify_min_scor = 0.5\n", ["classify_min_scor", "ReviewThresholds"]),
        ("[reveiw]\nclassify_conf_threshold = 0.5\n", ["reveiw"]),
        ("[ocr]\nengine = 'auto'\nlanguage = 'de'\n", ["language", "OcrOptions"]),
        ("[limits]\nmax_megapixels = 5\n", ["max_megapixels"]),
    ],
    ids=["top-level", "nested", "section", "ocr", "limits"],
)
def test_unknown_keys_are_errors_naming_key_and_file(tmp_path: Path, text: str, names: list[str]) -> None:
    path = write_toml(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        AnalyzeConfig.from_file(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ")
    assert info.value.path == str(path)
    for name in names:
        assert name in msg
    assert "known:" in msg  # tells the user what they could have meant


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('batch_size = "16"\n', "batch_size"),
        ("batch_size = 1.5\n", "batch_size"),
        ("batch_size = true\n", "batch_size"),
        ('with_vectors = "yes"\n', "with_vectors"),
        ("with_vectors = 1\n", "with_vectors"),
        ('[review]\nclassify_conf_threshold = "high"\n', "classify_conf_threshold"),
        ("[review]\nclassify_conf_threshold = true\n", "classify_conf_threshold"),
        ("[review]\nclassify_per_class = 0.5\n", "classify_per_class"),
        ('[review.classify_per_class]\n"tabby" = "high"\n', "classify_per_class"),
        ("[review.classify_per_class]\n\"tabby\" = true\n", "classify_per_class"),
        ("[ocr]\nengine = 3\n", "engine"),
        ("[limits]\nmax_bytes = 1.5e6\n", "max_bytes"),
        ("[classify]\ntop_k = [5]\n", "top_k"),
        ('tasks = "classify"\n', "tasks"),
        ("tasks = 3\n", "tasks"),
        ('tasks = ["classify", 3]\n', "tasks"),
        ("review = 0.5\n", "ReviewThresholds"),
    ],
)
def test_wrong_types_are_errors_naming_key_and_file(tmp_path: Path, text: str, key: str) -> None:
    path = write_toml(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        AnalyzeConfig.from_file(path)
    assert key in str(info.value)
    assert str(info.value).startswith(f"{path}: ")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("batch_size = 0\n", "batch_size"),
        ("workers = 0\n", "workers"),
        ("[limits]\nmax_pixels = 0\n", "positive"),
        ("[limits]\nmax_pixels = 1_000_000_000\n", "decompression-bomb"),
    ],
)
def test_invalid_values_are_errors_naming_the_file(tmp_path: Path, text: str, words: str) -> None:
    path = write_toml(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        AnalyzeConfig.from_file(path)
    assert words in str(info.value)
    assert info.value.path == str(path)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"[review\nclassify_conf_threshold = 0.5\n", "invalid TOML"),
        (b"batch_size = = 3\n", "invalid TOML"),
        (b"\xff\xfe[\x00r\x00e\x00v\x00", "invalid TOML"),  # UTF-16, not UTF-8
    ],
    ids=["unclosed-table", "syntax", "not-utf8"],
)
def test_malformed_files_are_config_errors(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=words) as info:
        AnalyzeConfig.from_file(path)
    assert info.value.path == str(path)


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_unreadable_files_are_config_errors(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "conf.toml"
    if kind == "directory":
        path.mkdir()
    with pytest.raises(ConfigError, match="cannot read config") as info:
        AnalyzeConfig.from_file(path)
    assert info.value.path == str(path)


def test_from_mapping_names_its_source() -> None:
    with pytest.raises(ConfigError) as info:
        AnalyzeConfig.from_mapping({"nope": 1}, source="--set")
    assert str(info.value).startswith("--set: ")


def test_from_mapping_accepts_a_tuple_of_tasks() -> None:
    assert AnalyzeConfig.from_mapping({"tasks": ("ocr",)}).tasks == ("ocr",)


def test_direct_construction_validates() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        AnalyzeConfig(batch_size=0)
    with pytest.raises(ConfigError, match="workers"):
        AnalyzeConfig(workers=0)


def test_to_dict_round_trips_through_from_mapping() -> None:
    cfg = AnalyzeConfig.from_mapping({"tasks": ["ocr"], "review": {"classify_per_class": {"tabby": 0.4}},
                                      "limits": {"max_bytes": 1234}})
    d = cfg.to_dict()
    assert d["review"]["classify_per_class"] == {"tabby": 0.4}
    assert d["limits"] == {"max_bytes": 1234, "max_pixels": ImageLimits().max_pixels}
    d["tasks"] = list(d["tasks"])
    assert AnalyzeConfig.from_mapping(d) == cfg


def test_replace_returns_a_new_config() -> None:
    cfg = AnalyzeConfig()
    other = cfg.replace(batch_size=2)
    assert other.batch_size == 2 and cfg.batch_size == 16
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.batch_size = 3  # type: ignore[misc]


def test_pixsight_home_and_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXSIGHT_HOME", str(tmp_path / "home"))
    assert pixsight_home() == tmp_path / "home"
    d = cache_dir("models", "x")
    assert d == tmp_path / "home" / "models" / "x" and d.is_dir()
    monkeypatch.delenv("PIXSIGHT_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert pixsight_home() == tmp_path / "user" / ".cache" / "pixsight"
