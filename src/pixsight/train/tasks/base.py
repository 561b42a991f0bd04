"""What a training task provides to the generic loop (``pixsight.train.loop``).

The loop owns: seeding, optimiser + schedule, freeze/unfreeze, epochs, time limit, early
stopping, checkpoints, resume, Ctrl-C, progress, run folder. A task owns: the architecture,
how a :class:`~pixsight.data.dataset.Dataset` becomes tensors (with ``transforms.v2``
augmentation applied consistently to image, boxes and masks), the loss, and validation.

Optional extras the loop uses when a task has them (``getattr`` with a fallback):

- ``config_defaults() -> dict``: TrainConfig values this task prefers (e.g. ``size``,
  ``label_smoothing``); the config file and CLI flags still override them.
- a ``cache_budget`` attribute (bytes) on the dataset ``torch_dataset`` returns: the loop sets
  it from ``TrainConfig.cache_images``; ``pixsight.train.data.ImageDataset`` has it.
- a true ``seeded_items`` attribute on that dataset: it accepts ``(index, item_seed)`` keys
  (``pixsight.train.data.EpochSampler``), which makes augmentation independent of the
  number of workers and exact on resume. Without it the loop passes plain indices.

``loss`` receives targets on the CPU as ``collate`` made them; move them to ``images.device``.
In ``loss`` options, ``class_weights`` is already resolved by the loop to ``None`` or one
float per class (``"auto"`` = inverse class frequency over the training data, mean 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch
from torch import nn

from ...data.dataset import Dataset


class TrainTask(Protocol):
    #: ``"classify"`` | ``"detect"`` | ``"segment"``
    name: str
    #: validation metric that picks the best epoch and drives early stopping
    #: (``"accuracy"`` | ``"map_50"`` | ``"miou"``); higher is better.
    primary_metric: str
    #: ONNX output names, in the order the module's eval-mode ``forward`` returns them.
    output_names: tuple[str, ...]

    def default_preprocess(self, size: int | None) -> dict[str, Any]:
        """``{"size": [H, W], "mean", "std", "resize"}`` (docs/design/learning.md)."""

    def arch(self, params: dict[str, Any]) -> dict[str, Any]:
        """``{"name": ..., "params": {...}}``: everything :meth:`build_model` needs, resolved
        with defaults (stored in model.json so a run can be rebuilt)."""

    def build_model(self, arch: dict[str, Any], num_classes: int, *, pretrained: bool) -> nn.Module:
        """The module; it has a ``backbone`` attribute (an ``EffNetLite0Backbone``) so the loop
        can freeze it. In eval mode ``forward(images)`` returns the documented outputs."""

    def torch_dataset(self, ds: Dataset, preprocess: dict[str, Any], augment: dict[str, Any] | None,
                      *, train: bool) -> torch.utils.data.Dataset:
        """Items ``(image_tensor (3, H, W) normalised, target)``. ``augment`` is the resolved
        augmentation config (``None`` = no augmentation, e.g. validation)."""

    def collate(self, items: Sequence[tuple[torch.Tensor, Any]]) -> tuple[torch.Tensor, Any]:
        """Batch items for :meth:`loss`."""

    def loss(self, model: nn.Module, images: torch.Tensor, targets: Any, options: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss (scalar tensor) and named float components for the progress bar.
        ``options`` holds loss settings from the config (``focal``, ``class_weights``, ...)."""

    def validate(self, model: nn.Module, ds: Dataset, preprocess: dict[str, Any], postprocess: dict[str, Any] | None,
                 *, batch_size: int) -> dict[str, Any]:
        """Metrics on ``ds`` with the model in eval mode, through ``pixsight.evaluate.metrics``
        (must include :attr:`primary_metric` and ``val_loss`` when cheap to compute)."""

    def default_postprocess(self) -> dict[str, Any] | None:
        """model.json ``postprocess`` (detect), else ``None``."""
