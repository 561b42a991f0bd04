"""Build the bundled examples (no network): real photos from scikit-image's sample data and
a phone-photo-style document rendered with known text.

    python examples/make_examples.py examples/generated

Writes a few JPEG/PNG files with the oddities real folders have (an EXIF-rotated JPEG, a
grayscale scan), plus `document_photo.jpg` and its ground truth `document_photo.txt`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

DOCUMENT_TEXT = (
    "Field notes, 25 November 2026\n\n"
    "The survey team photographed forty-two sample plots along the northern ridge. "
    "Each plot was marked with a numbered stake and measured twice.\n\n"
    "Soil moisture was highest near the stream (31 percent) and lowest on the exposed "
    "slope (9 percent). Three plots need a second visit before the report is final."
)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    photos = {
        "cat.jpg": data.chelsea(),
        "astronaut.jpg": data.astronaut(),
        "coffee.jpg": data.coffee(),
        "rocket.jpg": data.rocket(),
        "motorcycle.png": data.stereo_motorcycle()[0],
    }
    for name, pixels in photos.items():
        Image.fromarray(pixels).save(out / name, quality=92)
    # A phone photo saved sideways with an EXIF orientation tag (rotate 90 CW to view).
    sideways = Image.fromarray(data.astronaut()).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways.save(out / "astronaut_rotated_exif.jpg", quality=90, exif=exif.tobytes())
    # A real photo of a printed page with uneven light, and a grayscale camera shot.
    Image.fromarray(data.page()).save(out / "page_photo.png")
    Image.fromarray(data.camera()).save(out / "cameraman_gray.png")
    # A rendered document, photographed-style (shadow, tilt, blur, JPEG), with its text.
    from pixsight.data.documents import photograph_page, render_page

    page = render_page(DOCUMENT_TEXT, width=1100, font_size=30, seed=7, title="Ridge survey")
    photo = photograph_page(page, seed=7, lighting="mixed", strength=0.55, jpeg_quality=None)
    Image.fromarray(photo).save(out / "document_photo.jpg", quality=88)
    (out / "document_photo.txt").write_text("Ridge survey\n" + DOCUMENT_TEXT + "\n", encoding="utf-8")
    n = len([p for p in out.iterdir() if p.suffix in (".jpg", ".png")])
    print(f"wrote {n} example images to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "examples/generated"))
