"""Drift between a reference window and a current window of analysed images.

Three views of a window are compared:

* **embeddings** - maximum mean discrepancy (MMD, biased estimate) with an RBF kernel whose
  bandwidth is the median pairwise distance of the pooled sample, and a seeded permutation test
  for its p-value (each window subsampled to ``max_samples``; cost is bounded);
* **top-1 labels** (``classify``) - population stability index (PSI, smoothed) and a chi-square
  test of homogeneity (labels seen fewer than 5 times in both windows pooled into ``(other)``);
* **top-1 confidences** - the two-sample Kolmogorov-Smirnov test and PSI over reference deciles.

Verdict: ``drift`` is True when the embedding MMD p-value is below ``alpha``, or when the labels
or the confidences have a p-value below ``alpha`` *and* a PSI of at least ``psi_threshold``
(a significant and practically large shift). Labels and confidences are skipped when a window
has no ``classify`` results; embeddings are required.

>>> rng = np.random.default_rng(0)
>>> ref = DriftWindow(embeddings=rng.normal(size=(60, 8)))
>>> cur = DriftWindow(embeddings=rng.normal(size=(60, 8)) + 1.0)
>>> detect_drift(ref, cur).drift
True
>>> detect_drift(ref, DriftWindow(embeddings=rng.normal(size=(60, 8)))).drift
False
"""

from __future__ import annotations

import glob
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import PixsightError
from ..core.types import Analysis, Classification, Embedding

__all__ = ["DriftError", "DriftWindow", "DriftReport", "detect_drift", "load_window", "psi", "mmd_test", "drift_plot"]

log = logging.getLogger(__name__)

OTHER = "(other)"


class DriftError(PixsightError):
    """A drift window cannot be compared (missing, too small, no embeddings, mismatched models)."""


@dataclass(frozen=True)
class DriftWindow:
    """One window: embeddings ``(n, d)`` (rows may come from different images than the labels),
    top-1 ``labels`` and top-1 ``confidences`` of the images that have a ``classify`` result.

    >>> DriftWindow(embeddings=np.zeros((3, 4)), labels=["a", "b"], confidences=[0.5, 0.9]).n
    3
    """

    embeddings: np.ndarray | None = None
    labels: Sequence[str] = ()
    confidences: Sequence[float] | np.ndarray = ()
    name: str = ""
    model: str | None = None

    def __post_init__(self) -> None:
        if self.embeddings is not None:
            emb = np.asarray(self.embeddings, dtype=np.float64)
            if emb.ndim != 2 or not np.all(np.isfinite(emb)):
                raise DriftError(f"window {self.name!r}: embeddings must be a finite (n, d) array, got shape {emb.shape}")
            object.__setattr__(self, "embeddings", emb)
        conf = np.asarray(self.confidences, dtype=np.float64).reshape(-1)
        if len(conf) != len(self.labels):
            raise DriftError(f"window {self.name!r}: {len(self.labels)} labels but {len(conf)} confidences")
        object.__setattr__(self, "confidences", conf)
        object.__setattr__(self, "labels", [str(x) for x in self.labels])

    @property
    def n(self) -> int:
        """Number of embeddings (0 when there are none)."""
        return 0 if self.embeddings is None else int(self.embeddings.shape[0])

    @classmethod
    def from_analyses(cls, analyses: Iterable[Analysis], *, name: str = "") -> DriftWindow:
        """Collect embeddings, top-1 labels and confidences; error analyses are skipped."""
        vectors: list[np.ndarray] = []
        labels: list[str] = []
        conf: list[float] = []
        models: set[str] = set()
        for a in analyses:
            if a.status != "ok":
                continue
            emb = a.results.get("embed")
            if isinstance(emb, Embedding):
                vectors.append(emb.vector)
                models.add(emb.model)
            cls_result = a.results.get("classify")
            if isinstance(cls_result, Classification) and len(cls_result):
                labels.append(str(cls_result.top_label))
                conf.append(cls_result.top_score)
        if len(models) > 1:
            raise DriftError(f"window {name!r} mixes embeddings of several models: {sorted(models)}")
        if vectors and len({v.shape[0] for v in vectors}) > 1:
            raise DriftError(f"window {name!r} has embeddings of different sizes")
        emb_arr = np.stack(vectors) if vectors else None
        return cls(embeddings=emb_arr, labels=labels, confidences=conf, name=name,
                   model=next(iter(models)) if models else None)


@dataclass
class DriftReport:
    """The statistics and the verdict; ``to_dict()`` is the ``--json`` object."""

    drift: bool
    reasons: list[str]
    alpha: float
    psi_threshold: float
    n_reference: int
    n_current: int
    embedding: dict[str, Any]
    labels: dict[str, Any] | None = None
    confidence: dict[str, Any] | None = None
    reference: DriftWindow | None = field(default=None, repr=False)
    current: DriftWindow | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"drift": self.drift, "reasons": list(self.reasons), "alpha": self.alpha,
                "psi_threshold": self.psi_threshold, "n_reference": self.n_reference, "n_current": self.n_current,
                "embedding": self.embedding, "labels": self.labels, "confidence": self.confidence}


def psi(expected: np.ndarray, actual: np.ndarray, *, smoothing: float = 0.5) -> float:
    """Population stability index of two count vectors over the same bins (additive smoothing).

    >>> round(psi(np.array([50, 50]), np.array([50, 50])), 6)
    0.0
    >>> psi(np.array([90, 10]), np.array([10, 90])) > 0.2
    True
    """
    e = np.asarray(expected, dtype=np.float64) + smoothing
    a = np.asarray(actual, dtype=np.float64) + smoothing
    e /= e.sum()
    a /= a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def mmd_test(x: np.ndarray, y: np.ndarray, *, permutations: int = 500, seed: int = 0) -> dict[str, Any]:
    """RBF-kernel MMD² (biased) with the median-heuristic bandwidth and a permutation p-value.

    >>> rng = np.random.default_rng(1)
    >>> mmd_test(rng.normal(size=(40, 3)), rng.normal(size=(40, 3)) + 2)["p_value"] < 0.01
    True
    """
    from scipy.spatial.distance import pdist
    from sklearn.metrics.pairwise import rbf_kernel

    pooled = np.concatenate([x, y]).astype(np.float64)
    dists = pdist(pooled)
    median = float(np.median(dists[dists > 0])) if np.any(dists > 0) else 1.0
    gamma = 1.0 / (2.0 * median**2)
    k = rbf_kernel(pooled, gamma=gamma)
    m, n = len(x), len(y)
    rng = np.random.default_rng(seed)

    def weights(first: np.ndarray) -> np.ndarray:  # (P, m+n): +1/m on the "x" side, -1/n on the other
        return np.where(first, 1.0 / m, -1.0 / n)

    observed_w = weights(np.arange(m + n)[None, :] < m)
    observed = float(np.einsum("pi,ij,pj->p", observed_w, k, observed_w)[0])
    perm_first = np.zeros((permutations, m + n), dtype=bool)
    for p in range(permutations):
        perm_first[p, rng.permutation(m + n)[:m]] = True
    w = weights(perm_first)
    null = np.sum((w @ k) * w, axis=1)
    p_value = float((1 + np.sum(null >= observed - 1e-12)) / (1 + permutations))
    return {"mmd2": observed, "p_value": p_value, "bandwidth": median, "permutations": permutations,
            "null_mean": float(null.mean()), "samples": [m, n]}


def _label_stats(ref: Sequence[str], cur: Sequence[str], *, min_count: int = 5) -> dict[str, Any]:
    from scipy.stats import chi2_contingency

    rc, cc = Counter(ref), Counter(cur)
    keep = sorted(k for k in set(rc) | set(cc) if rc[k] + cc[k] >= min_count)
    cats = keep + ([OTHER] if any(k not in keep for k in set(rc) | set(cc)) else [])

    def counts(c: Counter) -> np.ndarray:
        return np.array([c[k] if k != OTHER else sum(v for key, v in c.items() if key not in keep) for k in cats],
                        dtype=np.float64)

    r, c = counts(rc), counts(cc)
    table = np.stack([r, c])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        chi2, p_value = 0.0, 1.0
    else:
        chi2, p_value, _, _ = chi2_contingency(table)
    return {"psi": psi(r, c), "chi2": float(chi2), "p_value": float(p_value), "categories": len(cats),
            "reference": {k: int(v) for k, v in zip(cats, r)}, "current": {k: int(v) for k, v in zip(cats, c)}}


def _confidence_stats(ref: np.ndarray, cur: np.ndarray, *, bins: int = 10) -> dict[str, Any]:
    from scipy.stats import ks_2samp

    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)))
    edges = np.concatenate([[-np.inf], edges[1:-1], [np.inf]]) if len(edges) > 2 else np.array([-np.inf, np.inf])
    r = np.histogram(ref, bins=edges)[0]
    c = np.histogram(cur, bins=edges)[0]
    ks = ks_2samp(ref, cur)
    return {"psi": psi(r, c), "ks": float(ks.statistic), "p_value": float(ks.pvalue),
            "mean_reference": float(ref.mean()), "mean_current": float(cur.mean())}


def _as_window(x: DriftWindow | np.ndarray | Iterable[Analysis], name: str) -> DriftWindow:
    if isinstance(x, DriftWindow):
        return x
    if isinstance(x, np.ndarray):
        return DriftWindow(embeddings=x, name=name)
    return DriftWindow.from_analyses(x, name=name)


def detect_drift(
    reference: DriftWindow | np.ndarray | Iterable[Analysis],
    current: DriftWindow | np.ndarray | Iterable[Analysis],
    *,
    alpha: float = 0.01,
    psi_threshold: float = 0.2,
    seed: int = 0,
    max_samples: int = 500,
    permutations: int = 500,
    min_images: int = 10,
) -> DriftReport:
    """Compare two windows (``DriftWindow``, an ``(n, d)`` embedding array, or ``Analysis`` records).

    Raises ``DriftError`` when a window has no embeddings, fewer than ``min_images`` of them,
    or embeddings of a different size or model than the other window. See the module doc for
    the tests and the verdict rule.

    >>> rng = np.random.default_rng(0)
    >>> report = detect_drift(rng.normal(size=(50, 4)), rng.normal(size=(50, 4)) * 3)
    >>> report.drift, report.reasons
    (True, ['embedding MMD p=0.002 < 0.01'])
    """
    if not 0 < alpha < 1:
        raise DriftError(f"alpha must be in (0, 1), got {alpha}")
    ref, cur = _as_window(reference, "reference"), _as_window(current, "current")
    for w, label in ((ref, "reference"), (cur, "current")):
        if w.n == 0:
            raise DriftError(f"the {label} window has no embeddings: analyse it with the embed task "
                             "(`pixsight analyze ... --db FILE`, or `--jsonl FILE --with-vectors`)")
        if w.n < min_images:
            raise DriftError(f"the {label} window has only {w.n} embedded images; at least {min_images} are needed")
    assert ref.embeddings is not None and cur.embeddings is not None
    if ref.embeddings.shape[1] != cur.embeddings.shape[1]:
        raise DriftError(f"embedding sizes differ: reference {ref.embeddings.shape[1]}, current "
                         f"{cur.embeddings.shape[1]} (use the same embed model for both windows)")
    if ref.model and cur.model and ref.model != cur.model:
        raise DriftError(f"embedding models differ: reference {ref.model!r}, current {cur.model!r}")
    rng = np.random.default_rng(seed)

    def sample(e: np.ndarray) -> np.ndarray:
        return e[np.sort(rng.choice(len(e), max_samples, replace=False))] if len(e) > max_samples else e

    embedding = mmd_test(sample(ref.embeddings), sample(cur.embeddings), permutations=permutations, seed=seed)
    reasons: list[str] = []
    if embedding["p_value"] < alpha:
        reasons.append(f"embedding MMD p={embedding['p_value']:.3g} < {alpha:g}")
    labels = confidence = None
    if len(ref.labels) >= min_images and len(cur.labels) >= min_images:
        labels = _label_stats(ref.labels, cur.labels)
        confidence = _confidence_stats(np.asarray(ref.confidences), np.asarray(cur.confidences))
        for name, stats in (("labels", labels), ("confidence", confidence)):
            if stats["p_value"] < alpha and stats["psi"] >= psi_threshold:
                reasons.append(f"{name} p={stats['p_value']:.3g} < {alpha:g} and PSI={stats['psi']:.3f} "
                               f">= {psi_threshold:g}")
    else:
        log.info("labels/confidences skipped: fewer than %d classify results in a window", min_images)
    return DriftReport(drift=bool(reasons), reasons=reasons, alpha=alpha, psi_threshold=psi_threshold,
                       n_reference=ref.n, n_current=cur.n, embedding=embedding, labels=labels,
                       confidence=confidence, reference=ref, current=cur)


# -- loaders ------------------------------------------------------------------------------------

def _read_jsonl(path: Path) -> list[Analysis]:
    out: list[Analysis] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(Analysis.from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError) as err:
                raise DriftError(f"line {lineno}: not a `pixsight analyze --jsonl` record ({err})",
                                 path=str(path)) from err
    return out


def load_window(source: str | os.PathLike[str], *, db: str | os.PathLike[str] | None = None,
                name: str = "") -> DriftWindow:
    """A window from a ``pixsight analyze --jsonl --with-vectors`` file (``.jsonl``/``.json``), or
    from a folder / glob / image file whose images are looked up by path in the catalog ``db``.

    >>> load_window("runs/ref.jsonl")            # doctest: +SKIP
    """
    text = os.fspath(source)
    path = Path(text)
    name = name or text
    if path.is_file() and path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        return DriftWindow.from_analyses(_read_jsonl(path), name=name)
    from ..pipeline.analyzer import iter_image_paths

    roots = sorted(glob.glob(text, recursive=True)) if glob.has_magic(text) else ([text] if path.exists() else [])
    if not roots:
        raise DriftError("no such file, folder or glob match", path=text)
    files = list(iter_image_paths(roots))
    if not files:
        raise DriftError("no image files found", path=text)
    if db is None or not Path(db).is_file():
        raise DriftError(f"images are looked up in the catalog, but the catalog {db!s} does not exist; "
                         "run `pixsight analyze PATH --db FILE` first, or pass a --jsonl file", path=text)
    from ..catalog.store import Catalog

    analyses: list[Analysis] = []
    missing = 0
    with Catalog(db) as catalog:
        for f in files:
            shas = catalog.find(f)
            found = catalog.load_analysis(shas[0], path=f) if shas else None
            if found is None:
                missing += 1
            else:
                analyses.append(found)
    if missing:
        log.warning("%s: %d of %d images are not in the catalog %s", text, missing, len(files), db)
    if not analyses:
        raise DriftError(f"none of its {len(files)} images are in the catalog {db}; "
                         f"run `pixsight analyze {text} --db {db}` first", path=text)
    return DriftWindow.from_analyses(analyses, name=name)


def drift_plot(report: DriftReport) -> bytes:
    """PNG: top-1 confidence histograms of both windows and their label distributions."""
    from ..viz.plots import figure, to_png

    fig, ax = figure(10.0, 3.8)
    fig.clear()
    ax_conf, ax_lab = fig.subplots(1, 2)
    ref, cur = report.reference, report.current
    if ref is not None and cur is not None and len(ref.confidences) and len(cur.confidences):
        bins = np.linspace(0, 1, 21)
        ax_conf.hist(ref.confidences, bins=bins, alpha=0.5, density=True, label=f"reference ({len(ref.confidences)})")
        ax_conf.hist(cur.confidences, bins=bins, alpha=0.5, density=True, label=f"current ({len(cur.confidences)})")
        ax_conf.legend()
    else:
        ax_conf.text(0.5, 0.5, "no classify results", ha="center", va="center")
    ax_conf.set_title("top-1 confidence")
    if report.labels:
        r, c = report.labels["reference"], report.labels["current"]
        cats = sorted(r, key=lambda k: -(r[k] + c[k]))[:15]
        xs = np.arange(len(cats))
        nr, nc = max(sum(r.values()), 1), max(sum(c.values()), 1)
        ax_lab.bar(xs - 0.2, [r[k] / nr for k in cats], width=0.4, label="reference")
        ax_lab.bar(xs + 0.2, [c[k] / nc for k in cats], width=0.4, label="current")
        ax_lab.set_xticks(xs, [k[:18] for k in cats], rotation=60, ha="right", fontsize=7)
        ax_lab.legend()
    else:
        ax_lab.text(0.5, 0.5, "no classify results", ha="center", va="center")
    ax_lab.set_title("top-1 labels (share)")
    fig.suptitle(f"drift: {report.drift}  (MMD p={report.embedding['p_value']:.3g})")
    return to_png(fig)
