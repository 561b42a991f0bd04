"""Explanations: where in an image a model looked for its answer (Grad-CAM family heatmaps).

Rank 6 of the layer map: above ``train``, whose run folders it explains, and ``evaluate``,
whose HTML report it decorates with overlays.

- :mod:`.cam` — :func:`explain` one image, :class:`Explanation`, :func:`save_explanation`;
- :mod:`.model` — :func:`load_explainable` (run folder, loaded ``Run`` or
  ``"efficientnet-lite0"``) and :class:`ExplainableModel` for any torch module;
- :mod:`.geometry` — the model input of an image and the way back (letterbox, centre crop);
- :mod:`.targets` — which layers a CAM reads, pytorch-grad-cam runs;
- :mod:`.report` — :func:`cam_explainer`, the overlays of the eval report's worst examples.

Importing this package is cheap: torch and pytorch-grad-cam load on first use.

>>> from pixsight.explain import METHODS
>>> METHODS
('gradcam', 'gradcam++', 'eigencam')
"""

from __future__ import annotations

from .cam import METHODS, Explanation, explain, render_overlay, save_explanation
from .model import BUILTIN_MODELS, ExplainableModel, load_explainable, resolve_class
from .report import cam_explainer

__all__ = ["BUILTIN_MODELS", "METHODS", "ExplainableModel", "Explanation", "cam_explainer", "explain",
           "load_explainable", "render_overlay", "resolve_class", "save_explanation"]
