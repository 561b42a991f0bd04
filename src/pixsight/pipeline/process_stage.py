"""Run a GIL-bound stage (dlib holds the GIL) in its own process so both cores work.

The worker is a plain ``python -m pixsight.pipeline.stage_worker`` subprocess talking
pickle over its stdin/stdout pipes — not ``multiprocessing``, whose "spawn" start would
re-run an unguarded user script (no ``if __name__ == "__main__"``) and whose "fork" is
unsafe once ONNX Runtime threads exist. The worker builds the real stage once
(``create_stage`` of the task module) and answers ``run`` calls; images and results travel
by pickle (a 1280 px image is ~5 MB, a few ms). It exits when its stdin closes, so it
never outlives the analyzer, even after ``kill -9``.

Exceptions for single images come back as :class:`RemoteStageError` with the original
type name and message, so the analyzer records them like local ones.

>>> stage = ProcessStage("pixsight.tasks.faces", spec, config, ("faces",))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Sequence

from ..core.config import AnalyzeConfig
from ..core.errors import PixsightError
from ..core.image import LoadedImage
from ..models.spec import ModelSpec
from ..tasks.base import StageInfo, StageOutput

__all__ = ["ProcessStage", "RemoteStageError", "StageWorkerError"]

log = logging.getLogger(__name__)


class RemoteStageError(PixsightError):
    """An error raised inside a stage's worker process (``type`` names the original)."""

    def __init__(self, type_name: str, message: str) -> None:
        self.type_name = type_name
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (RemoteStageError, (self.type_name, self.message))

    @property
    def type(self) -> str:
        return self.type_name


class StageWorkerError(PixsightError):
    """The worker process failed to start or died."""


def portable(out: StageOutput) -> StageOutput:
    """An output that pickles safely across processes (exceptions become RemoteStageError)."""
    if isinstance(out, Exception) and not isinstance(out, RemoteStageError):
        kind = out.type if isinstance(out, PixsightError) else type(out).__name__
        return RemoteStageError(kind, str(out) or kind)
    return out


class ProcessStage:
    """A :class:`~pixsight.tasks.base.Stage` whose work happens in a worker process."""

    def __init__(self, module_name: str, spec: ModelSpec, config: AnalyzeConfig, tasks: tuple[str, ...]) -> None:
        import pixsight

        env = dict(os.environ)
        src = str(Path(pixsight.__file__).resolve().parents[1])
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "pixsight.pipeline.stage_worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
        )
        self.info: StageInfo = StageInfo(tasks=tasks)
        try:
            self.info = self._call(("init", module_name, spec.to_dict(), config, tasks))
        except BaseException:
            self.close()
            raise

    def _call(self, message: tuple[Any, ...]) -> Any:
        with self._lock:
            if self._proc.poll() is not None:
                raise StageWorkerError(f"the {self.info.tasks} worker process exited (code {self._proc.returncode})")
            try:
                pickle.dump(message, self._proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)  # type: ignore[arg-type]
                self._proc.stdin.flush()  # type: ignore[union-attr]
                status, payload = pickle.load(self._proc.stdout)  # type: ignore[arg-type]
            except (EOFError, OSError, pickle.UnpicklingError) as err:
                raise StageWorkerError(f"the {self.info.tasks} worker process died: {err or type(err).__name__}") from err
        if status == "error":
            type_name, text = payload
            raise RemoteStageError(type_name, text)
        return payload

    def run(self, images: Sequence[LoadedImage]) -> list[StageOutput]:
        return self._call(("run", list(images)))

    def close(self) -> None:
        proc = self._proc
        if proc.poll() is None:
            try:
                proc.stdin.close()  # type: ignore[union-attr]  # EOF: the worker exits
                proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:
                pass
