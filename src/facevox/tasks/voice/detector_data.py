"""The detector's data: the index (a fakeface-format split file with generator, speaker, source and
sex columns), the log-spectrogram front end, training crops, and scoring clips in fixed windows.

An index is read with :func:`facevox.tasks.fakeface.data.read_split` (``path,label,split`` plus group
columns); the ``generator`` column must name ``real`` for real clips and one of
:data:`~facevox.tasks.voice.detector_config.GENERATORS` for fakes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from facevox.audio.features import Spectrogram, fixed_windows, random_crop
from facevox.audio.io import load_audio
from facevox.data import SeededDataset
from facevox.errors import FacevoxError, worker_errors
from facevox.inference_spec import VoiceDetectorSpec
from facevox.precision import autocast
from facevox.tasks.fakeface.data import LabelledImage, read_split
from facevox.tasks.voice.detector_config import GENERATORS, KINDS, SAMPLE_RATE

INDEX_NAME = "index.csv"
Clip = LabelledImage  # path, label (0 real, 1 fake), groups: generator, speaker, source, sex


def index_path(data: str | Path) -> Path:
    """The index file: ``data`` itself, or ``data/index.csv`` for a make-fakes folder."""
    data = Path(data)
    if data.is_dir():
        if not (data / INDEX_NAME).is_file():
            raise FacevoxError(f"no {INDEX_NAME} here (make one with facevox voice make-fakes)", data)
        return data / INDEX_NAME
    if not data.is_file():
        raise FacevoxError("index file or make-fakes folder not found", data)
    if data.suffix.lower() != ".csv":
        raise FacevoxError("expected the index.csv of facevox voice make-fakes (or its folder)", data)
    return data


def read_index(data: str | Path) -> dict[str, list[Clip]]:
    """Split name -> clips, with the generator column checked against the labels."""
    path = index_path(data)
    splits = read_split(path)
    for clip in (c for s in splits.values() for c in s):
        if "generator" not in clip.groups:
            raise FacevoxError("the index needs a generator column (real, " + ", ".join(GENERATORS) + ")", path)
        gen = clip.groups["generator"]
        if gen not in KINDS:
            raise FacevoxError(f"unknown generator '{gen}' (valid: {', '.join(KINDS)})", path)
        if (gen == "real") != (clip.label == 0):
            raise FacevoxError(f"a {'real' if clip.label == 0 else 'fake'} clip with generator '{gen}' "
                               f"({clip.path.name})", path)
    return splits


def check_generators(names: Sequence[str], key: str) -> list[str]:
    """``names`` if each is a known generator, else a one-line error naming ``key``."""
    for n in names:
        if n not in GENERATORS:
            raise FacevoxError(f"unknown generator '{n}'; valid: {', '.join(GENERATORS)}", key)
    return list(names)


def keep_generators(clips: Sequence[Clip], generators: Sequence[str] | None) -> list[Clip]:
    """The real clips and the fakes of ``generators`` (None or empty: all fakes)."""
    if not generators:
        return list(clips)
    wanted = {"real", *generators}
    return [c for c in clips if c.groups.get("generator") in wanted]


class FrontEnd(nn.Module):
    """Waves (B, T) -> log-magnitude spectrograms (B, 1, F, frames), each shifted to mean 0 (level-free)."""

    def __init__(self, spec: VoiceDetectorSpec) -> None:
        super().__init__()
        self.spec = Spectrogram(spec.n_fft, spec.win_length, spec.hop_length, log=True, cmn=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = self.spec(wave)
        return (x - x.mean(dim=(1, 2), keepdim=True))[:, None]


class _Paths:
    """Paths held as one fixed-width bytes array (forked DataLoader workers do not copy them)."""

    def __init__(self, paths: Sequence[str | Path]) -> None:
        self.paths = np.array([os.fsencode(p) for p in paths]) if len(paths) else np.zeros(0, dtype="S1")

    def path(self, i: int) -> str:
        return os.fsdecode(self.paths[i])


class TrainCrops(SeededDataset):
    """Clip ``i`` -> (a random crop of ``length`` samples (T,), label), decoded in the worker."""

    def __init__(self, clips: Sequence[Clip], length: int, min_seconds: float) -> None:
        self.files = _Paths([c.path for c in clips])
        self.labels = np.array([c.label for c in clips], dtype=np.int64)
        self.length, self.min_seconds = int(length), float(min_seconds)

    def __len__(self) -> int:
        return len(self.labels)

    def get(self, index: int, rng: np.random.Generator):
        wave = load_audio(self.files.path(index), SAMPLE_RATE, self.min_seconds)
        crop = random_crop(wave, self.length, rng)
        return torch.from_numpy(np.ascontiguousarray(crop, dtype=np.float32)), torch.tensor(float(self.labels[index]))


class ScoringClips(Dataset):
    """File ``i`` -> (i, wave at 16 kHz, optionally perturbed), decoded in the worker."""

    def __init__(self, paths: Sequence[str | Path], min_seconds: float,
                 perturb: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        self.files, self.min_seconds, self.perturb = _Paths(paths), float(min_seconds), perturb

    def __len__(self) -> int:
        return len(self.files.paths)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray]:
        wave = load_audio(self.files.path(i), SAMPLE_RATE, self.min_seconds)
        return i, self.perturb(wave) if self.perturb else wave


def _items(batch: list) -> list:
    return batch


class VoiceDetector:
    """A loaded detector: P(fake) of waves, each scored in fixed windows whose logits are averaged."""

    def __init__(self, model: nn.Module, spec: VoiceDetectorSpec, device: torch.device | str = "cpu",
                 amp: torch.dtype | None = None, batch_size: int = 32) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.spec, self.amp, self.batch_size = spec, amp, batch_size
        self.front = FrontEnd(spec).to(self.device)
        self.window = max(1, int(round(spec.window_seconds * spec.sample_rate)))
        self.threshold = spec.threshold
        self.where: str | Path = "the detector"

    def windows(self, wave: np.ndarray) -> torch.Tensor:
        """(N, window) half-overlapping windows covering the wave (one, repeated, if it is shorter)."""
        return torch.from_numpy(np.ascontiguousarray(fixed_windows(wave, self.window, self.window // 2),
                                                     dtype=np.float32))

    def features(self, wave: np.ndarray) -> torch.Tensor:
        """Log-spectrograms (N, 1, F, frames) of the wave's windows."""
        with torch.no_grad():
            return self.front(self.windows(wave).to(self.device))

    @torch.no_grad()
    def logit(self, wave: np.ndarray) -> float:
        x = self.features(wave)
        out = []
        for i in range(0, len(x), self.batch_size):
            with autocast(self.device, self.amp):
                out.append(self.model(x[i : i + self.batch_size]).float().reshape(-1))
        return float(torch.cat(out).mean())

    def probs(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        logits = np.array([self.logit(w) for w in waves], dtype=np.float64)
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)

    def score_files(self, paths: Sequence[str | Path], workers: int = 0,
                    perturb: Callable[[np.ndarray], np.ndarray] | None = None,
                    progress: Callable[[int], None] | None = None) -> np.ndarray:
        """P(fake) of each file, decoded in ``workers`` DataLoader processes (a bad file: its one-line error)."""
        out = np.zeros(len(paths), dtype=np.float32)
        for batch in iter_clips(ScoringClips(paths, self.spec.min_seconds, perturb), workers):
            for i, wave in batch:
                out[i] = self.probs([wave])[0]
            if progress:
                progress(len(batch))
        return out


def iter_clips(dataset: Dataset, workers: int, batch: int = 4) -> Iterator[list[Any]]:
    """Items of ``dataset`` in order, a few at a time; a worker's FacevoxError comes back as one line."""
    if not len(dataset):
        return
    workers = min(workers, -(-len(dataset) // batch))
    loader = DataLoader(dataset, batch_size=batch, num_workers=workers, collate_fn=_items,
                        prefetch_factor=2 if workers else None)
    with worker_errors():
        yield from loader


def load_detector(model_dir: str | Path, use: str, device: str = "auto", precision: str = "fp32",
                  batch_size: int = 32) -> VoiceDetector:
    """The detector in a voice-detector model folder (another task's folder: a one-line error)."""
    from facevox.checkpoint import read_model_folder
    from facevox.tasks.fakeface.scoring import inference_device, inference_precision
    from facevox.tasks.voice.detector_config import TASK

    dev = inference_device(device)
    folder = read_model_folder(model_dir, dev, task=TASK, use=use)  # extra.json checked (model_schema)
    det = VoiceDetector(folder.model, folder.inference, dev, inference_precision(precision, dev), batch_size)
    det.where = folder.path
    return det
