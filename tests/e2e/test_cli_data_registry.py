"""`pixsight data import|register|list|show|remove` and dataset names/archives in other verbs."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from .conftest import run_cli


def _coco(tmp_path: Path) -> Path:
    from pixsight.data.synth import synth_dataset

    synth_dataset(tmp_path / "s", task="detect", n=6, seed=3, image_size=(48, 48))
    return tmp_path / "s" / "train.json"


def test_import_good_and_evil_archives(tmp_path: Path) -> None:
    path = _coco(tmp_path)
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as z:
        for p in sorted(path.parent.rglob("*")):
            if p.is_file() and p.name != "val.json":
                z.write(p, f"shapes/{p.relative_to(path.parent).as_posix()}")
    proc = run_cli("data", "import", str(good), str(tmp_path / "imported"), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["format"] == "coco" and out["dataset"] == str(tmp_path / "imported" / "shapes")
    proc = run_cli("data", "stats", str(good), "--json")  # an archive wherever a dataset path goes
    assert proc.returncode == 0 and json.loads(proc.stdout)["images"] > 0, proc.stderr

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("fine.txt", "x")
        z.writestr("../../outside.txt", "boom")
    proc = run_cli("data", "import", str(evil), str(tmp_path / "evil_out"))
    assert proc.returncode == 1 and "member '../../outside.txt'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "evil_out").exists() and not (tmp_path.parent / "outside.txt").exists()
    proc = run_cli("data", "import", str(good), str(tmp_path / "imported"))
    assert proc.returncode == 2 and "not empty" in proc.stderr


def test_register_list_show_and_use_by_name(tmp_path: Path) -> None:
    path = _coco(tmp_path)
    db = str(tmp_path / "c.sqlite")
    proc = run_cli("data", "register", "shapes", str(path), "--db", db)
    assert proc.returncode == 0 and "registered dataset 'shapes'" in proc.stdout, proc.stderr
    proc = run_cli("data", "register", "shapes", str(path), "--db", db)
    assert proc.returncode == 0 and "updated dataset 'shapes' (same content)" in proc.stdout
    proc = run_cli("data", "list", "--db", db, "--json")
    [entry] = json.loads(proc.stdout)
    assert entry["name"] == "shapes" and entry["format"] == "coco" and len(entry["fingerprint"]) == 64
    proc = run_cli("data", "list", "--db", db)
    assert "shapes" in proc.stdout and entry["fingerprint"][:12] in proc.stdout
    proc = run_cli("data", "show", "shapes", "--db", db, "--json")
    assert json.loads(proc.stdout)["status"] == "ok"
    proc = run_cli("data", "validate", "shapes", "--db", db)  # a name wherever a dataset path goes
    assert proc.returncode == 0 and "no problems found" in proc.stdout, proc.stdout + proc.stderr
    proc = run_cli("data", "stats", "shapes", "--json", env={"PIXSIGHT_DB": db})
    assert proc.returncode == 0 and json.loads(proc.stdout)["images"] == entry["images"], proc.stderr

    doc = json.loads(path.read_text())
    doc["annotations"].pop()
    path.write_text(json.dumps(doc))
    proc = run_cli("data", "show", "shapes", "--db", db)
    assert proc.returncode == 0 and "CHANGED" in proc.stdout and "changed since registration" in proc.stderr
    proc = run_cli("data", "show", "shapez", "--db", db)
    assert proc.returncode == 2 and "did you mean shapes" in proc.stderr
    proc = run_cli("data", "register", "bad/name", str(path), "--db", db)
    assert proc.returncode == 2 and "must be 1-64 letters" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("data", "remove", "shapes", "--db", db)
    assert proc.returncode == 0 and path.exists()
    proc = run_cli("data", "list", "--db", db)
    assert "no datasets registered" in proc.stdout
