"""dlib's pretrained face models, read straight from the files ``face-recognition-models`` ships.

``dlib`` comes from the ``dlib-bin`` wheel; the model files (``shape_predictor_5_face_landmarks.dat``,
``dlib_face_recognition_resnet_model_v1.dat``) from ``face-recognition-models``, whose folder is
found with :func:`importlib.util.find_spec` without running its ``__init__`` (which imports
setuptools' deprecated ``pkg_resources``). The ``face_recognition`` wrapper is not used: it asks pip
for a source build of dlib, and its import turns on PIL's ``LOAD_TRUNCATED_IMAGES`` for the whole
process. ``pip install "facevox[face-baseline]"`` installs both packages.

Each model is loaded once per process.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

from facevox.errors import FacevoxError

MODELS_PACKAGE = "face_recognition_models"
LANDMARKS_5 = "shape_predictor_5_face_landmarks.dat"
RESNET = "dlib_face_recognition_resnet_model_v1.dat"
INSTALL = 'pip install "facevox[face-baseline]"'


def dlib_module() -> Any:
    """The ``dlib`` module, or a FacevoxError that says what to install."""
    try:
        import dlib
    except ImportError as err:
        raise FacevoxError(f"dlib's face models need dlib-bin and face-recognition-models: {INSTALL} ({err})") from None
    return dlib


def model_path(filename: str) -> Path:
    """The path of one model file inside the installed ``face-recognition-models`` package."""
    try:
        spec = importlib.util.find_spec(MODELS_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise FacevoxError(f"dlib's face models need the package face-recognition-models: {INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / filename
    if not path.is_file():
        raise FacevoxError(f"dlib's model file is missing (reinstall face-recognition-models: {INSTALL})", path)
    return path


@functools.cache
def face_detector() -> Any:
    """dlib's HOG frontal face detector: ``detector(image, upsample)`` -> rectangles."""
    return dlib_module().get_frontal_face_detector()


@functools.cache
def shape_predictor_5() -> Any:
    """dlib's 5-point landmark model: ``predictor(image, rectangle)`` -> 5 parts (eye corners, nose bottom)."""
    dlib = dlib_module()
    return dlib.shape_predictor(str(model_path(LANDMARKS_5)))


@functools.cache
def face_recognition_resnet() -> Any:
    """dlib's face recognition ResNet: ``compute_face_descriptor(image, shape, num_jitters)`` -> 128 floats."""
    dlib = dlib_module()
    return dlib.face_recognition_model_v1(str(model_path(RESNET)))
