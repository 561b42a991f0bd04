"""Training augmentation and the contract resize, with ``torchvision.transforms.v2``.

A transform takes ``(image, target)``: ``image`` a ``tv_tensors.Image`` uint8 ``(3, H, W)``,
``target`` a dict with optional ``"boxes"`` (``tv_tensors.BoundingBoxes`` XYXY), ``"labels"``
(int64) and ``"masks"`` (``tv_tensors.Mask``: ``(K, H, W)`` instances or an ``(H, W)`` semantic
map). One call draws its random parameters once and applies them to image, boxes and masks
alike; then comes the resize of the contract (Pillow bilinear, exactly
:func:`pixsight.core.preprocess.resize_image`, so training sees what inference sees) and the
normalisation. Output: float32 ``(3, H, W)`` and the target in model-input pixels.

Presets (:data:`AUGMENT_PRESETS`) are chosen per task; any key can be overridden::

    augment = {"preset": "heavy", "hflip": 0.0, "rotate": 5}

>>> import torch
>>> from torchvision import tv_tensors
>>> pre = {"size": [32, 32], "mean": [127] * 3, "std": [128] * 3, "resize": "letterbox"}
>>> t = build_transforms("detect", pre, "default", train=True)
>>> img = tv_tensors.Image(torch.zeros(3, 40, 80, dtype=torch.uint8))
>>> boxes = tv_tensors.BoundingBoxes([[10, 10, 30, 30]], format="XYXY", canvas_size=(40, 80))
>>> x, tgt = t(img, {"boxes": boxes, "labels": torch.tensor([0])})
>>> x.shape, x.dtype, tgt["boxes"].canvas_size
(torch.Size([3, 32, 32]), torch.float32, (32, 32))
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from ..core.errors import ConfigError
from ..core.preprocess import PreprocessSpec, normalize_image, parse_preprocess, resize_image

__all__ = ["AUGMENT_KEYS", "AUGMENT_PRESETS", "resolve_augment", "build_transforms", "preprocess_array",
           "ContractResize", "Normalize"]

#: Every augmentation option, its meaning and its "off" value.
AUGMENT_KEYS: dict[str, Any] = {
    "hflip": 0.0,            # probability of a horizontal flip
    "vflip": 0.0,            # probability of a vertical flip (off by default: most photos have an up)
    "crop_p": 0.0,           # probability of a random crop (area fraction crop_scale, aspect crop_ratio)
    "crop_scale": [1.0, 1.0],
    "crop_ratio": [0.75, 1.3333],
    "zoom_out_p": 0.0,       # probability of zooming out (image placed on a bigger mean-coloured canvas)
    "zoom_out_max": 1.0,     # largest canvas side / image side
    "rotate": 0.0,           # small affine: degrees (+-), translate fraction, scale range
    "translate": 0.0,
    "scale": [1.0, 1.0],
    "affine_p": 0.0,
    "brightness": 0.0,       # colour jitter strengths (torchvision ColorJitter)
    "contrast": 0.0,
    "saturation": 0.0,
    "hue": 0.0,
    "grayscale_p": 0.0,
    "min_box_size": 2.0,     # boxes smaller than this (px, after the geometric ops) are dropped
}

# No hue jitter by default: torchvision's hue shift (RGB->HSV->RGB on the CPU) costs ~3-4x the
# rest of the pipeline per image; the heavy presets keep it.
_COLOUR = {"brightness": 0.2, "contrast": 0.2, "saturation": 0.2, "hue": 0.0}
#: Presets per task. ``none`` turns everything off.
AUGMENT_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "classify": {
        "none": {},
        "light": {"hflip": 0.5, "crop_p": 1.0, "crop_scale": [0.7, 1.0], "brightness": 0.1, "contrast": 0.1},
        "default": {"hflip": 0.5, "crop_p": 1.0, "crop_scale": [0.35, 1.0], **_COLOUR},
        "heavy": {"hflip": 0.5, "crop_p": 1.0, "crop_scale": [0.2, 1.0], "affine_p": 0.5, "rotate": 15.0,
                  "translate": 0.05, "scale": [0.9, 1.1], "brightness": 0.4, "contrast": 0.4, "saturation": 0.4,
                  "hue": 0.05, "grayscale_p": 0.05},
    },
    "detect": {
        "none": {},
        "light": {"hflip": 0.5, "brightness": 0.1, "contrast": 0.1},
        "default": {"hflip": 0.5, "crop_p": 0.5, "crop_scale": [0.4, 1.0], "zoom_out_p": 0.3, "zoom_out_max": 2.0,
                    **_COLOUR},
        "heavy": {"hflip": 0.5, "crop_p": 0.6, "crop_scale": [0.3, 1.0], "zoom_out_p": 0.4, "zoom_out_max": 3.0,
                  "affine_p": 0.3, "rotate": 5.0, "translate": 0.05, "scale": [0.9, 1.1], "brightness": 0.3,
                  "contrast": 0.3, "saturation": 0.3, "hue": 0.04, "grayscale_p": 0.05},
    },
}
AUGMENT_PRESETS["segment"] = {k: dict(v) for k, v in AUGMENT_PRESETS["detect"].items()}


def resolve_augment(task: str, augment: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """Every :data:`AUGMENT_KEYS` value for ``task``: a preset name, or a table with an optional
    ``"preset"`` (default ``"default"``) plus overriding keys. ``None`` = ``"none"``.

    >>> resolve_augment("classify", {"preset": "light", "hflip": 0.0})["hflip"]
    0.0
    >>> resolve_augment("detect", "none")["crop_p"]
    0.0
    """
    if task not in AUGMENT_PRESETS:
        raise ConfigError(f"no augmentation presets for task {task!r}; use one of {sorted(AUGMENT_PRESETS)}")
    presets = AUGMENT_PRESETS[task]
    if augment is None:
        augment = "none"
    overrides: dict[str, Any] = {}
    if isinstance(augment, str):
        name = augment
    elif isinstance(augment, Mapping):
        overrides = dict(augment)
        name = str(overrides.pop("preset", "default"))
    else:
        raise ConfigError(f"augment must be a preset name or a table, got {augment!r}")
    if name not in presets:
        raise ConfigError(f"unknown augment preset {name!r}; use one of {', '.join(presets)}")
    unknown = sorted(set(overrides) - set(AUGMENT_KEYS))
    if unknown:
        raise ConfigError(f"unknown augment key(s) {unknown}; known: {sorted(AUGMENT_KEYS)} and 'preset'")
    out = {**AUGMENT_KEYS, **presets[name], **overrides}
    for key, default in AUGMENT_KEYS.items():
        value = out[key]
        if isinstance(default, list):
            if (not isinstance(value, (list, tuple)) or len(value) != 2
                    or not all(_is_number(v) for v in value) or value[0] > value[1]):
                raise ConfigError(f"augment.{key} must be [low, high] numbers, got {value!r}")
            out[key] = [float(v) for v in value]
        elif not _is_number(value) or value < 0:
            raise ConfigError(f"augment.{key} must be a number >= 0, got {value!r}")
        elif key.endswith("_p") or key in ("hflip", "vflip"):
            if value > 1:
                raise ConfigError(f"augment.{key} is a probability in [0, 1], got {value!r}")
        out[key] = float(out[key]) if not isinstance(default, list) else out[key]
    if out["zoom_out_max"] < 1:
        raise ConfigError(f"augment.zoom_out_max must be >= 1, got {out['zoom_out_max']}")
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class RandomAreaCrop(v2.Transform):
    """Crop a random region of ``scale`` x the image area and aspect ``ratio`` (no resize:
    the contract resize that follows makes the model size), with probability ``p``."""

    def __init__(self, *, scale: tuple[float, float], ratio: tuple[float, float], p: float) -> None:
        super().__init__()
        self.scale, self.ratio, self.p = scale, ratio, p

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = v2.query_size(flat_inputs)
        if torch.rand(1).item() >= self.p:
            return {"crop": None}
        area = h * w
        log_ratio = torch.log(torch.tensor(self.ratio))
        for _ in range(10):
            target = area * torch.empty(1).uniform_(*self.scale).item()
            aspect = math.exp(torch.empty(1).uniform_(log_ratio[0].item(), log_ratio[1].item()).item())
            cw, ch = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                top = int(torch.randint(0, h - ch + 1, (1,)).item())
                left = int(torch.randint(0, w - cw + 1, (1,)).item())
                return {"crop": (top, left, ch, cw)}
        return {"crop": None}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if params["crop"] is None:
            return inpt
        top, left, ch, cw = params["crop"]
        return self._call_kernel(F.crop, inpt, top=top, left=left, height=ch, width=cw)


class ContractResize(v2.Transform):
    """Resize to the model input as the contract says: the image through
    :func:`pixsight.core.preprocess.resize_image` (Pillow bilinear), boxes by the same
    scale/offset, masks by nearest neighbour (letterbox padding is 0 = background)."""

    def __init__(self, preprocess: Mapping[str, Any] | PreprocessSpec) -> None:
        super().__init__()
        self.spec = parse_preprocess(preprocess)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = v2.query_size(flat_inputs)
        th, tw = self.spec.size
        if self.spec.resize == "stretch":
            return {"sx": tw / w, "sy": th / h, "ox": 0, "oy": 0, "inner": (th, tw)}
        from ..core.boxes import letterbox_geometry

        lb = letterbox_geometry(w, h, (th, tw))
        return {"sx": lb.new_width / w, "sy": lb.new_height / h, "ox": int(lb.pad_x), "oy": int(lb.pad_y),
                "inner": (lb.new_height, lb.new_width)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        th, tw = self.spec.size
        if isinstance(inpt, tv_tensors.BoundingBoxes):
            scale = torch.tensor([params["sx"], params["sy"], params["sx"], params["sy"]], dtype=torch.float32)
            offset = torch.tensor([params["ox"], params["oy"], params["ox"], params["oy"]], dtype=torch.float32)
            data = inpt.as_subclass(torch.Tensor).to(torch.float32) * scale + offset
            return tv_tensors.wrap(data, like=inpt, canvas_size=(th, tw))
        if isinstance(inpt, tv_tensors.Mask):
            nh, nw = params["inner"]
            small = F.resize(inpt, [nh, nw], interpolation=v2.InterpolationMode.NEAREST)
            pad = [params["ox"], params["oy"], tw - nw - params["ox"], th - nh - params["oy"]]
            return F.pad(small, pad, fill=0) if any(pad) else small
        if isinstance(inpt, tv_tensors.Image):
            arr = inpt.as_subclass(torch.Tensor).permute(1, 2, 0).numpy()
            out, _ = resize_image(np.ascontiguousarray(arr), self.spec)
            return tv_tensors.Image(torch.from_numpy(np.array(out)).permute(2, 0, 1).contiguous())
        return inpt


class Normalize(v2.Transform):
    """uint8 image -> float32 ``(pixel - mean) / std`` (same float32 arithmetic as numpy)."""

    def __init__(self, preprocess: Mapping[str, Any] | PreprocessSpec) -> None:
        super().__init__()
        spec = parse_preprocess(preprocess)
        self.mean = torch.tensor(spec.mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(spec.std, dtype=torch.float32).view(3, 1, 1)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Image):
            return (inpt.as_subclass(torch.Tensor).to(torch.float32) - self.mean) / self.std
        return inpt


class _SanitizeBoxes(v2.Transform):
    """Drop degenerate boxes (and their labels / instance masks) after the geometric ops; a
    semantic map (2-D mask) is left alone."""

    def __init__(self, min_size: float) -> None:
        super().__init__()
        self.min_size = min_size

    def forward(self, *inputs: Any) -> Any:
        image, target = inputs if len(inputs) == 2 else (inputs[0], None)
        if not isinstance(target, dict) or "boxes" not in target:
            return inputs if len(inputs) > 1 else inputs[0]
        boxes = F.clamp_bounding_boxes(target["boxes"])
        wh = boxes[:, 2:] - boxes[:, :2]
        keep = (wh >= self.min_size).all(dim=1)
        out = dict(target)
        out["boxes"] = tv_tensors.wrap(boxes[keep], like=target["boxes"])
        for key in ("labels", "iscrowd", "area"):
            if key in out:
                out[key] = out[key][keep]
        masks = out.get("masks")
        if isinstance(masks, tv_tensors.Mask) and masks.ndim == 3 and masks.shape[0] == len(keep):
            out["masks"] = tv_tensors.wrap(masks[keep], like=masks)
        return image, out


def build_transforms(task: str, preprocess: Mapping[str, Any] | PreprocessSpec,
                     augment: str | Mapping[str, Any] | None, *, train: bool) -> v2.Transform:
    """The transform for one task: augmentation (``train`` only) -> contract resize -> normalise.

    Args:
        task: ``"classify"``, ``"detect"`` or ``"segment"`` (picks the presets).
        preprocess: the run's ``preprocess`` block (size, mean, std, resize).
        augment: a preset name, a table (see :func:`resolve_augment`) or ``None`` (none).
        train: ``False`` gives the deterministic validation/inference transform.
    """
    spec = parse_preprocess(preprocess)
    steps: list[v2.Transform] = []
    if train and augment is not None:
        a = resolve_augment(task, augment)
        if a["zoom_out_p"] > 0 and a["zoom_out_max"] > 1:
            steps.append(v2.RandomZoomOut(fill={tv_tensors.Image: list(spec.pad_value), tv_tensors.Mask: 0,
                                                "others": 0},
                                          side_range=(1.0, a["zoom_out_max"]), p=a["zoom_out_p"]))
        if a["crop_p"] > 0:
            steps.append(RandomAreaCrop(scale=tuple(a["crop_scale"]), ratio=tuple(a["crop_ratio"]), p=a["crop_p"]))
        if a["affine_p"] > 0 and (a["rotate"] or a["translate"] or a["scale"] != [1.0, 1.0]):
            affine = v2.RandomAffine(degrees=a["rotate"], translate=(a["translate"],) * 2 if a["translate"] else None,
                                     scale=tuple(a["scale"]), fill={tv_tensors.Image: list(spec.pad_value),
                                                                    tv_tensors.Mask: 0, "others": 0})
            steps.append(v2.RandomApply([affine], p=a["affine_p"]))
        if a["hflip"] > 0:
            steps.append(v2.RandomHorizontalFlip(p=a["hflip"]))
        if a["vflip"] > 0:
            steps.append(v2.RandomVerticalFlip(p=a["vflip"]))
        if any(a[k] for k in ("brightness", "contrast", "saturation", "hue")):
            steps.append(v2.ColorJitter(brightness=a["brightness"] or None, contrast=a["contrast"] or None,
                                        saturation=a["saturation"] or None, hue=min(0.5, a["hue"]) or None))
        if a["grayscale_p"] > 0:
            steps.append(v2.RandomGrayscale(p=a["grayscale_p"]))
        steps.append(_SanitizeBoxes(a["min_box_size"]))
    steps.append(ContractResize(spec))
    if train:
        steps.append(_SanitizeBoxes(1.0))
    steps.append(Normalize(spec))
    return v2.Compose(steps)


def preprocess_array(image: np.ndarray, preprocess: Mapping[str, Any] | PreprocessSpec) -> tuple[torch.Tensor, Any]:
    """The model input for one RGB uint8 ``(H, W, 3)`` image, as a ``(3, H, W)`` float32 tensor,
    and the ``Letterbox`` (or ``None``): bit-for-bit what the ONNX stage computes with numpy
    (both call :func:`pixsight.core.preprocess.prepare_input`'s parts).

    >>> x, lb = preprocess_array(np.zeros((20, 10, 3), np.uint8), {"size": 16, "resize": "letterbox"})
    >>> tuple(x.shape), lb.new_width
    ((3, 16, 16), 8)
    """
    resized, lb = resize_image(image, preprocess)
    x = normalize_image(resized, preprocess)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))), lb
