"""``PIXSIGHT_REQUIRE_ALL=1`` (what ``make test`` sets) turns a skip caused by a missing
dependency into a failure (tests/conftest.py). Each case runs pytest on a small test file in
a subprocess with the hooks of tests/conftest.py loaded as a plugin, and a dependency made
missing for that subprocess only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

TESTS = '''
import shutil
import pytest

def test_needs_dlib():
    pytest.importorskip("dlib")

@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract executable not installed")
def test_needs_tesseract():
    pass

def test_skips_for_another_reason():
    pytest.skip("needs /proc")
'''


def run_pytest(tmp_path: Path, *, require_all: bool, no_dlib: bool = False, no_tesseract: bool = False
               ) -> subprocess.CompletedProcess:
    (tmp_path / "test_sample.py").write_text(TESTS)
    env = {k: v for k, v in os.environ.items() if k != "PIXSIGHT_REQUIRE_ALL"}
    if require_all:
        env["PIXSIGHT_REQUIRE_ALL"] = "1"
    if no_dlib:  # a package named dlib that cannot be imported shadows the real one
        (tmp_path / "shadow" / "dlib").mkdir(parents=True)
        (tmp_path / "shadow" / "dlib" / "__init__.py").write_text("raise ModuleNotFoundError('no dlib here')\n")
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(tmp_path / "shadow")])
    else:
        env["PYTHONPATH"] = str(ROOT)
    if no_tesseract:
        env["PATH"] = str(tmp_path / "empty-bin")
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-rA",
                           "-q", "--rootdir", str(tmp_path), str(tmp_path / "test_sample.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("require_all", [False, True])
def test_complete_install_passes_and_other_skips_stay_skips(tmp_path: Path, require_all: bool) -> None:
    res = run_pytest(tmp_path, require_all=require_all)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2 passed, 1 skipped" in res.stdout


def test_missing_module_fails_the_test_that_skipped_for_it(tmp_path: Path) -> None:
    res = run_pytest(tmp_path, require_all=True, no_dlib=True)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "FAILED test_sample.py::test_needs_dlib" in res.stdout
    assert "skipped because dlib is missing" in res.stdout
    assert "1 failed, 1 passed, 1 skipped" in res.stdout


def test_missing_program_fails_the_test_and_the_run(tmp_path: Path) -> None:
    res = run_pytest(tmp_path, require_all=True, no_tesseract=True)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "test_sample.py::test_needs_tesseract" in res.stdout and "tesseract is missing" in res.stdout
    assert "missing dependencies" in res.stdout and "apt-get install tesseract-ocr" in res.stdout


def test_without_the_variable_a_missing_dependency_only_skips(tmp_path: Path) -> None:
    res = run_pytest(tmp_path, require_all=False, no_dlib=True, no_tesseract=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "3 skipped" in res.stdout
