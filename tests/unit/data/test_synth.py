"""Synthetic shapes datasets: layout, exact boxes and masks, determinism, balance."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest

from pixsight.core.errors import ConfigError
from pixsight.data.synth import SHAPES, render_scene, synth_dataset

pycocotools = pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402

CLASSES = ("circle", "square", "triangle")


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "synth.json"  # synth.json records out_dir
    }


@pytest.fixture(scope="module")
def detect_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "detect"
    synth_dataset(out, task="detect", n=30, seed=7)
    return out


@pytest.mark.parametrize("task", ["classify", "detect", "segment"])
def test_same_seed_same_bytes_and_other_seed_differs(tmp_path: Path, task: str) -> None:
    a = synth_dataset(tmp_path / "a", task=task, n=12, seed=3, image_size=(96, 128))
    b = synth_dataset(tmp_path / "b", task=task, n=12, seed=3, image_size=(96, 128))
    synth_dataset(tmp_path / "c", task=task, n=12, seed=4, image_size=(96, 128))
    da, db, dc = (_tree_digest(tmp_path / x) for x in "abc")
    assert da == db
    assert da != dc
    assert a["splits"]["train"]["instances"] == b["splits"]["train"]["instances"]


def test_coco_layout_loads_in_pycocotools_with_relative_files(detect_dir: Path) -> None:
    assert sorted(p.name for p in detect_dir.iterdir()) == ["images", "synth.json", "train.json", "val.json"]
    for split, n_images in (("train", 24), ("val", 6)):
        coco = COCO(str(detect_dir / f"{split}.json"))
        assert len(coco.getImgIds()) == n_images
        assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(CLASSES)
        for img in coco.loadImgs(coco.getImgIds()):
            assert img["file_name"].startswith(f"images/{split}/")
            assert (detect_dir / img["file_name"]).is_file()
        assert all(a["iscrowd"] == 0 for a in coco.loadAnns(coco.getAnnIds()))
    assert not list(detect_dir.parent.glob(".*tmp"))  # the staging folder is gone


def test_boxes_are_tight_around_the_polygon_masks_inside_the_image(detect_dir: Path) -> None:
    coco = COCO(str(detect_dir / "train.json"))
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) > 20
    for ann in anns:
        img = coco.loadImgs(ann["image_id"])[0]
        mask = coco.annToMask(ann).astype(bool)
        assert mask.shape == (img["height"], img["width"])  # masks inside the image
        x, y, w, h = ann["bbox"]
        assert x >= 0 and y >= 0 and x + w <= img["width"] and y + h <= img["height"] and w > 0 and h > 0
        ys, xs = np.nonzero(mask)
        assert [x, y, w, h] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
        assert mask.sum() == ann["area"]  # the polygons rasterize back to the exact visible pixels


def test_render_scene_masks_are_exact_visible_pixels_and_boxes_tight() -> None:
    image, objects = render_scene(["circle", "square", "triangle", "star"], seed=5, image_size=(120, 150))
    assert image.shape == (120, 150, 3) and image.dtype == np.uint8
    assert objects
    union = np.zeros((120, 150), int)
    for obj in objects:
        ys, xs = np.nonzero(obj.mask)
        assert obj.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        union += obj.mask
    assert union.max() == 1  # visible masks never overlap


def test_detect_classes_are_roughly_balanced(tmp_path: Path) -> None:
    s = synth_dataset(tmp_path / "d", task="detect", n=60, seed=1, image_size=(96, 96))
    counts = s["splits"]["train"]["instances"]
    total = sum(counts.values())
    assert total > 60
    assert all(c > total / len(CLASSES) * 0.6 for c in counts.values()), counts


def test_classify_folders_hold_every_class_in_both_splits(tmp_path: Path) -> None:
    out = tmp_path / "cls"
    s = synth_dataset(out, task="classify", n=30, seed=0, image_size=(64, 64))
    for split in ("train", "val"):
        folders = sorted(p.name for p in (out / split).iterdir())
        assert folders == sorted(CLASSES)
        counts = {c: len(list((out / split / c).glob("*.jpg"))) for c in CLASSES}
        assert counts == s["splits"][split]["instances"]
        assert min(counts.values()) >= 1 and max(counts.values()) - min(counts.values()) <= 1
    assert json.loads((out / "synth.json").read_text())["task"] == "classify"


def test_segment_writes_polygons_and_reports_progress(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    synth_dataset(tmp_path / "seg", task="segment", n=5, seed=2, image_size=(64, 80), progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (5, 5) and len(seen) == 5
    data = json.loads((tmp_path / "seg" / "train.json").read_text())
    assert all(isinstance(a["segmentation"], list) and a["segmentation"] for a in data["annotations"])


def test_thirty_images_take_well_under_a_few_seconds(tmp_path: Path) -> None:
    start = time.perf_counter()
    synth_dataset(tmp_path / "fast", task="detect", n=30, seed=0)
    assert time.perf_counter() - start < 5.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"task": "track"},
        {"task": "detect", "n": 0},
        {"task": "detect", "classes": ("circle", "blob")},
        {"task": "detect", "classes": ("circle", "circle")},
        {"task": "detect", "val_fraction": 1.0},
        {"task": "detect", "image_size": (8, 8)},
    ],
)
def test_bad_arguments_raise_config_error(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        synth_dataset(tmp_path / "x", **{"n": 2, **kwargs})
    assert not (tmp_path / "x").exists()


def test_refuses_a_non_empty_folder_and_leaves_it_untouched(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not an empty folder"):
        synth_dataset(tmp_path, task="detect", n=2)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_every_shape_class_can_be_drawn() -> None:
    for label in SHAPES:
        _, objects = render_scene([label], seed=0, image_size=(64, 64), dominant=True)
        assert [o.label for o in objects] == [label]
