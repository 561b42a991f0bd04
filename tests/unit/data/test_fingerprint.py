"""dataset_fingerprint: stable across formats and order, sensitive to labels, blind to pixels."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixsight.data.dataset import Annotation, Dataset, ImageRecord
from pixsight.data.formats import read_dataset, write_dataset
from pixsight.data.ops import dataset_fingerprint


def _dataset(root: Path, *, seed: int = 0, polygons: bool = False) -> Dataset:
    """A small detect/segment dataset with real image files, awkward coordinates included."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    recs = []
    for i in range(4):
        w, h = int(rng.integers(40, 90)), int(rng.integers(40, 90))
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / f"img{i}.png")
        anns = []
        for j in range(i % 3 + 1):
            x1, y1 = float(rng.uniform(0, w / 2)), float(rng.uniform(0, h / 2))
            x2, y2 = x1 + float(rng.uniform(2, w / 2)), y1 + float(rng.uniform(2, h / 2))
            if j == 0:  # exact binary fractions that a naive decimal rounding would flip
                x1, y1 = 10.125, 3.375
            if polygons:
                poly = [[x1, y1], [x2, y1], [x2, y2], [x1, y2]]
                anns.append(Annotation(int(rng.integers(0, 2)), [x1, y1, x2, y2], polygons=[poly]))
            else:
                anns.append(Annotation(int(rng.integers(0, 2)), [x1, y1, x2, y2]))
        recs.append(ImageRecord(f"img{i}.png", w, h, anns, attributes={"split": "train" if i < 3 else "val"}))
    return Dataset(root, ["cat", "dog"], recs, task="segment" if polygons else "detect")


@pytest.mark.parametrize("polygons", [False, True])
@pytest.mark.parametrize("via", ["yolo", "coco", "labelstudio", "cvat"])
def test_same_labels_in_another_format_give_the_same_fingerprint(tmp_path: Path, via: str, polygons: bool) -> None:
    ds = _dataset(tmp_path / "src", polygons=polygons)
    coco = read_dataset(write_dataset(ds, tmp_path / "coco", "coco"))
    other = read_dataset(write_dataset(coco, tmp_path / via, via))
    back = read_dataset(write_dataset(other, tmp_path / "back", "coco"))
    fp = dataset_fingerprint(ds)
    assert dataset_fingerprint(coco) == fp
    assert dataset_fingerprint(other) == fp
    assert dataset_fingerprint(back) == fp


def test_voc_round_trip_keeps_the_fingerprint(tmp_path: Path) -> None:
    ds = _dataset(tmp_path / "src")
    voc = read_dataset(write_dataset(ds, tmp_path / "voc", "voc"))
    assert dataset_fingerprint(voc) == dataset_fingerprint(ds)


def test_image_and_annotation_order_do_not_matter(tmp_path: Path) -> None:
    ds = _dataset(tmp_path / "src")
    shuffled = [dataclasses.replace(r, annotations=r.annotations[::-1]) for r in ds.images[::-1]]
    assert dataset_fingerprint(Dataset(ds.root, ds.classes, shuffled, ds.task)) == dataset_fingerprint(ds)


def _edit(ds: Dataset, change: str) -> Dataset:
    recs = [dataclasses.replace(r, annotations=list(r.annotations), attributes=dict(r.attributes)) for r in ds.images]
    classes = list(ds.classes)
    r = recs[1]
    a = r.annotations[0]
    if change == "box moved 0.05 px":
        r.annotations[0] = dataclasses.replace(a, box=a.box + [0.05, 0, 0.05, 0])
    elif change == "class changed":
        r.annotations[0] = dataclasses.replace(a, class_id=1 - a.class_id)
    elif change == "annotation dropped":
        r.annotations.pop()
    elif change == "class renamed":
        classes[0] = "kitten"
    elif change == "classes reordered":
        classes = classes[::-1]
    elif change == "image size":
        recs[1] = dataclasses.replace(r, width=r.width + 1)
    elif change == "file renamed":
        recs[1] = dataclasses.replace(r, file_name="other.png")
    elif change == "split changed":
        r.attributes["split"] = "test"
    elif change == "crowd":
        r.annotations[0] = dataclasses.replace(a, iscrowd=True)
    return Dataset(ds.root, classes, recs, ds.task)


@pytest.mark.parametrize("change", ["box moved 0.05 px", "class changed", "annotation dropped", "class renamed",
                                    "classes reordered", "image size", "file renamed", "split changed", "crowd"])
def test_every_label_change_changes_the_fingerprint(tmp_path: Path, change: str) -> None:
    ds = _dataset(tmp_path / "src")
    assert dataset_fingerprint(_edit(ds, change)) != dataset_fingerprint(ds)


def test_pixels_and_root_are_not_covered(tmp_path: Path) -> None:
    ds = _dataset(tmp_path / "a")
    before = dataset_fingerprint(read_dataset(write_dataset(ds, tmp_path / "coco", "coco")))
    img = tmp_path / "coco" / "img0.png"
    Image.new("RGB", Image.open(img).size, "white").save(img)  # same size, other pixels
    assert dataset_fingerprint(read_dataset(tmp_path / "coco")) == before


def test_classification_labels_are_covered(tmp_path: Path) -> None:
    recs = [ImageRecord(f"{i}.png", 8, 8, label=i % 2) for i in range(4)]
    a = Dataset(tmp_path, ["a", "b"], recs, task="classify")
    b = Dataset(tmp_path, ["a", "b"], [dataclasses.replace(recs[0], label=1), *recs[1:]], task="classify")
    assert dataset_fingerprint(a) != dataset_fingerprint(b)
