"""`pixsight data split` and `pixsight data stats` from the outside."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from .conftest import run_cli


def test_split_in_place_then_read_back(tmp_path: Path) -> None:
    from pixsight.data.formats import read_dataset

    src = tmp_path / "shapes"
    assert run_cli("data", "synth", str(src), "--task", "detect", "--n", "30", "--seed", "4").returncode == 0
    proc = run_cli("data", "split", str(src / "train.json"), "--seed", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)["splits"]
    back = read_dataset(src / "train.json")
    counts = Counter(r.attributes["split"] for r in back.images)
    assert set(counts) == {"train", "val", "test"} and sum(counts.values()) == len(back.images) == 24
    assert counts["train"] > counts["val"] >= 1 and counts["test"] >= 1
    assert {k: v["images"] for k, v in printed.items()} == dict(counts)
    for rec in back.images:  # images untouched, still where the JSON says
        assert (src / rec.file_name).is_file()


def test_split_rewrites_class_folders_and_writes_out_in_another_format(tmp_path: Path) -> None:
    from pixsight.data.formats import read_dataset

    src = tmp_path / "c"
    assert run_cli("data", "synth", str(src), "--task", "classify", "--n", "20", "--seed", "2").returncode == 0
    (src / "synth.json").unlink()  # leave only the class folders
    proc = run_cli("data", "split", str(src), "--ratios", "0.6,0.2,0.2", "--no-near-duplicates")
    assert proc.returncode == 0, proc.stderr
    assert "train" in proc.stdout and "circle" in proc.stdout
    assert sorted(p.name for p in src.iterdir()) == ["test", "train", "val"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left
    back = read_dataset(src)
    counts = Counter(r.attributes["split"] for r in back.images)
    assert sum(counts.values()) == 20 and counts["train"] > max(counts["val"], counts["test"]) > 0
    per_class = Counter((r.label, r.attributes["split"]) for r in back.images)
    assert all(per_class[c, s] >= 1 for c in range(3) for s in ("train", "val", "test"))  # stratified

    det = tmp_path / "det"
    assert run_cli("data", "synth", str(det), "--task", "detect", "--n", "12").returncode == 0
    proc = run_cli("data", "split", str(det / "train.json"), "--out", str(tmp_path / "y"), "--format", "yolo")
    assert proc.returncode == 0, proc.stderr
    assert read_dataset(tmp_path / "y").splits() != []


def test_split_bad_ratios_is_a_usage_error(tmp_path: Path) -> None:
    proc = run_cli("data", "split", str(tmp_path), "--ratios", "0.8,x")
    assert proc.returncode == 2 and "--ratios" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("data", "split", str(tmp_path / "missing.json"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr


def test_stats_json_matches_the_synth_summary_and_html_is_safe(tmp_path: Path) -> None:
    src = tmp_path / "shapes"
    proc = run_cli("data", "synth", str(src), "--task", "detect", "--n", "20", "--seed", "3", "--json",
                   "--size", "96")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)["splits"]["train"]
    # a class name that must be escaped in HTML
    doc = json.loads((src / "train.json").read_text())
    doc["categories"][0]["name"] = "<script>alert(1)</script>"
    (src / "train.json").write_text(json.dumps(doc))
    html = tmp_path / "stats.html"
    proc = run_cli("data", "stats", str(src / "train.json"), "--json", "--html", str(html))
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    assert stats["images"] == summary["images"]
    expected = dict(summary["instances"])
    expected["<script>alert(1)</script>"] = expected.pop("circle")
    assert stats["instances_per_class"] == expected
    assert stats["instances"] == sum(expected.values())
    assert stats["image_sizes"] == {"96x96": summary["images"]}
    text = html.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<script>" not in text
    assert not re.search(r"https?://", text) and "<svg" in text

    proc = run_cli("data", "stats", str(src / "train.json"))  # the table
    assert proc.returncode == 0 and "<script>alert(1)</script>" in proc.stdout and "instances" in proc.stdout


def test_a_synth_classify_folder_is_detected_as_class_folders(tmp_path: Path) -> None:
    """synth.json (the summary beside the dataset) must not make the folder look like COCO."""
    import json

    out = tmp_path / "cls"
    assert run_cli("data", "synth", str(out), "--task", "classify", "--n", "9").returncode == 0
    proc = run_cli("data", "stats", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["images"] == 9
