"""The generic training loop over a :class:`~pixsight.train.tasks.base.TrainTask`.

Seeded and reproducible (same seed + same data -> same metrics on CPU), AdamW/SGD with
separate backbone/head parameter groups (no weight decay on biases and norms), OneCycle /
cosine / constant schedules, freeze-then-unfreeze transfer learning, early stopping on the
task's primary metric, a time limit, mixed precision on CUDA only, resume from
``checkpoint/last.pt``, and Ctrl-C that saves before it stops. Files are the
:class:`~pixsight.train.run.RunWriter`'s business; progress goes to a callback.

>>> TrainProgress("train", epoch=1, epochs=3, step=2, steps=10, loss=0.5, lr=1e-3).fraction
0.06666666666666667
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..core.errors import PixsightError
from ..data.dataset import Dataset
from .config import TrainConfig
from .data import EpochSampler, item_seed

if TYPE_CHECKING:
    from .run import RunWriter
    from .tasks.base import TrainTask

__all__ = ["TrainProgress", "FitResult", "TrainingError", "TrainingInterrupted", "fit", "pick_device",
           "resolve_class_weights"]

log = logging.getLogger(__name__)


class TrainingError(PixsightError):
    """Training cannot go on (the loss diverged, a checkpoint does not fit the model, ...)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, after the checkpoint, last weights and metrics were saved."""

    def __init__(self, run_dir: str, checkpoint: str, epoch: int) -> None:
        super().__init__(f"interrupted in epoch {epoch}; checkpoint saved to {checkpoint}")
        self.run_dir, self.checkpoint, self.epoch = run_dir, checkpoint, epoch


@dataclass(frozen=True)
class TrainProgress:
    """One progress report: ``phase`` is ``"train"`` (after a step), ``"val"`` (validating)
    or ``"epoch"`` (epoch done; ``metrics`` are its validation metrics)."""

    phase: str
    epoch: int  # 1-based
    epochs: int
    step: int
    steps: int
    loss: float | None
    lr: float
    metrics: dict[str, Any] | None = None
    components: dict[str, float] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        """Overall progress in [0, 1]."""
        return ((self.epoch - 1) + self.step / max(1, self.steps)) / max(1, self.epochs)


@dataclass
class FitResult:
    history: list[dict[str, Any]]
    best_epoch: int
    best: dict[str, Any]
    stopped: str  # completed | early_stop | time_limit
    seconds: float


def pick_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as err:
        raise TrainingError(f"unknown device {name!r} ({err}); use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"device {name!r} asked for but CUDA is not available; use --device cpu or auto")
    return dev


def resolve_class_weights(spec: Any, ds: Dataset) -> list[float] | None:
    """``None`` | ``"auto"`` (inverse frequency of labels/instances, mean 1) | a list (checked).

    >>> from pixsight.data.dataset import Dataset, ImageRecord
    >>> ds = Dataset(".", ["a", "b"], [ImageRecord(f"{i}.png", 4, 4, label=int(i > 2)) for i in range(4)], task="classify")
    >>> resolve_class_weights("auto", ds)
    [0.5, 1.5]
    """
    if spec is None:
        return None
    n = len(ds.classes)
    if spec == "auto":
        counts = np.array(list(ds.class_counts().values()), dtype=np.float64)
        inv = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
        present = inv > 0
        inv = inv / inv[present].mean() if present.any() else np.ones(n)
        return [round(float(v), 6) for v in inv]
    weights = [float(v) for v in spec]
    if len(weights) != n or min(weights) < 0:
        raise TrainingError(f"class_weights has {len(weights)} values for {n} classes {ds.classes}; give one "
                            "non-negative weight per class, or 'auto'")
    return weights


def _param_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    backbone = getattr(model, "backbone", None)
    backbone_ids = {id(p) for p in backbone.parameters()} if backbone is not None else set()
    groups: dict[tuple[str, bool], list[torch.nn.Parameter]] = {}
    for p in model.parameters():
        part = "backbone" if id(p) in backbone_ids else "head"
        groups.setdefault((part, p.ndim > 1), []).append(p)
    out = []
    for (part, decay), params in sorted(groups.items()):
        lr = cfg.lr * (cfg.backbone_lr_mult if part == "backbone" else 1.0)
        out.append({"params": params, "lr": lr, "initial_lr": lr, "weight_decay": cfg.weight_decay if decay else 0.0,
                    "name": f"{part}{'' if decay else '_no_decay'}"})
    return out


def _optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = _param_groups(model, cfg)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999))


def _lr_factor(cfg: TrainConfig, total: int, warmup: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return 0.04 + 0.96 * step / warmup
        if cfg.schedule == "constant":
            return 1.0
        t = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * t))

    return factor


def _scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> Any:
    total = cfg.epochs * steps_per_epoch
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    # OneCycle needs at least two steps in each phase (torch divides by the phase length);
    # a run that short gets the warm-up + cosine curve instead.
    if cfg.schedule == "onecycle" and total >= 8:
        pct = min(0.5, max(0.02, cfg.warmup_epochs / cfg.epochs))
        pct = min(max(pct, 2.5 / total), 1.0 - 2.5 / total)
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=max(2, total), pct_start=pct,
            anneal_strategy="cos", cycle_momentum=cfg.optimizer == "sgd" or cfg.momentum > 0,
            base_momentum=max(0.0, cfg.momentum - 0.05), max_momentum=cfg.momentum, div_factor=25.0,
            final_div_factor=1e3)
    return torch.optim.lr_scheduler.LambdaLR(opt, _lr_factor(cfg, total, min(warmup, total)))


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _scalars(metrics: dict[str, Any]) -> dict[str, float | None]:
    return {k: (None if v is None else float(v)) for k, v in metrics.items()
            if v is None or (isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool))}


def fit(
    task: TrainTask,
    model: torch.nn.Module,
    train_ds: Dataset,
    val_ds: Dataset,
    cfg: TrainConfig,
    *,
    writer: RunWriter,
    preprocess: dict[str, Any],
    postprocess: dict[str, Any] | None = None,
    progress: Callable[[TrainProgress], None] | None = None,
    resume: bool = False,
) -> FitResult:
    """Train ``model`` on ``train_ds``, validating on ``val_ds`` after every epoch.

    ``writer`` saves metrics, weights and checkpoints as training goes. With ``resume`` the
    run continues from ``writer``'s ``checkpoint/last.pt`` (same schedule, same data order).

    Raises:
        TrainingError: the loss became NaN/inf, or the checkpoint does not match.
        TrainingInterrupted: Ctrl-C; the checkpoint and last weights were saved first.
    """
    report = progress or (lambda p: None)
    device = pick_device(cfg.device)
    use_amp = device.type == "cuda" and cfg.amp in ("auto", True)
    if cfg.amp is True and device.type != "cuda":
        log.warning("amp = true ignored: mixed precision is only used on CUDA (device is %s)", device)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model.to(device)
    tds = task.torch_dataset(train_ds, preprocess, cfg.augment, train=True)
    if hasattr(tds, "cache_budget"):
        tds.cache_budget = cfg.cache_images * 1024 * 1024
    n = len(tds)
    if n == 0:
        raise TrainingError("the training data has no images")
    bs = min(cfg.batch_size, n)
    drop_last = n > bs and n % bs == 1  # a batch of one breaks BatchNorm
    steps = n // bs if drop_last else math.ceil(n / bs)
    sampler = EpochSampler(n, seed=cfg.seed, epoch=0, shuffle=True)
    seeded = bool(getattr(tds, "seeded_items", False))
    loader = torch.utils.data.DataLoader(
        tds, batch_size=bs, sampler=sampler if seeded else _IndexOnly(sampler), collate_fn=task.collate,
        num_workers=cfg.workers, persistent_workers=cfg.workers > 0, drop_last=drop_last,
        generator=torch.Generator().manual_seed(cfg.seed), pin_memory=device.type == "cuda")
    opt = _optimizer(model, cfg)
    sched = _scheduler(opt, cfg, steps)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    options = dict(cfg.loss_options(), class_weights=resolve_class_weights(cfg.class_weights, train_ds))
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {}
    best_value, best_epoch, start_epoch, start_step, spent = -math.inf, 0, 0, 0, 0.0
    if resume:
        state = writer.load_checkpoint()
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            if use_amp and state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise TrainingError(f"checkpoint does not fit this model/config ({err}); start a new run instead",
                                path=str(writer.checkpoint_path)) from None
        history, best = list(state["history"]), dict(state["best"])
        best_value, best_epoch = float(state["best_value"]), int(state["best_epoch"])
        start_epoch, start_step, spent = int(state["epoch"]), int(state["step"]), float(state["seconds"])
        _set_rng_state(state["rng"])
        log.info("resuming at epoch %d step %d", start_epoch + 1, start_step)
    t0 = time.monotonic() - spent
    limit_s = cfg.time_limit_min * 60 if cfg.time_limit_min else None
    backbone = getattr(model, "backbone", None)
    stopped = "completed"
    epoch, step, epoch_done = start_epoch, start_step, False

    def checkpoint(epoch_: int, step_: int) -> dict[str, Any]:
        return {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "scaler": scaler.state_dict() if use_amp else {}, "epoch": epoch_, "step": step_,
                "history": history, "best": best, "best_value": best_value, "best_epoch": best_epoch,
                "seconds": time.monotonic() - t0, "rng": _rng_state()}

    try:
        for epoch in range(start_epoch, cfg.epochs):
            if backbone is not None and hasattr(backbone, "freeze"):
                backbone.freeze(epoch < cfg.freeze_epochs)
            if not (resume and epoch == start_epoch and start_step):
                torch.manual_seed(item_seed(cfg.seed, epoch, -2))  # dropout etc.: same per epoch on resume
                step = 0
            sampler.epoch, sampler.start = epoch, step * bs
            epoch_t0, losses, epoch_done = time.monotonic(), [], False
            run_loss = 0.0
            model.train()
            partial = False
            if step < steps:
                for images, targets in loader:
                    images = images.to(device, non_blocking=True)
                    with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                        loss, comps = task.loss(model, images, targets, options)
                    if not torch.isfinite(loss):
                        raise TrainingError(f"the loss became {loss.item()} at epoch {epoch + 1} step {step + 1}; "
                                            f"lower the learning rate (lr = {cfg.lr}) or check the labels")
                    opt.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    if cfg.grad_clip:
                        scaler.unscale_(opt)
                        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                    scaler.step(opt)
                    scaler.update()
                    if sched.last_epoch + 1 < getattr(sched, "total_steps", math.inf):
                        sched.step()
                    step += 1
                    losses.append(float(loss.detach()))
                    run_loss = float(np.mean(losses))
                    report(TrainProgress("train", epoch + 1, cfg.epochs, step, steps, run_loss, _head_lr(opt),
                                         history[-1] if history else None, comps))
                    if limit_s is not None and step < steps:
                        elapsed = time.monotonic() - t0
                        left_in_epoch = (time.monotonic() - epoch_t0) / step * (steps - step)
                        if elapsed >= limit_s and left_in_epoch > 0.1 * limit_s:
                            partial = True
                            log.info("time limit reached in the middle of epoch %d", epoch + 1)
                            break
            report(TrainProgress("val", epoch + 1, cfg.epochs, step, steps, run_loss, _head_lr(opt),
                                 history[-1] if history else None))
            model.eval()
            metrics = task.validate(model, val_ds, preprocess, postprocess, batch_size=bs)
            if task.primary_metric not in metrics:
                raise TrainingError(f"task {task.name} validation did not return its primary metric "
                                    f"{task.primary_metric!r}")
            row = {"epoch": epoch + 1, "lr": _head_lr(opt), "train_loss": run_loss if losses else None,
                   **_scalars(metrics), "seconds": round(time.monotonic() - epoch_t0, 3)}
            if partial:
                row["partial"] = 1.0
            value = metrics[task.primary_metric]
            is_best = value is not None and float(value) > best_value
            history.append(row)  # commit the epoch (an interrupt from here on resumes at the next one)
            if is_best:
                best_value, best_epoch, best = float(value), epoch + 1, dict(metrics)
            epoch_done = True
            writer.save_epoch(history, model, best=best, best_epoch=best_epoch, is_best=is_best)
            writer.save_checkpoint(checkpoint(epoch + 1, 0))
            report(TrainProgress("epoch", epoch + 1, cfg.epochs, steps, steps, row["train_loss"], row["lr"], row))
            if partial:
                stopped = "time_limit"
                break
            if cfg.patience and epoch + 1 - best_epoch >= cfg.patience:
                stopped = "early_stop"
                log.info("early stop: no better %s for %d epochs", task.primary_metric, cfg.patience)
                break
            if limit_s is not None and time.monotonic() - t0 >= limit_s and epoch + 1 < cfg.epochs:
                stopped = "time_limit"
                break
    except KeyboardInterrupt:
        state = checkpoint(epoch + 1, 0) if epoch_done else checkpoint(epoch, step)
        writer.save_checkpoint(state)
        writer.save_epoch(history, model, best=best, best_epoch=best_epoch, is_best=False)
        raise TrainingInterrupted(str(writer.path), str(writer.checkpoint_path), epoch + 1) from None
    return FitResult(history, best_epoch, best, stopped, time.monotonic() - t0)


def _head_lr(opt: torch.optim.Optimizer) -> float:
    for g in opt.param_groups:
        if g.get("name") == "head":
            return float(g["lr"])
    return float(opt.param_groups[-1]["lr"])


class _IndexOnly(torch.utils.data.Sampler):
    """The sampler's order without the item seeds, for datasets that take plain indices."""

    def __init__(self, inner: EpochSampler) -> None:
        self.inner = inner

    def __iter__(self):  # type: ignore[override]
        return (i for i, _ in self.inner)

    def __len__(self) -> int:
        return len(self.inner)
