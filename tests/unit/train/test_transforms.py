"""Transforms keep boxes and masks on the pixels they label; inference input is exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from pixsight.core.boxes import letterbox_geometry
from pixsight.core.errors import ConfigError
from pixsight.core.preprocess import prepare_input
from pixsight.train.transforms import AUGMENT_PRESETS, build_transforms, preprocess_array, resolve_augment

PRE = {"size": [64, 64], "mean": [127.0] * 3, "std": [128.0] * 3, "resize": "letterbox"}


def _scene(h: int = 90, w: int = 140) -> tuple[tv_tensors.Image, dict]:
    """Dark image with one bright rectangle; its box and mask label exactly that rectangle."""
    img = torch.full((3, h, w), 20, dtype=torch.uint8)
    x0, y0, x1, y1 = 30, 20, 90, 60
    img[:, y0:y1, x0:x1] = 235
    mask = torch.zeros((1, h, w), dtype=torch.uint8)
    mask[0, y0:y1, x0:x1] = 1
    target = {"boxes": tv_tensors.BoundingBoxes([[x0, y0, x1, y1]], format="XYXY", canvas_size=(h, w)),
              "labels": torch.tensor([2]), "masks": tv_tensors.Mask(mask)}
    return tv_tensors.Image(img), target


@pytest.mark.parametrize("task", ["detect", "segment", "classify"])
@pytest.mark.parametrize("preset", ["light", "default", "heavy"])
def test_boxes_and_masks_follow_the_image(task: str, preset: str) -> None:
    # colour jitter off so "bright" stays bright; every geometric op stays on
    t = build_transforms(task, PRE, {"preset": preset, "brightness": 0, "contrast": 0, "saturation": 0,
                                     "hue": 0, "grayscale_p": 0}, train=True)
    for seed in range(12):
        torch.manual_seed(seed)
        image, target = _scene()
        x, out = t(image, target)
        assert x.shape == (3, 64, 64) and x.dtype == torch.float32
        bright = (x[0] > 0.5).numpy()
        mask = out["masks"][0].numpy().astype(bool) if len(out["boxes"]) else None
        if mask is None:
            continue
        # the mask covers the bright pixels (edges of a bilinear resize aside)
        assert (bright & mask).sum() >= 0.8 * mask.sum()
        assert (bright & ~mask).sum() <= 0.2 * max(1, mask.sum())
        # the box is the mask's bounding box (within 2 px) and is inside the canvas
        ys, xs = np.nonzero(mask)
        bx = out["boxes"][0].numpy()
        assert np.allclose(bx, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], atol=2.5), (seed, bx)
        assert out["labels"].tolist() == [2]


def test_box_pushed_out_of_the_image_is_dropped_with_its_label_and_mask() -> None:
    t = build_transforms("detect", PRE, {"preset": "none", "crop_p": 1.0, "crop_scale": [0.05, 0.05]}, train=True)
    dropped = 0
    for seed in range(20):
        torch.manual_seed(seed)
        _, out = t(*_scene())
        assert len(out["boxes"]) == len(out["labels"]) == out["masks"].shape[0]
        dropped += len(out["boxes"]) == 0
    assert dropped > 0


def test_semantic_map_is_not_treated_as_instances() -> None:
    image, target = _scene()
    target["masks"] = tv_tensors.Mask(target["masks"][0].to(torch.int64) * 3)  # (H, W) class map
    torch.manual_seed(0)
    _, out = build_transforms("segment", PRE, "heavy", train=True)(image, target)
    assert out["masks"].shape == (64, 64) and set(out["masks"].unique().tolist()) <= {0, 3}


@pytest.mark.parametrize("resize", ["letterbox", "stretch"])
def test_validation_transform_equals_the_numpy_inference_input_bit_for_bit(resize: str) -> None:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (47, 101, 3), dtype=np.uint8)
    pre = dict(PRE, resize=resize, size=[48, 64])
    x_np, lb = prepare_input(arr, pre)
    x_t, lb2 = preprocess_array(arr, pre)
    img = tv_tensors.Image(torch.from_numpy(arr).permute(2, 0, 1))
    x_tf, _ = build_transforms("detect", pre, "heavy", train=False)(img, {"labels": torch.tensor([0])})
    assert np.array_equal(x_t.numpy(), x_np.transpose(2, 0, 1))
    assert np.array_equal(x_tf.numpy(), x_np.transpose(2, 0, 1))
    assert lb == lb2
    if resize == "letterbox":
        assert lb == letterbox_geometry(101, 47, (48, 64))
        assert float(x_np[0, 0, 0]) == 0.0  # padding is the mean colour: 0 after normalisation


def test_presets_and_overrides() -> None:
    assert set(AUGMENT_PRESETS["classify"]) == {"none", "light", "default", "heavy"}
    assert resolve_augment("detect", "default")["vflip"] == 0.0  # no vertical flips by default
    assert resolve_augment("classify", {"preset": "heavy", "rotate": 3})["rotate"] == 3.0
    for bad in ({"preset": "huge"}, {"flip": 0.5}, {"hflip": 2.0}, {"crop_scale": [0.9, 0.1]}, 3):
        with pytest.raises(ConfigError):
            resolve_augment("classify", bad)
