"""split_dataset and dataset_stats on small hand-built datasets."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixsight.data.dataset import Annotation, Dataset, ImageRecord
from pixsight.data.ops import EMPTY_STRATUM, dataset_stats, image_stratum, split_dataset


def _classify(n_per_class: dict[int, int]) -> Dataset:
    recs = [ImageRecord(f"{c}_{i}.png", 16, 16, label=c) for c, n in n_per_class.items() for i in range(n)]
    return Dataset(".", ["a", "b", "c"], recs, task="classify")


def test_split_follows_ratios_per_class_and_leaves_input_alone() -> None:
    ds = _classify({0: 50, 1: 30, 2: 20})
    out = split_dataset(ds, ratios=(0.8, 0.1, 0.1), seed=3, near_duplicates=False)
    assert all("split" not in r.attributes for r in ds.images)
    per = Counter((r.label, r.attributes["split"]) for r in out.images)
    for label, n in ((0, 50), (1, 30), (2, 20)):
        assert per[label, "train"] == round(0.8 * n)
        assert per[label, "val"] + per[label, "test"] == n - round(0.8 * n)
        assert per[label, "val"] >= 1 and per[label, "test"] >= 1


def test_split_is_deterministic_per_seed() -> None:
    ds = _classify({0: 30, 1: 30})
    a = [r.attributes["split"] for r in split_dataset(ds, seed=1, near_duplicates=False).images]
    b = [r.attributes["split"] for r in split_dataset(ds, seed=1, near_duplicates=False).images]
    c = [r.attributes["split"] for r in split_dataset(ds, seed=2, near_duplicates=False).images]
    assert a == b and a != c


def test_detect_stratum_is_the_rarest_class_and_empty_images_have_their_own() -> None:
    rarity = [10, 2, 5]
    both = ImageRecord("x.png", 8, 8, [Annotation(0, [0, 0, 2, 2]), Annotation(2, [0, 0, 2, 2])])
    assert image_stratum(both, "detect", rarity) == 2
    assert image_stratum(ImageRecord("e.png", 8, 8), "detect", rarity) == EMPTY_STRATUM
    # a rare class that only appears beside a common one still reaches every split
    recs = [ImageRecord(f"{i}.png", 8, 8, [Annotation(0, [0, 0, 2, 2])] + ([Annotation(1, [2, 2, 4, 4])] if i < 10 else []))
            for i in range(60)] + [ImageRecord(f"e{i}.png", 8, 8) for i in range(10)]
    out = split_dataset(Dataset(".", ["common", "rare"], recs), ratios=(0.6, 0.2, 0.2), near_duplicates=False)
    rare = Counter(r.attributes["split"] for r in out.images if any(a.class_id == 1 for a in r.annotations))
    empty = Counter(r.attributes["split"] for r in out.images if not r.annotations)
    assert rare == {"train": 6, "val": 2, "test": 2}
    assert empty == {"train": 6, "val": 2, "test": 2}


def test_near_duplicate_copies_never_straddle_splits(tmp_path: Path) -> None:
    from skimage import data

    photos = {"astronaut": data.astronaut(), "coffee": data.coffee(), "chelsea": data.chelsea(),
              "rocket": data.rocket(), "camera": np.stack([data.camera()] * 3, axis=-1)}
    recs, photo_of = [], {}
    for name, pixels in photos.items():
        img = Image.fromarray(pixels)
        copies = {f"{name}_0.png": img, f"{name}_1.jpg": img.resize((img.width // 2, img.height // 2)),
                  f"{name}_2.jpg": img, f"{name}_3.png": img.point(lambda v: min(255, v + 8))}
        for fname, im in copies.items():
            im.save(tmp_path / fname, quality=60) if fname.endswith(".jpg") else im.save(tmp_path / fname)
            recs.append(ImageRecord(fname, im.width, im.height, label=0))
            photo_of[fname] = name
    ds = Dataset(tmp_path, ["photo"], recs, task="classify")
    ratios = (0.4, 0.3, 0.3)

    def straddling(out: Dataset) -> int:
        by_photo: dict[str, set[str]] = {}
        for r in out.images:
            by_photo.setdefault(photo_of[r.file_name], set()).add(r.attributes["split"])
        return sum(len(s) > 1 for s in by_photo.values())

    grouped = split_dataset(ds, ratios=ratios, seed=0)
    assert straddling(grouped) == 0
    assert len({r.attributes["split"] for r in grouped.images}) == 3
    assert straddling(split_dataset(ds, ratios=ratios, seed=0, near_duplicates=False)) > 0  # the test can fail


def test_stats_numbers_on_a_hand_built_dataset() -> None:
    recs = [
        ImageRecord("a.png", 100, 50, [Annotation(0, [0, 0, 10, 20]), Annotation(0, [0, 0, 30, 10]),
                                       Annotation(1, [5, 5, 25, 25])], attributes={"split": "train"}),
        ImageRecord("b.png", 100, 50, [Annotation(0, [0, 0, 40, 40])], attributes={"split": "val"}),
        ImageRecord("c.png", 64, 64, [], attributes={"split": "train"}),
        ImageRecord("d.png", 64, 64, [Annotation(0, [0, 0, 2, 2])]),
    ]
    s = dataset_stats(Dataset(".", ["cat", "<dog>", "eel"], recs))
    assert s["images"] == 4 and s["instances"] == 5 and s["empty_images"] == 1
    assert s["instances_per_class"] == {"cat": 4, "<dog>": 1, "eel": 0}
    assert s["images_per_class"] == {"cat": 3, "<dog>": 1, "eel": 0}
    assert s["image_sizes"] == {"100x50": 2, "64x64": 2}
    assert s["box_width"]["min"] == 2 and s["box_width"]["max"] == 40 and s["box_width"]["median"] == 20
    assert s["box_area"]["median"] == 300 and s["box_height"]["mean"] == pytest.approx(18.4)
    assert s["imbalance_ratio"] is None and s["classes_without_instances"] == ["eel"]
    assert s["splits"] == {"train": {"images": 2, "instances": {"cat": 2, "<dog>": 1, "eel": 0}},
                           "val": {"images": 1, "instances": {"cat": 1, "<dog>": 0, "eel": 0}}}
    assert s["unsplit_images"] == 1
    assert sum(s["histograms"]["box_area"]["counts"]) == 5
    two = dataset_stats(Dataset(".", ["cat", "<dog>"], recs))
    assert two["imbalance_ratio"] == 4.0


def test_stats_of_a_classification_dataset_count_labels() -> None:
    s = dataset_stats(_classify({0: 6, 1: 2, 2: 3}))
    assert s["instances_per_class"] == {"a": 6, "b": 2, "c": 3} and s["imbalance_ratio"] == 3.0
    assert s["box_width"] is None and s["empty_images"] == 0
