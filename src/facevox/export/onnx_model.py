"""An exported ONNX model run by onnxruntime on the CPU (numpy in, numpy out), and a torch module around it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facevox.errors import FacevoxError


def _session(path: Path, threads: int) -> Any:
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise FacevoxError(f'running an ONNX model needs onnxruntime: pip install "facevox[export]" ({err})',
                           path) from None
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own types for damaged files
        raise FacevoxError(f"cannot read the ONNX model ({' '.join(str(err).split())[:160]})", path) from None


class OnnxModel:
    """``model(x)``: the exported network's output for a float32 batch ``x``, as numpy (CPU provider).

    ``fixed_length`` (a model exported with a fixed time axis) is checked, so a wave of another
    length is a one-line error rather than an onnxruntime shape error."""

    def __init__(self, path: str | Path, *, threads: int = 0, fixed_length: int | None = None) -> None:
        self.path = Path(path)
        self.session = _session(self.path, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.fixed_length = fixed_length

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.fixed_length and x.shape[-1] != self.fixed_length:
            raise FacevoxError(f"this model was exported for inputs of {self.fixed_length} samples, got "
                               f"{x.shape[-1]}", self.path)
        return self.session.run(None, {self.input_name: x})[0]


class OnnxModule(nn.Module):
    """A torch module whose forward runs an :class:`OnnxModel` (tensor -> numpy -> onnxruntime -> tensor),
    so the task's scorers use an exported model as they use the torch one. Its only buffer is the
    file's hash, so embedding stores keyed by ``model_fingerprint`` tell exported files apart."""

    def __init__(self, runner: OnnxModel) -> None:
        super().__init__()
        self.runner = runner
        digest = hashlib.sha1(runner.path.read_bytes()).digest()
        self.register_buffer("file_sha1", torch.tensor(list(digest), dtype=torch.uint8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.runner(x.detach().float().cpu().contiguous().numpy())
        return torch.from_numpy(out).to(x.device)
