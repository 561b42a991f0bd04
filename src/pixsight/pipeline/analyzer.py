"""The analyzer: decode each image once, batch model calls, store every result.

- Decoding runs in a thread pool ahead of inference (bounded window, so memory does not
  grow with the number of images); each image is decoded once at the largest size any
  selected stage needs (JPEGs use Pillow's reduced ``draft`` decode).
- Stages of one batch run concurrently (ONNX Runtime and dlib release the GIL).
- Every image is written to the catalog in its own transaction; re-runs skip images whose
  results are already stored, identical files are analysed once, and a run killed
  mid-way resumes where it stopped.
- A bad file becomes an ``Analysis`` with ``status="error"``; the batch goes on.

>>> from pixsight.pipeline.analyzer import analyze      # doctest: +SKIP
>>> summary = analyze(["photos/"], db="pixsight.sqlite")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
from PIL import Image

from ..catalog.store import Catalog
from ..core.config import AnalyzeConfig
from ..core.errors import PixsightError
from ..core.fileio import printable, printable_path
from ..core.image import IMAGE_EXTENSIONS, LoadedImage, load_image
from ..core.types import Analysis
from ..models.runtime import default_threads
from ..tasks import build_stages, model_for_task, resolve_tasks
from ..tasks.base import Stage
from ._malloc import limit_arenas, trim
from .process_stage import ProcessStage
from .review import review_reasons

__all__ = ["Analyzer", "AnalyzeSummary", "Progress", "analyze", "iter_image_paths"]

log = logging.getLogger(__name__)

#: Without a catalog, how many recent results are kept to answer duplicates (memory bound).
_DEDUP_MEMORY = 512


@dataclass
class Progress:
    """Counts passed to the progress callback after every image."""

    done: int
    total: int
    failed: int
    reused: int
    elapsed_s: float


@dataclass
class AnalyzeSummary:
    """What one run did (the CLI prints it as a table)."""

    images: int = 0
    ok: int = 0
    failed: int = 0
    reused: int = 0
    needs_review: int = 0
    task_counts: dict[str, int] = field(default_factory=dict)
    tasks: tuple[str, ...] = ()
    skipped_tasks: dict[str, str] = field(default_factory=dict)
    elapsed_s: float = 0.0
    timings_ms: dict[str, float] = field(default_factory=dict)  # summed per task
    db: str | None = None

    @property
    def images_per_s(self) -> float:
        return self.images / self.elapsed_s if self.elapsed_s > 0 else 0.0


def iter_image_paths(paths: Iterable[str | os.PathLike[str]]) -> Iterator[str]:
    """Files given directly (any extension: content is sniffed) and image files found in
    folders, recursively, in sorted order. Symlinks inside folders are not followed, so a
    walk never leaves the folders it was given."""
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for root, dirs, files in os.walk(p, followlinks=False):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    full = Path(root) / name
                    if name.startswith(".") or full.suffix.lower() not in IMAGE_EXTENSIONS:
                        continue
                    if full.is_symlink():
                        log.warning("skipping symlink %s (folder walks do not follow links)", full)
                        continue
                    yield str(full)
        else:
            yield str(p)


@dataclass
class _Item:
    path: str  # as given, for reading the file (may hold surrogates for non-UTF-8 names)
    abspath: str  # printable absolute path: the catalog key
    display: str = ""  # printable path as given: what results and messages show
    size: int | None = None
    mtime_ns: int | None = None
    image: LoadedImage | None = None
    analysis: Analysis | None = None  # set when finished without running models
    decode_ms: float = 0.0


class Analyzer:
    """Holds the loaded stages; reusable across runs (the HTTP server keeps one).

    Calls are not re-entrant: one ``run`` or ``analyze_bytes`` at a time per analyzer (a
    server batches requests into ``run``-sized groups itself). Creating one caps glibc's
    malloc arenas for the process (see ``pipeline/_malloc.py``), which keeps long runs flat.

    >>> with Analyzer(AnalyzeConfig(tasks=("classify",))) as analyzer:   # doctest: +SKIP
    ...     analysis = analyzer.analyze_bytes(open("cat.jpg", "rb").read(), name="cat.jpg")
    """

    def __init__(self, config: AnalyzeConfig | None = None, *, registry: Any = None) -> None:
        from ..models.registry import get_registry

        limit_arenas(1)
        self.config = config or AnalyzeConfig()
        self.registry = registry or get_registry()
        self.tasks, self.skipped_tasks = resolve_tasks(self.config, self.registry)
        self.models: dict[str, str] = {
            t: self.registry.get(model_for_task(t, self.config, self.registry)).key for t in self.tasks
        }
        isolate = ProcessStage if (self.config.parallel_stages and default_threads() > 1) else None
        self.stages: list[Stage] = (
            build_stages(self.tasks, self.config, self.registry, isolate=isolate) if self.tasks else []
        )
        sides = [s.info.max_side for s in self.stages]
        self.decode_side: int | None = None if (not sides or None in sides) else max(sides)  # type: ignore[type-var]
        workers = max(1, len(self.stages)) if self.config.parallel_stages else 1
        self._stage_pool = ThreadPoolExecutor(workers, thread_name_prefix="pixsight-stage")

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        self._stage_pool.shutdown(wait=True)
        for stage in self.stages:
            stage.close()

    def __enter__(self) -> Analyzer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- single images ---------------------------------------------------------------------
    def analyze_bytes(self, data: bytes, *, name: str = "<upload>") -> Analysis:
        """Analyse one in-memory image (what the HTTP API calls)."""
        name = printable(name)
        t0 = time.perf_counter()
        try:
            image = load_image(data, max_side=self.decode_side, limits=self.config.limits, name=name)
        except Exception as err:  # noqa: BLE001 - a bad image is a result, not a crash
            return _error_analysis(name, err)
        decode_ms = (time.perf_counter() - t0) * 1000
        return self.analyze_loaded([(image, name, decode_ms)])[0]

    def analyze_loaded(self, items: Sequence[tuple[LoadedImage, str, float]]) -> list[Analysis]:
        """Analyse already-decoded images as one batch (what the server's batcher calls).

        ``items`` holds ``(image, name, decode_ms)`` per image; the analyses come back in the
        same order, through the same batched path as :meth:`run`. Nothing is stored: the
        caller keeps the results (the server writes them to its catalog).

        >>> img = load_image(open("cat.jpg", "rb").read(), name="cat.jpg")   # doctest: +SKIP
        >>> [a.sha256 == img.sha256 for a in analyzer.analyze_loaded([(img, "cat.jpg", 3.1)])]  # doctest: +SKIP
        [True]
        """
        batch: list[_Item] = []
        for image, name, decode_ms in items:
            shown = printable(name)
            batch.append(_Item(path=shown, abspath=shown, display=shown, size=image.nbytes,
                               image=image, decode_ms=float(decode_ms)))
        return self._run_batch(batch) if batch else []

    # -- folders ---------------------------------------------------------------------------
    def run(
        self,
        paths: Sequence[str],
        *,
        catalog: Catalog | None = None,
        on_result: Callable[[Analysis, LoadedImage | None], None] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> AnalyzeSummary:
        """Analyse every file in ``paths`` (already expanded; see :func:`iter_image_paths`).

        ``on_result(analysis, image)`` is called once per file, in completion order, after
        the analysis is stored; ``image`` is the decoded image (None when reused or failed).
        """
        cfg = self.config
        summary = AnalyzeSummary(tasks=self.tasks, skipped_tasks=dict(self.skipped_tasks),
                                 db=str(catalog.path) if catalog else None)
        total = len(paths)
        start = time.perf_counter()
        window = cfg.batch_size + cfg.workers * 2
        pending: deque[tuple[_Item, Future | None]] = deque()
        seen_in_run: OrderedDict[str, Analysis] = OrderedDict()  # only used without a catalog
        path_iter = iter(paths)

        def finish(item: _Item, analysis: Analysis, image: LoadedImage | None, *, reused: bool) -> None:
            if catalog is not None:
                if reused:
                    if analysis.status == "ok" and analysis.sha256:
                        catalog.touch_file(item.abspath, analysis.sha256, size=item.size, mtime_ns=item.mtime_ns)
                else:
                    catalog.save(analysis, path=item.abspath, size=item.size, mtime_ns=item.mtime_ns)
            summary.images += 1
            if analysis.status == "ok":
                summary.ok += 1
                if analysis.sha256 and catalog is None:
                    # without a catalog, remember recent results so duplicates are analysed once
                    seen_in_run[analysis.sha256] = analysis
                    seen_in_run.move_to_end(analysis.sha256)
                    if len(seen_in_run) > _DEDUP_MEMORY:
                        seen_in_run.popitem(last=False)
            else:
                summary.failed += 1
            summary.reused += int(reused)
            summary.needs_review += int(analysis.needs_review)
            for task in analysis.results:
                summary.task_counts[task] = summary.task_counts.get(task, 0) + 1
            for key, ms in analysis.timings_ms.items():
                if not reused:
                    summary.timings_ms[key] = summary.timings_ms.get(key, 0.0) + ms
            if on_result is not None:
                on_result(analysis, image)
            if on_progress is not None:
                on_progress(Progress(summary.images, total, summary.failed, summary.reused,
                                     time.perf_counter() - start))

        def submit_next() -> None:
            raw = next(path_iter, None)
            if raw is None:
                return
            item = _Item(path=raw, abspath=printable_path(os.path.abspath(raw)), display=printable_path(raw))
            try:
                st = os.stat(raw)
                item.size, item.mtime_ns = st.st_size, st.st_mtime_ns
            except OSError as err:
                item.analysis = _error_analysis(
                    item.display, PixsightError(f"cannot read file: {err.strerror}", path=item.display))
                pending.append((item, None))
                return
            if catalog is not None:
                sha = catalog.known_file(item.abspath, item.size, item.mtime_ns)
                if sha and catalog.has_results(sha, self.models):
                    item.analysis = self._stored(catalog, sha, item.display)
                    pending.append((item, None))
                    return
            pending.append((item, self._decode_pool.submit(self._decode, item)))

        batch: list[_Item] = []
        with ThreadPoolExecutor(cfg.workers, thread_name_prefix="pixsight-decode") as self._decode_pool:
            for _ in range(window):
                submit_next()
            while pending:
                item, fut = pending.popleft()
                submit_next()
                if fut is not None:
                    fut.result()  # _decode never raises; it fills item.image or item.analysis
                if item.analysis is not None:
                    finish(item, item.analysis, None, reused=item.analysis.status == "ok")
                    continue
                assert item.image is not None
                sha = item.image.sha256
                if sha in seen_in_run:
                    finish(item, replace(seen_in_run[sha], path=item.display), None, reused=True)
                    continue
                if catalog is not None and catalog.has_results(sha, self.models):
                    finish(item, self._stored(catalog, sha, item.display), None, reused=True)
                    continue
                batch.append(item)
                if len(batch) >= cfg.batch_size:
                    self._flush(batch, finish)
                    batch = []
                    trim()  # return freed heap pages to the OS after every batch (keeps peak memory flat)
            if batch:
                self._flush(batch, finish)
        summary.elapsed_s = time.perf_counter() - start
        return summary

    # -- internals -------------------------------------------------------------------------
    def _stored(self, catalog: Catalog, sha: str, path: str) -> Analysis:
        analysis = catalog.load_analysis(sha, models=self.models, path=path, with_vectors=self.config.with_vectors)
        assert analysis is not None
        reasons = review_reasons(analysis.results, self.config.review, task_errors=analysis.task_errors)
        return replace(analysis, needs_review=bool(reasons), review_reasons=reasons)

    def _decode(self, item: _Item) -> None:
        t0 = time.perf_counter()
        try:
            image = load_image(item.path, max_side=self.decode_side, limits=self.config.limits)
            item.image = replace(image, path=item.path)
        except Exception as err:  # noqa: BLE001 - every failure becomes a per-file error
            item.analysis = _error_analysis(item.display, err)
        item.decode_ms = (time.perf_counter() - t0) * 1000

    def _flush(self, batch: list[_Item], finish: Callable[..., None]) -> None:
        unique: dict[str, _Item] = {}
        for item in batch:
            unique.setdefault(item.image.sha256, item)  # type: ignore[union-attr]
        analyses = self._run_batch(list(unique.values()))
        by_sha = {a.sha256: a for a in analyses}
        for item in batch:
            analysis = by_sha[item.image.sha256]  # type: ignore[union-attr]
            first = unique[item.image.sha256] is item  # type: ignore[union-attr]
            finish(item, analysis if first else replace(analysis, path=item.display), item.image, reused=not first)

    def _run_batch(self, items: list[_Item]) -> list[Analysis]:
        images = [it.image for it in items]
        futures = {stage: self._stage_pool.submit(_timed_run, stage, images) for stage in self.stages}
        per_image: list[dict[str, Any]] = [{} for _ in items]
        errors: list[dict[str, dict[str, str]]] = [{} for _ in items]
        timings: list[dict[str, float]] = [{"decode": it.decode_ms} for it in items]
        for stage, fut in futures.items():
            try:
                outputs, seconds, scales = fut.result()
            except Exception as err:  # noqa: BLE001 - a stage crash fails its tasks, not the batch
                log.exception("stage %s failed on a whole batch", stage.info.tasks)
                outputs, seconds, scales = [err] * len(items), 0.0, [img.scale for img in images]
            share = seconds * 1000 / max(1, len(items)) / max(1, len(stage.info.tasks))
            for i, out in enumerate(outputs):
                for task in stage.info.tasks:
                    if task not in self.models:
                        continue
                    timings[i][task] = share
                    if isinstance(out, Exception):
                        errors[i][task] = _error_dict(out)
                    elif task in out:
                        per_image[i][task] = out[task].scaled(*scales[i])  # type: ignore[union-attr]
        analyses = []
        for i, item in enumerate(items):
            img = item.image
            assert img is not None
            reasons = review_reasons(per_image[i], self.config.review, task_errors=errors[i])
            analyses.append(Analysis(
                path=item.display, sha256=img.sha256, width=img.width, height=img.height, format=img.format,
                bytes=img.nbytes, status="ok", needs_review=bool(reasons), review_reasons=reasons,
                timings_ms=timings[i], results=per_image[i], task_errors=errors[i],
                models={t: self.models[t] for t in per_image[i]},
            ))
        return analyses


def _fit(image: LoadedImage, side: int | None) -> LoadedImage:
    """``image`` with pixels shrunk so the longer side is ``side`` (full width/height kept,
    so ``scale`` still maps back to the full image): a worker process that needs 1280 px is
    not sent the 2560 px copy another stage needs."""
    h, w = image.pixels.shape[:2]
    if side is None or max(h, w) <= side * 1.1:
        return image
    ratio = side / max(h, w)
    small = Image.fromarray(image.pixels).resize(
        (max(1, round(w * ratio)), max(1, round(h * ratio))), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return replace(image, pixels=np.asarray(small))


def _timed_run(stage: Stage, images: list[LoadedImage]) -> tuple[list[Any], float, list[tuple[float, float]]]:
    """Run one stage on its own copy of the batch; returns outputs, seconds and the scales
    that map each output back to full-image coordinates."""
    t0 = time.perf_counter()
    # Only for a stage in another process: there the saving is the pickled transfer. A
    # local stage resizes from the decoded pixels itself, in one resampling step (a second
    # one here changed ~1 in 5 ImageNet top-1 answers on ambiguous photos).
    fitted = [_fit(img, stage.info.max_side) for img in images] if isinstance(stage, ProcessStage) else images
    out = stage.run(fitted)
    if len(out) != len(images):
        raise RuntimeError(f"stage {stage.info.tasks} returned {len(out)} outputs for {len(images)} images")
    return out, time.perf_counter() - t0, [img.scale for img in fitted]


def _error_dict(err: BaseException) -> dict[str, str]:
    if isinstance(err, PixsightError):
        return {k: printable(v) for k, v in err.to_dict().items()}
    return {"type": type(err).__name__, "message": printable(str(err) or type(err).__name__)}


def _error_analysis(path: str, err: BaseException) -> Analysis:
    if not isinstance(err, PixsightError):
        log.debug("unexpected error on %s", path, exc_info=err)
    return Analysis(path=path, status="error", error=_error_dict(err))


def analyze(
    paths: Iterable[str | os.PathLike[str]],
    *,
    config: AnalyzeConfig | None = None,
    db: str | os.PathLike[str] | None = None,
    on_result: Callable[[Analysis, LoadedImage | None], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> AnalyzeSummary:
    """Analyse files and folders; store results in the catalog at ``db`` (if given).

    Example:
        >>> summary = analyze(["examples/"], db="pixsight.sqlite")   # doctest: +SKIP
        >>> summary.failed                                          # doctest: +SKIP
        0
    """
    files = list(iter_image_paths(paths))
    catalog = Catalog(db) if db is not None else None
    try:
        with Analyzer(config) as analyzer:
            return analyzer.run(files, catalog=catalog, on_result=on_result, on_progress=on_progress)
    finally:
        if catalog is not None:
            catalog.close()
