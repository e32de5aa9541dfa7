"""Scoring trials: embedding extraction with a cache, cosine, AS-norm, calibration, thresholds.

Score normalisation and calibration are separate optional steps, as in WeSpeaker:
cosine -> (AS-norm with a cohort) -> (linear calibration to a log-likelihood ratio).
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facevox.audio.features import fixed_windows
from facevox.audio.io import load_audio
from facevox.errors import FacevoxError
from facevox.fileio import atomic_path
from facevox.tasks.speaker.corpus import Trial
from facevox.train import autocast, resolve_precision

SAMPLE_RATE = 16000
MIN_SCORING_SECONDS = 0.5  # shorter recordings are an error naming the file, not a shape error deep in a model


def _read_cache(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        data = {k: npz[k] for k in npz.files}
    shapes = {v.shape for v in data.values()}
    if any(v.dtype.kind != "f" for v in data.values()) or len(shapes) > 1 or any(len(s) != 1 for s in shapes):
        raise ValueError("entries are not float vectors of one size")
    if not all(np.isfinite(v).all() for v in data.values()):
        raise ValueError("NaN or infinite entries")
    return data


def model_fingerprint(model: nn.Module) -> str:
    """A short hash of the weights: cached embeddings are only reused for the same model."""
    h = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


class EmbeddingCache:
    """Embeddings keyed by (absolute path, size, mtime), stored as one .npz file (never unpickled).

    A cache file that cannot be read, or whose entries are not finite float vectors of one size,
    is dropped with a one-line warning on stderr and rebuilt.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.data: dict[str, np.ndarray] = {}
        self._dirty = False
        if path is not None and path.is_file():
            try:
                self.data = _read_cache(path)
            except Exception as err:  # a damaged file raises many types (zip, pickle refused, OS, shape)
                reason = " ".join(str(err).split())[:120] or type(err).__name__
                print(f"warning: {path}: unreadable embedding cache ({reason}); rebuilding it", file=sys.stderr)
                self._dirty = True  # rewritten on the next save

    @staticmethod
    def key(file: Path) -> str:
        st = file.stat()
        return f"{file.resolve()}|{st.st_size}|{st.st_mtime_ns}"

    def get(self, file: Path) -> np.ndarray | None:
        if not file.is_file():  # not cached; decoding it then raises the one-line error naming it
            return None
        return self.data.get(self.key(file))

    def put(self, file: Path, emb: np.ndarray) -> None:
        self.data[self.key(file)] = emb
        self._dirty = True

    def save(self) -> None:
        if self.path is not None and self._dirty:
            try:
                with atomic_path(self.path) as tmp, open(tmp, "wb") as fh:
                    np.savez(fh, **self.data)
            except OSError as err:  # a read-only or full cache folder: the scores are still right
                print(f"warning: {self.path}: cannot write the embedding cache ({err.strerror or err})",
                      file=sys.stderr)
            self._dirty = False


class WaveEmbedder:
    """Embed waveforms with a ``speaker_embedder``-style model (wave (B, T) -> (B, D)).

    Whole utterances are embedded in one pass; with ``window_seconds`` > 0, or for utterances
    longer than ``max_seconds``, the L2-normalised embeddings of windows are averaged.
    """

    def __init__(self, model: nn.Module, *, window_seconds: float = 0.0, max_seconds: float = 20.0,
                 precision: str = "fp32", device: str | torch.device = "cpu", batch_size: int = 16) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.window = int(window_seconds * SAMPLE_RATE)
        self.max_len = int(max_seconds * SAMPLE_RATE)
        self.amp = resolve_precision(precision, self.device)
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, wave: np.ndarray) -> np.ndarray:
        length = self.window or (self.max_len if len(wave) > self.max_len else 0)
        chunks = fixed_windows(wave, length, length // 2) if length else wave[None]
        embs = []
        for i in range(0, len(chunks), self.batch_size):
            x = torch.from_numpy(np.ascontiguousarray(chunks[i : i + self.batch_size], dtype=np.float32))
            with autocast(self.device, self.amp):
                e = self.model(x.to(self.device)).float()
            embs.append(torch.nn.functional.normalize(e, dim=1).cpu())
        mean = torch.cat(embs).mean(0)
        return torch.nn.functional.normalize(mean, dim=0).numpy()


def embed_files(files: Sequence[Path], embed: Callable[[np.ndarray], np.ndarray], cache: EmbeddingCache | None = None,
                min_seconds: float = MIN_SCORING_SECONDS, progress: bool = True) -> dict[Path, np.ndarray]:
    """Embeddings of audio files (each decoded once), reusing and filling ``cache``."""
    out: dict[Path, np.ndarray] = {}
    unique = list(dict.fromkeys(Path(f) for f in files))
    show = progress and len(unique) > 20
    for n, f in enumerate(unique, 1):
        emb = cache.get(f) if cache is not None else None
        if emb is None:
            emb = embed(load_audio(f, SAMPLE_RATE, min_seconds=min_seconds))
            if cache is not None:
                cache.put(f, emb)
        out[f] = emb
        if show and (n % 50 == 0 or n == len(unique)):
            print(f"embedded {n}/{len(unique)} files", file=sys.stderr, flush=True)
    if cache is not None:
        cache.save()
    return out


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


def far_threshold(nontarget: np.ndarray, target_far: float) -> float:
    """The lowest threshold whose false-accept rate (share of non-target scores >= it) is <= ``target_far``."""
    if not 0.0 <= target_far <= 1.0:
        raise FacevoxError(f"must be in [0, 1], got {target_far}", "scoring.target_far")
    desc = np.sort(np.asarray(nontarget, float))[::-1]
    if len(desc) == 0:
        return 0.0
    k = int(np.floor(target_far * len(desc) + 1e-9))  # at most k non-targets may be accepted
    if k >= len(desc):
        return float(desc[-1])
    return float(np.nextafter(desc[k], np.inf))  # just above the (k+1)-th highest: it is rejected


def fit_calibration(scores: np.ndarray, labels: np.ndarray, target_far: float) -> Calibration:
    """Fit the calibration and the threshold for ``target_far`` on development trials."""
    from scipy.optimize import minimize

    scores, labels = np.asarray(scores, float), np.asarray(labels, int)
    tar, non = scores[labels == 1], scores[labels == 0]
    # balanced (prior 0.5) cross-entropy, so a*s+b is a log-likelihood ratio (BOSARIS-style)
    def objective(p: np.ndarray) -> float:
        return 0.5 * np.mean(np.logaddexp(0, -(p[0] * tar + p[1]))) + 0.5 * np.mean(np.logaddexp(0, p[0] * non + p[1]))

    res = minimize(objective, x0=np.array([1.0, 0.0]), method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9})
    threshold = far_threshold(non, target_far)
    return Calibration(float(res.x[0]), float(res.x[1]), threshold, target_far, len(tar), len(non))


def default_cache_dir() -> Path:
    return Path(os.environ.get("FACEVOX_CACHE", Path.home() / ".cache" / "facevox"))
