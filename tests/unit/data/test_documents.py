"""The synthetic page renderer and "phone photo" simulator."""

from __future__ import annotations

import numpy as np
import pytest

from pixsight.data.documents import LIGHTINGS, photograph_page, render_page, sample_text


def test_sample_text_is_deterministic_and_varies_with_seed() -> None:
    assert sample_text(1) == sample_text(1)
    assert sample_text(1) != sample_text(2)
    assert len(sample_text(1, n_words=50).split()) == 50


def test_render_page_is_deterministic_rgb_and_as_wide_as_asked() -> None:
    text = sample_text(0, n_words=80)
    a = render_page(text, width=700, font_size=20, seed=4)
    b = render_page(text, width=700, font_size=20, seed=4)
    assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[1:] == (700, 3)
    np.testing.assert_array_equal(a, b)


def test_render_page_has_ink_on_paper_and_grows_with_text() -> None:
    short = render_page("One line only.", width=600, font_size=24)
    long = render_page(sample_text(0, n_words=200), width=600, font_size=24)
    assert long.shape[0] > short.shape[0]
    grey = long.mean(axis=2)
    assert np.median(grey) > 220 and grey.min() < 80  # mostly paper, some dark ink


def test_two_columns_leave_an_empty_gutter() -> None:
    page = render_page(sample_text(3, n_words=150, paragraph_every=0), width=900, font_size=18, columns=2)
    ink_per_column = (page.mean(axis=2) < 128).sum(axis=0)
    middle = ink_per_column[440:460]
    assert middle.sum() == 0 and ink_per_column[:440].sum() > 0 and ink_per_column[460:].sum() > 0


@pytest.mark.parametrize("lighting", LIGHTINGS)
def test_photograph_is_deterministic_and_keeps_shape(lighting: str) -> None:
    page = render_page(sample_text(5, n_words=60), width=500, font_size=18)
    a = photograph_page(page, seed=9, lighting=lighting)
    b = photograph_page(page, seed=9, lighting=lighting)
    c = photograph_page(page, seed=10, lighting=lighting)
    assert a.shape == page.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_gradient_lighting_makes_one_side_much_darker() -> None:
    page = np.full((400, 600, 3), 240, np.uint8)
    photo = photograph_page(page, seed=1, lighting="gradient", strength=0.7, rotate_deg=0, perspective=0,
                            noise=0, jpeg_quality=None).mean(axis=2)
    inner = photo[20:-20, 20:-20]
    assert inner.max() - inner.min() > 100
    flat = photograph_page(page, seed=1, lighting="none", rotate_deg=0, perspective=0, noise=0,
                           jpeg_quality=None).mean(axis=2)[20:-20, 20:-20]
    assert flat.max() - flat.min() < 30  # only the colour cast, no gradient


def test_grey_input_and_bad_arguments() -> None:
    page = render_page("Grey page", width=300)[..., 0]
    assert photograph_page(page, seed=0).shape == (*page.shape, 3)
    with pytest.raises(ValueError, match="lighting"):
        photograph_page(page, lighting="disco")
    with pytest.raises(ValueError, match="strength"):
        photograph_page(page, strength=2.0)
    with pytest.raises(ValueError, match="font"):
        render_page("x", font="comic")
    with pytest.raises(ValueError):
        render_page("x", width=50)
