"""Validation of YOLO, VOC, CVAT, Label Studio and class folders: one malformed thing at a time,
the exact problem it gives (file, record, message, fix), and all of them at once."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from pixsight.data.dataset import Annotation, Dataset, ImageRecord
from pixsight.data.formats import write_dataset
from pixsight.data.validate import validate_dataset


def base_dataset(root: Path) -> Dataset:
    """a.png: cat [5,5,15,15], dog [20,10,30,20]; b.png: cat [1,1,10,10]; both 40x30."""
    root.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), (200, 30, 30)).save(root / "a.png")
    Image.new("RGB", (40, 30), (30, 200, 30)).save(root / "b.png")
    return Dataset(root, ["cat", "dog"], [
        ImageRecord("a.png", 40, 30, [Annotation(0, [5, 5, 15, 15]), Annotation(1, [20, 10, 30, 20])]),
        ImageRecord("b.png", 40, 30, [Annotation(0, [1, 1, 10, 10])]),
    ])


def bomb_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def make(tmp_path: Path, fmt: str) -> Path:
    """A clean dataset in ``fmt``; returns the folder."""
    out = tmp_path / fmt
    write_dataset(base_dataset(tmp_path / "src"), out, fmt)
    return out


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (old, text)
    path.write_text(text.replace(old, new, 1))


def edit_json(path: Path, change: Callable[[list], None]) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def problems(folder: Path, fmt: str) -> list[tuple[str, str, str, str | None]]:
    """(file relative to the folder, record, message, fix) of every problem."""
    report = validate_dataset(folder, fmt=fmt)
    out = []
    for p in report.problems:
        try:
            rel = Path(p.file).resolve().relative_to(folder.resolve()).as_posix()
        except ValueError:
            rel = p.file
        out.append((rel, p.record, p.message, p.fix))
    return out


@pytest.mark.parametrize("fmt", ["yolo", "voc", "cvat", "labelstudio", "coco"])
def test_a_clean_dataset_has_no_problems(tmp_path: Path, fmt: str) -> None:
    report = validate_dataset(make(tmp_path, fmt))
    assert report.ok, report.problems
    assert (report.images, report.annotations, report.categories) == (2, 3, 2)


# --- YOLO -------------------------------------------------------------------------------
YOLO_LINE = "0 0.25 0.3333333333 0.25 0.3333333333"  # cat [5,5,15,15] on 40x30
YOLO_CASES = [  # (label file content of a.txt, expected problem)
    ("0 0.5 0.5 0.2", ("line 1", "expected 4 box values or 3+ polygon points after the class, got 3 values", None)),
    ("x 0.5 0.5 0.2 0.2", ("line 1", "class id must be an int, got 'x'", None)),
    ("0 0.5 0.5 a 0.2", ("line 1", "coordinates must be numbers, got '0.5 0.5 a 0.2'", None)),
    ("5 0.5 0.5 0.2 0.2", ("line 1", "class id 5 is not in names (0..1)", "drop")),
    ("0 nan 0.5 0.2 0.2", ("line 1", "box has a non-finite value: [nan, 0.5, 0.2, 0.2]", "drop")),
    ("0 0.5 0.5 0 0.2", ("line 1", "box [20.0, 12.0, 20.0, 18.0] has zero or negative size", "drop")),
    ("0 0.95 0.5 0.2 0.2", ("line 1", "box [34.0, 12.0, 42.0, 18.0] is outside the 40x30 image", "clip")),
    ("0 1.5 0.5 0.2 0.2", ("line 1", "box [56.0, 12.0, 64.0, 18.0] is outside the 40x30 image (nothing left inside)",
                           "drop")),
    ("0 0.1 0.1 0.5 0.1 0.5", ("line 1", "expected 4 box values or 3+ polygon points after the class, got 5 values",
                               None)),
    ("0 -0.1 0.1 0.5 0.1 0.5 0.5", ("line 1", "polygon [-4.0, 3.0, 20.0, 15.0] is outside the 40x30 image", "clip")),
    (f"{YOLO_LINE}\n{YOLO_LINE}", ("line 2", "duplicate of line 1", "drop")),
]


@pytest.mark.parametrize(("content", "expected"), YOLO_CASES, ids=[c[1][1] for c in YOLO_CASES])
def test_yolo_label_line_problems(tmp_path: Path, content: str, expected: tuple) -> None:
    folder = make(tmp_path, "yolo")
    (folder / "labels" / "a.txt").write_text(content + "\n")
    assert problems(folder, "yolo") == [("labels/a.txt", *expected)]


@pytest.mark.parametrize(("change", "expected"), [
    ("missing image", ("labels/b.txt", "file", "label file has no image (it is ignored)", None)),
    ("corrupt image", ("images/b.png", "image", "unreadable image images/b.png: not a recognised image (allowed: "
                                                 "JPEG, MPO, PNG, GIF, WEBP, BMP, TIFF, PPM)", None)),
    ("truncated png", ("images/b.png", "image", "unreadable image images/b.png: cannot decode image: file is truncated",
                       None)),
    ("bomb", ("images/b.png", "image", "unreadable image images/b.png: Image size (900000000 pixels) exceeds limit",
              None)),
    ("no names", ("data.yaml", "names", "missing key 'names'", None)),
])
def test_yolo_file_problems(tmp_path: Path, change: str, expected: tuple) -> None:
    folder = make(tmp_path, "yolo")
    img = folder / "images" / "b.png"
    if change == "missing image":
        img.unlink()
    elif change == "corrupt image":
        img.write_bytes(b"this is not an image")
    elif change == "truncated png":
        img.write_bytes(img.read_bytes()[:-20])
    elif change == "bomb":
        img.write_bytes(bomb_png())
    else:
        (folder / "data.yaml").write_text("path: .\ntrain: images\n")
    got = problems(folder, "yolo")
    assert len(got) == 1 and got[0][:2] == expected[:2] and got[0][2].startswith(expected[2]) and got[0][3] is None, got


def test_yolo_every_problem_is_reported_not_only_the_first(tmp_path: Path) -> None:
    folder = make(tmp_path, "yolo")
    (folder / "labels" / "a.txt").write_text("5 0.5 0.5 0.2 0.2\n0 0.5 0.5 0 0.2\n0 0.95 0.5 0.2 0.2\n")
    (folder / "labels" / "b.txt").write_text("x 0.5 0.5 0.2 0.2\n")
    got = problems(folder, "yolo")
    assert [(f, r, fix) for f, r, _, fix in got] == [
        ("labels/a.txt", "line 1", "drop"), ("labels/a.txt", "line 2", "drop"), ("labels/a.txt", "line 3", "clip"),
        ("labels/b.txt", "line 1", None)]


# --- Pascal VOC ---------------------------------------------------------------------------
VOC_CASES = [  # (old, new in Annotations/a.xml, expected)
    ("<xmax>15</xmax>", "<xmax>50</xmax>", ("object[0]", "box [5.0, 5.0, 50.0, 15.0] is outside the 40x30 image", "clip")),
    ("<xmin>5</xmin>", "<xmin>15</xmin>", ("object[0]", "box [15.0, 5.0, 15.0, 15.0] has zero or negative size", "drop")),
    ("<name>cat</name>", "<name>lion</name>", ("object[0]", "class 'lion' is not in labels.txt", "drop")),
    ("<xmin>5</xmin>", "<xmin>abc</xmin>", ("object[0]", "<xmin> must be a number, got 'abc'", None)),
    ("<xmin>5</xmin>", "<xmin>nan</xmin>", ("object[0]", "box has a non-finite value: [nan, 5.0, 15.0, 15.0]", "drop")),
    ("<xmin>5</xmin>", "", ("object[0]", "missing <xmin>", None)),
    ("<name>cat</name>", "<name>cat</name><difficult>2</difficult>", ("object[0]", "<difficult> must be 0 or 1, got '2'",
                                                                      None)),
    ("<width>40</width>", "<width>50</width>", ("annotation", "size in <size> is 50x30 but a.png is 40x30", None)),
    ("<filename>a.png</filename>", "<filename>../a.png</filename>",
     ("annotation", "file_name '../a.png' must be relative and stay inside the dataset folder", None)),
    ("<annotation>", "<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><annotation>",
     ("file", "unsafe XML refused (DTDForbidden): DTDs, entities and external references are not allowed", None)),
]


@pytest.mark.parametrize(("old", "new", "expected"), VOC_CASES, ids=[c[2][1][:40] for c in VOC_CASES])
def test_voc_problems(tmp_path: Path, old: str, new: str, expected: tuple) -> None:
    folder = make(tmp_path, "voc")
    edit(folder / "Annotations" / "a.xml", old, new)
    assert problems(folder, "voc") == [("Annotations/a.xml", *expected)]


def test_voc_missing_image_and_duplicate_file_and_all_at_once(tmp_path: Path) -> None:
    folder = make(tmp_path, "voc")
    (folder / "JPEGImages" / "a.png").unlink()
    edit(folder / "Annotations" / "b.xml", "<filename>b.png</filename>", "<filename>a.png</filename>")
    edit(folder / "Annotations" / "b.xml", "<xmax>10</xmax>", "<xmax>99</xmax>")
    assert problems(folder, "voc") == [
        ("Annotations/a.xml", "annotation", "image file not found: a.png", None),
        ("Annotations/b.xml", "object[0]", "box [1.0, 1.0, 99.0, 10.0] is outside the 40x30 image", "clip"),
        ("Annotations/b.xml", "annotation", "a.png is already described by a.xml", None),
        ("Annotations/b.xml", "annotation", "image file not found: a.png", None),
    ]


# --- CVAT ---------------------------------------------------------------------------------
CVAT_CASES = [  # (old, new in annotations.xml, expected)
    ('xbr="15"', 'xbr="50"', ("image[0] box[0]", "box [5.0, 5.0, 50.0, 15.0] is outside the 40x30 image", "clip")),
    ('xtl="5"', 'xtl="15"', ("image[0] box[0]", "box [15.0, 5.0, 15.0, 15.0] has zero or negative size", "drop")),
    ('<box label="cat"', '<box label="lion"', ("image[0] box[0]", "label 'lion' is not in the meta labels", "drop")),
    ('xtl="5"', 'xtl="abc"', ("image[0] box[0]", "xtl must be a number, got 'abc'", None)),
    ('xtl="5"', 'xtl="nan"', ("image[0] box[0]", "box has a non-finite value: [nan, 5.0, 15.0, 15.0]", "drop")),
    ('<box label="cat" occluded="0" xtl="5" ytl="5" xbr="15" ybr="15"', '<polygon label="cat" points="1,1;5,5"',
     ("image[0] polygon[0]", "a polygon needs at least 3 points, got 2", "drop")),
    ('<box label="cat" occluded="0" xtl="5" ytl="5" xbr="15" ybr="15"', '<polygon label="cat" points="1,1;5;5,5"',
     ("image[0] polygon[0]", "points must be 'x,y;x,y;...', got '1,1;5;5,5'", None)),
    ('width="40"', 'width="50"', ("image[0]", "size in the XML is 50x30 but a.png is 40x30", None)),
    ('width="40"', 'width="-4"', ("image[0]", "width must be a positive integer, got '-4'", None)),
    ('name="b.png"', 'name="a.png"', ("image[1]", "duplicate image name a.png (also image[0])", None)),
    ('id="1"', 'id="0"', ("image[1]", "duplicate image id 0 (also image[0])", None)),
]


@pytest.mark.parametrize(("old", "new", "expected"), CVAT_CASES, ids=[c[2][1][:40] for c in CVAT_CASES])
def test_cvat_problems(tmp_path: Path, old: str, new: str, expected: tuple) -> None:
    folder = make(tmp_path, "cvat")
    edit(folder / "annotations.xml", old, new)
    assert problems(folder, "cvat") == [("annotations.xml", *expected)]


# --- Label Studio ---------------------------------------------------------------------------
def _value(task: int, result: int, **changes: object) -> Callable[[list], None]:
    def change(doc: list) -> None:
        res = doc[task]["annotations"][0]["result"][result]
        for k, v in changes.items():
            if k in ("original_width", "original_height"):
                for r in doc[task]["annotations"][0]["result"]:
                    r[k] = v
            else:
                res["value"][k] = v
    return change


LS_CASES = [  # (change, expected)
    (_value(0, 0, x=90), ("tasks[0] result[0]", "rectangle [90.0, 16.667, 115.0, 50.0] is outside the image (0..100 %)",
                          "clip")),
    (_value(0, 0, width=0), ("tasks[0] result[0]", "rectangle [12.5, 16.667, 12.5, 50.0] has zero or negative size",
                             "drop")),
    (_value(0, 0, x=float("nan")), ("tasks[0] result[0]", "rectangle has a non-finite value: [nan, 16.667, nan, 50.0]",
                                    "drop")),
    (_value(0, 0, x="abc"), ("tasks[0] result[0]", "value.x must be a number, got 'abc'", None)),
    (_value(0, 0, rectanglelabels=["lion"]), ("tasks[0] result[0]", "class 'lion' is not in classes.txt", "drop")),
    (_value(0, 0, rectanglelabels=[]), ("tasks[0] result[0]", "value.rectanglelabels must hold exactly one label name, "
                                                               "got []", None)),
    (_value(0, 0, rotation=30), ("tasks[0] result[0]", "rotated rectangles are not supported (rotation 30)", None)),
    (_value(0, 0, original_width=50), ("tasks[0]", "size in original_width/height is 50x30 but a.png is 40x30", None)),
    (lambda doc: doc[0]["annotations"][0]["result"][1].update(original_width=80),
     ("tasks[0]", "results disagree on the original size (40x30, 80x30)", None)),
    (lambda doc: doc[1]["data"].update(image=doc[0]["data"]["image"]),
     ("tasks[1]", "duplicate image a.png (also tasks[0])", None)),
    (lambda doc: doc[1].update(id=doc[0]["id"]), ("tasks[1]", "duplicate task id 1 (also tasks[0])", None)),
    (lambda doc: doc[1].pop("data"), ("tasks[1]", "missing key 'data'", None)),
    (lambda doc: doc[0]["data"].update(image="/etc/passwd"),
     ("tasks[0]", "data.image: file_name '/etc/passwd' must be relative and stay inside the dataset folder", None)),
]


@pytest.mark.parametrize(("change", "expected"), LS_CASES, ids=[c[1][1][:40] for c in LS_CASES])
def test_labelstudio_problems(tmp_path: Path, change: Callable[[list], None], expected: tuple) -> None:
    folder = make(tmp_path, "labelstudio")
    edit_json(folder / "labelstudio.json", change)
    assert problems(folder, "labelstudio") == [("labelstudio.json", *expected)]


# --- class folders ----------------------------------------------------------------------------
def _folders(tmp_path: Path) -> Path:
    root = tmp_path / "folders"
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(root / cls / "x.png")
    return root


@pytest.mark.parametrize(("change", "expected"), [
    (lambda r: (r / "cat" / "bad.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n"),
     ("error", "cat/bad.png", "image", "unreadable image cat/bad.png: PostScript/EPS (decoding it would run "
                                       "Ghostscript) is not an allowed image format")),
    (lambda r: (r / "cat" / "notes.txt").write_text("hi"),
     ("warning", "cat/notes.txt", "file", "not an image extension (ignored)")),
    (lambda r: (r / "dog" / "x.png").unlink(), ("warning", ".", "dog", "class folder has no images")),
    (lambda r: Image.new("RGB", (8, 8)).save(r / "loose.png"),
     ("warning", "loose.png", "image", "image outside a class folder (ignored)")),
])
def test_folder_problems(tmp_path: Path, change: Callable[[Path], object], expected: tuple) -> None:
    root = _folders(tmp_path)
    assert validate_dataset(root).ok
    change(root)
    report = validate_dataset(root, fmt="folders")
    got = [(p.severity, Path(p.file).relative_to(root).as_posix() or ".", p.record, p.message) for p in report.problems]
    assert got == [expected]


def test_probe_reads_png_orientation_without_decoding_and_catches_bad_crc(tmp_path: Path) -> None:
    from pixsight.core.errors import ImageDecodeError
    from pixsight.data.formats._common import image_size
    from pixsight.data.validators.common import probe_image

    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90°: width and height swap
    Image.new("RGB", (30, 20)).save(tmp_path / "r.png", exif=exif.tobytes())
    assert probe_image(tmp_path / "r.png") == image_size(tmp_path / "r.png") == (20, 30)
    data = bytearray((tmp_path / "r.png").read_bytes())
    idat = data.index(b"IDAT")
    data[idat + 6] ^= 0xFF  # flip a byte of the pixel data: the chunk's CRC no longer matches
    (tmp_path / "bad.png").write_bytes(bytes(data))
    with pytest.raises(ImageDecodeError, match="cannot decode image"):
        probe_image(tmp_path / "bad.png")
