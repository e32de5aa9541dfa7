"""Scoring images with a detector: P(fake) per image, batched, optionally in bf16.

Image files are decoded, resized and masked in DataLoader workers (:class:`ScoringImages`,
:meth:`Detector.score_files`); the model runs in the main process on ``--device``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import expit
from torch import nn
from torch.utils.data import DataLoader, Dataset

from facevox.errors import FacevoxError
from facevox.image.io import load_image
from facevox.image.transforms import PERTURBATIONS, mask_region, resize_square, to_tensor
from facevox.precision import autocast, resolve_device, resolve_precision

PRECISIONS = ("fp32", "bf16", "auto")
DEVICE_HELP = ("where the model runs: auto (default: the GPU of this process if there is one, else the CPU), "
               "cpu, cuda or cuda:N")
PRECISION_HELP = ("fp32 (default), bf16 (bf16 autocast; fast on GPUs and CPUs with native bf16, emulated "
                  "and slow elsewhere) or auto (bf16 where the hardware has it, else fp32)")
WORKERS_HELP = "processes that decode and resize the images while the model runs (0: in this process; default 2)"


def inference_device(name: str, key: str = "--device") -> torch.device:
    """:func:`facevox.precision.resolve_device`, and a GPU index this machine has (``cuda:7`` on a
    machine with one GPU is a one-line error naming ``key``, not a CUDA traceback later)."""
    device = resolve_device(name, key=key)
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise FacevoxError(f"there is no GPU {device} (this machine has {torch.cuda.device_count()})", key)
    return device


def inference_precision(precision: str, device: torch.device, key: str = "--precision") -> torch.dtype | None:
    """The autocast dtype of ``precision`` (fp32, bf16 or auto) on ``device``; None for fp32."""
    if precision not in PRECISIONS:
        raise FacevoxError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}", key)
    return resolve_precision(precision, device)


class Detector:
    """A loaded detector: ``probs(arrays)`` -> P(fake) (N,) for uint8 RGB images of any size.

    Images are resized to the model's ``load_size`` square (as in training), the training
    ``mask`` box is greyed out, and the whole image is scored. A model fused with a face probe
    (``fakeface fuse``, :mod:`facevox.tasks.fakeface.face_probe`) adds the probe's score to the
    CNN's logit before the sigmoid; ``model`` stays the CNN (what saliency explains).
    ``precision``: ``fp32``, ``bf16`` (autocast) or ``auto`` (bf16 where the hardware has it);
    ``device``: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` (errors name ``--device``).
    """

    def __init__(self, model: nn.Module, load_size: int, threshold: float = 0.5, batch_size: int = 32,
                 precision: str = "fp32", device: str = "auto", mask: tuple[float, ...] | None = None,
                 extra: dict | None = None) -> None:
        from facevox.tasks.fakeface.face_probe import FaceProbe

        self.device = inference_device(device)
        self.model = model.to(self.device).eval()
        self.channels_last = any(isinstance(m, nn.Conv2d) for m in model.modules())
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.load_size, self.threshold, self.batch_size = load_size, threshold, batch_size
        self.mask = tuple(mask) if mask else None
        self.amp = inference_precision(precision, self.device)
        self.extra = dict(extra or {})
        self.where: str | Path = "the detector"  # the model folder, once loaded from one
        probe = self.extra.get("face_probe")
        self.face_probe = FaceProbe.from_json(probe) if probe else None

    @classmethod
    def load(cls, model_dir: str, use: str = "fakeface commands", **kwargs) -> Detector:
        """The detector in a fakeface model folder; ``use`` names the command for the error a
        folder of another task gets ("this is a speaker model folder; fakeface predict needs ...")."""
        from facevox.checkpoint import read_model_folder

        return cls.from_folder(read_model_folder(model_dir, task="fakeface", use=use), **kwargs)

    @classmethod
    def from_folder(cls, folder: Any, **kwargs) -> Detector:
        """The detector of a read :class:`~facevox.checkpoint.ModelFolder` (or an exported model's stand-in)."""
        from facevox.inference_spec import FakeFaceSpec

        spec = FakeFaceSpec.from_extra(folder.extra)
        det = cls(folder.model, spec.load_size, spec.threshold, mask=spec.mask, extra=folder.extra, **kwargs)
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

    def score_files(self, paths: Sequence[str | Path], *, workers: int = 0, skip_bad: bool = False,
                    perturb: str | None = None, progress: Callable[[int], None] | None = None,
                    ) -> tuple[np.ndarray, np.ndarray, list[tuple[Path, str]]]:
        """P(fake) of image files, decoded and resized in ``workers`` DataLoader processes.

        Returns ``(kept, probs, bad)``: the indices into ``paths`` that were scored, their P(fake), and
        ``(path, problem)`` of the files left out (``skip_bad``; without it the first bad file in
        order raises). The good images are scored in chunks of ``batch_size`` in order, exactly as
        :meth:`probs` on the decoded images would. ``perturb`` names a perturbation of
        :data:`~facevox.image.transforms.PERTURBATIONS` applied to each resized image (``eval --perturb``).
        """
        kept: list[int] = []
        probs: list[np.ndarray] = []
        bad: list[tuple[Path, str]] = []
        pending: list[np.ndarray] = []

        def flush(n: int) -> None:
            chunk, pending[:] = pending[:n], pending[n:]
            probs.append(self.probs(chunk))
            if progress:
                progress(len(chunk))

        for items in image_batches(ScoringImages(paths, self.load_size, self.mask, perturb), self.batch_size,
                                   workers):
            for index, image, problem, where in items:
                if image is None:
                    if not skip_bad:
                        raise FacevoxError(problem, where)
                    bad.append((Path(where if where is not None else paths[index]), problem))
                    if progress:
                        progress(1)
                    continue
                kept.append(index)
                pending.append(image)
            while len(pending) >= self.batch_size:
                flush(self.batch_size)
        if pending:
            flush(len(pending))
        out = np.concatenate(probs) if probs else np.zeros(0, dtype=np.float32)
        return np.asarray(kept, dtype=np.int64), out, bad


Item = tuple[int, Any, str, Any]  # index, prepared uint8 (S, S, 3) image or None, problem, where


class ScoringImages(Dataset):
    """Image files -> ``(index, image, problem, where)``: decoded, resized to ``size`` square and
    masked as the detector scores them (the image is None and ``problem`` says why for a bad file).

    The paths are held as one fixed-width numpy array of file-system bytes (1 byte a character,
    any name the OS allows), so forked workers do not copy-on-write a list of Python objects.
    """

    def __init__(self, paths: Sequence[str | Path], size: int, mask: Sequence[float] | None = None,
                 perturb: str | None = None) -> None:
        if perturb is not None and perturb not in PERTURBATIONS:
            raise FacevoxError(f"unknown perturbation {perturb!r}; valid: {', '.join(PERTURBATIONS)}")
        self.paths = np.array([os.fsencode(p) for p in paths]) if len(paths) else np.zeros(0, dtype="S1")
        self.size, self.mask, self.perturb = int(size), tuple(mask) if mask else None, perturb

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Item:
        try:
            return index, self.image(index), "", None
        except FacevoxError as err:  # back to the main process as data: a worker's exception would lose its text
            return index, None, err.problem, err.where

    def image(self, index: int) -> np.ndarray:
        """The prepared image of ``index`` (raises :class:`FacevoxError` for a bad file)."""
        img = mask_region(resize_square(load_image(os.fsdecode(self.paths[index])), self.size), self.mask)
        if self.perturb:  # perturbed after resizing, then brought back to the detector's square
            img = mask_region(resize_square(PERTURBATIONS[self.perturb](img), self.size), self.mask)
        return img


def _items(batch: list[Item]) -> list[Item]:
    return batch


def image_batches(dataset: Dataset, batch_size: int, workers: int) -> Iterator[list[Item]]:
    """``dataset``'s items in order, ``batch_size`` at a time, decoded in ``workers`` processes."""
    if workers < 0:
        raise FacevoxError(f"must be an integer >= 0, got {workers}", "--workers")
    if not len(dataset):
        return iter(())
    workers = min(workers, -(-len(dataset) // batch_size))  # no more processes than batches
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=_items,
                        prefetch_factor=2 if workers else None)
    return iter(loader)
