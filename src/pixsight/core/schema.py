"""The published JSON Schema of one analysis (one line of ``pixsight analyze --jsonl``).

>>> schema = analysis_schema()
>>> schema["title"].startswith("pixsight analysis")
True
>>> validate_analysis_dict({"path": "a.jpg", "sha256": None, "width": None, "height": None,
...     "status": "error", "error": {"type": "ImageDecodeError", "message": "a.jpg: empty"},
...     "needs_review": False, "timings_ms": {}})
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

__all__ = ["analysis_schema", "validate_analysis_dict"]


@functools.cache
def analysis_schema() -> dict[str, Any]:
    text = resources.files("pixsight.resources").joinpath("analysis.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


@functools.cache
def _validator() -> Any:
    import jsonschema

    schema = analysis_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def validate_analysis_dict(data: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` when ``data`` breaks the published schema."""
    import jsonschema

    # same result as jsonschema.validate(), without re-checking the schema on every call (~20 ms)
    error = jsonschema.exceptions.best_match(_validator().iter_errors(data))
    if error is not None:
        raise error
