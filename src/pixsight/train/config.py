"""``TrainConfig``: every training option, typed, with commented defaults.

A config file is TOML (``pixsight train ... --config train.toml``); every key is optional::

    epochs = 40
    lr = 0.002
    freeze_epochs = 2                  # train the head alone first, then fine-tune everything
    class_weights = "auto"
    [augment]
    preset = "heavy"
    hflip = 0.0

Precedence, lowest first: the defaults below, the task's ``config_defaults()``, the file,
then keyword/CLI overrides. Unknown keys and wrong types are :class:`ConfigError` naming the key.

>>> cfg = TrainConfig.from_mapping({"epochs": 3, "optimizer": "sgd"})
>>> cfg.epochs, cfg.optimizer, cfg.lr
(3, 'sgd', 0.001)
>>> TrainConfig.from_mapping({"epoch": 3})
Traceback (most recent call last):
...
pixsight.core.errors.ConfigError: <config>: unknown key(s) ['epoch']; did you mean 'epochs'? Known keys: ...
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping, Union

from ..core.errors import ConfigError

__all__ = ["TrainConfig", "resolve_config", "load_config_file"]


@dataclass(frozen=True)
class TrainConfig:
    """Training options (see docs/training.md for the long version)."""

    epochs: int = 30  # passes over the training data
    time_limit_min: float | None = None  # stop cleanly after the epoch that crosses this (None = no limit)
    batch_size: int = 32
    size: int | list[int] | None = None  # model input side (or [H, W]); None = the task's default
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 1e-3  # peak learning rate of the head
    backbone_lr_mult: float = 0.1  # backbone lr = lr * this (pretrained features move slower)
    weight_decay: float = 1e-4
    momentum: float = 0.9  # sgd momentum (adamw: beta1)
    schedule: str = "onecycle"  # onecycle | cosine | constant
    warmup_epochs: float = 1.0  # linear warm-up (cosine/constant); onecycle's rising phase
    freeze_epochs: int = 0  # backbone frozen for the first N epochs, then unfrozen
    augment: str | dict[str, Any] = "default"  # preset none|light|default|heavy, or a table with overrides
    focal: bool = False  # focal loss instead of cross-entropy (classify)
    focal_gamma: float = 2.0
    class_weights: str | list[float] | None = None  # None | "auto" (inverse frequency) | one weight per class
    label_smoothing: float = 0.0
    grad_clip: float | None = 10.0  # max gradient norm (None = off)
    patience: int | None = None  # early stopping: epochs without a better primary metric (None = off)
    seed: int = 0
    workers: int = 0  # data-loading processes (0 = in the main process)
    pretrained: bool = True  # start from the ImageNet weights (transfer learning)
    amp: bool | str = "auto"  # mixed precision: "auto" = on CUDA only; true | false
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    cache_images: int = 1024  # MiB of decoded images kept in RAM (per data process); 0 = off
    arch: dict[str, Any] = field(default_factory=dict)  # architecture overrides (e.g. {"dropout": 0.3})

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.time_limit_min is None or self.time_limit_min > 0, "time_limit_min must be > 0"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.optimizer in ("adamw", "sgd"), "optimizer must be 'adamw' or 'sgd'"),
            (self.lr > 0, "lr must be > 0"),
            (self.backbone_lr_mult >= 0, "backbone_lr_mult must be >= 0"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (0 <= self.momentum < 1, "momentum must be in [0, 1)"),
            (self.schedule in ("onecycle", "cosine", "constant"), "schedule must be onecycle, cosine or constant"),
            (self.warmup_epochs >= 0, "warmup_epochs must be >= 0"),
            (self.freeze_epochs >= 0, "freeze_epochs must be >= 0"),
            (self.focal_gamma >= 0, "focal_gamma must be >= 0"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
            (self.grad_clip is None or self.grad_clip > 0, "grad_clip must be > 0 or absent"),
            (self.patience is None or self.patience >= 1, "patience must be >= 1 or absent"),
            (self.seed >= 0, "seed must be >= 0"),
            (self.workers >= 0, "workers must be >= 0"),
            (self.amp in ("auto", True, False), "amp must be 'auto', true or false"),
            (self.cache_images >= 0, "cache_images must be >= 0 (MiB)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if isinstance(self.class_weights, str) and self.class_weights != "auto":
            raise ConfigError(f"class_weights must be 'auto', a list of numbers or absent, got {self.class_weights!r}")
        if isinstance(self.size, list) and (len(self.size) != 2 or min(self.size) < 32):
            raise ConfigError(f"size must be one int or [H, W] (each >= 32), got {self.size}")
        if isinstance(self.size, int) and self.size < 32:
            raise ConfigError(f"size must be >= 32, got {self.size}")

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def loss_options(self) -> dict[str, Any]:
        """The ``options`` a task's ``loss`` receives."""
        return {"focal": self.focal, "focal_gamma": self.focal_gamma, "class_weights": self.class_weights,
                "label_smoothing": self.label_smoothing}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "<config>") -> TrainConfig:
        """Build from a mapping (parsed TOML); unknown keys and wrong types are errors."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a training config must be a table, got {type(data).__name__}", path=source)
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            close = difflib.get_close_matches(unknown[0], names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown key(s) {unknown}{hint} Known keys: {', '.join(names)}", path=source)
        kwargs = {}
        for name, value in data.items():
            if not _matches(value, hints[name]):
                raise ConfigError(f"{name} must be {_describe(hints[name])}, got {value!r}", path=source)
            kwargs[name] = float(value) if _wants_float(hints[name]) and isinstance(value, int) else value
        try:
            return cls(**kwargs)
        except ConfigError as err:
            raise ConfigError(err.message, path=source) from None


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    if origin is list:
        (inner,) = typing.get_args(hint)
        return isinstance(value, (list, tuple)) and all(_matches(v, inner) for v in value)
    if origin is dict:
        return isinstance(value, Mapping) and all(isinstance(k, str) for k in value)
    return True


def _wants_float(hint: Any) -> bool:
    args = typing.get_args(hint) if typing.get_origin(hint) in (Union, types.UnionType) else (hint,)
    return float in args and int not in args


def _describe(hint: Any) -> str:
    args = typing.get_args(hint) if typing.get_origin(hint) in (Union, types.UnionType) else (hint,)
    words = {bool: "true/false", int: "an integer", float: "a number", str: "a string", type(None): "absent"}
    return " or ".join(words.get(a, "a list" if typing.get_origin(a) is list else "a table") for a in args)


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a TOML training config (an error names the file)."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as err:
        raise ConfigError(f"cannot read config: {err.strerror}", path=str(path)) from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"invalid TOML: {err}", path=str(path)) from err


def resolve_config(
    config: TrainConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    *,
    task_defaults: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """Defaults < ``task_defaults`` < ``config`` (object, mapping or TOML path) < ``overrides``
    (``None`` values in ``overrides`` mean "not given").

    >>> resolve_config({"epochs": 5}, task_defaults={"label_smoothing": 0.1}, overrides={"epochs": 2}).epochs
    2
    """
    merged: dict[str, Any] = dict(task_defaults or {})
    source = "<config>"
    if isinstance(config, TrainConfig):
        defaults = TrainConfig().to_dict()
        merged.update({k: v for k, v in config.to_dict().items() if v != defaults[k]})
    elif isinstance(config, Mapping):
        merged.update(config)
    elif config is not None:
        source = str(config)
        merged.update(load_config_file(config))
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return TrainConfig.from_mapping(merged, source=source)
