"""Per-format dataset validators behind :mod:`pixsight.data.validate` (one module per format)."""
