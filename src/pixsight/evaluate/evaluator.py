"""``evaluate_predictions``: score a predictions file against ground truth (``pixsight eval
--predictions``), with subgroups, the worst examples and an optional HTML report.

The model path (``pixsight eval RUN_DIR``) is :func:`pixsight.evaluate.model_eval.evaluate_model`;
both return an :class:`EvalResult`.

>>> import json, tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "truth.json").write_text(json.dumps({"a.png": "hello world"}))
>>> _ = (d / "pred.jsonl").write_text(json.dumps({"path": "/x/a.png", "ocr": {"text": "hello word"}}) + "\\n")
>>> r = evaluate_predictions(d / "pred.jsonl", d / "truth.json", task="ocr")
>>> r.to_dict()["wer"]
0.5
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.errors import ConfigError, DatasetFormatError
from ..data.dataset import Dataset
from .examples import worst_examples
from .metrics import text_metrics, verification_metrics
from .predictions import Predictions, guess_task, load_predictions, read_analyze_jsonl
from .scoring import SUMMARY_KEYS, score, score_groups
from .truth import read_pairs, read_text_truth

if TYPE_CHECKING:
    from .report import Explainer

__all__ = ["EvalResult", "evaluate_predictions", "finish_result", "open_ground_truth", "TASKS"]

log = logging.getLogger(__name__)

#: Tasks ``pixsight eval`` scores.
TASKS: tuple[str, ...] = ("detect", "classify", "segment", "ocr", "faces")

Progress = Callable[[int, int], None]


@dataclass
class EvalResult:
    """One evaluation: the task, its metrics, subgroups and the worst examples.

    ``metrics`` is the task's metrics dict (``pixsight.evaluate.metrics``); ``groups`` the
    ``score_groups`` dict when ``group_by`` was given. ``dataset``/``items`` keep the ground
    truth and aligned predictions for the HTML report (not serialised); ``model`` is the run
    folder or registry name for model evaluations (``None`` for predictions files).
    """

    task: str
    metrics: dict[str, Any]
    source: str
    data: str
    images: int
    unmatched: int = 0
    groups: dict[str, Any] | None = None
    worst: list[dict[str, Any]] = field(default_factory=list)
    dataset: Dataset | None = field(default=None, repr=False)
    items: list[Any] | None = field(default=None, repr=False)
    model: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The headline metrics of the task (the ``--json`` keys)."""
        return {k: self.metrics.get(k) for k in SUMMARY_KEYS[self.task]}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: headline keys at the top level, then ``per_class``, ``groups`` and the
        rest of the metrics (PR ``curves`` left out: they are in the HTML report)."""
        rest = {k: v for k, v in self.metrics.items() if k not in SUMMARY_KEYS[self.task] and k != "curves"}
        evaluated = self.metrics.get("evaluated", self.images)
        out: dict[str, Any] = {"task": self.task, "source": self.source, "data": self.data, "model": self.model,
                               "images": self.images, "evaluated": evaluated, "missing": self.images - evaluated,
                               "unmatched": self.unmatched, **self.summary()}
        out["per_class"] = rest.pop("per_class", {})
        out["groups"] = self.groups
        out.update(rest)
        out["worst"] = self.worst
        out.update(self.extra)
        return out


def open_ground_truth(data: str | os.PathLike[str] | Dataset) -> Dataset:
    """A dataset from a path (any format, auto-detected) or an already loaded one."""
    if isinstance(data, Dataset):
        return data
    from ..data.resolve import open_dataset

    return open_dataset(data)


def finish_result(task: str, gt: Dataset, preds: Predictions, *, source: str, data: str, model: str | None = None,
                  group_by: str | None = None, report: str | os.PathLike[str] | None = None,
                  progress: Progress | None = None, explainer: Explainer | None = None) -> EvalResult:
    """Score aligned dataset predictions, add subgroups and worst examples, write the report
    (with ``explainer``'s overlays, :func:`pixsight.evaluate.report.write_eval_report`)."""
    if preds.missing == len(gt.images) and task != "detect":
        raise DatasetFormatError(f"no prediction matches any of the {len(gt.images)} ground-truth images "
                                 f"(first ground-truth file: {gt.images[0].file_name if gt.images else '-'}); "
                                 "are the predictions for this dataset?", path=preds.source or None)
    try:
        metrics = score(task, gt, preds.items, progress=progress)
        groups = score_groups(task, gt, preds.items, field=group_by) if group_by else None
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if preds.missing and task != "detect":
        log.warning("%d of %d images have no prediction and were left out", preds.missing, len(gt.images))
    result = EvalResult(task, metrics, source, data, len(gt.images), unmatched=len(preds.unmatched), groups=groups,
                        worst=worst_examples(task, gt, preds.items), dataset=gt, items=preds.items, model=model)
    if report is not None:
        from .report import write_eval_report

        write_eval_report(result, report, explainer=explainer)
    return result


def _evaluate_text(pred: Path, truth_path: Path) -> EvalResult:
    truth = read_text_truth(truth_path)
    names = list(truth)
    preds = read_analyze_jsonl(pred, None, task="ocr", names=names)
    keep = [i for i, t in enumerate(preds.items) if t is not None]
    if not keep:
        raise DatasetFormatError(f"no OCR prediction matches any of the {len(names)} ground-truth files "
                                 f"(first: {names[0]})", path=str(pred))
    refs = [truth[names[i]] for i in keep]
    hyps = [preds.items[i] for i in keep]
    metrics: dict[str, Any] = dict(text_metrics(refs, hyps))
    metrics["evaluated"] = len(keep)
    rows = []
    for i, ref, hyp in zip(keep, refs, hyps):
        cer = text_metrics([ref], [hyp])["cer"]
        if cer:
            rows.append({"index": i, "file_name": names[i], "error": float(cer), "why": f"CER {cer:.3f}",
                         "reference": ref, "prediction": hyp})
    rows.sort(key=lambda r: -r["error"])
    return EvalResult("ocr", metrics, str(pred), str(truth_path), len(names), unmatched=len(preds.unmatched),
                      worst=rows[:8])


def _evaluate_pairs(pred: Path, pairs_path: Path) -> EvalResult:
    pairs = read_pairs(pairs_path)
    names = sorted({n for a, b, _ in pairs for n in (a, b)})
    index = {n: i for i, n in enumerate(names)}
    preds = read_analyze_jsonl(pred, None, task="faces", names=names)
    distances, same, skipped = [], [], 0
    for a, b, s in pairs:
        ea, eb = preds.items[index[a]], preds.items[index[b]]
        if ea is None or eb is None or ea.shape != eb.shape:
            skipped += 1
            continue
        cos = float(ea @ eb / max(np.linalg.norm(ea) * np.linalg.norm(eb), 1e-12))
        distances.append(1.0 - cos)
        same.append(s)
    if not distances:
        raise DatasetFormatError(f"none of the {len(pairs)} pairs has a face embedding in both images; run "
                                 "`pixsight analyze --tasks faces --with-vectors --jsonl FILE` on the images",
                                 path=str(pred))
    if skipped:
        log.warning("%d of %d pairs skipped: no face embedding in one of the images", skipped, len(pairs))
    metrics = verification_metrics(np.array(distances), np.array(same))
    metrics["evaluated"] = len(distances)
    return EvalResult("faces", metrics, str(pred), str(pairs_path), len(pairs), unmatched=len(preds.unmatched),
                      extra={"skipped_pairs": skipped})


def evaluate_predictions(predictions: str | os.PathLike[str], data: str | os.PathLike[str] | Dataset, *,
                         task: str | None = None, group_by: str | None = None,
                         report: str | os.PathLike[str] | None = None,
                         progress: Progress | None = None) -> EvalResult:
    """Score an existing predictions file against ground truth ``data``.

    Args:
        predictions: a COCO results JSON (detect), ``pixsight analyze --jsonl`` output (any
            task), or a folder of PNG class maps (segment). See docs/evaluation.md.
        data: the ground truth — a dataset (any format ``pixsight data`` reads), or for
            ``ocr`` a text-truth JSON/CSV, for ``faces`` a pairs CSV (:mod:`.truth`).
        task: detect, classify, segment, ocr or faces (default: guessed from the file).
        group_by: a per-image attribute (e.g. ``split``, a COCO image's extra key): every
            metric per group plus the largest gap between groups.
        report: write a self-contained HTML report here.
        progress: ``progress(done, total)`` callback.

    Raises:
        DatasetFormatError: a file is malformed (the message names file and record).
        ConfigError: the task or ``group_by`` does not fit the data.
    """
    pred = Path(predictions)
    if task is not None and task not in TASKS:
        raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    task = task or guess_task(pred)
    if task in ("ocr", "faces"):
        if isinstance(data, Dataset):
            raise ConfigError(f"{task} ground truth is a file ({'text truth JSON/CSV' if task == 'ocr' else 'pairs CSV'}),"
                              " not a dataset")
        if group_by:
            raise ConfigError(f"--group-by needs a dataset with per-image attributes; not supported for {task}")
        result = _evaluate_text(pred, Path(data)) if task == "ocr" else _evaluate_pairs(pred, Path(data))
        if report is not None:
            from .report import write_eval_report

            write_eval_report(result, report)
        return result
    gt = open_ground_truth(data)
    if task == "classify" and gt.task != "classify":
        raise ConfigError(f"the ground truth is a {gt.task} dataset; classification needs image-level labels")
    preds = load_predictions(pred, gt, task=task)
    return finish_result(task, gt, preds, source=str(pred), data=str(getattr(data, "root", data)),
                         group_by=group_by, report=report, progress=progress)
