"""`pixsight data validate` from the outside: exit codes, --fix, --json."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import run_cli


def _synth(tmp_path: Path) -> Path:
    from pixsight.data.synth import synth_dataset

    synth_dataset(tmp_path / "s", task="detect", n=6, seed=3, image_size=(48, 48))
    return tmp_path / "s" / "train.json"


def test_clean_dataset_exits_0_and_broken_one_exits_1_then_fix(tmp_path: Path) -> None:
    path = _synth(tmp_path)
    proc = run_cli("data", "validate", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "no problems found" in proc.stdout

    doc = json.loads(path.read_text())
    doc["annotations"][0]["bbox"] = [40, 40, 30, 30]  # clipped by --fix
    doc["annotations"][1]["image_id"] = 12345          # dropped by --fix
    doc["images"][0]["width"] = 99                     # size differs from the file: not fixable
    path.write_text(json.dumps(doc))
    proc = run_cli("data", "validate", str(path))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "annotations[1]" in proc.stdout and "image_id 12345 is not in images" in proc.stdout
    assert "3 errors" in proc.stdout

    out = tmp_path / "fixed.json"
    proc = run_cli("data", "validate", str(path), "--fix", "--out", str(out), "--json")
    assert proc.returncode == 1, proc.stderr  # the size mismatch remains
    report = json.loads(proc.stdout)
    assert report["errors"] == 3 and report["fixable"] == 2 and report["remaining"] == 1
    assert len(report["fixed"]["clipped"]) == 1 and len(report["fixed"]["dropped"]) == 1
    assert json.loads(path.read_text()) == doc  # --out leaves SRC alone

    doc["images"][0]["width"] = 48
    path.write_text(json.dumps(doc))
    proc = run_cli("data", "validate", str(path.parent))  # train.json and val.json: which one?
    assert proc.returncode == 2 and "holds 2 COCO JSON files" in proc.stderr
    (path.parent / "val.json").unlink()
    proc = run_cli("data", "validate", str(path.parent), "--fix")  # a folder with one COCO JSON, in place
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 boxes clipped, 1 annotations dropped; 0 problems remain" in proc.stdout
    proc = run_cli("data", "validate", str(path), "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["ok"] is True


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    path = _synth(tmp_path)
    proc = run_cli("data", "validate", str(path), "--out", str(tmp_path / "x.json"))
    assert proc.returncode == 2 and "--out needs --fix" in proc.stderr
    proc = run_cli("data", "validate", str(tmp_path / "missing.json"))
    assert proc.returncode == 2 and "no such file" in proc.stderr
    from pixsight.data.formats import read_dataset, write_dataset

    yolo = write_dataset(read_dataset(path), tmp_path / "yolo", "yolo")
    proc = run_cli("data", "validate", str(yolo))
    assert proc.returncode == 0 and "(yolo)" in proc.stdout and "no problems found" in proc.stdout
    proc = run_cli("data", "validate", str(tmp_path / "yolo" / "data.yaml"), "--from", "voc")
    assert proc.returncode == 1 and "no Annotations/ folder" in proc.stdout
    (tmp_path / "junk").mkdir()
    proc = run_cli("data", "validate", str(tmp_path / "junk"))
    assert proc.returncode == 2 and "not a dataset pixsight recognises" in proc.stderr
    assert "Traceback" not in proc.stderr
