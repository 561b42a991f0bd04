"""``pixsight models pull``: sha256-verified downloads from a local HTTP server."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from pixsight.core.errors import WeightsError
from pixsight.models.pull import pull
from pixsight.models.spec import ModelSpec, WeightsSource
from pixsight.models.weights import models_cache_dir, resolve_weights

PAYLOAD = b"pixsight weights " * 4096  # 68 KiB: several reads


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):  # noqa: N802
        type(self).requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):  # keep pytest output quiet
        pass


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXSIGHT_HOME", str(tmp_path / "home"))
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return tmp_path / "home"


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "model.onnx").write_bytes(PAYLOAD)
    _Handler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _spec(url: str, sha: str) -> ModelSpec:
    return ModelSpec(name="remote", task="classify", backend="onnx", version="1",
                     weights=(WeightsSource(kind="url", location=url, sha256=sha),))


def _all_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_correct_checksum_keeps_file_and_resolves(home, server):
    spec = _spec(f"{server}/model.onnx", hashlib.sha256(PAYLOAD).hexdigest())
    with pytest.raises(WeightsError, match="pixsight models pull remote"):
        resolve_weights(spec)  # nothing downloads until asked
    seen: list[tuple[int, int | None]] = []
    [path] = pull(spec, progress=lambda done, total: seen.append((done, total)))
    assert path.read_bytes() == PAYLOAD
    assert resolve_weights(spec) == path
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert [p.name for p in _all_files(models_cache_dir())] == ["model.onnx"]  # no temp file left


def test_already_present_verified_file_is_not_downloaded_again(home, server):
    spec = _spec(f"{server}/model.onnx", hashlib.sha256(PAYLOAD).hexdigest())
    pull(spec)
    assert len(_Handler.requests) == 1
    assert pull(spec)[0].read_bytes() == PAYLOAD
    assert len(_Handler.requests) == 1


def test_wrong_checksum_is_refused_and_nothing_kept(home, server):
    wrong = hashlib.sha256(b"something else").hexdigest()
    spec = _spec(f"{server}/model.onnx", wrong)
    with pytest.raises(WeightsError, match="checksum mismatch") as info:
        pull(spec)
    assert wrong in str(info.value) and hashlib.sha256(PAYLOAD).hexdigest() in str(info.value)
    assert _all_files(home) == []  # not the file, not a .part temp file
    assert not (models_cache_dir() / "downloads" / wrong).exists()
    with pytest.raises(WeightsError):
        resolve_weights(spec)


def test_tampered_local_file_is_replaced_by_a_verified_download(home, server):
    spec = _spec(f"{server}/model.onnx", hashlib.sha256(PAYLOAD).hexdigest())
    [path] = pull(spec)
    path.write_bytes(b"tampered")
    assert pull(spec)[0].read_bytes() == PAYLOAD
    assert len(_Handler.requests) == 2


def test_size_cap_stops_the_download(home, server):
    spec = _spec(f"{server}/model.onnx", hashlib.sha256(PAYLOAD).hexdigest())
    with pytest.raises(WeightsError, match="limit"):
        pull(spec, max_bytes=1000)
    assert _all_files(home) == []


def test_http_error_is_a_clear_weights_error(home, server):
    spec = _spec(f"{server}/missing.onnx", "0" * 64)
    with pytest.raises(WeightsError, match="HTTP 404"):
        pull(spec)
    assert _all_files(home) == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/model.onnx", "/etc/passwd"])
def test_non_http_schemes_are_refused(home, url):
    with pytest.raises(WeightsError, match="only http:// and https://"):
        pull(_spec(url, "0" * 64))


def test_malformed_checksum_never_names_a_folder(home, server):
    with pytest.raises(WeightsError, match="64 hex digits"):
        pull(_spec(f"{server}/model.onnx", "../../escape"))
    assert _all_files(home) == []


def test_model_without_url_sources_downloads_nothing(home):
    spec = ModelSpec(name="local", task="classify", backend="onnx", version="1",
                     weights=(WeightsSource(kind="path", location="/nonexistent.onnx"),))
    assert pull(spec) == []
