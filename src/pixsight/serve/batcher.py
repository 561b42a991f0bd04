"""Dynamic batching of analysis requests over one :class:`~pixsight.pipeline.analyzer.Analyzer`.

Requests decode their image in the threadpool, then :meth:`Batcher.submit` it. One worker
thread takes the first queued image, waits at most ``max_wait_ms`` for more (up to
``max_batch``), runs them as one batch through ``Analyzer.analyze_loaded`` and hands the
batch to a second thread, which calls ``on_result(analysis, data)`` for each (the server's
catalog writer: upload file + catalog row) and then resolves each caller's future. So the
next batch's inference overlaps with storing the last one, and a caller only gets its
answer once its result is stored. The queue is bounded: when it is full, ``submit`` raises
:class:`QueueFullError` at once (the route answers 429, so overload sheds load instead of
piling up latency or memory). ``max_batch=1`` is one inference per request.

>>> from pixsight.core.config import AnalyzeConfig                    # doctest: +SKIP
>>> batcher = Batcher(Analyzer(AnalyzeConfig(tasks=("classify",))), max_batch=16)  # doctest: +SKIP
>>> batcher.start()                                                    # doctest: +SKIP
>>> analysis = await batcher.submit(load_image(data), name="cat.jpg")  # doctest: +SKIP
>>> batcher.drain(timeout_s=10)                                        # doctest: +SKIP
True
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Protocol, Sequence

from ..core.errors import PixsightError
from ..core.image import LoadedImage
from ..core.types import Analysis
from ..pipeline._malloc import trim

if TYPE_CHECKING:
    from .metrics import ServeMetrics

__all__ = ["Batcher", "QueueFullError", "DrainingError", "BatchAnalyzer"]

log = logging.getLogger(__name__)

#: How often an idle worker checks whether it should stop (seconds).
_IDLE_POLL_S = 0.1
#: Analysed batches that may wait for the completion thread (store + answer).
_DONE_BACKLOG = 2
#: Return freed C heap pages to the OS at most this often (seconds).
_TRIM_EVERY_S = 1.0


class QueueFullError(PixsightError):
    """The batcher's queue is full: the request is refused at once (HTTP 429 ``Overloaded``).

    Its error ``type`` is ``"Overloaded"`` (the contract's error body type).
    """

    retry_after_s: int = 1

    @property
    def type(self) -> str:
        return "Overloaded"


class DrainingError(PixsightError):
    """The batcher is draining or closed and takes no new work (HTTP 503)."""


class BatchAnalyzer(Protocol):
    """What the batcher needs from an analyzer (``Analyzer`` provides it)."""

    models: dict[str, str]

    def analyze_loaded(self, items: Sequence[tuple[LoadedImage, str, float]]) -> list[Analysis]: ...


@dataclass
class _Job:
    image: LoadedImage
    name: str
    data: bytes | None
    decode_ms: float
    store: bool = True  # False: a query image (answered, counted, never stored)
    future: Future = field(default_factory=Future)


class Batcher:
    """One worker thread turning queued single-image requests into batches.

    ``submit`` is safe to call from any thread or event loop; the analyzer is only used
    from the worker thread; ``on_result`` and the per-analysis metrics only from the
    completion thread (one each, so a catalog connection made in ``on_result`` stays in
    one thread).

    Args:
        analyzer: the loaded analyzer (anything with ``analyze_loaded`` and ``models``).
        max_batch: most images per inference batch (1 = no batching).
        max_wait_ms: after the first image of a batch, how long to wait for more.
        queue_size: most images waiting; beyond it ``submit`` raises :class:`QueueFullError`.
        metrics: where batch sizes, stage seconds, queue depth and analyses are counted.
        on_result: called as ``on_result(analysis, data)`` per image on the completion
            thread before the caller gets the analysis; its exceptions are logged, not raised.
    """

    def __init__(self, analyzer: BatchAnalyzer, *, max_batch: int = 16, max_wait_ms: float = 5.0,
                 queue_size: int = 64, metrics: ServeMetrics | None = None,
                 on_result: Callable[[Analysis, bytes | None], None] | None = None) -> None:
        if max_batch < 1 or queue_size < 1 or max_wait_ms < 0:
            raise PixsightError(f"batcher needs max_batch >= 1, queue_size >= 1 and max_wait_ms >= 0; got "
                                f"max_batch={max_batch}, queue_size={queue_size}, max_wait_ms={max_wait_ms}")
        self.analyzer = analyzer
        self.max_batch = int(max_batch)
        self.max_wait_s = float(max_wait_ms) / 1000.0
        self.queue_size = int(queue_size)
        self.metrics = metrics
        self.on_result = on_result
        self._queue: queue.Queue[_Job] = queue.Queue(maxsize=self.queue_size)
        self._lock = threading.Lock()  # orders "check draining + enqueue" against drain()
        self._draining = False
        self._abort = threading.Event()  # close(): stop after the batch in hand
        self._thread: threading.Thread | None = None
        # analysed batches waiting to be stored and answered; bounded so a slow disk
        # holds the worker back instead of piling up results in memory
        self._done: queue.Queue[tuple[list[_Job], list[Analysis]] | None] = queue.Queue(maxsize=_DONE_BACKLOG)
        self._completer: threading.Thread | None = None
        self.batches = 0
        self.images = 0

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker thread (once)."""
        with self._lock:
            if self._thread is not None:
                return
            if self._draining:
                raise DrainingError("the batcher was drained or closed; create a new one")
            self._completer = threading.Thread(target=self._complete_loop, name="pixsight-batcher-store",
                                               daemon=True)
            self._completer.start()
            self._thread = threading.Thread(target=self._work, name="pixsight-batcher", daemon=True)
            self._thread.start()

    @property
    def depth(self) -> int:
        """Images waiting in the queue (not counting the batch being analysed)."""
        return self._queue.qsize()

    @property
    def full(self) -> bool:
        """True when a ``submit`` now would raise :class:`QueueFullError`."""
        return self._queue.qsize() >= self.queue_size

    def reject_if_full(self) -> None:
        """Raise :class:`QueueFullError` (counted as a ``queue_full`` rejection) when the queue
        is full, so a route can shed load before it reads and decodes the upload."""
        if self.full:
            raise self._queue_full()

    def _queue_full(self) -> QueueFullError:
        if self.metrics is not None:
            self.metrics.count_rejection("queue_full")
        return QueueFullError(f"the analysis queue is full ({self.queue_size} images waiting); "
                              f"retry in {QueueFullError.retry_after_s} s")

    @property
    def draining(self) -> bool:
        return self._draining

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def drain(self, timeout_s: float) -> bool:
        """Stop taking work, finish what is queued, and join the worker.

        Returns True when everything queued was answered within ``timeout_s``; False when
        the worker is still busy (it keeps going in the background; call :meth:`close`).
        """
        with self._lock:
            self._draining = True
        thread = self._thread
        if thread is None:  # never started: nobody will answer what is queued
            self._fail_queued(DrainingError("the server is shutting down; retry on another instance"))
            return True
        deadline = time.monotonic() + max(0.0, timeout_s)
        thread.join(max(0.0, timeout_s))
        if self._completer is not None:
            self._completer.join(max(0.0, deadline - time.monotonic()))
        finished = not thread.is_alive() and not (self._completer is not None and self._completer.is_alive())
        if not finished:
            log.warning("batcher drain: %d images still queued after %.1f s", self.depth, timeout_s)
        return finished

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop now: the batch in hand finishes, queued requests fail with :class:`DrainingError`."""
        with self._lock:
            self._draining = True
        self._abort.set()
        self._fail_queued(DrainingError("the server is shutting down; retry on another instance"))
        if self._thread is not None:
            self._thread.join(max(0.0, timeout_s))

    # -- submitting -------------------------------------------------------------------------
    def submit_nowait(self, image: LoadedImage, *, name: str, data: bytes | None = None,
                      decode_ms: float = 0.0, store: bool = True) -> Future:
        """Queue one decoded image; returns a ``concurrent.futures.Future`` of its Analysis.
        ``store=False`` skips ``on_result`` (a query image that must not join the catalog).

        Raises:
            QueueFullError: the queue holds ``queue_size`` images already (at once, no waiting).
            DrainingError: the batcher is draining or closed.
        """
        job = _Job(image=image, name=name, data=data, decode_ms=float(decode_ms), store=store)
        with self._lock:
            if self._draining:
                raise DrainingError("the server is shutting down and takes no new images")
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                raise self._queue_full() from None
        self._set_depth()
        return job.future

    async def submit(self, image: LoadedImage, *, name: str, data: bytes | None = None,
                     decode_ms: float = 0.0, store: bool = True) -> Analysis:
        """Queue one decoded image and wait for its analysis (raises at once when full).

        An exception of the analyzer on this image's batch is raised here (the route turns
        it into a 500 error body); cancelling the awaiting task drops a still-queued image.
        """
        future = self.submit_nowait(image, name=name, data=data, decode_ms=decode_ms, store=store)
        return await asyncio.wrap_future(future)

    # -- worker -----------------------------------------------------------------------------
    def _set_depth(self) -> None:
        if self.metrics is not None:
            self.metrics.set_queue_depth(self._queue.qsize())

    def _fail_queued(self, err: BaseException) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(err)
        self._set_depth()

    def _next_batch(self) -> list[_Job] | None:
        """Block for the first job, then gather more until ``max_batch`` or ``max_wait_ms``.
        None when the worker should stop (draining with an empty queue, or closed)."""
        while True:
            if self._abort.is_set():
                return None
            try:
                first = self._queue.get(timeout=_IDLE_POLL_S)
                break
            except queue.Empty:
                if self._draining:
                    return None
        batch = [first]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                # past the deadline, still take what is already queued (no waiting)
                batch.append(self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
        self._set_depth()
        # drop jobs whose caller went away (their asyncio task was cancelled)
        return [job for job in batch if job.future.set_running_or_notify_cancel()]

    def _work(self) -> None:
        try:
            while True:
                batch = self._next_batch()
                if batch is None:
                    break
                if batch:
                    self._run(batch)
        finally:
            self._done.put(None)  # the completion thread stops after what is handed over

    def _complete_loop(self) -> None:
        last_trim = time.monotonic()
        while True:
            item = self._done.get()
            if item is None:
                return
            self._complete(*item)
            if time.monotonic() - last_trim >= _TRIM_EVERY_S:
                trim()  # hand freed heap pages back to the OS: a long-running server stays flat
                last_trim = time.monotonic()

    def _run(self, batch: list[_Job]) -> None:
        try:
            analyses = self.analyzer.analyze_loaded([(job.image, job.name, job.decode_ms) for job in batch])
            if len(analyses) != len(batch):
                raise RuntimeError(f"analyzer returned {len(analyses)} analyses for {len(batch)} images")
        except Exception as err:  # noqa: BLE001 - fail this batch's requests, keep serving
            log.exception("analysis of a batch of %d images failed", len(batch))
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(err)
            return
        self.batches += 1
        self.images += len(batch)
        if self.metrics is not None:
            try:
                self.metrics.observe_batch(len(batch), _stage_seconds(analyses),
                                           dict(getattr(self.analyzer, "models", {}) or {}))
            except Exception:  # noqa: BLE001 - metrics never fail a request
                log.exception("recording batch metrics failed")
        self._done.put((batch, analyses))

    def _complete(self, batch: list[_Job], analyses: list[Analysis]) -> None:
        """Store each result (``on_result``), count it, then answer its caller."""
        for job, analysis in zip(batch, analyses):
            if self.on_result is not None and job.store:
                try:
                    self.on_result(analysis, job.data)
                except Exception:  # noqa: BLE001 - the caller still gets its analysis
                    log.exception("on_result failed for %s", analysis.path)
            if self.metrics is not None:
                try:
                    self.metrics.observe_analysis(analysis)
                except Exception:  # noqa: BLE001
                    log.exception("recording analysis metrics failed")
            if not job.future.done():
                job.future.set_result(analysis)


def _stage_seconds(analyses: Sequence[Analysis]) -> dict[str, float]:
    """Model seconds per task for one batch, summed from each analysis' ``timings_ms``
    (the analyzer splits a stage's batch time evenly over its images and tasks).

    >>> _stage_seconds([Analysis(path="a", timings_ms={"decode": 3.0, "classify": 10.0}),
    ...                 Analysis(path="b", timings_ms={"decode": 2.0, "classify": 10.0})])
    {'classify': 0.02}
    """
    out: dict[str, float] = {}
    for analysis in analyses:
        for task, ms in analysis.timings_ms.items():
            if task != "decode":
                out[task] = out.get(task, 0.0) + float(ms) / 1000.0
    return {task: round(s, 9) for task, s in out.items()}
