"""The semantic segmenter: shapes, ONNX == torch, the loss learns, empty images, a real short run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pixsight.core.boxes import letterbox_geometry
from pixsight.core.errors import ConfigError
from pixsight.data.dataset import Annotation, Dataset, ImageRecord
from pixsight.train.tasks import get_task
from pixsight.train.tasks.segment import IGNORE_INDEX, TASK, logits_to_class_map, segmentation_loss

PRE = TASK.default_preprocess(64)


@pytest.fixture(scope="module")
def tiny_segment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 synthetic 64 px images with 2 shape classes (13 train / 3 val)."""
    from pixsight.data.synth import synth_dataset

    out = tmp_path_factory.mktemp("synth") / "segment"
    synth_dataset(out, task="segment", n=16, image_size=(64, 64), seed=5, classes=("circle", "square"))
    return out


def _model(num_classes: int = 2, **params) -> torch.nn.Module:
    torch.manual_seed(0)
    return TASK.build_model(TASK.arch(params), num_classes, pretrained=False)


def test_task_is_registered() -> None:
    assert get_task("segment") is TASK
    assert TASK.default_postprocess() is None
    assert TASK.default_preprocess(None)["resize"] == "letterbox"


@pytest.mark.parametrize("params", [{}, {"detail": True}, {"head": "aspp", "channels": 32}])
def test_logits_have_input_resolution(params: dict) -> None:
    model = _model(3, **params).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 96, 64))
    assert out.shape == (2, 4, 96, 64) and torch.isfinite(out).all()


def test_unknown_arch_key_and_head_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="unknown segment arch key"):
        TASK.arch({"heads": "lraspp"})
    with pytest.raises(ConfigError, match="unknown segmentation head"):
        TASK.build_model(TASK.arch({"head": "unet"}), 2, pretrained=False)


def test_fixed_blocks_stay_frozen_after_unfreezing() -> None:
    model = TASK.build_model(TASK.arch({"fixed_blocks": 3}), 2, pretrained=True)
    model.backbone.freeze(False)
    model.train()
    net = model.backbone.net
    assert not any(p.requires_grad for p in net._conv_stem.parameters())
    assert not any(p.requires_grad for b in net._blocks[:3] for p in b.parameters())
    assert all(p.requires_grad for b in net._blocks[3:] for p in b.parameters())
    assert not net._blocks[0]._bn1.training and net._blocks[3]._bn1.training


def test_onnx_export_equals_torch(tmp_path: Path) -> None:
    import onnxruntime as ort

    from pixsight.train.export import export_module

    model = _model(2)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (64, 80, 3), dtype=np.uint8) for _ in range(3)]
    info = export_module(model, tmp_path / "m.onnx", preprocess=PRE, output_names=TASK.output_names,
                         sample_images=images)
    assert info["max_abs_diff"] < 1e-3
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = np.stack([np.random.default_rng(1).normal(size=(3, 64, 64)).astype(np.float32)] * 2)
    (got,) = sess.run(["logits"], {"images": x})
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(x)).numpy()
    assert got.shape == (2, 3, 64, 64)
    np.testing.assert_allclose(got, ref, atol=1e-3)


def _square_batch(n: int = 4, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Bright squares (class 1) on dark noise; target maps to match."""
    g = torch.Generator().manual_seed(0)
    images = torch.rand(n, 3, size, size, generator=g) * 0.4 - 1.0
    targets = torch.zeros(n, size, size, dtype=torch.long)
    for i in range(n):
        y, x = (int(v) for v in torch.randint(0, size - 24, (2,), generator=g))
        images[i, :, y:y + 24, x:x + 24] = 0.8
        targets[i, y:y + 24, x:x + 24] = 1
    return images, targets


@pytest.mark.parametrize("dice", [0.0, 0.5])
def test_loss_decreases_over_a_few_steps(dice: float) -> None:
    model = _model(1, dice_weight=dice, detail=True).train()
    images, targets = _square_batch()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss, parts = TASK.loss(model, images, targets, {"class_weights": None})
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert ("dice" in parts) == (dice > 0)
    assert losses[-1] < 0.6 * losses[0]


def test_class_weights_and_ignored_pixels() -> None:
    logits = torch.randn(2, 3, 8, 8)
    targets = torch.randint(0, 3, (2, 8, 8))
    base, _ = segmentation_loss(logits, targets)
    masked = targets.clone()
    masked[:, :4] = IGNORE_INDEX
    assert not torch.isclose(segmentation_loss(logits, masked)[0], base)
    model = _model(2).train()
    images, maps = _square_batch(2)
    loss, _ = TASK.loss(model, images, maps, {"class_weights": [1.0, 3.0]})  # one per class: background gets 1
    assert torch.isfinite(loss)
    with pytest.raises(ConfigError, match="class_weights"):
        TASK.loss(model, images, maps, {"class_weights": [1.0]})


def test_all_background_batch_trains_and_validates(tmp_path: Path) -> None:
    """Images without any object are valid training data: a few steps on them teach the
    segmenter to call every pixel background (an untrained head calls most of them 'thing'),
    and validation scores the absent class as not applicable rather than as IoU 0."""
    from PIL import Image

    Image.fromarray(np.full((40, 56, 3), 90, np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.full((40, 56, 3), 200, np.uint8)).save(tmp_path / "b.png")
    ds = Dataset(tmp_path, ["thing"], [ImageRecord("a.png", 56, 40), ImageRecord("b.png", 56, 40)], task="segment")
    model = _model(1, dice_weight=0.5)
    tds = TASK.torch_dataset(ds, PRE, "default", train=True)
    images, maps = TASK.collate([tds[0], tds[1]])
    assert images.shape == (2, 3, 64, 64) and maps.shape == (2, 64, 64) and int(maps.max()) == 0
    before = TASK.validate(model, ds, PRE, None, batch_size=2)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(6):
        loss, _ = TASK.loss(model, images, maps, {})
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = TASK.validate(model, ds, PRE, None, batch_size=2)
    assert after["val_loss"] < before["val_loss"]
    assert before["pixel_accuracy"] < 0.5 and after["pixel_accuracy"] == pytest.approx(1.0)
    assert after["per_class_iou"] == {"background": pytest.approx(1.0), "thing": None}
    assert after["miou"] == pytest.approx(1.0)


def test_class_map_is_cropped_out_of_the_letterbox() -> None:
    lb = letterbox_geometry(100, 50, (64, 64))  # content rows 16..47
    logits = np.zeros((2, 64, 64), np.float32)
    logits[1, 16:32, :] = 5  # top half of the content = class 1
    cls = logits_to_class_map(logits, lb, 100, 50)
    assert cls.shape == (50, 100)
    assert (cls[:25] == 1).all() and (cls[25:] == 0).all()


def test_validation_scores_a_perfect_map_as_one(tiny_segment: Path) -> None:
    from pixsight.data.formats import read_dataset

    ds = read_dataset(tiny_segment / "val.json")

    class Oracle(torch.nn.Module):
        """Returns the ground truth as logits (the validation pipeline must not lose it)."""

        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.maps = [torch.from_numpy(TASK.torch_dataset(ds, PRE, None, train=False)[i][1]["masks"].numpy())
                         for i in range(len(ds.images))]
            self.i = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = torch.stack([torch.nn.functional.one_hot(self.maps[self.i + j].long(), 3).permute(2, 0, 1).float()
                               for j in range(len(x))])
            self.i += len(x)
            return out * 10

    m = TASK.validate(Oracle(), ds, PRE, None, batch_size=2)
    assert m["miou"] == pytest.approx(1.0) and m["pixel_accuracy"] == pytest.approx(1.0)


@pytest.mark.slow
def test_short_training_run_learns_to_segment(tmp_path: Path) -> None:
    from pixsight.data.synth import synth_dataset
    from pixsight.train import train

    data = Path(synth_dataset(tmp_path / "data", task="segment", n=48, image_size=(128, 128), seed=2,
                              classes=("circle", "square"))["out_dir"])
    run = train("segment", data / "train.json", val=data / "val.json", out=tmp_path / "run", epochs=15, size=128,
                batch_size=8, seed=0)
    # background + 2 classes on 38 training images: ~0.32 after the frozen first epoch, best ~0.62 (measured)
    assert run.metrics["miou"] >= 0.5
    assert run.meta["arch"]["name"] == "effnet-lite0-lraspp"
    assert (run.path / "model.onnx").is_file() and run.meta["onnx"]["max_abs_diff"] < 1e-3
