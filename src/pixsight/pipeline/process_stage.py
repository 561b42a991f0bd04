"""Run a GIL-bound stage (dlib holds the GIL) in its own process so both cores work.

The child process builds the real stage once (``create_stage`` of the task module) and
answers ``run`` calls; images and results travel by pickle (a 1280 px image is ~5 MB,
a few ms). Exceptions for single images come back as :class:`RemoteStageError` carrying
the original type name and message, so the analyzer records them like local ones.

>>> # stage = ProcessStage("pixsight.tasks.faces", spec, config, ("faces",))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Sequence

from ..core.config import AnalyzeConfig
from ..core.errors import PixsightError
from ..core.image import LoadedImage
from ..models.spec import ModelSpec
from ..tasks.base import StageInfo, StageOutput

__all__ = ["ProcessStage", "RemoteStageError"]

log = logging.getLogger(__name__)

_CHILD_STAGE: Any = None  # the stage object inside the child process


class RemoteStageError(PixsightError):
    """An error raised inside a stage's child process (``type`` names the original)."""

    def __init__(self, type_name: str, message: str) -> None:
        self.type_name = type_name
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (RemoteStageError, (self.type_name, self.message))

    @property
    def type(self) -> str:
        return self.type_name


def _exit_when_orphaned(parent: int) -> None:
    """If the analyzer is killed (even with ``kill -9``) the child must not linger."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


def _child_init(module_name: str, spec: dict[str, Any], config: AnalyzeConfig, tasks: tuple[str, ...]) -> None:
    global _CHILD_STAGE
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True,
                     name="pixsight-orphan-watch").start()
    module = importlib.import_module(module_name)
    _CHILD_STAGE = module.create_stage(ModelSpec.from_dict(spec), config, tasks)


def _child_info() -> StageInfo:
    return _CHILD_STAGE.info


def _portable(out: StageOutput) -> StageOutput:
    if isinstance(out, Exception):
        kind = out.type if isinstance(out, PixsightError) else type(out).__name__
        return RemoteStageError(kind, str(out) or kind)
    return out


def _child_run(images: list[LoadedImage]) -> list[StageOutput]:
    return [_portable(o) for o in _CHILD_STAGE.run(images)]


class ProcessStage:
    """A :class:`~pixsight.tasks.base.Stage` whose work happens in a child process."""

    def __init__(self, module_name: str, spec: ModelSpec, config: AnalyzeConfig, tasks: tuple[str, ...]) -> None:
        ctx = multiprocessing.get_context("spawn")  # never fork a process that runs ORT threads
        self._pool = ProcessPoolExecutor(
            max_workers=1, mp_context=ctx, initializer=_child_init,
            initargs=(module_name, spec.to_dict(), config, tasks),
        )
        try:
            self.info: StageInfo = self._pool.submit(_child_info).result()
        except BaseException:
            self._pool.shutdown(wait=False, cancel_futures=True)
            raise

    def run(self, images: Sequence[LoadedImage]) -> list[StageOutput]:
        return self._pool.submit(_child_run, list(images)).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
