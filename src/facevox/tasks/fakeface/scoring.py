"""Scoring images with a detector: P(fake) per image, batched, optionally in bf16."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from scipy.special import expit
from torch import nn

from facevox.image.transforms import mask_region, resize_square, to_tensor
from facevox.train import autocast, resolve_device, resolve_precision


class Detector:
    """A loaded detector: ``probs(arrays)`` -> P(fake) (N,) for uint8 RGB images of any size.

    Images are resized to the model's ``load_size`` square (as in training), the training
    ``mask`` box is greyed out, and the whole image is scored. A model fused with a face probe
    (``fakeface fuse``, :mod:`facevox.tasks.fakeface.face_probe`) adds the probe's score to the
    CNN's logit before the sigmoid; ``model`` stays the CNN (what saliency explains).
    ``precision``: ``fp32``, ``bf16`` (autocast) or ``auto`` (bf16 where the hardware has it).
    """

    def __init__(self, model: nn.Module, load_size: int, threshold: float = 0.5, batch_size: int = 32,
                 precision: str = "fp32", device: str = "auto", mask: tuple[float, ...] | None = None,
                 extra: dict | None = None) -> None:
        from facevox.tasks.fakeface.face_probe import FaceProbe

        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.channels_last = any(isinstance(m, nn.Conv2d) for m in model.modules())
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.load_size, self.threshold, self.batch_size = load_size, threshold, batch_size
        self.mask = tuple(mask) if mask else None
        self.amp = resolve_precision(precision, self.device)
        self.extra = dict(extra or {})
        self.where: str | Path = "the detector"  # the model folder, once loaded from one
        probe = self.extra.get("face_probe")
        self.face_probe = FaceProbe.from_json(probe) if probe else None

    @classmethod
    def load(cls, model_dir: str, use: str = "fakeface commands", **kwargs) -> Detector:
        """The detector in a fakeface model folder; ``use`` names the command for the error a
        folder of another task gets ("this is a speaker model folder; fakeface predict needs ...")."""
        from facevox.checkpoint import read_model_folder

        folder = read_model_folder(model_dir, task="fakeface", use=use)
        extra = folder.extra
        det = cls(folder.model, int(extra.get("load_size", 256)), float(extra.get("threshold", 0.5)),
                  mask=extra.get("mask"), extra=extra, **kwargs)
        det.where = folder.path
        return det

    def prepare(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Resized to the model's square and masked; a no-op for images already prepared."""
        return [mask_region(resize_square(im, self.load_size), self.mask) for im in images]

    @torch.no_grad()
    def logits(self, images: Sequence[np.ndarray], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """The CNN's logit of P(fake) (N,), without any face probe; images prepared a batch at a time."""
        out = []
        for i in range(0, len(images), self.batch_size):
            x = to_tensor(self.prepare(images[i : i + self.batch_size])).to(self.device)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(self.device, self.amp):
                logits = self.model(x).float()
            out.append(logits.reshape(len(x), -1)[:, 0].cpu().numpy())
            if progress:
                progress(len(x))
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    def probs(self, images: Sequence[np.ndarray], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """P(fake) (N,): the sigmoid of the CNN's logit, or of the fused score for a fused model."""
        if self.face_probe is None or not len(images):
            logits = self.logits(images, progress)
        else:  # prepared once for both the CNN and the face descriptors
            from facevox.tasks.fakeface.face_probe import face_descriptors

            prepared = self.prepare(images)
            logits = self.face_probe.fuse(self.logits(prepared, progress),
                                          face_descriptors(prepared, self.face_probe.box))
        return expit(np.asarray(logits, dtype=np.float64)).astype(np.float32)
