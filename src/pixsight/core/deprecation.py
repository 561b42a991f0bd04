"""Former names that keep working: keyword arguments, dataclass fields, config keys, values.

The team vocabulary (``conf_threshold``, ``iou_threshold``, resize ``stretch``) replaced a few
older spellings (``min_score``, ``min_line_score``, ``score_threshold``, resize ``squash``).
Code and files written with the old names keep working; each use says which name to use
instead: a ``DeprecationWarning`` for Python callers, a logged warning for config files and
model contracts (what a user of the CLI sees on stderr).

>>> import warnings
>>> @renamed_kwargs(min_score="conf_threshold")
... def keep(scores, *, conf_threshold=0.5):
...     return [s for s in scores if s >= conf_threshold]
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     keep([0.2, 0.7], min_score=0.1), str(caught[0].message)
([0.2, 0.7], "keep(min_score=...) is deprecated; use 'conf_threshold'")
>>> canonical_resize("squash", where="model.json preprocess.resize")
'stretch'
"""

from __future__ import annotations

import functools
import logging
import warnings
from typing import Any, Callable, Mapping, TypeVar

from .errors import ConfigError

__all__ = ["RESIZE_RENAMES", "renamed_kwargs", "renamed_fields", "rename_keys", "canonical_resize"]

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T", bound=type)

#: Former resize-mode names -> the current name (:data:`pixsight.core.preprocess.RESIZE_MODES`).
RESIZE_RENAMES: dict[str, str] = {"squash": "stretch"}


def _swap(kwargs: dict[str, Any], renames: Mapping[str, str], who: str) -> None:
    for old, new in renames.items():
        if old in kwargs:
            if new in kwargs:
                raise TypeError(f"{who}: got both {old!r} and its new name {new!r}; pass only {new!r}")
            warnings.warn(f"{who}({old}=...) is deprecated; use {new!r}", DeprecationWarning, stacklevel=3)
            kwargs[new] = kwargs.pop(old)


def renamed_kwargs(**renames: str) -> Callable[[F], F]:
    """Decorator: the function also accepts each ``old=`` keyword (``old="new"``), with a
    ``DeprecationWarning`` naming the new one. Passing both names is a ``TypeError``."""

    def wrap(func: F) -> F:
        @functools.wraps(func)
        def call(*args: Any, **kwargs: Any) -> Any:
            _swap(kwargs, renames, func.__qualname__.removesuffix(".__init__"))
            return func(*args, **kwargs)

        call.__renamed__ = dict(renames)  # type: ignore[attr-defined]
        return call  # type: ignore[return-value]

    return wrap


def renamed_fields(**renames: str) -> Callable[[T], T]:
    """Class decorator for a dataclass whose fields were renamed (``old="new"``): the old
    names still work as constructor keywords (with a ``DeprecationWarning``) and as read-only
    attributes; :func:`rename_keys` maps them in config files (``cls.__renamed__``).

    >>> from dataclasses import dataclass
    >>> @renamed_fields(min_score="conf_threshold")
    ... @dataclass(frozen=True)
    ... class Opts:
    ...     conf_threshold: float = 0.5
    >>> Opts().min_score
    0.5
    """

    def wrap(cls: T) -> T:
        cls.__init__ = renamed_kwargs(**renames)(cls.__init__)  # type: ignore[misc]
        for old, new in renames.items():
            setattr(cls, old, _alias(new))
        cls.__renamed__ = {**getattr(cls, "__renamed__", {}), **renames}  # type: ignore[attr-defined]
        return cls

    return wrap


def _alias(new: str) -> property:
    """A read-only attribute returning the field ``new`` (for its former name)."""

    def get(self: Any) -> Any:
        return getattr(self, new)

    return property(get, doc=f"Former name of ``{new}``.")


def rename_keys(data: Mapping[str, Any], renames: Mapping[str, str], *, section: str = "",
                source: str = "<config>") -> dict[str, Any]:
    """``data`` with former keys replaced by their new names, logging a warning for each.

    Raises:
        ConfigError: both a former key and its new name are set.

    >>> rename_keys({"min_score": 0.4, "model": "m"}, {"min_score": "conf_threshold"}, section="faces")
    {'conf_threshold': 0.4, 'model': 'm'}
    """
    out: dict[str, Any] = {}
    prefix = f"{section}." if section else ""
    for key, value in data.items():
        new = renames.get(key)
        if new is None:
            out[key] = value
            continue
        if new in data:
            raise ConfigError(f"{prefix}{key} is the former name of {prefix}{new}; set only {prefix}{new}", path=source)
        log.warning("%s: config key %s%s is deprecated; use %s%s", source, prefix, key, prefix, new)
        out[new] = value
    return out


def canonical_resize(mode: str, *, where: str) -> str:
    """The current name of a resize mode; a former one (``squash``) is logged as deprecated."""
    new = RESIZE_RENAMES.get(mode)
    if new is None:
        return mode
    log.warning("%s: resize mode %r is deprecated; use %r", where, mode, new)
    return new
