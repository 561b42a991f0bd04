"""Stratified, group-aware splits and near-duplicate grouping."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pixsight.core.errors import ConfigError
from pixsight.data.split import perceptual_groups, split_items


def test_ratios_are_respected_within_tolerance() -> None:
    n = 1000
    out = split_items(range(n), labels=[i % 4 for i in range(n)], ratios=(0.7, 0.2, 0.1), seed=1)
    counts = Counter(out)
    assert abs(counts["train"] - 700) <= 8 and abs(counts["val"] - 200) <= 8 and abs(counts["test"] - 100) <= 8


def test_every_class_is_proportionally_present_in_every_split() -> None:
    labels = ["common"] * 500 + ["rare"] * 20 + ["tiny"] * 10
    out = split_items(labels, labels=labels, ratios=(0.8, 0.1, 0.1), seed=0)
    for label, n in Counter(labels).items():
        got = Counter(s for s, lab in zip(out, labels) if lab == label)
        assert abs(got["train"] - 0.8 * n) <= 1 and abs(got["val"] - 0.1 * n) <= 1 and abs(got["test"] - 0.1 * n) <= 1, (label, got)


def test_two_ratios_give_train_and_val_and_zero_ratio_splits_stay_empty() -> None:
    assert set(split_items(range(50), labels=[0] * 50, ratios=(0.5, 0.5))) == {"train", "val"}
    assert set(split_items(range(50), labels=[0] * 50, ratios=(0.9, 0.0, 0.1))) == {"train", "test"}


def test_same_seed_same_split_other_seed_differs() -> None:
    labels = [i % 3 for i in range(200)]
    a = split_items(range(200), labels=labels, seed=5)
    assert a == split_items(range(200), labels=labels, seed=5)
    assert a != split_items(range(200), labels=labels, seed=6)


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(st.tuples(st.integers(0, 15), st.sampled_from("abc")), min_size=1, max_size=120),
    seed=st.integers(0, 2**31),
    ratios=st.sampled_from([(0.8, 0.1, 0.1), (0.5, 0.5), (0.6, 0.2, 0.2), (1.0,)]),
)
def test_groups_never_straddle_splits(data: list[tuple[int, str]], seed: int, ratios: tuple[float, ...]) -> None:
    groups = [g for g, _ in data]
    labels = [lab for _, lab in data]
    out = split_items(data, labels=labels, ratios=ratios, seed=seed, group_keys=groups)
    assert len(out) == len(data)
    assert set(out) <= set(("train", "val", "test")[: len(ratios)])
    seen: dict[int, str] = {}
    for g, s in zip(groups, out):
        assert seen.setdefault(g, s) == s
    if len(ratios) == 1:
        assert set(out) == {"train"}


def test_group_split_keeps_ratios_on_many_small_groups() -> None:
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 300, size=1200).tolist()
    out = split_items(groups, labels=[g % 2 for g in groups], ratios=(0.8, 0.2), seed=0, group_keys=groups)
    assert abs(Counter(out)["val"] / 1200 - 0.2) < 0.03


@pytest.mark.parametrize(
    "kwargs",
    [
        {"labels": [0, 1]},
        {"labels": [0, 1, 2], "group_keys": [1]},
        {"labels": [0, 1, 2], "ratios": (0.5, -0.1, 0.6)},
        {"labels": [0, 1, 2], "ratios": (0.0, 0.0)},
        {"labels": [0, 1, 2], "ratios": (0.2, 0.2, 0.2, 0.4)},
    ],
)
def test_bad_arguments_raise_config_error(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        split_items(["a", "b", "c"], **kwargs)


# --------------------------------------------------------------------------- near-duplicates

skdata = pytest.importorskip("skimage.data")


def _save(path: Path, image: np.ndarray, **kw) -> str:
    Image.fromarray(image).save(path, **kw)
    return str(path)


def test_near_duplicates_share_a_group_and_different_photos_do_not(tmp_path: Path) -> None:
    astro, coffee, chelsea, camera = skdata.astronaut(), skdata.coffee(), skdata.chelsea(), skdata.camera()
    buf = io.BytesIO()
    Image.fromarray(coffee).save(buf, format="JPEG", quality=40)
    paths = [
        _save(tmp_path / "astro.png", astro),
        _save(tmp_path / "astro_small.jpg", np.asarray(Image.fromarray(astro).resize((384, 384))), quality=60),
        _save(tmp_path / "coffee.png", coffee),
        _save(tmp_path / "coffee_q40.jpg", np.asarray(Image.open(buf).convert("RGB"))),
        _save(tmp_path / "chelsea.png", chelsea),
        _save(tmp_path / "camera.png", camera),
    ]
    keys = perceptual_groups(paths)
    assert keys[0] == keys[1] and keys[2] == keys[3]
    assert len({keys[0], keys[2], keys[4], keys[5]}) == 4
    assert keys == perceptual_groups(paths)  # stable
    out = split_items(paths, labels=[0] * 6, ratios=(0.5, 0.5), seed=3, group_keys=keys)
    assert out[0] == out[1] and out[2] == out[3]


def test_near_duplicate_search_is_transitive_and_handles_many_hashes(tmp_path: Path) -> None:
    # many distinct random textures plus a chain of small edits of one photo
    rng = np.random.default_rng(0)
    paths = [_save(tmp_path / f"r{i}.png", (rng.random((32, 32, 3)) * 255).astype(np.uint8)) for i in range(40)]
    base = skdata.astronaut()
    for k, q in enumerate((90, 70, 50)):
        paths.append(_save(tmp_path / f"a{k}.jpg", base, quality=q))
    keys = perceptual_groups(paths)
    assert len(set(keys[-3:])) == 1
    assert keys[-1] not in keys[:40]
    assert len(set(keys[:40])) >= 38  # random textures are not near-duplicates of each other


def test_perceptual_groups_empty_and_bad_distance() -> None:
    assert perceptual_groups([]) == []
    with pytest.raises(ConfigError):
        perceptual_groups([], max_distance=64)


@settings(max_examples=40, deadline=None)
@given(
    base=st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=60),
    flips=st.lists(st.tuples(st.integers(0, 59), st.sets(st.integers(0, 63), max_size=9)), max_size=40),
    max_distance=st.integers(0, 10),
)
def test_bucketed_pair_search_finds_exactly_the_brute_force_pairs(base, flips, max_distance) -> None:
    from pixsight.data.split import _close_pairs

    values = list(base) + [base[i % len(base)] ^ sum(1 << b for b in bits) for i, bits in flips]
    hashes = np.array(values, dtype=np.uint64)
    brute = [
        (i, j)
        for i in range(len(values))
        for j in range(i + 1, len(values))
        if bin(values[i] ^ values[j]).count("1") <= max_distance
    ]
    assert _close_pairs(hashes, max_distance) == brute
