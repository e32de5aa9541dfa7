"""Embedding speech for scoring: the waveform embedder (whole utterance or windows), its
extraction into a store, and where trial paths point. Scoring, AS-norm, calibration and the
threshold are the shared layer's (:mod:`facevox.verification`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facevox.audio.features import fixed_windows
from facevox.precision import autocast, resolve_device, resolve_precision
from facevox.verification.extract import Extract, embed_paths, extract_waves, extract_waves_each
from facevox.verification.store import EmbeddingStore, model_fingerprint, store_fingerprint  # noqa: F401

SAMPLE_RATE = 16000
# Recordings shorter than the scorer's min_seconds (--min-seconds; this by default) are an error
# naming the file (or are skipped with --skip-bad), not a shape error deep in a model.
MIN_SCORING_SECONDS = 0.5
# The padding rule: a recording shorter than this (allowed by a lower --min-seconds) is tiled, repeated
# end to end and cut to this length, before it is embedded, so every network sees at least 0.5 s of
# frames; recordings at least this long are embedded as they are.
PAD_SECONDS = 0.5


def tile_to(wave: np.ndarray, length: int) -> np.ndarray:
    """``wave`` repeated end to end and cut to ``length`` samples when shorter; else unchanged."""
    if len(wave) >= length or len(wave) == 0:
        return wave
    return np.tile(wave, -(-length // len(wave)))[:length]


@dataclass(frozen=True)
class Chunker:
    """A wave (T,) -> its chunks (n, L): the whole wave, or windows of ``window`` samples (half
    overlap) when windowed scoring is on or the wave is longer than ``max_len``; a wave shorter than
    ``pad`` samples is first tiled to it (:data:`PAD_SECONDS`). Picklable, for workers."""

    window: int
    max_len: int
    pad: int = int(PAD_SECONDS * SAMPLE_RATE)

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        wave = tile_to(wave, self.pad)
        length = self.window or (self.max_len if len(wave) > self.max_len else 0)
        return fixed_windows(wave, length, length // 2) if length else wave[None]


class WaveEmbedder:
    """Embed waveforms with a ``speaker_embedder``-style model (wave (B, T) -> (B, D)).

    Whole utterances are embedded in one pass; with ``window_seconds`` > 0, or for utterances
    longer than ``max_seconds``, the L2-normalised embeddings of windows are averaged.
    :meth:`embed_batch` runs chunks of one length from many files at once (batched extraction).
    """

    def __init__(self, model: nn.Module, *, window_seconds: float = 0.0, max_seconds: float = 20.0,
                 precision: str = "fp32", device: str | torch.device = "cpu", batch_size: int = 16) -> None:
        self.device = resolve_device(device, "--device") if isinstance(device, str) else torch.device(device)
        self.model = model.to(self.device).eval()
        self.window = int(window_seconds * SAMPLE_RATE)
        self.max_len = int(max_seconds * SAMPLE_RATE)
        self.chunks = Chunker(self.window, self.max_len)
        self.amp = resolve_precision(precision, self.device)
        self.batch_size = batch_size
        self.settings = {"window": self.window, "max_len": self.max_len,
                         "precision": "fp32" if self.amp is None else str(self.amp).removeprefix("torch.")}

    @torch.no_grad()
    def embed_batch(self, chunks: np.ndarray) -> np.ndarray:
        """Unit embeddings (B, D) float32 of chunks (B, L) of one length."""
        x = torch.from_numpy(np.ascontiguousarray(chunks, dtype=np.float32)).to(self.device)
        with autocast(self.device, self.amp):
            e = self.model(x).float()
        return torch.nn.functional.normalize(e, dim=1).cpu().numpy()

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        chunks = self.chunks(wave)
        embs = np.concatenate([self.embed_batch(chunks[i : i + self.batch_size])
                               for i in range(0, len(chunks), self.batch_size)])
        mean = torch.from_numpy(embs).mean(0)
        return torch.nn.functional.normalize(mean, dim=0).numpy()


def default_store(fingerprint: str) -> EmbeddingStore:
    """The default embedding cache of a scorer: ``default_cache_dir()/speaker-<fingerprint>/`` (a store)."""
    return EmbeddingStore.open(default_cache_dir() / f"speaker-{fingerprint}", fingerprint, damaged="warn")


def extractor(embed: Callable[[np.ndarray], np.ndarray], *, min_seconds: float = MIN_SCORING_SECONDS,
              workers: int = 0, batch_size: int = 32, skip_bad: bool = False, progress: bool = True) -> Extract:
    """The extraction function for :func:`facevox.verification.embed_paths`: batched for a
    :class:`WaveEmbedder`, one file at a time for other embedders (Resemblyzer)."""
    if isinstance(embed, WaveEmbedder):
        return lambda paths, sink: extract_waves(paths, embed.embed_batch, sink, chunker=embed.chunks,
                                                 sample_rate=SAMPLE_RATE, min_seconds=min_seconds, workers=workers,
                                                 batch_size=batch_size, skip_bad=skip_bad, progress=progress)
    return lambda paths, sink: extract_waves_each(paths, embed, sink, sample_rate=SAMPLE_RATE, min_seconds=min_seconds,
                                                  workers=workers, skip_bad=skip_bad, progress=progress)


def embed_files(files: Sequence[Path], embed: Callable[[np.ndarray], np.ndarray], cache: EmbeddingStore | None = None,
                min_seconds: float = MIN_SCORING_SECONDS, progress: bool = True, workers: int = 0,
                batch_size: int = 32) -> dict[Path, np.ndarray]:
    """Embeddings of audio files (each decoded once), reusing and filling the store ``cache``."""
    unique = list(dict.fromkeys(Path(f) for f in files))
    emb, _, _ = embed_paths(unique, extractor(embed, min_seconds=min_seconds, workers=workers,
                                              batch_size=batch_size, progress=progress), cache)
    return dict(zip(unique, emb, strict=True))


def resolve(root: Path, name: str) -> Path:
    p = Path(name)
    return p if p.is_absolute() else root / p


def default_cache_dir() -> Path:
    return Path(os.environ.get("FACEVOX_CACHE", Path.home() / ".cache" / "facevox"))
