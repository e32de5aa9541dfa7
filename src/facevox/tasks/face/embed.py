"""Face embeddings from a trained backbone: batched, optionally with the mirror image added.

Aligned crops are all one size, so a batch needs no padding: batched and one-at-a-time
embeddings agree to float rounding (tested to 1e-4)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from facevox.image.transforms import to_tensor
from facevox.precision import autocast, resolve_device, resolve_precision


class FaceEmbedder:
    """``embed(arrays)`` -> (N, D) unit-length embeddings of aligned uint8 RGB crops of the model's size."""

    def __init__(self, model: nn.Module, input_size: tuple[int, int], flip: bool = True, batch_size: int = 64,
                 precision: str = "fp32", device: str = "auto") -> None:
        self.device = resolve_device(device, "--device")
        self.model = model.to(self.device).eval()
        self.input_size, self.flip, self.batch_size = tuple(input_size), flip, batch_size
        self.amp = resolve_precision(precision, self.device)
        self.settings = {"input_size": list(self.input_size), "flip": self.flip,
                         "precision": "fp32" if self.amp is None else str(self.amp).removeprefix("torch.")}

    @torch.no_grad()
    def embed(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        from facevox.tasks.face.data import resize_to

        out = []
        for i in range(0, len(arrays), self.batch_size):
            x = to_tensor([resize_to(a, self.input_size) for a in arrays[i : i + self.batch_size]]).to(self.device)
            with autocast(self.device, self.amp):
                e = self.model(x).float()
                if self.flip:
                    e = e + self.model(x.flip(-1)).float()
            out.append(torch.nn.functional.normalize(e, dim=1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)
