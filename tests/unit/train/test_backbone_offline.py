"""The pretrained backbone every training task starts from is read from disk, never fetched."""

from __future__ import annotations

import socket

import pytest
import torch

from pixsight.train.backbone import EffNetLite0Backbone


def test_pretrained_weights_load_with_the_network_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the pretrained backbone tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    pretrained = EffNetLite0Backbone(pretrained=True)
    scratch = EffNetLite0Backbone(pretrained=False)
    stem_pre = pretrained.net._conv_stem.weight
    # the packaged ImageNet weights were loaded (the stem differs from a random init)
    assert not torch.allclose(stem_pre, scratch.net._conv_stem.weight)
    feats = pretrained(torch.zeros(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == [40, 112, 320]
