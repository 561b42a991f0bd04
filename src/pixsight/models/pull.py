"""``pixsight models pull NAME``: the only place pixsight downloads weights.

Each ``url`` source of a model is streamed (http/https only, size-capped) into a temp file
inside its target folder, its sha256 is checked, and only then is it renamed into place:
a file with the wrong checksum is never kept, not even as a temp file. A file already
present with the right checksum is not downloaded again.

>>> pull("no-such-model")
Traceback (most recent call last):
...
pixsight.core.errors.UnknownModelError: unknown model 'no-such-model'...
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

from ..core.errors import WeightsError
from ..core.fileio import sha256_file
from .spec import ModelSpec, WeightsSource
from .weights import local_path

__all__ = ["pull", "download", "sha256_file", "url_sources", "DEFAULT_MAX_BYTES"]

log = logging.getLogger(__name__)

#: Refuse downloads larger than this unless the caller raises it (4 GiB).
DEFAULT_MAX_BYTES = 4 * 1024**3
_CHUNK = 1024 * 1024
_ALLOWED_SCHEMES = ("http", "https")

#: ``progress(bytes_done, bytes_total)``; ``bytes_total`` is ``None`` when unknown.
ProgressCallback = Callable[[int, "int | None"], None]


def url_sources(spec: ModelSpec) -> list[WeightsSource]:
    """Every ``url`` source of ``spec`` (its weights and its named files), in order."""
    sources = [*spec.weights, *(s for group in spec.files.values() for s in group)]
    return [s for s in sources if s.kind == "url"]


def pull(
    name_or_spec: str | ModelSpec,
    *,
    progress: ProgressCallback | None = None,
    timeout: float = 60.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> list[Path]:
    """Download every ``url`` source of a model; return the local files (in source order).

    A model without URL sources returns ``[]`` (its weights come from a package, the
    cache or a user path; see :func:`pixsight.models.registry.availability`).

    Raises:
        UnknownModelError: no model has that name.
        WeightsError: a URL is not http(s), the server fails, the file is too large, or
            its sha256 differs from the registry's (nothing is kept then).

    Example::

        paths = pull("my-detector", progress=lambda done, total: None)
    """
    if isinstance(name_or_spec, ModelSpec):
        spec = name_or_spec
    else:
        from .registry import get_registry

        spec = get_registry().get(name_or_spec)
    paths = []
    for source in url_sources(spec):
        paths.append(download(source, model=spec.name, progress=progress, timeout=timeout, max_bytes=max_bytes))
    return paths



class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http/https (urllib would also follow ftp)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in _ALLOWED_SCHEMES:
            raise WeightsError(f"download of {req.full_url} redirected to a {scheme!r} URL; only http/https are allowed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def download(
    source: WeightsSource,
    *,
    model: str = "",
    progress: ProgressCallback | None = None,
    timeout: float = 60.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Path:
    """Fetch one ``url`` source into the models cache, verified; return its path.

    See :func:`pull` for the errors raised.
    """
    who = f"model {model!r}: " if model else ""
    url = source.location
    if source.kind != "url":
        raise WeightsError(f"{who}source {url!r} is a {source.kind!r} source, not a URL")
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in _ALLOWED_SCHEMES:
        raise WeightsError(f"{who}refusing to download {url!r}: only http:// and https:// URLs are allowed")
    target = local_path(source)
    if target is None:
        raise WeightsError(f"{who}the registry's sha256 for {url!r} is not 64 hex digits: {source.sha256!r}")
    expected = (source.sha256 or "").lower()
    limit = min(max_bytes, source.size_bytes) if source.size_bytes else max_bytes

    if target.is_file():
        if sha256_file(target) == expected:
            log.info("%s%s already downloaded and verified at %s", who, url, target)
            return target
        log.warning("%s%s has the wrong checksum; downloading it again", who, target)

    folder_existed = target.parent.is_dir()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            actual = _stream(url, out, who=who, progress=progress, timeout=timeout, limit=limit)
            out.flush()
            os.fsync(out.fileno())
        if actual != expected:
            raise WeightsError(
                f"{who}checksum mismatch for {url}: expected sha256 {expected}, got {actual}; "
                "the file was discarded (the server sent a different file than the registry records)"
            )
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if not folder_existed:
            with contextlib.suppress(OSError):
                target.parent.rmdir()  # only if empty
        raise
    log.info("%sdownloaded %s to %s", who, url, target)
    return target


def _stream(url: str, out, *, who: str, progress: ProgressCallback | None, timeout: float, limit: int) -> str:  # type: ignore[no-untyped-def]
    """Copy ``url`` into ``out``; return the hex sha256 of what was written."""
    opener = urllib.request.build_opener(_HttpOnlyRedirects())
    request = urllib.request.Request(url, headers={"User-Agent": "pixsight-models-pull"})
    digest = hashlib.sha256()
    try:
        with opener.open(request, timeout=timeout) as resp:
            total_header = resp.headers.get("Content-Length")
            total = int(total_header) if total_header and total_header.isdigit() else None
            if total is not None and total > limit:
                raise WeightsError(f"{who}{url} is {total} bytes, over the {limit}-byte limit; refusing to download")
            done = 0
            if progress is not None:
                progress(0, total)
            while chunk := resp.read(_CHUNK):
                done += len(chunk)
                if done > limit:
                    raise WeightsError(f"{who}{url} sent more than the {limit}-byte limit; download stopped")
                digest.update(chunk)
                out.write(chunk)
                if progress is not None:
                    progress(done, total)
            if total is not None and done != total:
                raise WeightsError(f"{who}{url} ended after {done} of {total} bytes; try again")
    except urllib.error.HTTPError as err:
        raise WeightsError(f"{who}server answered HTTP {err.code} {err.reason} for {url}") from err
    except urllib.error.URLError as err:
        raise WeightsError(f"{who}cannot download {url}: {err.reason}; check the network or proxy settings") from err
    except (OSError, http.client.HTTPException) as err:  # timeouts, resets, bad responses
        raise WeightsError(f"{who}download of {url} failed: {err}") from err
    return digest.hexdigest()
