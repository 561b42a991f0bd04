"""Image classification: EfficientNet-Lite0 pooled features -> dropout -> linear head.

Loss: cross-entropy with optional label smoothing and class weights, or focal loss.
Validation goes through ``pixsight.evaluate.metrics.classification_metrics``.

>>> TASK.name, TASK.primary_metric, TASK.output_names
('classify', 'accuracy', ('logits',))
>>> TASK.arch({"dropout": 0.3})
{'name': 'effnet-lite0-classifier', 'params': {'dropout': 0.3}}
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ...core.errors import ConfigError
from ...data.dataset import Dataset
from ..backbone import PRETRAINED_MEAN, PRETRAINED_STD, EffNetLite0Backbone
from ..data import ImageDataset

__all__ = ["ClassifierModel", "ClassifyTask", "TASK", "classification_loss"]

log = logging.getLogger(__name__)

ARCH_NAME = "effnet-lite0-classifier"
_ARCH_DEFAULTS: dict[str, Any] = {"dropout": 0.2}


class ClassifierModel(nn.Module):
    """``forward(images (N, 3, H, W)) -> logits (N, C)``."""

    def __init__(self, num_classes: int, *, dropout: float = 0.2, pretrained: bool = True) -> None:
        super().__init__()
        self.backbone = EffNetLite0Backbone(pretrained=pretrained)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.backbone.num_features, num_classes)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.backbone.pooled(images)))


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, options: dict[str, Any]) -> torch.Tensor:
    """Cross-entropy (``label_smoothing``, ``class_weights``) or focal loss (``focal``, ``focal_gamma``).

    >>> logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    >>> round(float(classification_loss(logits, torch.tensor([0, 1]), {})), 4)
    0.1269
    """
    weight = options.get("class_weights")
    w = torch.as_tensor(weight, dtype=torch.float32, device=logits.device) if weight is not None else None
    smoothing = float(options.get("label_smoothing") or 0.0)
    logits = logits.float()
    if not options.get("focal"):
        return F.cross_entropy(logits, labels, weight=w, label_smoothing=smoothing)
    gamma = float(options.get("focal_gamma", 2.0))
    ce = F.cross_entropy(logits, labels, reduction="none", label_smoothing=smoothing)
    pt = torch.softmax(logits, dim=1).gather(1, labels[:, None]).squeeze(1)
    loss = (1.0 - pt).clamp(min=0).pow(gamma) * ce
    if w is not None:
        wt = w[labels]
        return (loss * wt).sum() / wt.sum().clamp(min=1e-12)
    return loss.mean()


class ClassifyTask:
    """The :class:`~pixsight.train.tasks.base.TrainTask` for ``classify``."""

    name = "classify"
    primary_metric = "accuracy"
    output_names = ("logits",)

    def config_defaults(self) -> dict[str, Any]:
        return {"label_smoothing": 0.1, "batch_size": 32}

    def default_preprocess(self, size: int | Sequence[int] | None) -> dict[str, Any]:
        hw = [224, 224] if size is None else ([int(size)] * 2 if isinstance(size, int) else [int(s) for s in size])
        return {"size": hw, "mean": list(PRETRAINED_MEAN), "std": list(PRETRAINED_STD), "resize": "stretch"}

    def default_postprocess(self) -> None:
        return None

    def arch(self, params: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(params) - set(_ARCH_DEFAULTS))
        if unknown:
            raise ConfigError(f"unknown classify arch option(s) {unknown}; known: {sorted(_ARCH_DEFAULTS)}")
        out = {**_ARCH_DEFAULTS, **params}
        if not isinstance(out["dropout"], (int, float)) or not 0 <= out["dropout"] < 1:
            raise ConfigError(f"arch dropout must be in [0, 1), got {out['dropout']!r}")
        return {"name": ARCH_NAME, "params": {"dropout": float(out["dropout"])}}

    def build_model(self, arch: dict[str, Any], num_classes: int, *, pretrained: bool) -> nn.Module:
        if arch.get("name") != ARCH_NAME:
            raise ConfigError(f"classify cannot build arch {arch.get('name')!r}; expected {ARCH_NAME!r}")
        return ClassifierModel(num_classes, dropout=float(arch.get("params", {}).get("dropout", 0.2)),
                               pretrained=pretrained)

    def check_dataset(self, ds: Dataset) -> None:
        """Every image needs a label (folders, or COCO/… with image-level labels)."""
        from ...core.errors import DatasetFormatError

        missing = [r.file_name for r in ds.images if r.label is None]
        if missing:
            raise DatasetFormatError(
                f"{len(missing)} of {len(ds.images)} images have no class label (e.g. {missing[0]}); classification "
                "needs one label per image: use class folders (ROOT/<class>/<image>)", path=str(ds.root))

    def torch_dataset(self, ds: Dataset, preprocess: dict[str, Any], augment: dict[str, Any] | str | None,
                      *, train: bool) -> ImageDataset:
        return ImageDataset(ds, preprocess, augment if train else None, task="classify", train=train, targets="label")

    def collate(self, items: Sequence[tuple[torch.Tensor, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.stack([x for x, _ in items])
        labels = torch.tensor([int(t["label"]) for _, t in items], dtype=torch.int64)
        return images, labels

    def loss(self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor,
             options: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        loss = classification_loss(model(images), targets.to(images.device), options)
        return loss, {"ce": float(loss.detach())}

    @torch.no_grad()
    def predict_logits(self, model: nn.Module, ds: Dataset, preprocess: dict[str, Any], *, batch_size: int,
                       workers: int = 0) -> np.ndarray:
        """``(N, C)`` eval-mode logits over ``ds`` with the exact inference input."""
        device = next(model.parameters()).device
        tds = self.torch_dataset(ds, preprocess, None, train=False)
        loader = torch.utils.data.DataLoader(tds, batch_size=batch_size, shuffle=False, collate_fn=self.collate,
                                             num_workers=workers)
        model.eval()
        out = [model(images.to(device)).float().cpu() for images, _ in loader]
        return torch.cat(out).numpy() if out else np.zeros((0, len(ds.classes)), np.float32)

    def validate(self, model: nn.Module, ds: Dataset, preprocess: dict[str, Any], postprocess: dict[str, Any] | None,
                 *, batch_size: int) -> dict[str, Any]:
        logits = self.predict_logits(model, ds, preprocess, batch_size=batch_size)
        y = np.array([-1 if r.label is None else r.label for r in ds.images], dtype=np.int64)
        keep = y >= 0
        logits, y = logits[keep], y[keep]
        t = torch.from_numpy(logits)
        probs = torch.softmax(t, dim=1).numpy()
        val_loss = float(F.cross_entropy(t, torch.from_numpy(y))) if len(y) else None
        from ...evaluate.metrics import classification_metrics

        metrics = dict(classification_metrics(y, probs, ds.classes))
        metrics["val_loss"] = val_loss
        return metrics


TASK = ClassifyTask()
