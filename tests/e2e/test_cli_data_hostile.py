"""`pixsight data validate` / `data convert` on hostile dataset files: a clear one-line error
naming the file and the record, exit code 1, no traceback, and no hang (security review,
issue 9, items 3 and 5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import run_cli

_TIMEOUT = 60  # seconds; a regression fails here instead of hanging the suite


def _alias_bomb(folder: Path) -> Path:
    """A ~700-byte data.yaml whose nested aliases expand to 9**9 strings."""
    folder.mkdir(parents=True)
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    prev = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
        prev = name
    lines.append("names: *i")
    path = folder / "data.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _coco(path: Path, *, width: str = "8", segmentation: str = "[[0, 0, 4, 0, 4, 4]]") -> Path:
    """A one-image, one-annotation COCO file with ``width`` and ``segmentation`` spliced in raw."""
    path.write_text(
        '{"images": [{"id": 1, "file_name": "a.png", "width": ' + width + ', "height": 6}], '
        '"categories": [{"id": 1, "name": "cat"}], '
        '"annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 4, 4], '
        '"segmentation": ' + segmentation + "}]}")
    return path


def _clean_failure(proc, *needles: str) -> None:
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text
    assert "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in text, text


def test_yaml_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    path = _alias_bomb(tmp_path / "bomb")
    assert path.stat().st_size < 1000
    proc = run_cli("data", "validate", str(tmp_path / "bomb"), timeout=_TIMEOUT)
    _clean_failure(proc, "data.yaml", "aliases")
    proc = run_cli("data", "convert", str(path), str(tmp_path / "out"), "--to", "coco", timeout=_TIMEOUT)
    _clean_failure(proc, str(path), "aliases (*a) are not allowed")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("from_args", [(), ("--from", "coco")])
def test_deeply_nested_json_names_file_and_record(tmp_path: Path, from_args: tuple[str, ...]) -> None:
    path = _coco(tmp_path / "deep.json", segmentation="[" * 100_000 + "]" * 100_000)
    proc = run_cli("data", "validate", str(path), *from_args, "--no-image-check", timeout=_TIMEOUT)
    _clean_failure(proc, "deep.json", "annotations[0].segmentation", "nested more than")
    proc = run_cli("data", "convert", str(path), str(tmp_path / "out"), "--to", "yolo", *from_args,
                   timeout=_TIMEOUT)
    _clean_failure(proc, str(path), "annotations[0].segmentation", "nested more than")
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("from_args", [(), ("--from", "coco")])
def test_huge_integer_names_file_and_record(tmp_path: Path, from_args: tuple[str, ...]) -> None:
    path = _coco(tmp_path / "big.json", width="9" * 5000)
    proc = run_cli("data", "validate", str(path), *from_args, "--no-image-check", timeout=_TIMEOUT)
    _clean_failure(proc, "big.json", "images[0].width", "5000 digits")
    assert "no problems found" not in proc.stdout
    proc = run_cli("data", "convert", str(path), str(tmp_path / "out"), "--to", "yolo", *from_args,
                   timeout=_TIMEOUT)
    _clean_failure(proc, str(path), "images[0].width", "5000 digits")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_rle_counts_past_uint32_name_file_and_record(tmp_path: Path) -> None:
    rle = {"size": [2**20, 2**20], "counts": [2**40]}  # sums to height*width, but past uint32
    path = _coco(tmp_path / "rle.json", segmentation=json.dumps(rle))
    proc = run_cli("data", "validate", str(path), "--no-image-check", timeout=_TIMEOUT)
    _clean_failure(proc, "rle.json", "annotations[0]", "RLE counts", "32 bits")
    proc = run_cli("data", "convert", str(path), str(tmp_path / "out"), "--to", "yolo", timeout=_TIMEOUT)
    _clean_failure(proc, str(path), "annotations[0]", "RLE counts", "32 bits")
    assert len(proc.stderr.strip().splitlines()) == 1
