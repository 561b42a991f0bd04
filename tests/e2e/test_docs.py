"""The documentation site builds in MkDocs strict mode: no broken link between pages, no
link to a missing anchor, no page in the navigation that does not exist. ``make docs`` runs
the same build. The README's links must resolve inside the repository."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
                           "--site-dir", str(site)], capture_output=True, text=True, timeout=300)


def test_docs_build_in_strict_mode(tmp_path: Path) -> None:
    result = build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stderr
    for page in ("index.html", "architecture.html", "cli.html", "benchmarks.html"):
        assert (tmp_path / "site" / page).is_file(), page
    assert "pixsight analyze" in (tmp_path / "site" / "cli.html").read_text(encoding="utf-8")


def test_strict_build_fails_on_a_broken_link(tmp_path: Path) -> None:
    """The check above can fail: the same configuration refuses a page with a dead link."""
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    (tmp_path / "docs" / "index.md").write_text("# Home\n\nSee [the guide](no-such-page.md).\n")
    result = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    assert "no-such-page.md" in result.stderr


def test_readme_links_stay_inside_the_repository() -> None:
    """The README is read by people who only have this repository: each relative link it
    makes resolves to a file or folder of the repository itself."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a URL or an anchor on the same page
        path = (ROOT / target.split("#")[0]).resolve()
        if not path.is_relative_to(ROOT) or not path.exists():
            broken.append(target)
    assert broken == []
