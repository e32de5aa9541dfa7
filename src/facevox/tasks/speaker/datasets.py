"""Training datasets of the speaker task: waveforms held in memory, random crops per sample seed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from facevox.audio.augment import WaveAugment
from facevox.audio.features import random_crop
from facevox.audio.io import load_many
from facevox.data import SeededDataset
from facevox.errors import FacevoxError
from facevox.fileio import report_skipped
from facevox.tasks.speaker.corpus import Corpus, Utterance

SAMPLE_RATE = 16000


class Waves:
    """Decoded utterances as int16 (half the memory of float32) with integer speaker labels."""

    def __init__(self, utterances: Sequence[Utterance], min_seconds: float, skip_bad: bool, max_seconds: float) -> None:
        waves, bad = load_many([u.path for u in utterances], SAMPLE_RATE, min_seconds=min_seconds, skip_bad=skip_bad)
        bad_paths = report_skipped(bad)
        kept = [u for u in utterances if u.path not in bad_paths]
        if not kept:
            raise FacevoxError("no usable audio file in the training corpus")
        limit = int(max_seconds * SAMPLE_RATE)
        self.utterances = kept
        self.waves = [(np.clip(w[:limit], -1, 1) * 32767).astype(np.int16) for w in waves]
        self.speakers = sorted({u.speaker for u in kept})
        index = {s: i for i, s in enumerate(self.speakers)}
        self.labels = np.array([index[u.speaker] for u in kept], dtype=np.int64)
        self.skipped = bad

    def __len__(self) -> int:
        return len(self.waves)

    def wave(self, i: int) -> np.ndarray:
        return self.waves[i].astype(np.float32) / 32767.0

    def crop(self, i: int, length: int, rng: np.random.Generator) -> np.ndarray:
        """A random ``length``-sample window of utterance ``i`` as float32 (cut before converting)."""
        return random_crop(self.waves[i], length, rng).astype(np.float32) / np.float32(32767.0)

    def seconds(self) -> float:
        return sum(len(w) for w in self.waves) / SAMPLE_RATE


def make_augment(noise_prob: float, snr_db: tuple[float, float], speed_prob: float, waves: Waves) -> WaveAugment:
    # other training utterances make a babble-like noise bank, as MUSAN's speech part does
    rng = np.random.default_rng(0)
    bank = [waves.wave(int(i)) for i in rng.choice(len(waves), size=min(32, len(waves)), replace=False)]
    return WaveAugment(noise_prob=noise_prob, snr_db=tuple(snr_db), noise_bank=bank, speed_prob=speed_prob)


def augmented_crop(waves: Waves, i: int, length: int, augment: WaveAugment | None,
                   rng: np.random.Generator) -> np.ndarray:
    """Utterance ``i``, augmented (noise, speed) when asked, cut to ``length`` samples at a random position.

    A random piece just long enough for the fastest speed factor is cut first and augmented, not
    the whole utterance: the same distribution of crops for a fraction of the work.
    """
    if augment is None:
        return waves.crop(int(i), length, rng)
    return augment(waves.crop(int(i), augment.input_length(length), rng), rng, length)


class CropDataset(SeededDataset):
    """Item -> (crop (L,) float32, speaker label); utterances are visited round-robin.

    With ``per_speaker`` = k > 1 an item is k crops of one speaker, (k, L) with labels (k,): the
    class-balanced "N speakers x k utterances" batches that Mask Proxy and MMP learn from. The k
    crops come from different utterances when the speaker has enough, else from random positions
    of the same ones.
    """

    def __init__(self, waves: Waves, crop_samples: int, length: int, augment: WaveAugment | None,
                 per_speaker: int = 1) -> None:
        self.waves, self.crop, self.length, self.augment = waves, crop_samples, length, augment
        self.per_speaker = per_speaker
        self.by_speaker = [np.flatnonzero(waves.labels == s) for s in range(len(waves.speakers))]

    def __len__(self) -> int:
        return self.length

    def _crop(self, i: int, rng: np.random.Generator) -> torch.Tensor:
        return torch.from_numpy(augmented_crop(self.waves, i, self.crop, self.augment, rng))

    def get(self, index: int, rng: np.random.Generator) -> tuple[torch.Tensor, int | torch.Tensor]:
        if self.per_speaker <= 1:
            i = index % len(self.waves)
            return self._crop(i, rng), int(self.waves.labels[i])
        speaker = index % len(self.by_speaker)
        utts = self.by_speaker[speaker]
        picks = rng.choice(utts, self.per_speaker, replace=len(utts) < self.per_speaker)
        crops = torch.stack([self._crop(i, rng) for i in picks])
        return crops, torch.full((self.per_speaker,), speaker, dtype=torch.long)


class PairDataset(SeededDataset):
    """Item -> (pair (2, L) float32, same 0/1): random same/different pairs at ``target_fraction``.

    Same-speaker pairs use two different utterances when the speaker has them, otherwise two
    crops of one utterance (the only option for corpora with one utterance per speaker).
    """

    def __init__(self, waves: Waves, crop_samples: int, length: int, target_fraction: float,
                 augment: WaveAugment | None) -> None:
        self.waves, self.crop, self.length, self.target_fraction = waves, crop_samples, length, target_fraction
        self.augment = augment
        self.by_speaker = [np.flatnonzero(waves.labels == s) for s in range(len(waves.speakers))]
        if len(self.by_speaker) < 2:
            raise FacevoxError("pair training needs at least 2 speakers")

    def __len__(self) -> int:
        return self.length

    def _crop(self, i: int, rng: np.random.Generator) -> np.ndarray:
        return augmented_crop(self.waves, i, self.crop, self.augment, rng)

    def get(self, index: int, rng: np.random.Generator) -> tuple[torch.Tensor, float]:
        n_spk = len(self.by_speaker)
        same = rng.random() < self.target_fraction
        s = int(rng.integers(n_spk))
        utts = self.by_speaker[s]
        if same:
            a, b = (rng.choice(utts, 2, replace=False) if len(utts) > 1 else (utts[0], utts[0]))
        else:
            t = int(rng.integers(n_spk - 1))
            t += t >= s
            a, b = rng.choice(utts), rng.choice(self.by_speaker[t])
        pair = np.stack([self._crop(a, rng), self._crop(b, rng)]).astype(np.float32)
        return torch.from_numpy(pair), float(same)


def split_calibration(corpus: Corpus, n_speakers: int, seed: int = 0) -> tuple[list[Utterance], list[Utterance]]:
    """(training utterances, held-out calibration utterances of ``n_speakers`` speakers)."""
    if n_speakers <= 0:
        return list(corpus.utterances), []
    groups = corpus.by_speaker()
    # only speakers with 2+ utterances give same-speaker calibration trials
    multi = [s for s, us in groups.items() if len(us) >= 2]
    if n_speakers > min(len(multi), len(groups) - 2):
        raise FacevoxError(f"cannot hold out {n_speakers} speakers for calibration: {len(groups)} speakers, "
                           f"{len(multi)} of them with 2 or more utterances", "data.calib_speakers")
    held = set(np.random.default_rng(seed).choice(multi, n_speakers, replace=False).tolist())
    return ([u for u in corpus.utterances if u.speaker not in held],
            [u for u in corpus.utterances if u.speaker in held])
