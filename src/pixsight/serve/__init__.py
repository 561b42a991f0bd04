"""``pixsight serve``: the HTTP API and web UI over the Python API (see docs/serving.md).

>>> from pixsight.serve.settings import ServeSettings
>>> ServeSettings(db="catalog.sqlite").port
8000
"""

from __future__ import annotations

__all__: list[str] = []
