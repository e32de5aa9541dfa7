"""Scoring trials: embedding extraction into a store, cosine, AS-norm, calibration, thresholds.

Score normalisation and calibration are separate optional steps, as in WeSpeaker:
cosine -> (AS-norm with a cohort) -> (linear calibration to a log-likelihood ratio).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facevox.audio.features import fixed_windows
from facevox.metrics import threshold_at_far
from facevox.precision import autocast, resolve_device, resolve_precision
from facevox.tasks.speaker.corpus import Trial
from facevox.verification.extract import Extract, embed_paths, extract_waves, extract_waves_each
from facevox.verification.store import EmbeddingStore, model_fingerprint, store_fingerprint  # noqa: F401

SAMPLE_RATE = 16000
MIN_SCORING_SECONDS = 0.5  # shorter recordings are an error naming the file, not a shape error deep in a model


@dataclass(frozen=True)
class Chunker:
    """A wave (T,) -> its chunks (n, L): the whole wave, or windows of ``window`` samples (half
    overlap) when windowed scoring is on or the wave is longer than ``max_len``. Picklable, for workers."""

    window: int
    max_len: int

    def __call__(self, wave: np.ndarray) -> np.ndarray:
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


def unit(x: np.ndarray) -> np.ndarray:
    """Rows (or a vector) scaled to length 1; an all-zero embedding stays 0 instead of NaN."""
    return x / np.linalg.norm(x, axis=-1, keepdims=True).clip(1e-12)


def trial_embeddings(trials: Sequence[Trial], emb: dict[Path, np.ndarray], root: Path) -> tuple[np.ndarray, np.ndarray]:
    """The two sides' embeddings of every trial: (N, D) each."""
    return (np.stack([emb[resolve(root, t.a)] for t in trials]), np.stack([emb[resolve(root, t.b)] for t in trials]))


def cosine_scores(trials: Sequence[Trial], emb: dict[Path, np.ndarray], root: Path) -> np.ndarray:
    a, b = trial_embeddings(trials, emb, root)
    return np.sum(unit(a) * unit(b), axis=1)


def resolve(root: Path, name: str) -> Path:
    p = Path(name)
    return p if p.is_absolute() else root / p


def as_norm(scores: np.ndarray, emb_a: np.ndarray, emb_b: np.ndarray, cohort: np.ndarray, top_k: int) -> np.ndarray:
    """Adaptive symmetric score normalisation (Matejka et al. 2017, "AS-norm1").

    For each side, the mean and std of its ``top_k`` highest cosine scores against the cohort
    (C, D) normalise the trial score; the two normalised scores are averaged.
    """
    def stats(e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e = e / np.linalg.norm(e, axis=1, keepdims=True)
        c = cohort / np.linalg.norm(cohort, axis=1, keepdims=True)
        s = e @ c.T
        k = max(1, min(top_k, s.shape[1]))
        top = -np.partition(-s, k - 1, axis=1)[:, :k]
        return top.mean(1), top.std(1) + 1e-8

    mu_a, sd_a = stats(emb_a)
    mu_b, sd_b = stats(emb_b)
    return 0.5 * ((scores - mu_a) / sd_a + (scores - mu_b) / sd_b)


@dataclass
class Calibration:
    """Linear calibration llr = a * score + b, fitted by prior-weighted logistic regression."""

    a: float
    b: float
    threshold: float  # raw-score threshold giving the target false-accept rate
    target_far: float
    n_target: int
    n_nontarget: int

    def llr(self, scores: np.ndarray | float) -> np.ndarray:
        return self.a * np.asarray(scores) + self.b

    def probability(self, scores: np.ndarray | float, prior: float = 0.5) -> np.ndarray:
        """P(same speaker | score) at the given prior of a target trial."""
        logit = self.llr(scores) + np.log(prior / (1 - prior))
        return 1.0 / (1.0 + np.exp(-logit))

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def fit_calibration(scores: np.ndarray, labels: np.ndarray, target_far: float) -> Calibration:
    """Fit the calibration and the threshold for ``target_far`` on development trials."""
    from scipy.optimize import minimize

    scores, labels = np.asarray(scores, float), np.asarray(labels, int)
    tar, non = scores[labels == 1], scores[labels == 0]
    # balanced (prior 0.5) cross-entropy, so a*s+b is a log-likelihood ratio (BOSARIS-style)
    def objective(p: np.ndarray) -> float:
        return 0.5 * np.mean(np.logaddexp(0, -(p[0] * tar + p[1]))) + 0.5 * np.mean(np.logaddexp(0, p[0] * non + p[1]))

    res = minimize(objective, x0=np.array([1.0, 0.0]), method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9})
    threshold = threshold_at_far(non, target_far, name="scoring.target_far")
    return Calibration(float(res.x[0]), float(res.x[1]), threshold, target_far, len(tar), len(non))


def default_cache_dir() -> Path:
    return Path(os.environ.get("FACEVOX_CACHE", Path.home() / ".cache" / "facevox"))
