"""Seeded, stratified, group-aware train/val/test splits, and near-duplicate grouping.

:func:`split_items` assigns whole groups to splits (so items sharing a group key never
straddle splits) while keeping each label's share of every split close to ``ratios``.
:func:`perceptual_groups` makes such group keys from images: near-duplicates (same photo
resized, re-compressed, lightly edited) share a key.

>>> split_items(["a", "b", "c", "d"], labels=["x", "x", "y", "y"], ratios=(0.5, 0.5), seed=0)
['train', 'val', 'train', 'val']
"""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence

import numpy as np

from pixsight.core.errors import ConfigError

__all__ = ["SPLIT_NAMES", "split_items", "perceptual_groups"]

log = logging.getLogger(__name__)

#: Names given to the splits, by position in ``ratios``.
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")


def _check_ratios(ratios: Sequence[float]) -> np.ndarray:
    r = np.asarray(ratios, dtype=np.float64)
    if not 1 <= r.size <= len(SPLIT_NAMES) or not np.all(np.isfinite(r)) or np.any(r < 0) or r.sum() <= 0:
        raise ConfigError(
            f"split: ratios must be 1 to {len(SPLIT_NAMES)} non-negative numbers with a positive sum, got {list(ratios)}"
        )
    return r / r.sum()


def split_items(
    items: Sequence[object],
    *,
    labels: Sequence[Hashable],
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    group_keys: Sequence[Hashable] | None = None,
) -> list[str]:
    """Assign each item to ``"train"``, ``"val"`` or ``"test"`` (by position in ``ratios``).

    Groups (items with equal ``group_keys``; each item alone when ``None``) move together.
    A group's label is its most common item label. Per label, groups are shuffled with
    ``seed`` and handed out largest first, each to the split furthest below its share of
    that label (relative to the share), so every label appears in every split with a
    non-zero ratio once it has a few groups, and the overall ratios follow.

    Args:
        items: anything; only its length and order matter.
        labels: one hashable label per item (for multi-object images pass e.g. the rarest class).
        ratios: split fractions, normalised to sum to 1; 2 values give train/val.
        seed: same inputs and seed, same assignment.
        group_keys: one hashable key per item, e.g. from :func:`perceptual_groups`.

    Returns:
        One split name per item, in the order of ``items``.

    >>> split_items(range(6), labels=[0] * 6, ratios=(2, 1), group_keys=[1, 1, 2, 2, 3, 3])
    ['train', 'train', 'train', 'train', 'val', 'val']
    """
    n = len(items)
    if len(labels) != n:
        raise ConfigError(f"split: {n} items but {len(labels)} labels; give one label per item")
    if group_keys is not None and len(group_keys) != n:
        raise ConfigError(f"split: {n} items but {len(group_keys)} group keys; give one key per item")
    shares = _check_ratios(ratios)
    names = SPLIT_NAMES[: shares.size]
    keys: Sequence[Hashable] = range(n) if group_keys is None else group_keys

    members: dict[Hashable, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        members[key].append(i)
    by_label: dict[Hashable, list[list[int]]] = defaultdict(list)
    for idx in members.values():
        counts = Counter(labels[i] for i in idx)
        top = max(counts.values())
        label = min((lab for lab, c in counts.items() if c == top), key=repr)  # ties: stable choice
        by_label[label].append(idx)

    rng = np.random.default_rng(seed)
    out = [""] * n
    live = shares > 0
    for label in sorted(by_label, key=repr):  # order independent of dict insertion
        groups = by_label[label]
        order = rng.permutation(len(groups))
        # largest groups first; the shuffle decides among equal sizes
        ranked = sorted(range(len(groups)), key=lambda g: (-len(groups[g]), int(order[g])))
        target = shares * sum(len(g) for g in groups)
        have = np.zeros_like(shares)
        for g in ranked:
            deficit = np.where(live, (target - have) / np.where(live, target, 1.0), -np.inf)
            s = int(np.argmax(deficit))  # ties go to the earlier split (train first)
            have[s] += len(groups[g])
            for i in groups[g]:
                out[i] = names[s]
    return out


# --------------------------------------------------------------------------- near-duplicates


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)  # root is the smallest index


def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    table = np.array([bin(i).count("1") for i in range(256)], np.uint8)
    return table[x.view(np.uint8).reshape(*x.shape, 8)].sum(axis=-1)


def _close_pairs(hashes: np.ndarray, max_distance: int) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, of 64-bit hashes within ``max_distance`` bits.

    Pigeonhole: split the 64 bits into ``max_distance + 1`` chunks; two hashes that differ
    in at most ``max_distance`` bits agree exactly on at least one chunk. So only hashes
    that share a chunk value are compared, bucket by bucket.
    """
    n_chunks = min(max_distance + 1, 64)
    bounds = np.linspace(0, 64, n_chunks + 1).astype(int)
    pairs: set[tuple[int, int]] = set()
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        mask = np.uint64((1 << int(hi - lo)) - 1)
        chunk = (hashes >> np.uint64(lo)) & mask
        order = np.argsort(chunk, kind="stable")
        sorted_chunk = chunk[order]
        starts = np.flatnonzero(np.r_[True, sorted_chunk[1:] != sorted_chunk[:-1]])
        ends = np.r_[starts[1:], len(order)]
        for s, e in zip(starts, ends):
            if e - s < 2:
                continue
            idx = order[s:e]
            for r in range(0, len(idx), 1024):  # row blocks bound memory on a big bucket
                rows = idx[r : r + 1024]
                dist = _popcount(hashes[rows][:, None] ^ hashes[idx][None, :])
                ii, jj = np.nonzero(dist <= max_distance)
                for a, b in zip(rows[ii].tolist(), idx[jj].tolist()):
                    if a < b:
                        pairs.add((a, b))
    return sorted(pairs)


def perceptual_groups(image_paths: Sequence[str | os.PathLike[str]], *, max_distance: int = 6) -> list[str]:
    """Group near-duplicate images by perceptual hash; returns one group key per image.

    Each image gets a 64-bit pHash (``imagehash.phash``); images whose hashes differ in at
    most ``max_distance`` bits are linked, and linked images (transitively) form a group.
    The key of a group is the hex hash of its first image, so it does not depend on paths.
    Pass the keys as ``group_keys`` to :func:`split_items` so near-duplicates never
    straddle splits. Candidate pairs are found by bucketing on hash chunks, so 10,000
    images take about as long as hashing them.

    Raises:
        ImageDecodeError: an image cannot be read (the error names the file).
        ConfigError: ``max_distance`` outside [0, 63].

    >>> import tempfile, os
    >>> from PIL import Image
    >>> from skimage import data
    >>> d = tempfile.mkdtemp()
    >>> Image.fromarray(data.astronaut()).save(os.path.join(d, "a.png"))
    >>> Image.fromarray(data.astronaut()).resize((300, 300)).save(os.path.join(d, "b.jpg"), quality=70)
    >>> Image.fromarray(data.coffee()).save(os.path.join(d, "c.png"))
    >>> keys = perceptual_groups([os.path.join(d, f) for f in ("a.png", "b.jpg", "c.png")])
    >>> keys[0] == keys[1] != keys[2]
    True
    """
    import imagehash
    from PIL import Image

    from pixsight.core.image import load_image

    if not 0 <= max_distance < 64:
        raise ConfigError(f"perceptual_groups: max_distance must be in [0, 63], got {max_distance}")
    values: list[int] = []
    for path in image_paths:
        pixels = load_image(path, max_side=256).pixels
        bits = imagehash.phash(Image.fromarray(pixels)).hash.reshape(-1)
        values.append(int("".join("1" if b else "0" for b in bits), 2))
    if not values:
        return []
    # identical hashes (say many blank frames) are one group already; search among unique ones
    unique, inverse = np.unique(np.array(values, dtype=np.uint64), return_inverse=True)
    uf = _UnionFind(len(values))
    first = {}
    for i, u in enumerate(inverse.tolist()):
        uf.union(first.setdefault(u, i), i)
    for a, b in _close_pairs(unique, max_distance):
        uf.union(first[a], first[b])
    keys = [f"{values[uf.find(i)]:016x}" for i in range(len(values))]
    log.debug("perceptual_groups: %d images in %d groups", len(keys), len(set(keys)))
    return keys
