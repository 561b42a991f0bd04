"""runner.http_protocol: the request-head caps reach uvicorn (issue 9, item 4)."""

from __future__ import annotations

import pytest

from pixsight.core.errors import ConfigError
from pixsight.serve import runner
from pixsight.serve.settings import ServeSettings


def test_defaults_and_validation(tmp_path):
    s = ServeSettings(db=tmp_path / "c.sqlite")
    assert (s.max_request_line_bytes, s.max_header_bytes) == (8 * 1024, 64 * 1024)
    with pytest.raises(ConfigError):
        ServeSettings(db=tmp_path / "c.sqlite", max_header_bytes=0)


def test_httptools_protocol_carries_the_limits(tmp_path):
    s = ServeSettings(db=tmp_path / "c.sqlite", max_request_line_bytes=1000, max_header_bytes=5000)
    kwargs = runner.http_protocol(s)
    if runner.HttpToolsProtocol is None:
        assert kwargs == {"http": "h11", "h11_max_incomplete_event_size": 5000}
        return
    cls = kwargs["http"]
    assert issubclass(cls, runner.HeadLimitedHttpToolsProtocol)
    assert (cls.max_request_line_bytes, cls.max_header_bytes) == (1000, 5000)
    assert runner.HeadLimitedHttpToolsProtocol.max_header_bytes == 64 * 1024  # the base is untouched


def test_h11_fallback(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "HttpToolsProtocol", None)
    s = ServeSettings(db=tmp_path / "c.sqlite", max_header_bytes=5000)
    assert runner.http_protocol(s) == {"http": "h11", "h11_max_incomplete_event_size": 5000}
