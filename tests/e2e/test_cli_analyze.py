"""The `pixsight analyze` contract, tested from the outside (a real subprocess)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from PIL import Image

from pixsight.core.schema import validate_analysis_dict

from .conftest import jsonl, run_cli, save_jpeg

BAD = {"truncated.jpg", "empty.png", "notes.jpg", "drawing.png", "bomb.png"}


def _by_name(rows: list[dict]) -> dict[str, dict]:
    return {Path(r["path"]).name: r for r in rows}


def test_mixed_folder_bad_files_never_stop_the_run(mixed_folder: Path, tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    proc = run_cli("analyze", str(mixed_folder), "--tasks", "classify", "--db", str(db), "--jsonl", "-")
    assert proc.returncode == 1, proc.stderr  # some files failed, the rest are saved
    assert "Traceback" not in proc.stderr
    rows = _by_name(jsonl(proc.stdout))
    assert set(rows) == BAD | {"cat.jpg", "coffee.jpg"}  # readme.txt is not an image file
    for name, row in rows.items():
        validate_analysis_dict(row)
        if name in BAD:
            assert row["status"] == "error", name
            assert name in row["error"]["message"], row["error"]
        else:
            assert row["status"] == "ok" and row["error"] is None
            assert row["classify"]["labels"], row
    assert rows["bomb.png"]["error"]["type"] == "ImageTooLargeError"
    assert rows["drawing.png"]["error"]["type"] == "UnsupportedFormatError"
    assert rows["empty.png"]["error"]["type"] == "ImageDecodeError"
    assert "truncated" in rows["truncated.jpg"]["error"]["message"]
    assert "cat" in rows["cat.jpg"]["classify"]["labels"][0]["label"]
    assert rows["cat.jpg"]["width"] == 451 and rows["cat.jpg"]["height"] == 300
    # the summary table goes to stderr when stdout carries JSON Lines
    import re

    assert re.search(r"failed\W+5\W", proc.stderr), proc.stderr


def test_rerun_is_idempotent_and_duplicates_are_analysed_once(tmp_path: Path) -> None:
    from skimage import data

    d = tmp_path / "photos"
    save_jpeg(d / "a.jpg", data.chelsea())
    (d / "copy").mkdir()
    (d / "copy" / "a_again.jpg").write_bytes((d / "a.jpg").read_bytes())
    save_jpeg(d / "b.jpg", data.coffee())
    db = tmp_path / "c.sqlite"
    first = run_cli("analyze", str(d), "--tasks", "classify,embed", "--db", str(db), "--jsonl", "-")
    assert first.returncode == 0, first.stderr
    rows = jsonl(first.stdout)
    assert len(rows) == 3
    by = _by_name(rows)
    assert by["a.jpg"]["sha256"] == by["a_again.jpg"]["sha256"]
    assert by["a.jpg"]["classify"] == by["a_again.jpg"]["classify"]
    con = sqlite3.connect(db)
    counts = [con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("images", "files", "results", "embeddings")]
    assert counts == [2, 3, 4, 2]
    second = run_cli("analyze", str(d), "--tasks", "classify,embed", "--db", str(db), "--jsonl", "-")
    assert second.returncode == 0
    assert [con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("images", "files", "results", "embeddings")] == counts
    again = _by_name(jsonl(second.stdout))
    assert again["b.jpg"]["classify"] == by["b.jpg"]["classify"]
    assert again["b.jpg"]["embed"] == {"dim": 1280, "model": by["b.jpg"]["embed"]["model"]}


def test_usage_errors_exit_2_without_traceback(tmp_path: Path) -> None:
    for args in (["analyze", str(tmp_path / "missing")],
                 ["analyze", str(tmp_path), "--tasks", "classify,telepathy"],
                 ["analyze"],
                 ["nosuchcommand"]):
        proc = run_cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert "error" in proc.stderr


def test_show_and_export(tmp_path: Path) -> None:
    from skimage import data

    img = save_jpeg(tmp_path / "in" / "cat.jpg", data.chelsea())
    (tmp_path / "in" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    db = tmp_path / "c.sqlite"
    proc = run_cli("analyze", str(tmp_path / "in"), "--tasks", "classify", "--db", str(db), "--no-progress")
    assert proc.returncode == 1
    shown = run_cli("show", str(img), "--db", str(db))
    assert shown.returncode == 0, shown.stderr
    import json

    doc = json.loads(shown.stdout)
    assert "cat" in doc["classify"]["labels"][0]["label"]
    by_sha = run_cli("show", doc["sha256"][:12], "--db", str(db))
    assert json.loads(by_sha.stdout)["sha256"] == doc["sha256"]
    assert run_cli("show", "nothing-like-this", "--db", str(db)).returncode == 1
    csv_out = run_cli("export", "--format", "csv", "--db", str(db))
    assert csv_out.returncode == 0
    lines = csv_out.stdout.strip().splitlines()
    assert lines[0].startswith("path,sha256") and len(lines) == 3
    assert any("broken.jpg" in ln and ",error," in ln for ln in lines)
    out = tmp_path / "export.jsonl"
    assert run_cli("export", "--db", str(db), "-o", str(out)).returncode == 0
    rows = jsonl(out.read_text())
    assert {r["status"] for r in rows} == {"ok", "error"}
    for r in rows:
        validate_analysis_dict(r)


def test_annotate_and_report(tmp_path: Path) -> None:
    from skimage import data

    src = tmp_path / "in"
    exif = Image.Exif()
    exif[0x0112] = 1
    exif[0x8825] = {2: (48.0, 51.0, 24.0)}  # a GPS block that must not leak into overlays
    save_jpeg(src / "cat <b>.jpg", data.chelsea(), exif=exif.tobytes())
    db = tmp_path / "c.sqlite"
    proc = run_cli("analyze", str(src), "--tasks", "classify", "--db", str(db), "--annotate", str(tmp_path / "ov"),
                   "--report", str(tmp_path / "r.html"))
    assert proc.returncode == 0, proc.stderr
    overlays = list((tmp_path / "ov").iterdir())
    assert len(overlays) == 1
    with Image.open(overlays[0]) as im:
        assert im.size == (451, 300)
        assert not im.getexif()
    html = (tmp_path / "r.html").read_text()
    assert "cat &lt;b&gt;.jpg" in html and "cat <b>.jpg" not in html
    assert "data:image/jpeg;base64," in html


@pytest.mark.slow
def test_kill_9_mid_run_then_resume(tmp_path: Path) -> None:
    """SECURITY.md item 19: kill -9 mid-batch, re-run, every input exactly once."""
    import numpy as np
    import signal
    import subprocess
    import sys
    import time

    from skimage import data

    rng = np.random.default_rng(0)
    base = data.coffee()
    src = tmp_path / "many"
    n = 120
    for i in range(n):
        noisy = np.clip(base.astype(np.int16) + rng.integers(-8, 9, base.shape), 0, 255).astype(np.uint8)
        save_jpeg(src / f"img_{i:03d}.jpg", noisy)
    db = tmp_path / "c.sqlite"
    cmd = [sys.executable, "-m", "pixsight", "analyze", str(src), "--tasks", "classify,embed", "--db", str(db),
           "--batch-size", "4", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
        try:
            con = sqlite3.connect(db, timeout=1)
            done = con.execute("SELECT COUNT(*) FROM files").fetchone()[0]
            con.close()
        except sqlite3.Error:
            continue
        if done >= 12:
            break
    assert proc.poll() is None, "the run finished before it could be killed; make the input larger"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    con = sqlite3.connect(db)
    killed_at = con.execute("SELECT COUNT(*) FROM files").fetchone()[0]
    assert 0 < killed_at < n
    resumed = run_cli("analyze", str(src), "--tasks", "classify,embed", "--db", str(db), "--jsonl", "-", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    rows = jsonl(resumed.stdout)
    assert sorted(Path(r["path"]).name for r in rows) == [f"img_{i:03d}.jpg" for i in range(n)]
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT COUNT(*) FROM files").fetchone()[0] == n
    assert con.execute("SELECT COUNT(*) FROM images").fetchone()[0] == n
    assert con.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 2 * n
    assert con.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] == n
    assert "already in catalog" in resumed.stderr


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").exists(), reason="needs /proc")
def test_kill_9_leaves_no_worker_process_behind(tmp_path: Path) -> None:
    """The faces stage runs in a child process; killing the analyzer must not orphan it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from skimage import data

    src = tmp_path / "faces"
    for i in range(30):
        save_jpeg(src / f"a{i}.jpg", data.astronaut()[i:, :])
    proc = subprocess.Popen([sys.executable, "-m", "pixsight", "analyze", str(src), "--tasks", "faces",
                             "--db", str(tmp_path / "c.sqlite"), "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    kids: list[int] = []
    while time.time() < deadline and proc.poll() is None and not kids:
        time.sleep(0.2)
        kids = _children(proc.pid)
    if not kids:
        from pixsight.models.runtime import default_threads

        if default_threads() <= 1:  # one core: the faces stage runs in-process, no worker to orphan
            pytest.skip("a single CPU core: the analyzer starts no worker process")
        proc.kill()
        pytest.fail("the analyzer started no worker process for the faces stage on a multi-core machine")
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    alive = kids
    while time.time() < deadline and alive:
        time.sleep(0.2)
        alive = [k for k in kids if Path(f"/proc/{k}").exists()
                 and Path(f"/proc/{k}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
    for k in alive:
        os.kill(k, signal.SIGKILL)
    assert not alive, f"worker processes {alive} outlived the killed analyzer"


def test_non_utf8_file_names_are_analysed_and_escaped(tmp_path: Path) -> None:
    """Linux file names are bytes; a Latin-1 name must not crash JSON, SQLite or HTML."""
    import json
    import os

    from skimage import data

    d = tmp_path / "names"
    d.mkdir()
    weird = os.fsdecode(bytes(d) + b"/caf\xe9.jpg")
    Image.fromarray(data.chelsea()).save(weird, "JPEG")
    save_jpeg(d / "ünïcödé.jpg", data.coffee())
    db = tmp_path / "c.sqlite"
    proc = run_cli("analyze", str(d), "--tasks", "classify", "--db", str(db), "--jsonl", "-",
                   "--annotate", str(tmp_path / "ov"), "--report", str(tmp_path / "r.html"))
    assert proc.returncode == 0, proc.stderr
    names = sorted(Path(r["path"]).name for r in jsonl(proc.stdout))
    assert names == ["caf\\xe9.jpg", "ünïcödé.jpg"]
    assert len(list((tmp_path / "ov").iterdir())) == 2
    assert "caf\\xe9.jpg" in (tmp_path / "r.html").read_text(encoding="utf-8")
    for key in (str(d / "caf\\xe9.jpg"), weird):  # as printed, and the real name typed in a shell
        shown = run_cli("show", key, "--db", str(db))
        assert shown.returncode == 0 and "cat" in json.loads(shown.stdout)["classify"]["labels"][0]["label"]


def test_progress_bar_on_a_terminal_keeps_stdout_clean(tmp_path: Path) -> None:
    """On a terminal, stderr shows a bar with rate and ETA; stdout carries only JSON Lines."""
    import os
    import pty
    import subprocess
    import sys

    from skimage import data

    src = tmp_path / "in"
    for i in range(6):
        save_jpeg(src / f"p{i}.jpg", data.coffee()[i * 10:, :])
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "pixsight", "analyze", str(src), "--tasks", "classify",
                             "--db", str(tmp_path / "c.sqlite"), "--jsonl", "-"],
                            stdout=subprocess.PIPE, stderr=slave, env={**os.environ, "COLUMNS": "120"})
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:  # read the terminal while the CLI writes, so it never blocks on a full pty
        while True:
            try:
                block = os.read(master, 65536)
            except OSError:
                return
            if not block:
                return
            chunks.append(block)

    import threading

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    out, _ = proc.communicate(timeout=300)
    reader.join(timeout=10)
    os.close(master)
    terminal = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0
    assert len(jsonl(out.decode())) == 6  # every stdout line is JSON
    assert "img/s" in terminal and "ETA" in terminal and "6/6" in terminal
    assert "throughput" in terminal  # the summary table follows the bar
