"""``ModelSpec``: everything needed to find, run and describe one model.

A spec is data, not code. Weights come from one or more :class:`WeightsSource` entries,
tried in order: a file inside an installed package, the local cache, a user path, or a
URL with a sha256 that only ``pixsight models pull NAME`` downloads.

>>> spec = ModelSpec(name="demo", task="classify", backend="onnx", version="1",
...                  weights=(WeightsSource(kind="path", location="/models/demo.onnx"),))
>>> spec.key
'demo@1'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["WeightsSource", "ModelSpec", "TASKS", "BACKENDS"]

TASKS: tuple[str, ...] = ("classify", "detect", "segment", "ocr", "faces", "embed", "moderate", "caption")
BACKENDS: tuple[str, ...] = ("onnx", "torch", "rapidocr", "tesseract", "dlib")
_SOURCE_KINDS = ("package", "cache", "path", "url")


@dataclass(frozen=True)
class WeightsSource:
    """Where one weights file can come from.

    kind:
        ``package``: ``location`` is ``"<distribution>:<path inside it>"`` (found with
        ``importlib.metadata``, never by importing the package);
        ``cache``: ``location`` is a file name under the pixsight cache's ``models/`` folder
        (files pixsight made itself, e.g. an ONNX export);
        ``path``: an absolute path the user gave;
        ``url``: a download URL; ``sha256`` is then required and only ``models pull`` fetches it.
    """

    kind: str
    location: str
    sha256: str | None = None
    size_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in _SOURCE_KINDS:
            raise ValueError(f"WeightsSource.kind must be one of {_SOURCE_KINDS}, got {self.kind!r}")
        if self.kind == "url" and not self.sha256:
            raise ValueError("a url weights source needs its sha256")


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry.

    ``weights`` lists named files the backend needs (``files``) or, when the model is a
    single file, one source. ``preprocess`` holds the input contract (``size``, ``mean``,
    ``std``, ``resize``), ``labels`` the class names file (a package resource name or a
    path), ``requires`` the Python modules and executables that must be present.
    """

    name: str
    task: str
    backend: str
    version: str
    weights: tuple[WeightsSource, ...] = ()
    files: dict[str, tuple[WeightsSource, ...]] = field(default_factory=dict)
    preprocess: dict[str, Any] = field(default_factory=dict)
    labels: str | None = None
    license: str = "unknown"
    origin: str = ""
    description: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    requires_modules: tuple[str, ...] = ()
    requires_executables: tuple[str, ...] = ()
    install_hint: str = ""
    default: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    user: bool = False

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"ModelSpec {self.name!r}: task must be one of {TASKS}, got {self.task!r}")
        if not self.name or any(c in self.name for c in "/\\ \t\n@"):
            raise ValueError(f"ModelSpec name {self.name!r} must be non-empty without spaces, slashes or '@'")

    @property
    def key(self) -> str:
        """``name@version``: the model identity stored with every result."""
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["weights"] = [asdict(w) for w in self.weights]
        d["files"] = {k: [asdict(w) for w in v] for k, v in self.files.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        d = dict(d)
        d["weights"] = tuple(WeightsSource(**w) for w in d.get("weights", ()))
        d["files"] = {k: tuple(WeightsSource(**w) for w in v) for k, v in d.get("files", {}).items()}
        d["requires_modules"] = tuple(d.get("requires_modules", ()))
        d["requires_executables"] = tuple(d.get("requires_executables", ()))
        return cls(**d)
