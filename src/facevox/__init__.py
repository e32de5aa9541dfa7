"""facevox: deep learning on faces and voices.

The public API is small; everything else lives in the sub-modules::

    import facevox
    score, same, p_same = facevox.load("resemblyzer").verify("a.wav", "b.wav")
    detector = facevox.load("runs/fakeface/model")   # a model folder -> its task's object
    facevox.list_models("resnet*")
"""

from importlib.metadata import PackageNotFoundError, version

from facevox.api import Decision, FaceVerifier, FakeFaceDetector, Inverter, SpeakerVerifier, load
from facevox.checkpoint import ModelCard, load_model, read_model_folder, save_model
from facevox.errors import FacevoxError
from facevox.registry import create_loss, create_model, list_models

try:
    __version__ = version("facevox")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0.dev0"

__all__ = [
    "Decision",
    "FaceVerifier",
    "FakeFaceDetector",
    "Inverter",
    "SpeakerVerifier",
    "load",
    "FacevoxError",
    "ModelCard",
    "__version__",
    "create_loss",
    "create_model",
    "list_models",
    "load_model",
    "read_model_folder",
    "save_model",
]
