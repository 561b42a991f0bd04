"""``pixsight models ...`` through the argparse wiring that cli/main.py uses."""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.server
import json
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pixsight.cli.models import register


def colour_model(path: Path) -> Path:
    """(N, 3, 16, 16) -> (N, 3) logits: the mean of each colour channel."""
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image", "axes"], ["logits"], keepdims=0)],
        "colour",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
        initializer=[numpy_helper.from_array(np.array([2, 3], np.int64), "axes")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="pixsight")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return args.func(args)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXSIGHT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path / "home"


def test_list_json_has_every_column_a_user_needs(home, capsys):
    assert run_cli("models", "list", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    for row in rows:
        assert {"name", "task", "backend", "license", "origin", "size_bytes", "available", "reason", "hint"} <= set(row)
        assert row["available"] or row["hint"], f"{row['name']} is unavailable without a hint"


def test_add_list_show_remove_round_trip(home, tmp_path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("red\ngreen\nblue\n")
    model = colour_model(tmp_path / "colours.onnx")
    assert run_cli("models", "add", str(model), "--task", "classify", "--labels", str(labels), "--name", "colours") == 0
    assert "added colours@" in capsys.readouterr().out

    assert run_cli("models", "list", "--task", "classify", "--json") == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["colours"]["user"] and rows["colours"]["available"]
    assert rows["colours"]["size_bytes"] == model.stat().st_size

    assert run_cli("models", "list") == 0
    table = capsys.readouterr().out
    assert "colours" in table and "classify" in table

    assert run_cli("models", "show", "colours", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["preprocess"]["size"] == [16, 16] and shown["weights"][0]["location"] == str(model)

    assert run_cli("models", "remove", "colours") == 0
    capsys.readouterr()
    assert run_cli("models", "show", "colours") == 1
    assert "error: unknown model 'colours'" in capsys.readouterr().err


def test_errors_are_one_line_on_stderr_without_traceback(home, tmp_path, capsys):
    model = colour_model(tmp_path / "m.onnx")
    assert run_cli("models", "add", str(model), "--task", "classify", "--labels", str(tmp_path / "none.txt")) == 1
    err = capsys.readouterr().err
    assert "error: " in err and "none.txt" in err and "Traceback" not in err and err.count("\n") == 1


def test_usage_errors_exit_2(home, capsys):
    with pytest.raises(SystemExit) as info:
        run_cli("models", "add", "x.onnx", "--task", "classify", "--mean", "a,b,c")
    assert info.value.code == 2


def test_pull_downloads_and_refuses_a_wrong_checksum(home, tmp_path, monkeypatch, capsys):
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    www = tmp_path / "www"
    www.mkdir()
    (www / "w.onnx").write_bytes(b"weights" * 100)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/w.onnx"
    try:
        registry = home / "models" / "registry.json"
        registry.parent.mkdir(parents=True)
        good = hashlib.sha256(b"weights" * 100).hexdigest()
        entries = [
            {"name": n, "task": "classify", "backend": "onnx", "version": "1",
             "weights": [{"kind": "url", "location": url, "sha256": sha}]}
            for n, sha in (("good", good), ("bad", "f" * 64))
        ]
        registry.write_text(json.dumps({"version": 1, "models": entries}))
        assert run_cli("models", "pull", "good") == 0
        assert "verified" in capsys.readouterr().out
        assert run_cli("models", "pull", "bad") == 1
        assert "checksum mismatch" in capsys.readouterr().err
        assert not (home / "models" / "downloads" / ("f" * 64)).exists()
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_wired_into_the_pixsight_command(home, capsys):
    from pixsight.cli.main import main

    assert main(["models", "list", "--json"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out), list)
    assert main(["models", "show", "no-such-model"]) == 1
    assert "unknown model 'no-such-model'" in capsys.readouterr().err
