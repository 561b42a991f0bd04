"""``pixsight.train.train``: the one Python entry point behind ``pixsight train``.

>>> from pixsight.train import train                                     # doctest: +SKIP
>>> run = train("classify", "data/shapes", out="runs/classify/shapes", epochs=5)  # doctest: +SKIP
>>> run.metrics["accuracy"]                                              # doctest: +SKIP
0.99
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError, DatasetFormatError, PixsightError
from ..data.dataset import Dataset
from .config import TrainConfig, resolve_config
from .loop import FitResult, TrainingInterrupted, TrainProgress, fit
from .run import RUN_FORMAT, Run, RunError, RunWriter, load_run

__all__ = ["train", "split_train_val"]

log = logging.getLogger(__name__)

#: What may change when a run is resumed (everything else must stay as it was).
_RESUME_CHANGEABLE = ("time_limit_min", "workers", "device", "cache_images")
_VAL_SPLITS = ("val", "valid", "validation")


def _open(spec: Dataset | str | os.PathLike[str]) -> tuple[Dataset, str | None]:
    if isinstance(spec, Dataset):
        return spec, None
    from ..data.resolve import open_dataset

    return open_dataset(spec), str(spec)


def split_train_val(ds: Dataset, *, seed: int = 0) -> tuple[Dataset, Dataset]:
    """``(train, val)``: the data's own ``val`` split when it has one, else a seeded stratified
    80/20 split (near-duplicate images kept together; see ``pixsight.data.ops.split_dataset``).

    >>> from pixsight.data.dataset import ImageRecord
    >>> recs = [ImageRecord(f"{i}.png", 4, 4, label=i % 2, attributes={"split": "val" if i < 2 else "train"})
    ...         for i in range(6)]
    >>> tr, va = split_train_val(Dataset(".", ["a", "b"], recs, task="classify"))
    >>> len(tr.images), len(va.images)
    (4, 2)
    """
    splits = ds.splits()
    val_name = next((s for s in _VAL_SPLITS if s in splits), None)
    if val_name is None:
        from ..data.ops import split_dataset

        log.info("no val split in the data: holding out a seeded, stratified 20%% for validation")
        ds = split_dataset(ds, ratios=(0.8, 0.2), seed=seed)
        val_name = "val"
    val = ds.subset(val_name)
    images = [r for r in ds.images if r.attributes.get("split") not in (val_name, "test")]
    train_ds = Dataset(ds.root, list(ds.classes), images, ds.task, dict(ds.attributes))
    return train_ds, val


def _check_kind(task: Any, ds: Dataset, role: str) -> None:
    where = str(ds.root)
    if not ds.images:
        raise DatasetFormatError(f"the {role} data has no images", path=where)
    if task.name in ("detect", "segment"):
        if ds.task == "classify" or ds.num_instances() == 0:
            raise DatasetFormatError(
                f"{task.name} needs boxes{' and masks' if task.name == 'segment' else ''} but the {role} data has "
                "none (class folders hold image labels only); use COCO, YOLO, VOC, Label Studio or CVAT annotations",
                path=where)
        if task.name == "segment" and not any(a.has_mask for r in ds.images for a in r.annotations):
            raise DatasetFormatError(f"segment needs masks (polygons or RLE) but the {role} data has boxes only; "
                                     "train `detect` instead, or add masks", path=where)
    check = getattr(task, "check_dataset", None)
    if check is not None:
        check(ds)


def _data_info(ds: Dataset, spec: str | None) -> dict[str, Any]:
    info: dict[str, Any] = {"path": spec or str(ds.root), "images": len(ds.images)}
    if spec is not None:
        try:
            from ..data.formats import detect_format

            info["format"] = detect_format(spec)
        except PixsightError:
            pass
    try:
        from ..data.ops import dataset_fingerprint
    except ImportError:
        log.warning("pixsight.data.ops.dataset_fingerprint is not available: the run records no data fingerprint")
    else:
        info["fingerprint"] = dataset_fingerprint(ds)
    return info


def _sample_images(ds: Dataset, n: int = 4) -> list[Any]:
    from .data import load_record_image

    out = []
    for rec in ds.images[:n]:
        try:
            out.append(load_record_image(ds, rec)[0])
        except PixsightError:
            continue
    return out


def _resume_config(out: Path, overrides: dict[str, Any]) -> tuple[TrainConfig, dict[str, Any]]:
    try:
        saved = json.loads((out / "config.json").read_text(encoding="utf-8"))
        cfg = TrainConfig.from_mapping(saved["config"], source=str(out / "config.json"))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise RunError(f"cannot read config.json to resume ({err})", path=str(out)) from None
    fixed = {k: v for k, v in overrides.items() if v is not None and k not in _RESUME_CHANGEABLE
             and getattr(cfg, k, None) != v}
    if fixed:
        raise ConfigError(f"cannot change {sorted(fixed)} when resuming (only {', '.join(_RESUME_CHANGEABLE)}); "
                          "start a new run for different settings")
    return cfg.replace(**{k: v for k, v in overrides.items() if v is not None}), saved


def train(
    task: str,
    data: Dataset | str | os.PathLike[str] | None,
    *,
    val: Dataset | str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str],
    config: TrainConfig | dict[str, Any] | str | os.PathLike[str] | None = None,
    progress: Callable[[TrainProgress], None] | None = None,
    resume: bool = False,
    **overrides: Any,
) -> Run:
    """Train a ``task`` model on ``data`` and write the run folder ``out``.

    Args:
        task: ``"classify"``, ``"detect"`` or ``"segment"``.
        data: a :class:`Dataset` or a path ``open_dataset`` reads; with no ``val``, its ``val``
            split (or a seeded stratified 20 % of it) validates. ``None`` only with ``resume``.
        val: validation data (same classes as ``data``).
        out: the run folder (must be new or empty unless ``resume``).
        config: a :class:`TrainConfig`, a mapping or a TOML file; ``overrides`` (TrainConfig
            field names, e.g. ``epochs=5``) win over it.
        progress: called with a :class:`TrainProgress` after every step and epoch.
        resume: continue ``out`` from its checkpoint (data and settings as saved).

    Raises:
        ConfigError: bad options. DatasetFormatError: data of the wrong kind for ``task``.
        TrainingError: training diverged. TrainingInterrupted: Ctrl-C (checkpoint saved).
    """
    from .tasks import get_task

    t = get_task(task)
    out = Path(out)
    if resume:
        cfg, saved = _resume_config(out, overrides)
        if data is None:  # the data exactly as first given (a val split taken from the data is taken again)
            sources = saved.get("sources") or {}
            data, val = sources.get("train"), val if val is not None else sources.get("val")
        if saved.get("task") != t.name:
            raise ConfigError(f"{out} is a {saved.get('task')} run, not {t.name}")
    else:
        defaults = getattr(t, "config_defaults", dict)()
        cfg = resolve_config(config, task_defaults=defaults, overrides=overrides)
    if data is None:
        raise ConfigError("no training data given (a run started from an in-memory Dataset resumes only when "
                          "given the same data again)")
    ds, spec = _open(data)
    given_val = val
    if val is None:
        train_ds, val_ds = split_train_val(ds, seed=cfg.seed)
        val_spec = spec
    else:
        train_ds = ds
        val_ds, val_spec = _open(val)
        if val_ds.classes != train_ds.classes:
            raise DatasetFormatError(f"the validation classes {val_ds.classes} differ from the training classes "
                                     f"{train_ds.classes}; both must list the same classes in the same order")
    _check_kind(t, train_ds, "training")
    _check_kind(t, val_ds, "validation")
    preprocess = t.default_preprocess(cfg.size)
    postprocess = t.default_postprocess()
    arch = t.arch(dict(cfg.arch))
    writer = RunWriter(out, task=t.name, primary_metric=t.primary_metric, resume=resume)
    data_meta = {"train": _data_info(train_ds, spec), "val": _data_info(val_ds, val_spec)}
    if not resume:
        writer.write_config({"task": t.name, "config": cfg.to_dict(), "data": data_meta, "sources": {
            "train": spec, "val": None if given_val is None or isinstance(given_val, Dataset) else str(given_val)},
            "preprocess": preprocess, "arch": arch})
    import torch

    torch.manual_seed(cfg.seed)
    model = t.build_model(arch, len(train_ds.classes), pretrained=cfg.pretrained)
    started = time.monotonic()
    meta: dict[str, Any] = {
        "format": RUN_FORMAT, "name": out.resolve().name, "task": t.name, "classes": list(train_ds.classes),
        "arch": arch, "preprocess": preprocess, "postprocess": postprocess, "metrics": {},
        "primary_metric": t.primary_metric, "data": data_meta,
    }
    try:
        result = fit(t, model, train_ds, val_ds, cfg, writer=writer, preprocess=preprocess, postprocess=postprocess,
                     progress=progress, resume=resume)
    except TrainingInterrupted:
        if (out / "weights" / "best.safetensors").is_file():
            _write_meta(writer, meta, cfg, None, time.monotonic() - started, interrupted=True)
        raise
    _write_meta(writer, meta, cfg, result, result.seconds)
    run = load_run(out)
    from .export import export_run

    export_run(run, sample_images=_sample_images(val_ds))
    return load_run(out)


def _write_meta(writer: RunWriter, meta: dict[str, Any], cfg: TrainConfig, result: FitResult | None,
                seconds: float, *, interrupted: bool = False) -> None:
    from .. import __version__
    from .loop import _scalars

    if result is None:
        saved = json.loads((writer.path / "metrics.json").read_text(encoding="utf-8"))
        best, best_epoch, history, stopped = saved.get("best") or {}, saved.get("best_epoch"), saved["epochs"], "interrupted"
    else:
        best, best_epoch, history, stopped = result.best, result.best_epoch, result.history, result.stopped
    meta = dict(meta)
    meta["metrics"] = {k: v for k, v in _scalars(best).items()}
    meta["training"] = {"epochs": len(history), "epochs_planned": cfg.epochs, "best_epoch": best_epoch,
                        "seconds": round(seconds, 2), "seed": cfg.seed, "pretrained": cfg.pretrained,
                        "stopped": stopped, "interrupted": interrupted}
    meta["created"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    meta["pixsight_version"] = __version__
    writer.write_model_json(meta)
