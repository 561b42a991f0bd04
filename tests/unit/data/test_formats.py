"""Dataset formats: round-trips (hypothesis), malformed files with their exact errors, unsafe XML."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pycocotools import mask as mask_utils

from pixsight.core.errors import DatasetFormatError
from pixsight.data.dataset import Annotation, Dataset, ImageRecord
from pixsight.data.formats import detect_format, read_dataset, write_dataset

FAST = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = ["bird", "car", "cat", "dog"]
_SCRATCH = Path(tempfile.mkdtemp(prefix="pixsight-formats-"))


def _fresh() -> str:
    """A new folder for one hypothesis example (tmp_path is per test, not per example)."""
    return tempfile.mkdtemp(dir=_SCRATCH)


@pytest.fixture(scope="module", autouse=True)
def _cleanup_scratch():
    yield
    shutil.rmtree(_SCRATCH, ignore_errors=True)


# ---------------------------------------------------------------- random datasets

@st.composite
def _box(draw, w: int, h: int) -> list[float]:
    xs = sorted(draw(st.lists(st.floats(0, w), min_size=2, max_size=2, unique=True)))
    ys = sorted(draw(st.lists(st.floats(0, h), min_size=2, max_size=2, unique=True)))
    if xs[1] - xs[0] < 1e-3 or ys[1] - ys[0] < 1e-3:
        xs, ys = [0.0, float(w)], [0.0, float(h)]
    return [xs[0], ys[0], xs[1], ys[1]]


@st.composite
def _annotation(draw, kind: str, n_classes: int, w: int, h: int) -> Annotation:
    cls = draw(st.integers(0, n_classes - 1))
    if kind == "rle":
        seed = draw(st.integers(0, 2**16))
        m = np.random.default_rng(seed).random((h, w)) > 0.6
        m[h // 2, w // 2] = True
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        x, y, bw, bh = mask_utils.toBbox(rle).tolist()
        return Annotation(cls, [x, y, x + bw, y + bh], rle=rle, iscrowd=draw(st.booleans()))
    x1, y1, x2, y2 = draw(_box(w, h))
    if kind == "polygon":
        s, t = draw(st.floats(0, 1)), draw(st.floats(0, 1))
        poly = [[x1, y1], [x2, y1 + t * (y2 - y1)], [x1 + s * (x2 - x1), y2]]
        return Annotation(cls, [x1, y1, x2, y2], polygons=[poly])
    return Annotation(cls, [x1, y1, x2, y2])


@st.composite
def datasets(draw, kind: str) -> Dataset:
    """A random dataset of ``kind`` box|polygon|rle|classify, with its images on disk."""
    n_classes = draw(st.integers(1, len(NAMES)))
    classes = NAMES[:n_classes]
    use_splits = draw(st.booleans())
    images = []
    for i in range(draw(st.integers(0, 4))):
        w, h = draw(st.integers(4, 40)), draw(st.integers(4, 40))
        attrs = {"split": draw(st.sampled_from(["train", "val"]))} if use_splits else {}
        if kind == "classify":
            images.append(ImageRecord(f"img{i}.png", w, h, label=draw(st.integers(0, n_classes - 1)), attributes=attrs))
        else:
            anns = draw(st.lists(_annotation(kind, n_classes, w, h), max_size=3))
            images.append(ImageRecord(f"img{i}.png", w, h, anns, attributes=attrs))
    root = Path(_fresh())
    for rec in images:
        Image.new("RGB", (rec.width, rec.height), (90, 120, 30)).save(root / rec.file_name)
    task = {"classify": "classify", "box": "detect"}.get(kind, "segment")
    return Dataset(root, classes, images, task)


def assert_same(a: Dataset, b: Dataset, *, file_names: bool = True) -> None:
    assert b.classes == a.classes
    key = (lambda r: r.file_name) if file_names else (lambda r: Path(r.file_name).name)
    ra, rb = sorted(a.images, key=key), sorted(b.images, key=key)
    assert [key(r) for r in rb] == [key(r) for r in ra]
    for x, y in zip(ra, rb):
        assert (y.width, y.height, y.label) == (x.width, x.height, x.label)
        assert y.attributes.get("split") == x.attributes.get("split")
        assert len(y.annotations) == len(x.annotations)
        for p, q in zip(x.annotations, y.annotations):
            assert q.class_id == p.class_id
            np.testing.assert_allclose(q.box, p.box, atol=1e-6)
            assert len(q.polygons) == len(p.polygons)
            for pp, qq in zip(p.polygons, q.polygons):
                np.testing.assert_allclose(qq, pp, atol=1e-6)
            assert q.rle == p.rle and q.iscrowd == p.iscrowd


# ---------------------------------------------------------------- round-trips

@pytest.mark.parametrize(("fmt", "kind"), [
    ("coco", "box"), ("coco", "polygon"), ("coco", "rle"),
    ("yolo", "box"), ("yolo", "polygon"),
    ("voc", "box"),
])
@FAST
@given(data=st.data())
def test_round_trip_keeps_everything_the_format_holds(fmt: str, kind: str, data) -> None:
    ds = data.draw(datasets(kind))
    out = write_dataset(ds, Path(_fresh()) / fmt, fmt)
    assert detect_format(out) == fmt
    assert_same(ds, read_dataset(out))


@FAST
@given(ds=datasets("classify"))
def test_folders_round_trip(ds: Dataset) -> None:
    once = read_dataset(write_dataset(ds, Path(_fresh()) / "f", "folders"))
    assert once.task == "classify"
    assert_same(ds, once, file_names=False)
    twice = read_dataset(write_dataset(once, Path(_fresh()) / "f", "folders"))
    assert_same(once, twice)


@FAST
@given(ds=datasets("box"))
def test_conversion_chain_coco_yolo_voc_coco(ds: Dataset) -> None:
    cur = ds
    for fmt in ("coco", "yolo", "voc", "coco"):
        cur = read_dataset(write_dataset(cur, Path(_fresh()) / fmt, fmt))
    assert_same(ds, cur)


def test_coco_keeps_arbitrary_category_ids_ids_and_extra_keys(tmp_path: Path) -> None:
    doc = {"images": [{"id": 7, "file_name": "a.png", "width": 10, "height": 8, "split": "val"}],
           "annotations": [{"id": 42, "image_id": 7, "category_id": 90, "bbox": [1, 1, 3, 2], "iscrowd": 0}],
           "categories": [{"id": 90, "name": "zebra"}, {"id": 3, "name": "ant"}]}
    (tmp_path / "c.json").write_text(json.dumps(doc))
    ds = read_dataset(tmp_path / "c.json")
    assert ds.classes == ["ant", "zebra"] and ds.images[0].annotations[0].class_id == 1
    assert ds.subset("val").images[0].id == 7
    out = write_dataset(ds, tmp_path / "out" / "c.json", "coco", copy_images=False)
    back = json.loads(out.read_text())
    assert back["categories"] == [{"id": 3, "name": "ant"}, {"id": 90, "name": "zebra"}]
    assert back["images"][0] == doc["images"][0]
    a = back["annotations"][0]
    assert (a["id"], a["image_id"], a["category_id"], a["bbox"], a["area"]) == (42, 7, 90, [1.0, 1.0, 3.0, 2.0], 6.0)


def test_masks_decode_from_polygons_and_uncompressed_rle() -> None:
    square = Annotation(0, [1, 1, 3, 3], polygons=[[1, 1, 3, 1, 3, 3, 1, 3]])
    m = np.zeros((4, 5), dtype=bool)
    m[1:3, 1:3] = True
    counts = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    raw = {"size": [4, 5], "counts": [5, 2, 2, 2, 9]}  # column-major runs of the same square
    rle = Annotation(0, [1, 1, 3, 3], rle=raw, iscrowd=True)
    assert rle.rle["counts"] == counts["counts"].decode()
    np.testing.assert_array_equal(rle.mask(4, 5), m)
    assert square.mask(4, 5).sum() >= 4


def test_writers_refuse_to_drop_data_unless_lossy(tmp_path: Path) -> None:
    Image.new("RGB", (6, 4)).save(tmp_path / "a.png")
    ann = Annotation(0, [0, 0, 2, 2], rle={"size": [4, 6], "counts": [0, 2, 2, 20]})
    ds = Dataset(tmp_path, ["x"], [ImageRecord("a.png", 6, 4, [ann])], "segment")
    with pytest.raises(DatasetFormatError) as err:
        write_dataset(ds, tmp_path / "y", "yolo")
    assert str(err.value) == ("images[0] (a.png) annotations[0]: YOLO cannot hold an RLE mask; "
                              "pick a format that can, or pass lossy=True to drop it")
    back = read_dataset(write_dataset(ds, tmp_path / "y", "yolo", lossy=True))
    np.testing.assert_allclose(back.images[0].annotations[0].box, [0, 0, 2, 2], atol=1e-6)
    assert back.images[0].annotations[0].rle is None


def test_dataset_validation_names_the_record() -> None:
    rec = ImageRecord("a.png", 10, 10, [Annotation(3, [0, 0, 1, 1])])
    with pytest.raises(DatasetFormatError) as err:
        Dataset(Path("/d"), ["a"], [rec])
    assert str(err.value) == "/d: images[0] (a.png): annotations[0]: class id 3 is not a class id (0..0)"
    with pytest.raises(DatasetFormatError, match="annotations\\[0\\]: box \\[0.0, 0.0, 11.0, 1.0\\] is outside the 10x10 image"):
        ImageRecord("a.png", 10, 10, [Annotation(0, [0, 0, 11, 1])])
    with pytest.raises(DatasetFormatError, match="must be relative and stay inside"):
        ImageRecord("../etc/passwd", 10, 10)


# ---------------------------------------------------------------- malformed COCO

def _coco(**changes) -> dict:
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 10, "height": 8}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 5, "bbox": [1, 1, 2, 2]}],
           "categories": [{"id": 5, "name": "cat"}]}
    for path, value in changes.items():
        section, _, key = path.partition("__")
        if key:
            if value is None:
                del doc[section][0][key]
            else:
                doc[section][0][key] = value
        elif value is None:
            del doc[section]
        else:
            doc[section] = value
    return doc


@pytest.mark.parametrize(("changes", "message"), [
    ({"annotations__bbox": None}, "annotations[0]: missing key 'bbox'"),
    ({"annotations__category_id": 9}, "annotations[0]: category_id 9 is not in categories"),
    ({"annotations__image_id": 2}, "annotations[0]: image_id 2 is not in images"),
    ({"annotations__bbox": [1, 1, "2", 2]}, "annotations[0]: bbox must be [x, y, width, height] numbers, got [1, 1, '2', 2]"),
    ({"annotations__bbox": [float("nan"), 1, 2, 2]}, "annotations[0]: bbox has a non-finite value: [nan, 1, 2, 2]"),
    ({"annotations__bbox": [5, 1, 9, 2]}, "annotations[0]: box [5.0, 1.0, 14.0, 3.0] is outside the 10x8 image"),
    ({"annotations__bbox": [1, 1, 0, 2]}, "annotations[0]: box [1.0, 1.0, 1.0, 3.0] has zero or negative size"),
    ({"annotations__segmentation": [[1, 1, 2]]}, "annotations[0]: polygons[0] needs at least 3 (x, y) points, got shape (3,)"),
    ({"images__width": "10"}, "images[0]: width must be a positive int, got '10'"),
    ({"images__file_name": "/etc/passwd"}, "images[0]: file_name '/etc/passwd' must be relative and stay inside the dataset folder"),
    ({"images__id": None}, "images[0]: missing key 'id'"),
    ({"categories": None}, "top level: missing key 'categories'"),
    ({"annotations": {"x": 1}}, "top level: 'annotations' must be a list"),
    ({"categories": [{"id": 5}]}, "categories[0]: missing key 'name'"),
])
def test_malformed_coco_names_file_and_record(tmp_path: Path, changes: dict, message: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(_coco(**changes)))
    with pytest.raises(DatasetFormatError) as err:
        read_dataset(path)
    assert str(err.value) == f"{path}: {message}"


def test_duplicate_coco_annotation_ids(tmp_path: Path) -> None:
    doc = _coco()
    doc["annotations"].append(dict(doc["annotations"][0]))
    (tmp_path / "c.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetFormatError) as err:
        read_dataset(tmp_path / "c.json")
    assert str(err.value) == f"{tmp_path / 'c.json'}: annotations[1]: duplicate annotation id 1"


# ---------------------------------------------------------------- malformed YOLO

@pytest.mark.parametrize(("line", "message"), [
    ("3 0.5 0.5 0.1 0.1", "line 2: class id 3 is not in names (0..1)"),
    ("x 0.5 0.5 0.1 0.1", "line 2: class id must be an int, got 'x'"),
    ("0 nan 0.5 0.1 0.1", "line 2: coordinates have a non-finite value"),
    ("0 0.5 0.5 0.1", "line 2: expected 4 box values or 3+ polygon points after the class, got 3 values"),
    ("0 0.9 0.5 0.4 0.1", "line 2: box [14.0, 7.2, 22.0, 8.8] is outside the 20x16 image"),
])
def test_malformed_yolo_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    (tmp_path / "data.yaml").write_text("names: [a, b]\n")
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.new("RGB", (20, 16)).save(tmp_path / "images" / "a.png")
    (tmp_path / "labels" / "a.txt").write_text(f"0 0.5 0.5 0.2 0.2\n{line}\n")
    with pytest.raises(DatasetFormatError) as err:
        read_dataset(tmp_path)
    assert str(err.value) == f"{tmp_path / 'labels' / 'a.txt'}: {message}"


# ---------------------------------------------------------------- VOC and unsafe XML

_VOC_OK = b"""<annotation><filename>a.jpg</filename><size><width>10</width><height>8</height></size>
<object><name>cat</name><difficult>1</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>4</xmax><ymax>5.5</ymax></bndbox></object>
</annotation>"""

_XXE = b"""<?xml version="1.0"?><!DOCTYPE a [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<annotation><filename>&xxe;</filename></annotation>"""

_LAUGHS = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">
<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<annotation><filename>&lol3;</filename></annotation>"""


def _voc(tmp_path: Path, xml: bytes) -> Path:
    (tmp_path / "Annotations").mkdir(exist_ok=True)
    path = tmp_path / "Annotations" / "a.xml"
    path.write_bytes(xml)
    return path


def test_voc_reads_boxes_and_object_fields(tmp_path: Path) -> None:
    _voc(tmp_path, _VOC_OK)
    ds = read_dataset(tmp_path)
    ann = ds.images[0].annotations[0]
    assert ds.classes == ["cat"] and ann.box.tolist() == [1, 1, 4, 5.5] and ann.attributes == {"difficult": 1}


@pytest.mark.parametrize(("xml", "name"), [(_XXE, "DTDForbidden"), (_LAUGHS, "DTDForbidden")])
def test_unsafe_voc_xml_is_rejected(tmp_path: Path, xml: bytes, name: str) -> None:
    path = _voc(tmp_path, xml)
    with pytest.raises(DatasetFormatError) as err:
        read_dataset(tmp_path)
    assert str(err.value) == (f"{path}: unsafe XML refused ({name}): DTDs, entities and "
                              "external references are not allowed")


@pytest.mark.parametrize(("old", "new", "message"), [
    (b"<bndbox>", b"<bbox>", "object[0]: missing <bndbox>"),
    (b"<xmax>4</xmax>", b"<xmax>four</xmax>", "object[0]: <xmax> must be a number, got 'four'"),
    (b"<xmax>4</xmax>", b"<xmax>nan</xmax>", "object[0]: <xmax> is not finite: 'nan'"),
    (b"<xmax>4</xmax>", b"<xmax>40</xmax>", "object[0]: box [1.0, 1.0, 40.0, 5.5] is outside the 10x8 image"),
    (b"<width>10</width>", b"", "annotation: missing <width>"),
    (b"</annotation>", b"", None),
])
def test_malformed_voc_names_file_and_object(tmp_path: Path, old: bytes, new: bytes, message: str | None) -> None:
    path = _voc(tmp_path, _VOC_OK.replace(old, new).replace(b"</bndbox>", b"</bbox>" if new == b"<bbox>" else b"</bndbox>"))
    with pytest.raises(DatasetFormatError) as err:
        read_dataset(tmp_path)
    if message is None:
        assert str(err.value).startswith(f"{path}: malformed XML: ")
    else:
        assert str(err.value) == f"{path}: {message}"


def test_voc_unknown_class_with_labels_file(tmp_path: Path) -> None:
    path = _voc(tmp_path, _VOC_OK)
    (tmp_path / "labels.txt").write_text("dog\n")
    with pytest.raises(DatasetFormatError) as err:
        read_dataset(tmp_path)
    assert str(err.value) == f"{path}: object[0]: class 'cat' is not in labels.txt"


def test_detect_format_refuses_unknown(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DatasetFormatError) as err:
        read_dataset(tmp_path / "x.txt")
    assert str(err.value) == f"{tmp_path / 'x.txt'}: cannot tell the dataset format; name it (coco, yolo, voc, labelstudio, cvat, folders)"
