"""The dynamic batcher: batches form, results reach the right caller, the queue sheds load,
drain finishes queued work, and an analyzer failure fails only its batch."""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import time
from typing import Any, Sequence

import numpy as np
import pytest
from PIL import Image

from pixsight.core.image import LoadedImage, load_image
from pixsight.core.types import Analysis, Classification
from pixsight.serve.batcher import Batcher, DrainingError, QueueFullError
from pixsight.serve.metrics import ServeMetrics


def _png(i: int, size: int = 32) -> bytes:
    rng = np.random.default_rng(i)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _image(i: int) -> LoadedImage:
    return load_image(_png(i), name=f"img{i}.png")


class FakeAnalyzer:
    """Echoes each image back as an analysis; can be slowed, blocked or made to fail."""

    models = {"classify": "fake@1"}

    def __init__(self, *, delay_s: float = 0.0, gate: threading.Event | None = None, fail_name: str | None = None):
        self.delay_s = delay_s
        self.gate = gate
        self.fail_name = fail_name
        self.batches: list[list[str]] = []
        self.started = threading.Event()

    def analyze_loaded(self, items: Sequence[tuple[LoadedImage, str, float]]) -> list[Analysis]:
        self.batches.append([name for _, name, _ in items])
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(10), "test gate never opened"
        time.sleep(self.delay_s)
        if self.fail_name is not None and any(name == self.fail_name for _, name, _ in items):
            raise RuntimeError("model crashed")
        return [Analysis(path=name, sha256=img.sha256, width=img.width, height=img.height,
                         timings_ms={"decode": ms, "classify": 2.0},
                         results={"classify": Classification(class_ids=np.array([1]), scores=np.array([0.8]),
                                                             labels=["thing"])})
                for img, name, ms in items]


def _wait_for(predicate: Any, timeout_s: float = 5.0) -> None:
    end = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.005)


def test_batches_form_under_concurrency_and_results_reach_their_caller() -> None:
    fake = FakeAnalyzer(delay_s=0.02)
    metrics = ServeMetrics()
    batcher = Batcher(fake, max_batch=4, max_wait_ms=20, queue_size=64, metrics=metrics)
    batcher.start()
    images = [_image(i) for i in range(20)]

    async def main() -> list[Analysis]:
        return await asyncio.gather(*(batcher.submit(img, name=f"img{i}.png", decode_ms=1.5)
                                      for i, img in enumerate(images)))

    results = asyncio.run(main())
    assert batcher.drain(5)
    sizes = [len(b) for b in fake.batches]
    assert max(sizes) <= 4 and max(sizes) > 1, sizes
    assert sum(sizes) == 20
    for i, (img, analysis) in enumerate(zip(images, results)):
        assert analysis.path == f"img{i}.png" and analysis.sha256 == img.sha256
    assert len({a.sha256 for a in results}) == 20
    reg = metrics.registry
    assert reg.get_sample_value("pixsight_batch_size_count") == len(sizes)
    assert reg.get_sample_value("pixsight_batch_size_sum") == 20
    labels = {"task": "classify", "model": "fake@1"}
    assert reg.get_sample_value("pixsight_inference_seconds_count", labels) == len(sizes)
    assert reg.get_sample_value("pixsight_images_analyzed_total", {"status": "ok"}) == 20
    assert reg.get_sample_value("pixsight_queue_depth") == 0


def test_max_batch_one_runs_one_image_per_call() -> None:
    fake = FakeAnalyzer(delay_s=0.005)
    batcher = Batcher(fake, max_batch=1, max_wait_ms=50)
    batcher.start()
    futures = [batcher.submit_nowait(_image(i), name=str(i)) for i in range(6)]
    assert [f.result(5).path for f in futures] == [str(i) for i in range(6)]
    assert batcher.drain(5)
    assert [len(b) for b in fake.batches] == [1] * 6


def test_queue_full_raises_at_once_and_counts_a_rejection() -> None:
    gate = threading.Event()
    fake = FakeAnalyzer(gate=gate)
    metrics = ServeMetrics()
    batcher = Batcher(fake, max_batch=1, max_wait_ms=0, queue_size=2, metrics=metrics)
    batcher.start()
    first = batcher.submit_nowait(_image(0), name="0")
    assert fake.started.wait(5)  # the worker holds image 0; the queue is empty again
    queued = [batcher.submit_nowait(_image(i), name=str(i)) for i in (1, 2)]
    assert batcher.depth == 2
    t0 = time.perf_counter()
    with pytest.raises(QueueFullError) as info:
        batcher.submit_nowait(_image(3), name="3")
    assert time.perf_counter() - t0 < 0.05
    assert info.value.to_dict()["type"] == "Overloaded"
    assert metrics.registry.get_sample_value("pixsight_rejected_total", {"reason": "queue_full"}) == 1
    assert batcher.full
    with pytest.raises(QueueFullError):
        batcher.reject_if_full()  # what a route calls before reading the upload
    assert metrics.registry.get_sample_value("pixsight_rejected_total", {"reason": "queue_full"}) == 2
    assert metrics.registry.get_sample_value("pixsight_queue_depth") == 2

    async def overflow() -> None:
        await batcher.submit(_image(4), name="4")

    with pytest.raises(QueueFullError):
        asyncio.run(overflow())
    gate.set()
    assert [f.result(5).path for f in (first, *queued)] == ["0", "1", "2"]
    assert batcher.drain(5)
    assert not batcher.full
    batcher.reject_if_full()  # room again: no error


def test_drain_finishes_queued_work_then_refuses_new_work() -> None:
    fake = FakeAnalyzer(delay_s=0.02)
    batcher = Batcher(fake, max_batch=2, max_wait_ms=1, queue_size=16)
    batcher.start()
    futures = [batcher.submit_nowait(_image(i), name=str(i)) for i in range(8)]
    t0 = time.perf_counter()
    assert batcher.drain(5) is True
    assert time.perf_counter() - t0 < 5
    assert all(f.done() and f.exception() is None for f in futures)
    assert sorted(f.result().path for f in futures) == sorted(str(i) for i in range(8))
    assert not batcher.running
    with pytest.raises(DrainingError):
        batcher.submit_nowait(_image(9), name="9")


def test_drain_times_out_on_stuck_work_and_close_fails_the_rest() -> None:
    gate = threading.Event()
    batcher = Batcher(FakeAnalyzer(gate=gate), max_batch=1, max_wait_ms=0, queue_size=4)
    batcher.start()
    stuck = batcher.submit_nowait(_image(0), name="0")
    _wait_for(lambda: batcher.depth == 0)
    waiting = batcher.submit_nowait(_image(1), name="1")
    assert batcher.drain(0.1) is False
    batcher.close(timeout_s=0.1)
    assert isinstance(waiting.exception(1), DrainingError)
    gate.set()
    assert stuck.result(5).path == "0"  # the batch in hand still finishes


def test_worker_survives_an_analyzer_exception() -> None:
    batcher = Batcher(FakeAnalyzer(fail_name="bad"), max_batch=1, max_wait_ms=0)
    batcher.start()

    async def main() -> Analysis:
        with pytest.raises(RuntimeError, match="model crashed"):
            await batcher.submit(_image(0), name="bad")
        return await batcher.submit(_image(1), name="good")

    assert asyncio.run(main()).path == "good"
    assert batcher.running
    assert batcher.drain(5)


def test_on_result_failure_is_logged_and_the_caller_still_gets_its_analysis(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[str, bytes | None]] = []

    def on_result(analysis: Analysis, data: bytes | None) -> None:
        seen.append((analysis.path, data))
        if analysis.path == "boom":
            raise OSError("disk full")

    batcher = Batcher(FakeAnalyzer(), max_batch=4, max_wait_ms=0, on_result=on_result)
    batcher.start()
    with caplog.at_level(logging.ERROR, logger="pixsight.serve.batcher"):
        a = batcher.submit_nowait(_image(0), name="boom", data=b"raw-0").result(5)
        b = batcher.submit_nowait(_image(1), name="fine", data=b"raw-1").result(5)
    assert (a.path, b.path) == ("boom", "fine")
    assert seen == [("boom", b"raw-0"), ("fine", b"raw-1")]
    assert "on_result failed" in caplog.text
    assert batcher.drain(5)


def test_a_cancelled_request_is_dropped_before_analysis() -> None:
    gate = threading.Event()
    fake = FakeAnalyzer(gate=gate)
    batcher = Batcher(fake, max_batch=4, max_wait_ms=0, queue_size=8)
    batcher.start()
    first = batcher.submit_nowait(_image(0), name="first")
    assert fake.started.wait(5)

    async def main() -> None:
        task = asyncio.create_task(batcher.submit(_image(1), name="gone"))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    later = batcher.submit_nowait(_image(2), name="later")
    gate.set()
    assert later.result(5).path == "later" and first.result(5).path == "first"
    assert batcher.drain(5)
    assert "gone" not in [name for batch in fake.batches for name in batch]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(Exception, match="max_batch"):
        Batcher(FakeAnalyzer(), max_batch=0)


# -- with the real analyzer ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def analyzer() -> Any:
    from pixsight.core.config import AnalyzeConfig
    from pixsight.pipeline.analyzer import Analyzer

    with Analyzer(AnalyzeConfig(tasks=("classify", "embed"))) as built:
        yield built


def _photos(n: int) -> list[bytes]:
    from skimage import data

    sources = [data.astronaut(), data.coffee(), data.chelsea()]
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        img = sources[i % len(sources)]
        h, w = img.shape[:2]
        s = int(rng.integers(min(h, w) // 2, min(h, w)))
        y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        buf = io.BytesIO()
        Image.fromarray(img[y:y + s, x:x + s]).resize((160, 160)).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def test_real_analyzer_batches_and_routes_results(analyzer: Any) -> None:
    metrics = ServeMetrics()
    batcher = Batcher(analyzer, max_batch=8, max_wait_ms=100, queue_size=32, metrics=metrics)
    batcher.start()
    blobs = _photos(8)
    images = [load_image(b, max_side=analyzer.decode_side, name=f"p{i}.jpg") for i, b in enumerate(blobs)]

    async def main() -> list[Analysis]:
        return await asyncio.gather(*(batcher.submit(img, name=f"p{i}.jpg", data=blobs[i])
                                      for i, img in enumerate(images)))

    results = asyncio.run(main())
    assert batcher.drain(10)
    assert batcher.batches < len(images)  # at least one batch held several images
    assert [a.sha256 for a in results] == [img.sha256 for img in images]
    assert len({a.sha256 for a in results}) == len(images)
    for analysis in results:
        assert analysis.status == "ok"
        assert set(analysis.results) == {"classify", "embed"}
    reg = metrics.registry
    assert reg.get_sample_value("pixsight_batch_size_sum") == len(images)
    assert reg.get_sample_value("pixsight_batch_size_count") == batcher.batches
    for task in ("classify", "embed"):
        assert reg.get_sample_value("pixsight_inference_seconds_count",
                                    {"task": task, "model": analyzer.models[task]}) == batcher.batches
    # the batched path answers what one-image analyze_bytes answers
    alone = analyzer.analyze_bytes(blobs[0], name="p0.jpg")
    assert alone.sha256 == results[0].sha256
    assert alone.results["classify"].top_label == results[0].results["classify"].top_label
    np.testing.assert_allclose(alone.results["embed"].vector, results[0].results["embed"].vector, atol=1e-4)


def test_analyze_loaded_keeps_order_and_empty_input(analyzer: Any) -> None:
    blobs = _photos(3)
    items = [(load_image(b, max_side=analyzer.decode_side), f"n{i}", 1.0) for i, b in enumerate(blobs)]
    out = analyzer.analyze_loaded(items)
    assert [a.path for a in out] == ["n0", "n1", "n2"]
    assert [a.sha256 for a in out] == [img.sha256 for img, _, _ in items]
    assert all(a.timings_ms["decode"] == 1.0 for a in out)
    assert analyzer.analyze_loaded([]) == []


def test_storing_results_overlaps_the_next_batch_and_answers_come_after_storing() -> None:
    """``on_result`` (the catalog writer) runs on its own thread: a slow disk does not hold up
    the next batch's inference, and a caller only gets its analysis once it is stored."""
    fake = FakeAnalyzer()
    stored: set[str] = set()
    writer_threads: set[int] = set()
    release = threading.Event()

    def slow_writer(analysis: Analysis, data: bytes | None) -> None:
        writer_threads.add(threading.get_ident())
        assert release.wait(10), "writer never released"
        stored.add(analysis.path)

    batcher = Batcher(fake, max_batch=1, max_wait_ms=0, queue_size=8, on_result=slow_writer)
    batcher.start()
    futures = [batcher.submit_nowait(_image(i), name=f"img{i}.png") for i in range(2)]
    _wait_for(lambda: len(fake.batches) == 2)  # the 2nd batch ran while the 1st is still being stored
    assert not any(f.done() for f in futures)  # nobody answered before their result was stored
    release.set()
    for i, future in enumerate(futures):
        assert future.result(5).path in stored
    assert batcher.drain(5)
    assert len(writer_threads) == 1 and threading.get_ident() not in writer_threads
