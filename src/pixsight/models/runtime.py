"""ONNX Runtime sessions: CPU provider, both cores, full graph optimisation.

>>> sess = create_session("model.onnx")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..core.errors import ModelUnavailableError, WeightsError

__all__ = ["create_session", "default_threads"]

log = logging.getLogger(__name__)


def default_threads() -> int:
    """Threads for one ONNX Runtime session: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def create_session(
    path: str | os.PathLike[str],
    *,
    threads: int | None = None,
    check_external_data: bool = True,
    allow_spinning: bool | None = None,
):
    """Open an ONNX model for CPU inference.

    ``check_external_data`` (default on) first runs
    :func:`~pixsight.models.onnx_check.check_onnx_file`, refusing external data that
    points outside the model's folder (SECURITY.md item 8). Only files pixsight wrote
    itself may skip it.

    ``allow_spinning=False`` stops idle ONNX Runtime threads from busy-waiting: much
    faster when other stages or processes share the cores (None keeps ORT's default).

    Raises:
        ModelUnavailableError: onnxruntime is not installed.
        WeightsError: the file is missing, not a valid ONNX model, or its external data
            escapes the model's folder.
    """
    try:
        import onnxruntime as ort
    except ImportError as err:  # pragma: no cover - a core dependency
        raise ModelUnavailableError("onnxruntime is not installed: pip install onnxruntime") from err
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"ONNX model file not found: {p}")
    if check_external_data:
        from .onnx_check import check_onnx_file

        check_onnx_file(p)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or default_threads()
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    if allow_spinning is not None:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    try:
        return ort.InferenceSession(str(p), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        raise WeightsError(f"cannot load ONNX model {p}: {err}") from err
