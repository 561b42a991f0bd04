"""The contract between the analyzer and the tasks.

A :class:`Stage` is one model call that answers one or more tasks (the ImageNet classifier
answers both ``classify`` and ``embed`` from one forward pass). The analyzer decodes each
image once at ``max(stage.max_side)``, hands batches of :class:`LoadedImage` to every stage,
and scales what comes back into full-image coordinates with ``result.scaled(*image.scale)``.

Stages must:
- return results in the coordinates of ``image.pixels`` (not the full image);
- return one entry per input image, an ``Exception`` for an image that failed, so one bad
  image never loses the others' results;
- be safe to call from a worker thread (one call at a time per stage);
- never print; log with ``logging.getLogger(__name__)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

from ..core.image import LoadedImage
from ..core.types import TaskResult

__all__ = ["Stage", "StageOutput", "StageInfo"]

#: What a stage returns for one image: task name -> result, or the exception that image raised.
StageOutput = dict[str, TaskResult] | Exception


@dataclass(frozen=True)
class StageInfo:
    """Static facts about a stage, for the analyzer and for ``models list``."""

    tasks: tuple[str, ...]
    models: dict[str, str] = field(default_factory=dict)  # task -> "name@version"
    max_side: int | None = None  # largest image side this stage uses; None = full size
    batch_size: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Stage(Protocol):
    info: StageInfo

    def run(self, images: Sequence[LoadedImage]) -> list[StageOutput]:
        """Run the model on a batch; one output per image, in order."""
        ...

    def close(self) -> None:
        """Release sessions/threads. Safe to call twice."""
        ...
