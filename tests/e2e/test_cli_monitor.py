"""``pixsight monitor drift`` as a user runs it: JSONL windows, a catalog window, --json, --plot, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from skimage import data

from pixsight.core.types import Analysis, Classification, Embedding

from .conftest import run_cli, save_jpeg


def _write_window(path: Path, *, n: int, shift: float, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            v = rng.normal(size=16)
            v[0] += shift
            label = "cat" if rng.random() < (0.8 if shift else 0.3) else "dog"
            a = Analysis(path=f"{path.stem}/{i}.jpg", sha256=f"{seed}{i:063x}"[:64], results={
                "embed": Embedding(vector=v, model="m@1"),
                "classify": Classification(class_ids=[0], scores=[float(rng.uniform(0.3, 1.0))], labels=[label])})
            f.write(json.dumps(a.to_dict(with_vectors=True)) + "\n")
    return path


def test_drift_json_plot_and_exit_codes(tmp_path: Path) -> None:
    ref = _write_window(tmp_path / "ref.jsonl", n=80, shift=0.0, seed=1)
    same = _write_window(tmp_path / "same.jsonl", n=80, shift=0.0, seed=2)
    moved = _write_window(tmp_path / "moved.jsonl", n=80, shift=1.5, seed=3)
    plot = tmp_path / "drift.png"
    r = run_cli("monitor", "drift", "--reference", str(ref), "--current", str(moved), "--json", "--plot", str(plot))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["drift"] is True and out["embedding"]["p_value"] < 0.01 and out["labels"]["psi"] >= 0.2
    assert plot.read_bytes()[:4] == b"\x89PNG"
    r = run_cli("monitor", "drift", "--reference", str(ref), "--current", str(moved), "--fail-on-drift")
    assert r.returncode == 1 and "DRIFT" in r.stdout and "MMD" in r.stdout
    r = run_cli("monitor", "drift", "--reference", str(ref), "--current", str(same), "--json", "--fail-on-drift")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["drift"] is False


def test_user_mistakes_exit_2_without_traceback(tmp_path: Path) -> None:
    ref = _write_window(tmp_path / "ref.jsonl", n=20, shift=0.0, seed=1)
    tiny = _write_window(tmp_path / "tiny.jsonl", n=3, shift=0.0, seed=2)
    novec = tmp_path / "novec.jsonl"
    novec.write_text("".join(json.dumps({**json.loads(line), "embed": {"dim": 16, "model": "m@1"}}) + "\n"
                             for line in ref.read_text().splitlines()))
    (tmp_path / "empty").mkdir()
    save_jpeg(tmp_path / "imgs" / "a.jpg", data.astronaut()[:64, :64])
    cases = [
        (["--current", str(tmp_path / "nope")], "no such file"),
        (["--current", str(tiny)], "at least 10"),
        (["--current", str(novec)], "no embeddings"),
        (["--current", str(tmp_path / "empty")], "no image files"),
        (["--current", str(tmp_path / "imgs")], "catalog"),  # images, but no catalog holds them
        (["--current", str(ref), "--alpha", "2"], "--alpha"),
    ]
    for extra, message in cases:
        r = run_cli("monitor", "drift", "--reference", str(ref), *extra, "--db", str(tmp_path / "none.sqlite"))
        assert r.returncode == 2, (extra, r.stdout, r.stderr)
        assert message in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_folder_windows_from_the_catalog(tmp_path: Path) -> None:
    db = tmp_path / "cat.sqlite"
    rng = np.random.default_rng(0)
    photo = data.astronaut()
    for i in range(24):
        y, x = rng.integers(0, 300, size=2)
        crop = photo[y:y + 160, x:x + 160]
        save_jpeg(tmp_path / "ref" / f"{i}.jpg", crop)
        save_jpeg(tmp_path / "cur" / f"{i}.jpg", (crop * 0.3).astype(np.uint8)[::4, ::4].repeat(4, 0).repeat(4, 1))
    r = run_cli("analyze", str(tmp_path / "ref"), str(tmp_path / "cur"), "--tasks", "classify,embed", "--db", str(db))
    assert r.returncode == 0, r.stderr
    r = run_cli("monitor", "drift", "--reference", str(tmp_path / "ref"), "--current", str(tmp_path / "cur" / "*.jpg"),
                "--db", str(db), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["n_reference"] == 24 and out["n_current"] == 24 and out["drift"] is True
