"""Report drawing primitives: panels with boxes or class maps, side by side, SVG charts."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
from PIL import Image

from pixsight.viz.panels import GREEN, RED, class_palette, draw_panel, jpeg_data_uri, side_by_side
from pixsight.viz.svg import BAR_WIDTH, HIST_HEIGHT, bar_chart_svg, histogram_svg


def test_boxes_are_drawn_scaled_in_their_colour() -> None:
    img = draw_panel(np.zeros((40, 60, 3), np.uint8), 2.0, boxes=np.array([[5, 5, 20, 15]]), colour=RED)
    px = np.asarray(img)
    assert tuple(px[10, 10]) == RED and tuple(px[20, 20]) == (0, 0, 0)  # edge at 2x: (10..40, 10..30)


def test_class_map_colours_classes_and_dims_background() -> None:
    pixels = np.full((4, 4, 3), 100, np.uint8)
    cm = np.zeros((4, 4), np.int64)
    cm[:2] = 2
    px = np.asarray(draw_panel(pixels, 1.0, class_map=cm)).astype(int)
    expected = np.round(0.3 * 100 + 0.7 * class_palette(2)[2]).astype(int)
    assert np.abs(px[0, 0] - expected).max() <= 1 and tuple(px[3, 3]) == (60, 60, 60)


def test_side_by_side_and_reencoded_jpeg() -> None:
    left = Image.new("RGB", (10, 6), GREEN)
    both = side_by_side(left, Image.new("RGB", (4, 8), RED))
    assert both.size == (22, 8) and both.getpixel((12, 0)) == (255, 255, 255)  # the white gap
    uri = jpeg_data_uri(both)
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as back:
        assert back.format == "JPEG" and back.size == (22, 8) and "exif" not in back.info


def test_bar_chart_scales_to_the_largest_value_and_escapes_labels() -> None:
    svg = bar_chart_svg({"<script>x</script>": 10, "dog": 5})
    widths = [float(w) for w in re.findall(r'class="bar"[^>]*width="([\d.]+)"', svg)]
    assert widths == [BAR_WIDTH, BAR_WIDTH / 2]
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert bar_chart_svg({}) == ""


def test_histogram_has_one_bar_per_bin_with_its_range() -> None:
    svg = histogram_svg([1, 4, 0], [0.0, 2.5, 5.0, 7.5], label="box <w>")
    heights = [float(h) for h in re.findall(r'class="hist"[^>]*height="([\d.]+)"', svg)]
    assert heights == [HIST_HEIGHT / 4, HIST_HEIGHT, 0.0]
    assert "<title>2.5 to 5: 4</title>" in svg and "max bin 4" in svg and "box &lt;w&gt; histogram" in svg
