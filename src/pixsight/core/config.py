"""Typed configuration. Thresholds are configuration, not code.

A config file is TOML; every key is optional and falls back to the defaults below::

    # pixsight.toml
    [review]
    classify_conf_threshold = 0.30     # top-1 score below this -> needs_review
    ocr_conf_threshold = 0.60
    faces_conf_threshold = 0.50
    [review.classify_per_class]        # per-class minimum top-1 score
    "tabby" = 0.5

    [ocr]
    engine = "auto"                    # auto | rapidocr | tesseract
    conf_threshold = 0.5               # lines below this are dropped

Thresholds on scores are ``conf_threshold`` everywhere (the team vocabulary). The former
keys (``classify_min_score``, ``ocr_min_line_score``, ``faces_min_score``,
``detect_min_score``, ``[ocr] min_line_score``, ``[faces] min_score``,
``[detect] score_threshold``) still work and log a warning naming the new key.

>>> cfg = AnalyzeConfig.from_mapping({"review": {"classify_conf_threshold": 0.5}})
>>> cfg.review.classify_conf_threshold
0.5
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .deprecation import rename_keys, renamed_fields
from .errors import ConfigError
from .image import ImageLimits

__all__ = [
    "ReviewThresholds",
    "OcrOptions",
    "FacesOptions",
    "ClassifyOptions",
    "EmbedOptions",
    "DetectOptions",
    "SegmentOptions",
    "AnalyzeConfig",
    "pixsight_home",
    "cache_dir",
]


def pixsight_home() -> Path:
    """Root of pixsight's own files: ``$PIXSIGHT_HOME`` or ``~/.cache/pixsight``."""
    env = os.environ.get("PIXSIGHT_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "pixsight"


def cache_dir(*parts: str) -> Path:
    """A folder under :func:`pixsight_home`, created on demand."""
    p = pixsight_home().joinpath(*parts)
    p.mkdir(parents=True, exist_ok=True)
    return p


@renamed_fields(classify_min_score="classify_conf_threshold", ocr_min_line_score="ocr_conf_threshold",
                faces_min_score="faces_conf_threshold", detect_min_score="detect_conf_threshold")
@dataclass(frozen=True)
class ReviewThresholds:
    """When an image's results are doubtful enough to send it to a human."""

    classify_conf_threshold: float = 0.30  # top-1 probability
    classify_per_class: dict[str, float] = field(default_factory=dict)  # label -> min top-1 score
    ocr_conf_threshold: float = 0.60  # any OCR line below this
    faces_conf_threshold: float = 0.50  # any face below this
    detect_conf_threshold: float = 0.50  # any reported detection (trained detector) below this
    detect_per_class: dict[str, float] = field(default_factory=dict)  # label -> min detection score


@dataclass(frozen=True)
class ClassifyOptions:
    model: str = "efficientnet-lite0"
    top_k: int = 5


@dataclass(frozen=True)
class EmbedOptions:
    model: str = "efficientnet-lite0-embed"


@renamed_fields(min_line_score="conf_threshold")
@dataclass(frozen=True)
class OcrOptions:
    model: str = "pixsight-ocr"  # the combined pipeline; or rapidocr-ppocrv6 / tesseract-eng
    engine: str = "auto"
    conf_threshold: float = 0.5  # lines below this are dropped as noise


@renamed_fields(min_score="conf_threshold")
@dataclass(frozen=True)
class FacesOptions:
    model: str = "dlib-faces"
    conf_threshold: float = 0.35  # detections below this are dropped
    with_embeddings: bool = True
    detector: str = "fast"  # fast (HOG at 1.5 MP, ~0.1 s) | accurate (HOG at 3 MP + MMOD CNN, seconds/image)


@renamed_fields(score_threshold="conf_threshold")
@dataclass(frozen=True)
class DetectOptions:
    model: str = ""  # "" = the registered detect model (pixsight models add RUN); or a name / run folder
    conf_threshold: float = -1.0  # < 0 = the model's postprocess.analyze_score_threshold (model.json)


@dataclass(frozen=True)
class SegmentOptions:
    model: str = ""  # "" = the registered segment model; or a name / run folder


@dataclass(frozen=True)
class AnalyzeConfig:
    """Everything ``pixsight analyze`` can be told, with commented defaults."""

    tasks: tuple[str, ...] | None = None  # None = every offline-available default task
    batch_size: int = 16
    workers: int = 2  # decode threads; the models use both cores on their own
    limits: ImageLimits = field(default_factory=ImageLimits)
    review: ReviewThresholds = field(default_factory=ReviewThresholds)
    classify: ClassifyOptions = field(default_factory=ClassifyOptions)
    embed: EmbedOptions = field(default_factory=EmbedOptions)
    ocr: OcrOptions = field(default_factory=OcrOptions)
    faces: FacesOptions = field(default_factory=FacesOptions)
    detect: DetectOptions = field(default_factory=DetectOptions)  # trained models (pixsight train)
    segment: SegmentOptions = field(default_factory=SegmentOptions)
    with_vectors: bool = False
    parallel_stages: bool = True  # run the task stages of one batch concurrently

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")

    def replace(self, **changes: Any) -> AnalyzeConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_mapping(cls, data: dict[str, Any], *, source: str = "<config>") -> AnalyzeConfig:
        """Build from a nested mapping (e.g. parsed TOML); unknown keys are an error, former
        key names are mapped to the current ones with a logged warning."""
        return _build(cls, data, source)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> AnalyzeConfig:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as err:
            raise ConfigError(f"cannot read config: {err.strerror}", path=str(path)) from err
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:  # TOML must be UTF-8
            raise ConfigError(f"invalid TOML: {err}", path=str(path)) from err
        return cls.from_mapping(data, source=str(path))


def _build(cls: type, data: dict[str, Any], source: str, section: str = "") -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"section for {cls.__name__} must be a table, got {type(data).__name__}", path=source)
    data = rename_keys(data, getattr(cls, "__renamed__", {}), section=section, source=source)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ConfigError(f"unknown key(s) for {cls.__name__}: {sorted(unknown)}; known: {sorted(fields)}", path=source)
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        f = fields[name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default  # type: ignore[misc]
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value, source, f"{section}.{name}" if section else name)
        elif name == "tasks" and value is not None:
            if not isinstance(value, (list, tuple)) or not all(isinstance(t, str) for t in value):
                raise ConfigError(f"{cls.__name__}.tasks must be a list of task names, got {value!r}", path=source)
            kwargs[name] = tuple(value)
        elif isinstance(default, dict):
            if not isinstance(value, dict) or not all(_is_number(v) for v in value.values()):
                raise ConfigError(f"{cls.__name__}.{name} must be a table of name = number, got {value!r}", path=source)
            kwargs[name] = value
        else:
            # bool is an int to Python, but `batch_size = true` is a mistake, not 1
            if default is not None and (not isinstance(value, type(default)) or isinstance(value, bool) != isinstance(default, bool)):
                if not (isinstance(default, float) and _is_number(value)):
                    raise ConfigError(
                        f"{cls.__name__}.{name} must be {type(default).__name__}, got {value!r}", path=source
                    )
            kwargs[name] = value
    try:
        return cls(**kwargs)
    except ConfigError as err:
        if err.path is None:
            raise ConfigError(err.message, path=source) from err
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err), path=source) from err


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
