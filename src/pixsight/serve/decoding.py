"""Every decode in the server goes through one process-wide :class:`PixelBudget` (issue 9).

The budget (``ServeSettings.decode_budget_mp``, default twice the image pixel limit) is
counted in pixels read from the image header before any pixel is decoded. A decode that
finds it spent waits up to ``decode_wait_s`` and is then answered 503 with ``Retry-After``;
an image larger than the whole budget is refused (413). Nothing is allocated past it.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from ..core.image import DecodeBusyError, ImageLimits, PixelBudget, header_pixels

__all__ = ["decode_budget", "decode_slot"]


def decode_budget(px: Any) -> PixelBudget:
    """The app's budget (made on first use when the app state has none yet)."""
    budget = getattr(px, "budget", None)
    if budget is None:
        budget = px.budget = PixelBudget(px.settings.decode_budget_pixels)
    return budget


@contextlib.contextmanager
def decode_slot(px: Any, data: bytes, *, limits: ImageLimits | None = None, name: str = "") -> Iterator[None]:
    """Hold the budget for decoding ``data`` (and using its full-size pixels) inside the block.

    An image over ``limits.max_pixels`` takes nothing: the loader refuses it before decoding.

    Raises:
        ApiError: 503 with Retry-After when the budget stays spent for ``decode_wait_s``.
        ImageTooLargeError: the image alone is larger than the whole budget.
    """
    from .auth import ApiError

    limits = limits or ImageLimits()
    pixels = header_pixels(data)
    if pixels > limits.max_pixels:
        pixels = 0
    try:
        with decode_budget(px).acquire(pixels, px.settings.decode_wait_s, name=name):
            yield
    except DecodeBusyError as err:
        if px.metrics is not None and hasattr(px.metrics, "count_rejection"):
            px.metrics.count_rejection("decode_busy")
        raise ApiError(503, "Unavailable", err.message, headers={"Retry-After": "2"}) from None
