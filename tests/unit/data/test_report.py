"""The dataset statistics page (``pixsight data stats --html``) over a real synthetic dataset."""

from __future__ import annotations

from pathlib import Path

from pixsight.data.ops import dataset_stats
from pixsight.data.report import write_stats_html
from pixsight.data.resolve import open_dataset
from pixsight.data.synth import synth_dataset


def test_stats_page_shows_classes_splits_and_histograms(tmp_path: Path) -> None:
    synth_dataset(tmp_path / "ds", task="detect", n=12, image_size=(64, 64), seed=1)
    stats = dataset_stats(open_dataset(tmp_path / "ds" / "train.json"))
    html = write_stats_html(stats, tmp_path / "out" / "s.html", title="<i>shapes</i>").read_text(encoding="utf-8")
    assert "&lt;i&gt;shapes&lt;/i&gt;" in html and "<i>" not in html and "<script" not in html
    for name in stats["classes"]:
        assert f"<td>{name}</td>" in html
    assert html.count('class="bar"') == len(stats["classes"]) + len(stats["splits"])
    assert html.count("histogram</h2>") == sum(1 for h in stats["histograms"].values() if h) > 0
