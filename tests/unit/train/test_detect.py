"""The object detector: dense outputs, ONNX == torch, the loss learns, empty images,
degenerate boxes, and a short real training run that finds the shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pixsight.core.boxes import postprocess_dense
from pixsight.core.errors import ConfigError
from pixsight.data.dataset import Annotation, Dataset, ImageRecord
from pixsight.train.detector import DetectNet, assign_targets, fcos_loss
from pixsight.train.tasks import get_task
from pixsight.train.tasks.detect import TASK

SIZE = 128
PRE = TASK.default_preprocess(SIZE)


def _model(num_classes: int = 2, **params) -> DetectNet:
    torch.manual_seed(0)
    return TASK.build_model(TASK.arch(params), num_classes, pretrained=False)


@pytest.fixture(scope="module")
def tiny_detect(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 synthetic 128 px images with 2 shape classes (48 train / 12 val)."""
    from pixsight.data.synth import synth_dataset

    out = tmp_path_factory.mktemp("synth") / "detect"
    synth_dataset(out, task="detect", n=60, image_size=(SIZE, SIZE), seed=7, classes=("circle", "square"))
    return out


def test_task_is_registered_with_contract_defaults() -> None:
    assert get_task("detect") is TASK
    assert TASK.default_postprocess() == {"score_threshold": 0.05, "iou_threshold": 0.6, "max_detections": 100,
                                          "analyze_score_threshold": 0.3}
    pre = TASK.default_preprocess(None)
    assert pre["resize"] == "letterbox" and pre["size"] == [256, 256] and pre["mean"] == [127.0] * 3
    assert TASK.arch({})["name"] == "effnet-lite0-fcos"


@pytest.mark.parametrize("bad", [{"chanels": 64}, {"levels": 5}, {"channels": "wide"}, {"center_radius": 0}])
def test_bad_arch_is_a_clear_error(bad: dict) -> None:
    with pytest.raises(ConfigError, match="arch|levels"):
        TASK.build_model(TASK.arch(bad), 2, pretrained=False)


def test_size_must_be_a_multiple_of_32() -> None:
    with pytest.raises(ConfigError, match="multiple of 32"):
        TASK.default_preprocess(250)


@pytest.mark.parametrize("params,locations", [({}, 16 * 16 + 8 * 8 + 4 * 4),
                                              ({"levels": 4, "channels": 32, "head_convs": 1}, 336 + 2 * 2)])
def test_dense_outputs_have_contract_shapes_and_ranges(params: dict, locations: int) -> None:
    model = _model(3, **params).eval()
    with torch.no_grad():
        boxes, scores = model(torch.randn(2, 3, SIZE, SIZE))
    assert boxes.shape == (2, locations, 4) and scores.shape == (2, locations, 3)
    assert torch.isfinite(boxes).all() and torch.isfinite(scores).all()
    assert boxes.min() >= 0 and boxes.max() <= SIZE
    assert (boxes[..., 2] >= boxes[..., 0]).all() and (boxes[..., 3] >= boxes[..., 1]).all()
    assert scores.min() >= 0 and scores.max() <= 1
    # untrained: the focal-loss prior keeps every score low
    assert float(scores.max()) < 0.2


def test_onnx_export_matches_torch(tmp_path: Path) -> None:
    from pixsight.models.runtime import create_session
    from pixsight.train.export import export_module

    model = _model(2, levels=4).eval()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(96, 128, 3), dtype=np.uint8) for _ in range(3)]
    info = export_module(model, tmp_path / "det.onnx", preprocess=PRE, output_names=TASK.output_names,
                         sample_images=images)
    assert info["max_abs_diff"] < 1e-4
    session = create_session(tmp_path / "det.onnx")
    x = torch.randn(3, 3, SIZE, SIZE)
    boxes, scores = session.run(["boxes", "scores"], {"images": x.numpy()})
    with torch.no_grad():
        ref_boxes, ref_scores = model(x)
    np.testing.assert_allclose(boxes, ref_boxes.numpy(), atol=1e-3)
    np.testing.assert_allclose(scores, ref_scores.numpy(), atol=1e-5)


def test_assignment_prefers_the_smaller_box_and_respects_scale_ranges() -> None:
    model = _model(2)
    points, strides = _grid(model)
    lo, hi = model.scale_ranges(strides)
    big = torch.tensor([[0.0, 0.0, 128.0, 128.0]])
    small = torch.tensor([[56.0, 56.0, 72.0, 72.0]])
    labels, _ = assign_targets(points, strides, lo, hi, torch.cat([big, small]), torch.tensor([0, 1]),
                               center_radius=1.5)
    pos_strides = {int(s) for s in strides[labels == 1]}
    assert pos_strides == {8}  # a 16 px box lives on the stride-8 level
    assert set(strides[labels == 0].int().tolist()) == {32}  # a 128 px box on the coarsest level
    assert (labels == 1).sum() >= 4 and (labels >= 0).sum() < len(labels) / 10


def _grid(model: DetectNet) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        out = model.dense(torch.zeros(1, 3, SIZE, SIZE))
    return out.points, out.strides


def _scene_batch(n: int = 4, seed: int = 0) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Normalised images with one or two bright squares/discs each and their targets."""
    g = torch.Generator().manual_seed(seed)
    images = torch.full((n, 3, SIZE, SIZE), -0.5)
    targets = []
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    for i in range(n):
        boxes, labels = [], []
        for k in range(1 + i % 2):
            s = int(torch.randint(20, 44, (1,), generator=g))
            x0, y0 = (int(v) for v in torch.randint(0, SIZE - s, (2,), generator=g))
            cls = (i + k) % 2
            if cls == 0:
                images[i, :, y0:y0 + s, x0:x0 + s] = 0.8
            else:
                r = s / 2
                disc = (xx - x0 - r) ** 2 + (yy - y0 - r) ** 2 <= r * r
                images[i, :, disc] = 0.8
            boxes.append([x0, y0, x0 + s, y0 + s])
            labels.append(cls)
        targets.append({"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels)})
    return images, targets


def test_loss_goes_down_in_a_few_steps() -> None:
    model = _model(2, channels=32)
    model.backbone.freeze(False)
    model.train()
    images, targets = _scene_batch()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    losses = []
    for _ in range(8):
        loss, parts = TASK.loss(model, images, targets, {})
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        assert set(parts) == {"cls", "box", "ctr", "pos"} and parts["pos"] > 0
    assert losses[-1] < 0.7 * losses[0], losses


def test_empty_images_and_degenerate_boxes_give_finite_loss_and_gradients() -> None:
    model = _model(2, channels=32)
    model.train()
    images = torch.randn(3, 3, SIZE, SIZE)
    targets = [
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},              # empty
        {"boxes": torch.tensor([[10.0, 10.0, 10.0, 50.0], [30.0, 30.0, 30.5, 30.5]]),         # zero width,
         "labels": torch.tensor([0, 1])},                                                      # sub-pixel
        {"boxes": torch.tensor([[0.0, 0.0, 128.0, 128.0]]), "labels": torch.tensor([1])},
    ]
    loss, parts = TASK.loss(model, images, targets, {"class_weights": [1.0, 2.0]})
    loss.backward()
    assert torch.isfinite(loss)
    assert all(np.isfinite(v) for v in parts.values())
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    # a batch with no objects at all
    model.zero_grad()
    empty = [targets[0]] * 3
    loss, parts = TASK.loss(model, images, empty, {})
    loss.backward()
    assert torch.isfinite(loss) and parts["box"] == 0.0 and parts["pos"] == 1 / 3


def test_empty_dataset_images_train_and_validate(tmp_path: Path) -> None:
    from PIL import Image

    from pixsight.train.api import train

    rng = np.random.default_rng(0)
    records = []
    for i in range(6):
        name = f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / name)
        anns = [Annotation(0, [8, 8, 40, 40])] if i == 5 else []
        records.append(ImageRecord(name, 64, 64, annotations=anns))
    ds = Dataset(root=str(tmp_path), classes=["thing"], images=records, task="detect")
    val = Dataset(root=str(tmp_path), classes=["thing"], images=records[3:], task="detect")
    run = train("detect", ds, val=val, out=tmp_path / "run", epochs=1, size=64, batch_size=3,
                arch={"channels": 16, "head_convs": 1}, pretrained=False)
    assert run.meta["task"] == "detect"
    assert "map_50" in run.meta["metrics"]


@pytest.mark.slow
def test_short_training_run_finds_the_shapes(tiny_detect: Path, tmp_path: Path) -> None:
    from pixsight.data.formats import read_dataset
    from pixsight.train.api import train
    from pixsight.train.data import load_record_image
    from pixsight.train.transforms import preprocess_array

    run = train("detect", tiny_detect / "train.json", val=tiny_detect / "val.json", out=tmp_path / "run",
                epochs=12, size=SIZE, batch_size=8, lr=3e-3, seed=0)
    metrics = run.meta["metrics"]
    assert metrics["map_50"] >= 0.7, metrics  # 0.92 measured (seeded)
    # the saved best weights decode, through the shared post-processing, to the ground truth
    val = read_dataset(tiny_detect / "val.json")
    model = run.build_model("best")
    rec = max(val.images, key=lambda r: len(r.annotations))
    x, lb = preprocess_array(load_record_image(val, rec)[0], run.preprocess)
    with torch.no_grad():
        boxes, scores = model(x[None])
    b, s, c = postprocess_dense(boxes[0].numpy(), scores[0].numpy(), score_threshold=0.3)
    b = lb.to_image(b, rec.width, rec.height)
    from pixsight.core.boxes import box_iou

    gt = np.array([a.box for a in rec.annotations])
    assert len(b) and box_iou(gt, b).max(axis=1).mean() > 0.5
