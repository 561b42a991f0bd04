"""Ground truth that is not a labelled dataset: OCR reference text and face-verification pairs.

OCR truth — JSON or CSV, mapping an image's file name (relative path) to its true text:

- JSON: ``{"receipt1.png": "TOTAL 12.50", ...}`` or ``[{"file_name": ..., "text": ...}, ...]``
- CSV: a header row with ``file_name`` and ``text`` columns (UTF-8).

Face pairs — CSV with a header ``image_a,image_b,same`` (``same`` is 1/0, true/false or
yes/no): one row per pair of images showing the same person (1) or different people (0).

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "t.csv").write_text("file_name,text\\na.png,hello\\n", encoding="utf-8")
>>> read_text_truth(d / "t.csv")
{'a.png': 'hello'}
>>> _ = (d / "p.csv").write_text("image_a,image_b,same\\nx/1.jpg,x/2.jpg,1\\n", encoding="utf-8")
>>> read_pairs(d / "p.csv")
[('x/1.jpg', 'x/2.jpg', True)]
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from ..core.errors import DatasetFormatError
from ..data.dataset import check_file_name, record_context

__all__ = ["read_text_truth", "read_pairs"]

_MAX_BYTES = 512 * 1024 * 1024
_TRUE = {"1", "true", "yes", "same", "y", "t"}
_FALSE = {"0", "false", "no", "different", "n", "f"}


def _read_text(path: Path) -> str:
    try:
        if path.stat().st_size > _MAX_BYTES:
            raise DatasetFormatError(f"file is over the {_MAX_BYTES} byte limit", path=str(path))
        return path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise DatasetFormatError("file not found", path=str(path)) from None
    except UnicodeDecodeError:
        raise DatasetFormatError("not UTF-8 text", path=str(path)) from None
    except OSError as err:
        raise DatasetFormatError(f"cannot read: {err.strerror or err}", path=str(path)) from None


def _csv_rows(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise DatasetFormatError(f"CSV needs a header row with columns {', '.join(required)}; missing {missing}",
                                 path=str(path))
    return list(reader)


def read_text_truth(path: str | os.PathLike[str]) -> dict[str, str]:
    """OCR ground truth: ``{file_name: text}`` from a JSON or CSV file (module docs)."""
    p = Path(path)
    where = str(p)
    out: dict[str, str] = {}
    items: list[tuple[str, Any, Any]]
    if p.suffix.lower() == ".json":
        try:
            doc = json.loads(_read_text(p))
        except json.JSONDecodeError as err:
            raise DatasetFormatError(f"not valid JSON: {err}", path=where) from None
        if isinstance(doc, dict):
            items = [(f"[{k!r}]", k, v) for k, v in doc.items()]
        elif isinstance(doc, list):
            items = []
            for i, row in enumerate(doc):
                with record_context(where, f"[{i}]"):
                    if not isinstance(row, dict):
                        raise DatasetFormatError("expected {file_name, text}")
                    items.append((f"[{i}]", row["file_name"], row["text"]))
        else:
            raise DatasetFormatError("expected {file_name: text} or [{file_name, text}, ...]", path=where)
    else:
        items = [(f"row {i + 2}", r["file_name"], r["text"]) for i, r in enumerate(_csv_rows(p, ("file_name", "text")))]
    for record, name, text in items:
        with record_context(where, record):
            name = check_file_name(name)
            if not isinstance(text, str):
                raise DatasetFormatError(f"text must be a string, got {text!r}")
            if name in out:
                raise DatasetFormatError(f"duplicate file_name {name!r}")
            out[name] = text
    if not out:
        raise DatasetFormatError("no entries", path=where)
    return out


def read_pairs(path: str | os.PathLike[str]) -> list[tuple[str, str, bool]]:
    """Face-verification pairs ``(image_a, image_b, same)`` from a CSV file (module docs)."""
    p = Path(path)
    out = []
    for i, row in enumerate(_csv_rows(p, ("image_a", "image_b", "same"))):
        with record_context(str(p), f"row {i + 2}"):
            a, b = check_file_name(row["image_a"]), check_file_name(row["image_b"])
            flag = str(row["same"]).strip().lower()
            if flag not in _TRUE | _FALSE:
                raise DatasetFormatError(f"same must be 1/0, true/false or yes/no, got {row['same']!r}")
            out.append((a, b, flag in _TRUE))
    if not out:
        raise DatasetFormatError("no pairs", path=str(p))
    return out
