"""Exported models: ``facevox export`` (ONNX, TorchScript) and inference through onnxruntime.

``export_model(folder, out, fmt)`` writes the model file and its sidecar ``out.json``;
``facevox.load(out)`` reads them back as the task's inference object (:func:`load_exported`).
"""

from facevox.export.loading import load_exported, read_sidecar
from facevox.export.onnx_export import FORMATS, export_model
from facevox.export.onnx_model import OnnxModel, OnnxModule

__all__ = ["FORMATS", "OnnxModel", "OnnxModule", "export_model", "load_exported", "read_sidecar"]
