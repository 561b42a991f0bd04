"""`pixsight explain` from the outside (each call starts Python + torch + pytorch-grad-cam: slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from .conftest import jsonl, run_cli, save_jpeg


@pytest.mark.slow
def test_explain_saves_one_overlay_per_image_and_reports_bad_ones(tmp_path: Path) -> None:
    from skimage import data

    cat = save_jpeg(tmp_path / "in" / "cat.jpg", data.chelsea())
    cup = save_jpeg(tmp_path / "in" / "sub" / "coffee.jpg", data.coffee())
    broken = tmp_path / "in" / "notes.jpg"
    broken.write_text("not an image")
    out = tmp_path / "out"
    proc = run_cli("explain", "efficientnet-lite0", str(cat), str(broken), str(cup), "--out", str(out), "--json")
    assert proc.returncode == 1, proc.stderr  # one image failed, the others are saved
    assert "Traceback" not in proc.stderr and "notes.jpg" in proc.stderr
    rows = {Path(r["path"]).name: r for r in jsonl(proc.stdout)}
    assert rows["notes.jpg"]["error"]["type"] == "ImageDecodeError"
    assert rows["cat.jpg"]["label"] in ("tabby", "tiger cat", "Egyptian cat")
    assert rows["coffee.jpg"]["label"] == "espresso" and rows["coffee.jpg"]["method"] == "gradcam"
    for name, size in (("cat.jpg", (451, 300)), ("coffee.jpg", (600, 400))):
        png = Path(rows[name]["output"])
        assert png.parent == out.resolve() and png.suffix == ".png"
        with Image.open(png) as im:
            assert im.size == size and not im.info
    assert sorted(p.suffix for p in out.iterdir()) == [".png", ".png"]


@pytest.mark.slow
def test_explain_a_requested_class_in_text_mode(tmp_path: Path) -> None:
    from skimage import data

    cat = save_jpeg(tmp_path / "cat.jpg", data.chelsea())
    proc = run_cli("explain", "efficientnet-lite0", str(cat), "--target", "tabby", "--method", "eigencam",
                   "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    assert "tabby" in proc.stdout and "[eigencam]" in proc.stdout and str(tmp_path / "o") in proc.stdout
    assert len(list((tmp_path / "o").glob("cat-*-eigencam.png"))) == 1


@pytest.mark.slow
def test_usage_errors_exit_2_without_traceback(tmp_path: Path) -> None:
    img = tmp_path / "a.jpg"
    Image.new("RGB", (8, 8)).save(img)
    cases = [
        (("explain", "efficientnet-lite", str(img)), "did you mean efficientnet-lite0"),
        (("explain", str(tmp_path), str(img)), "not a run folder"),
        (("explain", "efficientnet-lite0", str(img), "--target", "tabbby"), "did you mean 'tabby'"),
        (("explain", "efficientnet-lite0", str(img), "--method", "lime"), "invalid choice"),
    ]
    for args, message in cases:
        proc = run_cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr
