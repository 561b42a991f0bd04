"""Run folders: what ``pixsight train`` writes, and :func:`load_run` to use it afterwards.

::

    model.json            # the registry entry (docs/design/learning.md)
    config.json           # the resolved TrainConfig + data paths
    metrics.csv / .json   # one row per epoch (+ best epoch and its full metrics)
    plots/loss.png, plots/metrics.png
    weights/best.safetensors, weights/last.safetensors
    checkpoint/last.pt    # resume state (tensors and plain containers only; loaded with weights_only=True)
    model.onnx            # exported from best, verified against torch

``model.json`` is read and validated by :func:`pixsight.models.runs.read_model_json`, the one
torch-free reader the registry uses too (same checks, limits and :class:`RunError` messages).

>>> run = load_run("runs/classify/shapes")        # doctest: +SKIP
>>> run.task, run.classes                          # doctest: +SKIP
('classify', ['circle', 'square', 'triangle'])
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import WeightsError
from ..core.fileio import atomic_write_bytes, atomic_write_text, atomic_writer, sha256_file
from ..models.runs import RUN_FORMAT, RunError, add_run, onnx_file, read_model_json, run_folder

if TYPE_CHECKING:
    from ..models.spec import ModelSpec

__all__ = ["RUN_FORMAT", "RunError", "Run", "RunWriter", "load_run", "register_run"]

log = logging.getLogger(__name__)


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json(path: Path, data: Any) -> None:
    """Pretty JSON, written atomically (NaN/inf become null)."""
    text = json.dumps(_finite(data), indent=2, default=_json_default, allow_nan=False)
    atomic_write_text(path, text + "\n")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) while the block writes files, then raise it.

    An interrupt in the middle of ``torch.save`` leaves its zip writer in a state that raises
    ``RuntimeError`` instead of ``KeyboardInterrupt``; deferring it keeps checkpoints whole and
    the interrupt an interrupt. Outside the main thread (no signal handlers there) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    if pending:
        raise KeyboardInterrupt


class RunWriter:
    """Writes one run folder as training goes (used by :func:`pixsight.train.loop.fit`)."""

    def __init__(self, path: str | os.PathLike[str], *, task: str, primary_metric: str, resume: bool = False) -> None:
        self.path = Path(path)
        self.task, self.primary_metric = task, primary_metric
        if not resume and self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise RunError("already exists and is not empty; choose a new --out folder, or --resume this run",
                           path=str(self.path))
        if resume and not self.checkpoint_path.is_file():
            raise RunError("has no checkpoint/last.pt to resume from; start a new run instead", path=str(self.path))
        self.path.mkdir(parents=True, exist_ok=True)

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint" / "last.pt"

    def write_config(self, config: dict[str, Any]) -> None:
        write_json(self.path / "config.json", config)

    def save_weights(self, model: Any, name: str) -> Path:
        """``weights/<name>.safetensors`` (the model's state dict), atomically."""
        from safetensors.torch import save

        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        dest = self.path / "weights" / f"{name}.safetensors"
        atomic_write_bytes(dest, save(state, metadata={"format": RUN_FORMAT, "task": self.task}))
        return dest

    def save_epoch(self, history: list[dict[str, Any]], model: Any, *, best: dict[str, Any], best_epoch: int,
                   is_best: bool) -> None:
        """Metrics (csv, json, plots) and last (+ best) weights after an epoch."""
        with interrupts_deferred():
            self._save_epoch(history, model, best=best, best_epoch=best_epoch, is_best=is_best)

    def _save_epoch(self, history: list[dict[str, Any]], model: Any, *, best: dict[str, Any], best_epoch: int,
                    is_best: bool) -> None:
        self.save_weights(model, "last")
        if is_best:
            self.save_weights(model, "best")
        write_json(self.path / "metrics.json", {"epochs": history, "best_epoch": best_epoch, "best": best,
                                                "primary_metric": self.primary_metric})
        columns: list[str] = []
        for row in history:
            columns += [k for k in row if k not in columns]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        w.writeheader()
        for row in history:
            w.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
        atomic_write_text(self.path / "metrics.csv", buf.getvalue())
        if history:
            self._plots(history)

    def _plots(self, history: list[dict[str, Any]]) -> None:
        from ..viz.plots import line_chart, save_png

        def series(key: str) -> list[tuple[float, float | None]]:
            return [(row["epoch"], row.get(key)) for row in history if key in row]

        losses = {k: series(k) for k in ("train_loss", "val_loss") if any(k in r for r in history)}
        save_png(line_chart(losses, title="loss", xlabel="epoch", ylabel="loss"), self.path / "plots" / "loss.png")
        skip = {"epoch", "lr", "train_loss", "val_loss", "seconds", "partial", "ece"}
        names = [k for k in history[-1] if k not in skip and isinstance(history[-1][k], (int, float))]
        chart = {k: series(k) for k in names[:6]}
        save_png(line_chart(chart, title=f"validation (best by {self.primary_metric})", xlabel="epoch",
                            ylabel="metric"), self.path / "plots" / "metrics.png")

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        import torch

        with interrupts_deferred(), atomic_writer(self.checkpoint_path, "wb") as fh:
            torch.save(state, fh)

    def load_checkpoint(self) -> dict[str, Any]:
        import pickle

        import torch

        try:
            return torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, pickle.UnpicklingError, EOFError) as err:
            raise RunError(f"cannot load the checkpoint ({err}); start a new run instead",
                           path=str(self.checkpoint_path)) from None

    def write_model_json(self, meta: dict[str, Any]) -> None:
        write_json(self.path / "model.json", meta)


@dataclass
class Run:
    """A finished (or interrupted) training run folder; see :func:`load_run`."""

    path: Path
    meta: dict[str, Any]

    @property
    def task(self) -> str:
        return str(self.meta["task"])

    @property
    def name(self) -> str:
        return str(self.meta["name"])

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def preprocess(self) -> dict[str, Any]:
        return dict(self.meta["preprocess"])

    @property
    def postprocess(self) -> dict[str, Any] | None:
        return self.meta.get("postprocess")

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.meta.get("metrics") or {})

    def weights_path(self, weights: str = "best") -> Path:
        if weights not in ("best", "last"):
            raise RunError(f"weights must be 'best' or 'last', got {weights!r}")
        p = self.path / "weights" / f"{weights}.safetensors"
        if not p.is_file():
            raise RunError(f"weights/{weights}.safetensors is missing; was training interrupted before the first "
                           "epoch ended?", path=str(self.path))
        return p

    def build_model(self, weights: str = "best") -> Any:
        """The torch module with ``weights`` (``"best"`` or ``"last"``) loaded, in eval mode."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from .tasks import get_task

        if not isinstance(self.meta.get("arch"), dict):
            raise RunError("model.json has no arch, so its weights cannot be rebuilt in torch; use its model.onnx",
                           path=str(self.path))
        task = get_task(self.task)
        model = task.build_model(self.meta["arch"], len(self.classes), pretrained=False)
        path = self.weights_path(weights)
        try:
            state = load_file(str(path))
            model.load_state_dict(state, strict=True)
        except (SafetensorError, OSError, RuntimeError) as err:
            raise RunError(f"cannot load {path.name} into the {self.meta['arch'].get('name')} model ({err})",
                           path=str(path)) from None
        return model.eval()

    def onnx_path(self, export_if_missing: bool = True) -> Path:
        """The verified ``model.onnx`` (exported now from best weights when missing or modified)."""
        info = self.meta.get("onnx") or {}
        p = onnx_file(self.path, self.meta)
        if p.is_file() and info.get("sha256") and sha256_file(p) == info["sha256"]:
            return p
        if not export_if_missing:
            raise RunError("has no verified model.onnx; run `pixsight train` to completion or export it",
                           path=str(self.path))
        if p.is_file():
            log.warning("%s does not match the sha256 in model.json; exporting again", p)
        from .export import export_run

        export_run(self)
        return self.path / "model.onnx"


def load_run(path: str | os.PathLike[str]) -> Run:
    """Open a run folder (or its ``model.json``).

    Raises:
        RunError: not a run folder, unreadable or invalid ``model.json``
            (:func:`pixsight.models.runs.read_model_json`).
    """
    folder = run_folder(path)
    return Run(folder, read_model_json(folder))


def register_run(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    replace: bool = False,
    default: bool = False,
    registry: Any = None,
) -> ModelSpec:
    """Register a run folder as a model (``pixsight models add RUN_DIR``), exporting its
    ``model.onnx`` from the best weights first when it is missing (that needs torch).

    The rest is :func:`pixsight.models.runs.add_run` (validation, output contract, name).

    Raises:
        RunError / ConfigError: not a run folder, invalid ``model.json``, or the name is taken.
        WeightsError: the ONNX file is missing and cannot be exported here, or breaks the contract.

    Example::

        register_run("runs/detect/shapes", name="shapes-v2", default=True)
    """
    folder = run_folder(path).absolute()
    meta = read_model_json(folder)
    if not onnx_file(folder, meta).is_file():
        log.info("exporting %s/model.onnx from the run's best weights", folder)
        try:
            Run(folder, meta).onnx_path(export_if_missing=True)
        except ImportError as err:
            raise WeightsError(f"the run has no model.onnx and it cannot be exported here ({err}); "
                               "install the training extra: pip install 'pixsight[train]'", path=str(folder)) from err
    return add_run(folder, name=name, replace=replace, default=default, registry=registry)
