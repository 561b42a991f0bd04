"""Parser limits for untrusted dataset files (pixsight.data.parsing) and the readers using them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from pixsight.core.errors import DatasetFormatError
from pixsight.data.dataset import _as_rle
from pixsight.data.formats import read_dataset
from pixsight.data.formats.coco import looks_like_coco
from pixsight.data.parsing import (MAX_INT_DIGITS, MAX_JSON_DEPTH, ParseLimitError, load_json, load_yaml,
                                   parse_json, parse_yaml)
from pixsight.data.validate import validate_dataset


def test_json_within_limits_parses_as_json_does() -> None:
    text = json.dumps({"a": [1, -2, 3.5, "x", None, True, {"b": 10**20}], "c": "[[[["})
    assert parse_json(text, "f.json") == json.loads(text)
    assert parse_json("[NaN, Infinity]", "f.json")[1] == float("inf")
    nested = "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)
    assert parse_json(nested, "f.json")  # under the limit and under Python's recursion limit


def test_json_syntax_errors_propagate() -> None:
    with pytest.raises(json.JSONDecodeError):
        parse_json("{not json", "f.json")


def test_deep_json_names_the_record() -> None:
    text = '{"images": [], "annotations": [{"id": 1}, {"segmentation": ' + "[" * 50_000 + "]" * 50_000 + "}]}"
    with pytest.raises(ParseLimitError) as info:
        parse_json(text, "f.json")
    err = info.value
    assert isinstance(err, DatasetFormatError) and err.path == "f.json"
    assert err.record.startswith("annotations[1].segmentation[0]") and err.record.endswith("...")
    assert "nested more than" in err.problem and "\n" not in str(err)


def test_long_integer_names_the_record() -> None:
    ok = "9" * MAX_INT_DIGITS
    assert parse_json(f'{{"w": {ok}, "f": 1{"0" * 400}.5}}', "f.json")["w"] == int(ok)
    for digits in (MAX_INT_DIGITS + 1, 5000):
        text = '{"images": [{"id": 1}, {"id": 2, "x": "a,b", "width": -' + "9" * digits + "}]}"
        with pytest.raises(ParseLimitError) as info:
            parse_json(text, "f.json")
        assert info.value.record == "images[1].width"
        assert f"{digits} digits" in info.value.problem


def test_load_json_reads_files(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('{"images": [{"width": ' + "1" * 100 + "}]}")
    with pytest.raises(ParseLimitError, match=r"a\.json: images\[0\]\.width: integer with 100 digits"):
        load_json(path)
    path.write_text('[{"data": {}}]', encoding="utf-16")
    assert load_json(path) == [{"data": {}}]


def test_yaml_without_aliases_loads_as_safe_load() -> None:
    text = "path: .\ntrain: images/train\nnames:\n  0: cat\n  1: dog\nnc: 2\nx: &anchor [1, 2]\n"
    assert parse_yaml(text, "data.yaml") == yaml.safe_load(text)


def test_yaml_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    lines.append("names: *i")
    path = tmp_path / "data.yaml"
    path.write_text("\n".join(lines))
    start = time.monotonic()
    with pytest.raises(ParseLimitError) as info:
        load_yaml(path)
    assert time.monotonic() - start < 2
    assert info.value.path == str(path) and info.value.record == "data.yaml"
    assert "aliases (*a) are not allowed" in info.value.problem and "line 2" in info.value.problem


def test_yaml_single_alias_and_merge_key_are_refused() -> None:
    with pytest.raises(ParseLimitError, match="aliases"):
        parse_yaml("a: &x cat\nnames: [*x]\n", "d.yaml")
    with pytest.raises(ParseLimitError, match="aliases"):
        parse_yaml("base: &b {nc: 1}\nd:\n  <<: *b\n", "d.yaml")


def test_yaml_long_integer_and_deep_nesting_are_refused() -> None:
    with pytest.raises(ParseLimitError, match="5000 digits"):
        parse_yaml("nc: " + "9" * 5000 + "\n", "d.yaml")
    with pytest.raises(ParseLimitError, match="nested too deeply"):
        parse_yaml("names: " + "[" * 50_000 + "]" * 50_000 + "\n", "d.yaml")


def test_yolo_reader_and_validator_refuse_aliases(tmp_path: Path) -> None:
    (tmp_path / "data.yaml").write_text("a: &a [cat, dog]\nnames: *a\n")
    with pytest.raises(DatasetFormatError, match="aliases"):
        read_dataset(tmp_path, "yolo")
    report = validate_dataset(tmp_path, check_images=False)
    assert report.format == "yolo" and any("aliases" in p.message for p in report.errors)


def test_rle_counts_past_uint32_are_a_format_error() -> None:
    with pytest.raises(DatasetFormatError, match="does not fit in 32 bits"):
        _as_rle({"size": [2**20, 2**20], "counts": [2**40]})
    with pytest.raises(DatasetFormatError, match="below 2\\*\\*32"):
        _as_rle({"size": [2**40, 1], "counts": "abc"})


def test_sniffing_a_hostile_coco_file_still_says_coco(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text('{"images": [{"id": 1, "width": ' + "9" * 5000 + "}], \"categories\": []}")
    assert looks_like_coco(path)
    with pytest.raises(DatasetFormatError, match=r"images\[0\]\.width"):
        read_dataset(path)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    assert not looks_like_coco(deep)
