"""Export a run's best weights to a verified ``model.onnx``.

Input ``images`` float32 ``[N, 3, H, W]`` (dynamic batch, fixed ``H, W`` = the run's size),
outputs named by the task (``logits``; ``boxes``, ``scores``; ...). The backbone's TF "same"
padding is frozen for that size first (constant pads, folded into the convolutions as for the
ImageNet export), then ONNX Runtime is compared with torch on real preprocessed images
(the run's validation images when given, scikit-image photos otherwise): the largest absolute
difference is recorded in ``model.json`` and a mismatch refuses the file. Written atomically.

>>> from pixsight.train.run import load_run        # doctest: +SKIP
>>> export_run(load_run("runs/classify/x"))["max_abs_diff"] < 1e-3   # doctest: +SKIP
True
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..core.errors import WeightsError
from ..core.fileio import sha256_file
from ..core.preprocess import prepare_input
from ..models.export import OPSET, _check_graph, _fold_pads_into_convs

if TYPE_CHECKING:
    from .run import Run

__all__ = ["export_run", "export_module"]

log = logging.getLogger(__name__)


def _sample_images(images: Sequence[np.ndarray] | None) -> list[np.ndarray]:
    if images:
        return list(images)
    from skimage import data

    return [data.chelsea(), data.coffee(), data.astronaut()]


def export_module(
    model: Any,
    dest: str | os.PathLike[str],
    *,
    preprocess: dict[str, Any],
    output_names: Sequence[str],
    sample_images: Sequence[np.ndarray] | None = None,
    atol: float = 1e-3,
) -> dict[str, Any]:
    """Export ``model`` (eval mode) to ``dest`` and verify it on ONNX Runtime.

    Returns ``{"file", "sha256", "max_abs_diff", "inputs", "opset"}``.

    Raises:
        WeightsError: the export fails or ONNX Runtime disagrees with torch by more than ``atol``.
    """
    import torch

    from ..models.runtime import create_session

    dest = Path(dest)
    size = tuple(int(s) for s in preprocess["size"])
    model = model.eval().cpu()
    backbone = getattr(model, "backbone", None)
    if backbone is not None and hasattr(backbone, "fix_padding"):
        backbone.fix_padding(size)
    rows = [prepare_input(np.asarray(img)[..., :3].astype(np.uint8), preprocess)[0].transpose(2, 0, 1)
            for img in _sample_images(sample_images)]
    x = np.ascontiguousarray(np.stack(rows), dtype=np.float32)
    names = list(output_names)
    dynamic = {"images": {0: "batch"}, **{n: {0: "batch"} for n in names}}
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with torch.inference_mode():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (torch.from_numpy(x[:2]),), str(tmp), input_names=["images"],
                                  output_names=names, dynamic_axes=dynamic, opset_version=OPSET, dynamo=False)
            ref = model(torch.from_numpy(x))
        ref_list = [t.numpy() for t in (ref if isinstance(ref, (tuple, list)) else (ref,))]
        if backbone is not None and hasattr(backbone.net, "strided_pads"):
            _fold_pads_into_convs(tmp, backbone.net.strided_pads())
        _check_graph(tmp)
        session = create_session(tmp, check_external_data=True)
        parts = [session.run(names, {"images": chunk}) for chunk in (x[:1], x[1:]) if len(chunk)]
        del session
        got = [np.concatenate([p[i] for p in parts]) for i in range(len(names))]
        diff = max(float(np.max(np.abs(g - r))) if r.size else 0.0 for g, r in zip(got, ref_list))
        if not diff <= atol:
            raise WeightsError(f"ONNX Runtime differs from torch by {diff:.3g} (> {atol:g}); the export was not "
                               "written. Report this with your torch/onnxruntime versions", path=str(dest))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        sha = sha256_file(tmp)
        os.replace(tmp, dest)
    except WeightsError:
        raise
    except Exception as err:  # the exporter raises many types
        raise WeightsError(f"ONNX export failed: {type(err).__name__}: {err}", path=str(dest)) from err
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if backbone is not None and hasattr(backbone, "fix_padding"):
            backbone.fix_padding(None)
    log.info("exported %s (max |diff| vs torch %.2g on %d images)", dest, diff, len(x))
    return {"file": dest.name, "sha256": sha, "max_abs_diff": diff, "inputs": int(len(x)), "opset": OPSET}


def export_run(run: Run, *, sample_images: Sequence[np.ndarray] | None = None, atol: float = 1e-3) -> dict[str, Any]:
    """Export ``run``'s best weights to ``run.path / "model.onnx"`` and record the result in
    its ``model.json`` (``onnx`` block)."""
    from .run import write_json
    from .tasks import get_task

    task = get_task(run.task)
    info = export_module(run.build_model("best"), run.path / "model.onnx", preprocess=run.preprocess,
                         output_names=task.output_names, sample_images=sample_images, atol=atol)
    run.meta["onnx"] = info
    write_json(run.path / "model.json", run.meta)
    return info
