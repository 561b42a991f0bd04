"""Explanations (Grad-CAM / EigenCAM): heat lands where the evidence is, in image coordinates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from pixsight.core.errors import ConfigError, UnknownModelError
from pixsight.explain import ExplainableModel, explain, load_explainable, save_explanation
from pixsight.explain.geometry import prepare_image

PRE = {"mean": [127.0] * 3, "std": [128.0] * 3}


def mass_inside(heat: np.ndarray, box: tuple[int, int, int, int], *, grow: int = 0) -> float:
    """Fraction of the heatmap's total inside ``box`` = (x0, y0, x1, y1), grown by ``grow`` px."""
    x0, y0, x1, y1 = box
    inside = heat[max(0, y0 - grow):y1 + grow, max(0, x0 - grow):x1 + grow].sum()
    return float(inside / heat.sum())


def peak_in(heat: np.ndarray, box: tuple[int, int, int, int], *, grow: int = 0) -> bool:
    y, x = np.unravel_index(int(heat.argmax()), heat.shape)
    x0, y0, x1, y1 = box
    return x0 - grow <= x < x1 + grow and y0 - grow <= y < y1 + grow


def small(pixels: np.ndarray, width: int) -> np.ndarray:
    height = round(pixels.shape[0] * width / pixels.shape[1])
    return np.asarray(Image.fromarray(pixels).resize((width, height), Image.Resampling.BILINEAR))


# --- the built-in ImageNet classifier on real photos ---------------------------------------

@pytest.fixture(scope="module")
def imagenet() -> ExplainableModel:
    return load_explainable("efficientnet-lite0")


@pytest.mark.parametrize("photo, expected, at, width", [
    ("chelsea", ("tabby", "tiger cat", "Egyptian cat"), (150, 150), 225),
    ("chelsea", ("tabby", "tiger cat", "Egyptian cat"), (300, 200), 225),
    ("coffee", ("espresso", "cup", "coffee mug"), (190, 130), 250),
])
def test_gradcam_of_the_prediction_sits_on_the_object(imagenet: ExplainableModel, photo: str, expected: tuple[str, ...],
                                                      at: tuple[int, int], width: int) -> None:
    """The photo pasted small into noise (inside the ImageNet centre crop): heat on the photo."""
    from skimage import data

    obj = small(getattr(data, photo)(), width)
    canvas = np.random.default_rng(0).integers(0, 256, (450, 600, 3), dtype=np.uint8)
    x0, y0 = at
    h, w = obj.shape[:2]
    canvas[y0:y0 + h, x0:x0 + w] = obj
    e = explain(imagenet, canvas)
    region = (x0, y0, x0 + w, y0 + h)  # 12-17 % of the canvas
    assert e.label in expected and e.data["predicted"] == e.label
    assert e.heatmap.shape == (450, 600) and e.overlay.shape == (450, 600, 3)
    assert e.heatmap.dtype == np.float32 and 0.0 <= e.heatmap.min() and e.heatmap.max() == pytest.approx(1.0)
    assert mass_inside(e.heatmap, region) > 0.6
    assert peak_in(e.heatmap, region)


def test_gradcam_follows_the_requested_class(imagenet: ExplainableModel) -> None:
    """A cat on the left and an espresso on the right: each class lights up its own object."""
    from skimage import data

    canvas = np.full((400, 400, 3), 128, np.uint8)
    cat, cup = small(data.chelsea(), 165), small(data.coffee(), 165)
    canvas[150:150 + cat.shape[0], 30:195] = cat
    canvas[150:150 + cup.shape[0], 205:370] = cup
    left = {}
    for target in ("tabby", "espresso"):
        e = explain(imagenet, canvas, target=target)
        assert e.label == target and e.class_id == imagenet.classes.index(target)
        left[target] = e.heatmap[:, :200].sum() / e.heatmap.sum()
    assert left["tabby"] > 0.8 and left["espresso"] < 0.2


@pytest.mark.parametrize("method", ["gradcam++", "eigencam"])
def test_other_methods_also_find_the_cat(imagenet: ExplainableModel, method: str) -> None:
    from skimage import data

    cat = small(data.chelsea(), 225)
    canvas = np.random.default_rng(1).integers(0, 256, (450, 600, 3), dtype=np.uint8)
    canvas[150:150 + cat.shape[0], 200:425] = cat
    e = explain(imagenet, canvas, method=method)
    assert e.method == method
    assert mass_inside(e.heatmap, (200, 150, 425, 150 + cat.shape[0])) > 0.6


def test_centre_crop_leaves_unseen_borders_cold(imagenet: ExplainableModel) -> None:
    """The ImageNet entry centre-crops 87.5 %: a wide image's sides are never seen."""
    image = np.random.default_rng(2).integers(0, 256, (200, 400, 3), dtype=np.uint8)
    e = explain(imagenet, image)
    unseen = np.ones(400, bool)
    unseen[112:288] = False  # the crop is 175 px wide, 112.5 px in from each side
    assert e.heatmap[:, unseen].max() == 0 and e.heatmap[:, 115:285].max() == pytest.approx(1.0)
    dimmed = (image[60:140, unseen].astype(np.float32) * 0.45).round()  # below the banner
    assert np.array_equal(e.overlay[60:140, unseen], dimmed.astype(np.uint8))


# --- a tiny classifier that can only be right by looking at one place -----------------------

def _patch_data(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """48 x 80 grey-noise images; the class is the colour of the 16 x 16 patch at x 50, y 10."""
    grey = rng.integers(40, 216, (n, 48, 80, 1), dtype=np.uint8)
    images = np.repeat(grey, 3, axis=3)
    labels = rng.integers(0, 2, n)
    images[:, 10:26, 50:66] = np.where(labels[:, None, None, None] == 0, [230, 30, 30], [30, 30, 230])
    return images, labels


@pytest.fixture(scope="module")
def patch_classifier() -> ExplainableModel:
    torch.manual_seed(0)
    pre = {**PRE, "size": [32, 48], "resize": "stretch"}
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1),
                        nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(16, 2))
    images, labels = _patch_data(256, np.random.default_rng(0))
    x = torch.from_numpy(np.stack([prepare_image(im, pre)[0] for im in images]))
    y = torch.from_numpy(labels)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for step in range(80):
        idx = torch.randint(0, len(x), (32,))
        loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return ExplainableModel(net.eval(), task="classify", classes=["red", "blue"], preprocess=pre, name="patch")


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_trained_classifier_attends_to_the_deciding_patch(patch_classifier: ExplainableModel, method: str) -> None:
    images, labels = _patch_data(6, np.random.default_rng(7))
    for image, label in zip(images, labels):
        e = explain(patch_classifier, image, method=method)
        assert e.class_id == label, "the tiny classifier did not learn the patch rule"
        assert e.layers == ("5",)  # the last ReLU
        assert peak_in(e.heatmap, (50, 10, 66, 26), grow=3)
        assert mass_inside(e.heatmap, (50, 10, 66, 26), grow=4) > 0.5  # the patch is 7 % of the image


# --- geometry: heat goes back to the right image pixels --------------------------------------

@pytest.mark.parametrize("resize, shape", [
    ("letterbox", (60, 150)), ("letterbox", (150, 60)), ("stretch", (60, 150)), ("center_crop", (90, 120)),
])
def test_input_heat_maps_back_onto_the_image(resize: str, shape: tuple[int, int]) -> None:
    """A bright square seen in the model input comes back at its place in the original image."""
    h, w = shape
    image = np.zeros((h, w, 3), np.uint8)
    image[h // 3:h // 3 + 24, w // 2:w // 2 + 24] = 255
    pre = {**PRE, "size": [64, 64] if resize != "center_crop" else 64, "resize": resize}
    x, geo = prepare_image(image, pre)
    back = geo.heat_to_image((x[0] > 0).astype(np.float32))  # the square as seen by the model
    assert back.shape == (h, w)
    truth = image[..., 0] > 0
    inter, union = np.logical_and(back > 0.5, truth).sum(), np.logical_or(back > 0.5, truth).sum()
    assert inter / union > 0.85
    if resize == "letterbox":  # padding is the mean colour: 0 after normalisation, not part of the image
        assert np.abs(x[:, ~geo.content_mask()]).max() < 0.01
    box = geo.boxes_to_image(np.array([[0.0, 0.0, 64.0, 64.0]]))[0]
    expected = [0, 0, w, h] if resize != "center_crop" else [20.625, 5.625, 99.375, 84.375]  # the 78.75 px crop
    assert box.tolist() == pytest.approx(expected, abs=0.01)


# --- segmenter: Grad-CAM of one class's pixels ------------------------------------------------

class ColourSegmenter(nn.Module):
    """Fixed weights: class 0 ("red") where R > B, class 1 ("blue") where B > R, else background."""

    def __init__(self) -> None:
        super().__init__()
        self.feat = nn.Conv2d(3, 2, 1)
        self.act = nn.ReLU()
        self.cls = nn.Conv2d(2, 3, 1)
        with torch.no_grad():
            self.feat.weight.copy_(torch.tensor([[1.0, 0, -1], [-1, 0, 1]])[:, :, None, None])
            self.feat.bias.fill_(-0.5)
            self.cls.weight.copy_(torch.tensor([[0.0, 0], [4, 0], [0, 4]])[:, :, None, None])
            self.cls.bias.copy_(torch.tensor([0.5, 0, 0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cls(self.act(self.feat(x)))


@pytest.mark.parametrize("target, region", [(None, (20, 30, 60, 70)), ("blue", (150, 40, 175, 65))])
def test_segment_gradcam_lights_the_class_pixels_through_the_letterbox(target: str | None,
                                                                       region: tuple[int, int, int, int]) -> None:
    image = np.repeat(np.random.default_rng(3).integers(60, 190, (100, 200, 1), dtype=np.uint8), 3, axis=2)
    image[30:70, 20:60] = [230, 30, 30]     # big red square
    image[40:65, 150:175] = [30, 30, 230]   # smaller blue square
    model = ExplainableModel(ColourSegmenter().eval(), task="segment", classes=["red", "blue"],
                             preprocess={**PRE, "size": [64, 64], "resize": "letterbox"}, name="colours")
    e = explain(model, image, target=target)
    assert e.label == (target or "red")  # default: the class covering most pixels
    assert e.layers == ("act",)
    assert mass_inside(e.heatmap, region, grow=3) > 0.8
    assert e.data["coverage"] == pytest.approx(40 * 40 / (100 * 200) if target is None else 25 * 25 / (100 * 200),
                                               rel=0.25)
    assert e.score > 0.8


# --- detector: EigenCAM (no gradients through NMS) + the explained box ----------------------

class BrightDetector(nn.Module):
    """Dense detector on bright blobs: one 12 x 12 box per stride-4 cell scored by the mean
    brightness inside it (the contract's ``(boxes [N, L, 4], scores [N, L, 1])``)."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(12, stride=4, padding=4, count_include_pad=True)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.act(self.pool(x))                         # [N, 3, h, w]
        n, _, h, w = f.shape
        scores = torch.sigmoid(12 * (f.mean(1) - 0.7)).reshape(n, h * w, 1)
        ys, xs = torch.meshgrid(torch.arange(h) * 4.0 - 4, torch.arange(w) * 4.0 - 4, indexing="ij")
        boxes = torch.stack([xs, ys, xs + 12, ys + 12], -1).reshape(1, h * w, 4).expand(n, -1, -1)
        return boxes, scores


@pytest.mark.parametrize("method", ["auto", "gradcam"])
def test_detector_explains_its_best_box_in_image_coordinates(method: str) -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    image[25:75, 75:125] = 255  # a 50 x 50 square; letterboxed into 64 x 64 it is 16 x 16
    model = ExplainableModel(BrightDetector().eval(), task="detect", classes=["blob"],
                             preprocess={**PRE, "size": [64, 64], "resize": "letterbox"},
                             postprocess={"analyze_score_threshold": 0.5, "iou_threshold": 0.3}, name="blobs")
    e = explain(model, image, method=method)
    assert e.method == ("eigencam" if method == "auto" else "gradcam") and e.label == "blob"
    assert e.box is not None and len(e.detections) >= 1
    x0, y0, x1, y1 = e.box
    assert 74 <= x0 < x1 <= 126 and 24 <= y0 < y1 <= 76  # the explained box lies on the square
    assert mass_inside(e.heatmap, (75, 25, 125, 75), grow=8) > 0.8
    assert json.loads(json.dumps(e.to_dict()))["detections"][0]["label"] == "blob"


def test_detector_box_only_keeps_heat_inside_the_boxes() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    image[25:75, 75:125] = 255
    image[:, :10] = 200  # a bright edge the detector does not report
    model = ExplainableModel(BrightDetector().eval(), task="detect", classes=["blob"],
                             preprocess={**PRE, "size": [64, 64], "resize": "letterbox"}, name="blobs")
    e = explain(model, image, box_only=True, score_threshold=0.5)
    inside = np.zeros(e.heatmap.shape, bool)
    for b in [*e.detections.boxes, e.box]:
        y0, y1, x0, x1 = int(b[1]), int(np.ceil(b[3])), int(b[0]), int(np.ceil(b[2]))
        inside[y0:y1, x0:x1] = True
        assert e.heatmap[y0:y1, x0:x1].max() == pytest.approx(1.0)  # rescaled within each box
    assert e.heatmap[~inside].max() == 0


def test_detector_on_the_effnet_backbone_uses_its_deep_stages() -> None:
    """The real detectors' trunk: EigenCAM over the stride-16/32 ImageNet features finds the cat."""
    from skimage import data

    from pixsight.train.backbone import EffNetLite0Backbone

    class Det(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.backbone = EffNetLite0Backbone(pretrained=True)
            self.head = nn.Conv2d(320, 1, 1)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            f = self.backbone(x)[-1]
            n, _, h, w = f.shape
            ys, xs = torch.meshgrid(torch.arange(h) * 32.0, torch.arange(w) * 32.0, indexing="ij")
            boxes = torch.stack([xs, ys, xs + 32, ys + 32], -1).reshape(1, h * w, 4).expand(n, -1, -1)
            return boxes, torch.sigmoid(self.head(f)).flatten(2).transpose(1, 2)

    cat = small(data.chelsea(), 200)
    canvas = np.random.default_rng(4).integers(0, 256, (300, 500, 3), dtype=np.uint8)
    canvas[60:60 + cat.shape[0], 250:450] = cat
    model = ExplainableModel(Det().eval(), task="detect", classes=["thing"],
                             preprocess={**PRE, "size": [256, 256], "resize": "letterbox"}, name="det")
    e = explain(model, canvas)
    assert e.layers == ("backbone.net._blocks.10", "backbone.net._blocks.15")
    assert mass_inside(e.heatmap, (250, 60, 450, 60 + cat.shape[0])) > 0.5  # the cat is 18 % of the image


# --- run folders, errors, files -------------------------------------------------------------

def test_explains_a_run_folder(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from pixsight.models.runs import RUN_FORMAT
    from pixsight.train.tasks import get_task

    task = get_task("classify")
    arch = task.arch({})
    model = task.build_model(arch, 2, pretrained=False)
    (tmp_path / "weights").mkdir()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp_path / "weights" / "best.safetensors"))
    meta = {"format": RUN_FORMAT, "name": "shapes", "task": "classify", "classes": ["circle", "square"], "arch": arch,
            "preprocess": {**PRE, "size": [96, 96], "resize": "stretch"}, "postprocess": None}
    (tmp_path / "model.json").write_text(json.dumps(meta))
    e = explain(tmp_path, np.random.default_rng(5).integers(0, 256, (70, 120, 3), dtype=np.uint8), target="square")
    assert (e.model, e.label, e.heatmap.shape) == ("shapes", "square", (70, 120))
    assert e.layers == ("backbone.net._bn1",)  # the classifier's last conv block


def test_clear_errors_for_user_mistakes(imagenet: ExplainableModel, tmp_path: Path) -> None:
    img = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(UnknownModelError, match="did you mean efficientnet-lite0"):
        explain("efficientnet-lite", img)
    with pytest.raises(UnknownModelError, match="not a run folder"):
        explain(tmp_path, img)
    with pytest.raises(ConfigError, match="did you mean 'tabby'"):
        explain(imagenet, img, target="tabbby")
    with pytest.raises(ConfigError, match="method"):
        explain(imagenet, img, method="lime")
    with pytest.raises(ConfigError, match="RGB uint8"):
        explain(imagenet, img.astype(np.float32))
    with pytest.raises(ConfigError, match="no layer"):
        explain(imagenet, img, layers=["_blocks.99"])


def test_saved_overlay_is_a_metadata_free_png_inside_the_folder(imagenet: ExplainableModel, tmp_path: Path) -> None:
    from skimage import data

    e = explain(imagenet, data.coffee())
    out = save_explanation(e, tmp_path / "out", source="../../secret/IMG 1.jpg")
    assert out.parent == (tmp_path / "out").resolve() and out.name.startswith("IMG_1-") and out.suffix == ".png"
    with Image.open(out) as png:
        assert png.format == "PNG" and png.size == (600, 400) and not png.info
        assert np.array_equal(np.asarray(png.convert("RGB")), e.overlay)
    with pytest.raises(ConfigError):
        save_explanation(e, tmp_path, name="../x.png")


@pytest.mark.parametrize("task, method, layers", [
    ("detect", "auto", ("fpn.layer_blocks.0", "fpn.layer_blocks.1", "fpn.layer_blocks.2")),
    ("detect", "gradcam", ("fpn.layer_blocks.0", "fpn.layer_blocks.1", "fpn.layer_blocks.2")),
    ("segment", "auto", ("backbone.net._blocks.15",)),
])
def test_the_trained_architectures_get_their_documented_layers(task: str, method: str,
                                                               layers: tuple[str, ...]) -> None:
    """pixsight's own detector (FPN + FCOS head) and segmenter, untrained, through the whole path."""
    from pixsight.train.tasks import get_task

    torch.manual_seed(0)
    t = get_task(task)
    net = t.build_model(t.arch({}), 2, pretrained=False).eval()
    model = ExplainableModel(net, task=task, classes=["a", "b"], preprocess=t.default_preprocess(128),
                             postprocess=t.default_postprocess(), name=task)
    e = explain(model, np.random.default_rng(6).integers(0, 256, (90, 150, 3), dtype=np.uint8), method=method)
    assert e.layers == layers and e.heatmap.shape == (90, 150) and e.label in ("a", "b")
    assert (e.box is not None) == (task == "detect")
