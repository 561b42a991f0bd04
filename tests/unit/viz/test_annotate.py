"""Overlays: what is drawn where, input safety, metadata stripping and output-path safety."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pixsight.core.image import load_image
from pixsight.core.types import Analysis, Classification, Faces, TextLines
from pixsight.viz.annotate import AnnotationError, draw_analysis, safe_output_name, save_annotated

SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


def _flat(value: int, w: int = 400, h: int = 300) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def _faces(box: list[float], landmarks: list[list[float]] | None = None) -> Faces:
    return Faces(boxes=[box], scores=[0.9], landmarks=None if landmarks is None else [landmarks])


def _changed(out: Image.Image, ref: np.ndarray, x: int, y: int, tol: int = 40) -> bool:
    got = np.asarray(out, dtype=np.int32)[y, x]
    return int(np.abs(got - ref[y, x].astype(np.int32)).max()) > tol


@pytest.mark.parametrize("background", [0, 128, 255], ids=["black", "gray", "white"])
def test_face_box_outline_is_drawn_and_visible_on_any_background(background: int) -> None:
    img = _flat(background)
    a = Analysis(path="x.jpg", width=400, height=300, results={"faces": _faces([100, 80, 200, 180])})
    out = draw_analysis(img, a)
    assert out.size == (400, 300) and out.mode == "RGB"
    for x, y in [(150, 80), (150, 180), (100, 130), (200, 130)]:  # the four edges
        assert _changed(out, img, x, y, tol=80), (x, y)
    for x, y in [(150, 130), (350, 260), (20, 280), (300, 150)]:  # inside and far away
        assert not _changed(out, img, x, y, tol=0), (x, y)


def test_landmarks_and_ocr_polygons_are_drawn() -> None:
    img = _flat(90)
    ocr = TextLines(texts=["HELLO"], scores=[0.9], boxes=[[40, 200, 260, 240]],
                    polygons=[[[40, 200], [260, 210], [258, 250], [38, 240]]])
    a = Analysis(path="x.jpg", width=400, height=300,
                 results={"faces": _faces([250, 20, 380, 150], [[290.0, 70.0], [340.0, 70.0]]), "ocr": ocr})
    out = draw_analysis(img, a)
    assert _changed(out, img, 290, 70) and _changed(out, img, 340, 70)  # landmark dots
    assert _changed(out, img, 150, 205)  # slanted top edge of the polygon
    assert _changed(out, img, 39, 220)  # left edge
    assert not _changed(out, img, 150, 228, tol=0)  # polygon interior is not filled
    assert not _changed(out, img, 315, 110, tol=0)  # face interior away from landmarks


def test_input_array_is_never_modified() -> None:
    img = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    before = img.copy()
    img.setflags(write=False)
    a = Analysis(path="x.jpg", width=160, height=120, needs_review=True,
                 results={"faces": _faces([10, 10, 100, 100], [[50.0, 50.0]]),
                          "classify": Classification(class_ids=[1], scores=[0.5], labels=["cat"])})
    out = draw_analysis(img, a)
    assert np.array_equal(img, before)
    assert not np.array_equal(np.asarray(out), before)


def test_reduced_decode_scales_boxes_to_the_smaller_image() -> None:
    small = _flat(128, w=200, h=150)  # the analysed image was 400x300
    a = Analysis(path="x.jpg", width=400, height=300, results={"faces": _faces([100, 60, 180, 120])})
    out = draw_analysis(small, a)
    assert out.size == (200, 150)
    assert _changed(out, small, 70, 30) and _changed(out, small, 50, 45)  # scaled box: 50,30,90,60
    assert not _changed(out, small, 140, 90, tol=0)  # where the unscaled bottom edge would be
    assert not _changed(out, small, 70, 45, tol=0)


def test_max_side_shrinks_output_and_keeps_boxes_in_place() -> None:
    img = _flat(128, w=800, h=600)
    a = Analysis(path="x.jpg", width=800, height=600, results={"faces": _faces([200, 200, 400, 400])})
    out = draw_analysis(img, a, max_side=400)
    assert out.size == (400, 300)
    ref = _flat(128)
    assert _changed(out, ref, 150, 100) and not _changed(out, ref, 150, 150, tol=0)


def test_top_label_banner_and_review_marker() -> None:
    img = _flat(200)
    plain = np.asarray(draw_analysis(img, Analysis(path="x.jpg", width=400, height=300)))
    assert np.array_equal(plain, img)  # nothing to draw -> unchanged pixels
    cls = Classification(class_ids=[3, 4], scores=[0.8, 0.1], labels=["tabby", "dog"])
    labelled = draw_analysis(img, Analysis(path="x.jpg", width=400, height=300, results={"classify": cls}))
    changed = np.abs(np.asarray(labelled).astype(int) - 200).max(axis=2) > 80
    assert changed[:40, :150].sum() > 500  # a dark plate with text in the top-left corner
    assert not changed[60:].any() and not changed[:, 200:].any()  # and nothing elsewhere
    review = draw_analysis(img, Analysis(path="x.jpg", width=400, height=300, needs_review=True))
    assert _changed(review, img, 200, 0) and _changed(review, img, 0, 150)  # frame
    assert _changed(review, img, 390, 10)  # marker in the top-right corner


@pytest.mark.parametrize("bad", [np.zeros((10,), np.uint8), np.zeros((4, 4, 2), np.uint8), np.zeros((0, 4, 3), np.uint8)])
def test_unusable_arrays_raise_a_typed_error(bad: np.ndarray) -> None:
    with pytest.raises(AnnotationError):
        draw_analysis(bad, Analysis(path="x.jpg"))


def _jpeg_with_gps(path: Path) -> None:
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {1: "N", 2: (52.0, 22.0, 1.5), 3: "E", 4: (4.0, 53.0, 2.0)}  # GPS IFD
    Image.fromarray(_flat(100, 64, 48)).save(path, "JPEG", exif=exif, comment=b"private note")
    assert Image.open(path).getexif().get_ifd(0x8825)  # the source really has GPS


@pytest.mark.parametrize("name", [None, "overlay.png"])
def test_written_overlay_has_no_exif_even_if_the_source_had_gps(tmp_path: Path, name: str | None) -> None:
    src = tmp_path / "in.jpg"
    _jpeg_with_gps(src)
    loaded = load_image(src)
    a = Analysis(path=str(src), width=loaded.width, height=loaded.height, results={"faces": _faces([5, 5, 30, 30])})
    out = save_annotated(loaded.pixels, a, tmp_path / "out", name=name)
    raw = out.read_bytes()
    with Image.open(io.BytesIO(raw)) as im:
        assert im.format == ("PNG" if name else "JPEG")
        assert len(im.getexif()) == 0
        assert not {"exif", "xmp", "icc_profile", "comment"} & set(im.info)
    for marker in (b"Exif", b"SecretCam", b"private note", b"eXIf", b"tEXt", b"iTXt", b"zTXt"):
        assert marker not in raw
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no temp file left behind


@pytest.mark.parametrize("path", [
    "../../etc/passwd.jpg",
    "..\\..\\Windows\\System32\\evil.jpg",
    "/abs/<script>alert(1)</script>.jpg",
    "photos/名前 ✓ café.jpeg",
    "dir/CON.jpg",
    "....",
    "",
    "a/.hidden",
    "x\x00y\n\t.jpg",
    "deep/" + "n" * 500 + ".png",
])
def test_output_stays_inside_out_dir_whatever_the_input_path(tmp_path: Path, path: str) -> None:
    out_dir = tmp_path / "a" / "b" / "out"
    p = save_annotated(_flat(50, 32, 24), Analysis(path=path), out_dir)
    assert p.parent == out_dir.resolve()
    assert SAFE_NAME.match(p.name) and len(p.name) < 120 and not p.name.startswith(".")
    assert p.is_file()
    assert [q for q in tmp_path.rglob("*") if q.is_file()] == [p]


def test_same_file_name_in_different_folders_does_not_collide(tmp_path: Path) -> None:
    img = _flat(50, 32, 24)
    p1 = save_annotated(img, Analysis(path="trip/a/IMG_0001.JPG"), tmp_path)
    p2 = save_annotated(img, Analysis(path="trip/b/IMG_0001.JPG"), tmp_path)
    assert p1 != p2 and p1.name.startswith("IMG_0001-") and len(list(tmp_path.iterdir())) == 2
    assert save_annotated(img, Analysis(path="trip/a/IMG_0001.JPG"), tmp_path) == p1  # re-runs overwrite


@pytest.mark.parametrize("name", ["../x.jpg", "sub/x.jpg", "..", "a\\b.jpg", ""])
def test_explicit_name_with_a_folder_part_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(AnnotationError):
        save_annotated(_flat(50, 32, 24), Analysis(path="x.jpg"), tmp_path / "out", name=name)
    assert not (tmp_path / "x.jpg").exists()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_safe_output_name_is_always_a_plain_safe_name(path: str) -> None:
    name = safe_output_name(path)
    assert SAFE_NAME.match(name) and name.endswith(".jpg") and not name.startswith(".")
    assert "/" not in name and ".." not in name.split("-")[0][:1]


_coord = st.floats(allow_nan=True, allow_infinity=True, width=32)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_coord, _coord, _coord, _coord), max_size=4), st.integers(8, 64), st.integers(8, 64))
def test_any_box_values_draw_without_crashing(boxes: list[tuple[float, ...]], w: int, h: int) -> None:
    faces = Faces(boxes=np.array(boxes, np.float32).reshape(-1, 4), scores=[0.5] * len(boxes))
    out = draw_analysis(np.zeros((h, w, 3), np.uint8), Analysis(path="x", width=w, height=h, results={"faces": faces}))
    assert out.size == (w, h)


@pytest.mark.parametrize(("analysed", "max_side", "expected"), [
    ((451, 300), 2048, (451, 300)),  # reduced decode -> original size
    ((1200, 900), 1000, (1000, 750)),  # capped at max_side
    ((1200, 900), None, (1200, 900)),
])
def test_saved_overlay_has_the_analysed_size_even_from_a_reduced_decode(
    tmp_path: Path, analysed: tuple[int, int], max_side: int | None, expected: tuple[int, int]
) -> None:
    w, h = analysed
    small = _flat(128, w=320, h=round(320 * h / w))
    a = Analysis(path="x.jpg", width=w, height=h, results={"faces": _faces([w * 0.25, h * 0.25, w * 0.5, h * 0.5])})
    p = save_annotated(small, a, tmp_path, max_side=max_side)
    with Image.open(p) as im:
        assert im.size == expected
        px = np.asarray(im.convert("RGB")).astype(int)
    ex, ey = expected
    assert np.abs(px[round(ey * 0.25), round(ex * 0.375)] - 128).max() > 60  # top edge, scaled right
    assert np.abs(px[round(ey * 0.375), round(ex * 0.375)] - 128).max() < 10  # box interior untouched
