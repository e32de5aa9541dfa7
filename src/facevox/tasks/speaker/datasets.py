"""Training datasets of the speaker task: waveforms in memory (:class:`Waves`) or decoded per item in the
DataLoader workers (:class:`LazyWaves`, same interface, same crops), random crops per sample seed; and the
record that turns a shard item into the same crop (:class:`SpeakerRecord`)."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from facevox.audio.augment import WaveAugment
from facevox.audio.features import random_crop
from facevox.audio.io import audio_info, load_audio, load_many
from facevox.data import SeededDataset
from facevox.errors import FacevoxError
from facevox.fileio import report_skipped
from facevox.tasks.speaker.corpus import Corpus, Utterance
from facevox.textfile import shown_name
from facevox.verification.heldout import hold_out

if TYPE_CHECKING:
    from facevox.datasets.index import FileIndex

SAMPLE_RATE = 16000


def quantise(wave: np.ndarray, max_seconds: float) -> np.ndarray:
    """A decoded waveform cut to ``max_seconds`` and stored as int16 (how the training sets hold audio)."""
    return (np.clip(wave[: int(max_seconds * SAMPLE_RATE)], -1, 1) * 32767).astype(np.int16)


def crop_int16(wave16: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``length``-sample window of an int16 waveform as float32 (cut before converting)."""
    return random_crop(wave16, length, rng).astype(np.float32) / np.float32(32767.0)


class Waves:
    """Decoded utterances as int16 (half the memory of float32) with integer speaker labels."""

    def __init__(self, utterances: Sequence[Utterance], min_seconds: float, skip_bad: bool, max_seconds: float) -> None:
        waves, bad = load_many([u.path for u in utterances], SAMPLE_RATE, min_seconds=min_seconds, skip_bad=skip_bad)
        bad_paths = report_skipped(bad)
        kept = [u for u in utterances if u.path not in bad_paths]
        if not kept:
            raise FacevoxError("no usable audio file in the training corpus")
        self.utterances = kept
        self.waves = [quantise(w, max_seconds) for w in waves]
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
        return crop_int16(self.waves[i], length, rng)

    def seconds(self) -> float:
        return sum(len(w) for w in self.waves) / SAMPLE_RATE

    @classmethod
    def from_index(cls, index: FileIndex, min_seconds: float, skip_bad: bool, max_seconds: float) -> Waves:
        return cls([Utterance(index.path(i), index.label_name(i)) for i in range(len(index))], min_seconds,
                   skip_bad, max_seconds)


def header_seconds(path: Any) -> float:
    """Duration at 16 kHz from the file's header (as many samples as resampling would give)."""
    rate, _, frames = audio_info(path)
    return math.ceil(frames * SAMPLE_RATE / rate) / SAMPLE_RATE


class LazyWaves:
    """:class:`Waves` without the waveforms: an index of files decoded when a crop is asked for.

    Built from a :class:`~facevox.datasets.index.FileIndex`; only numpy arrays are held, so forked
    DataLoader workers share them. Every file's header is read now (or its duration taken from the
    manifest's ``duration`` column), so a missing file, an undecodable header or a file shorter
    than ``min_seconds`` is the same one-line error as in memory, or is skipped and listed with
    ``skip_bad``, before training. A crop is the one :class:`Waves` gives: the file decoded, cut to
    ``max_seconds``, stored as int16, then cropped. A file whose body turns out undecodable in a
    worker raises (one line naming it), or with ``skip_bad`` is replaced by the next utterance of
    the same speaker and listed on stderr.
    """

    def __init__(self, index: FileIndex, min_seconds: float, skip_bad: bool, max_seconds: float) -> None:
        keep, seconds, bad = [], [], []
        for i in range(len(index)):
            path = index.path(i)
            try:
                d = float(index.durations[i]) if index.durations is not None else math.nan
                if not math.isfinite(d):
                    d = header_seconds(path)
                if d < min_seconds:
                    raise FacevoxError(f"audio too short ({d:.2f} s, need at least {min_seconds:g} s)",
                                       where=shown_name(path))
            except FacevoxError as err:
                if not skip_bad:
                    raise
                bad.append((path, err.problem))
                continue
            keep.append(i)
            seconds.append(d)
        report_skipped(bad)
        if not keep:
            raise FacevoxError("no usable audio file in the training corpus")
        kept = index.take(keep)
        names = sorted({kept.classes[c] for c in np.unique(kept.labels)})
        self.index = kept.relabel(names)
        self.labels = self.index.labels
        self.speakers = names
        self.durations = np.minimum(np.asarray(seconds, dtype=np.float64), max_seconds)
        self.skip_bad, self.max_seconds, self.skipped = skip_bad, max_seconds, bad

    def __len__(self) -> int:
        return len(self.labels)

    def _int16(self, i: int) -> np.ndarray:
        tried = 0
        while True:
            try:
                return quantise(load_audio(self.index.path(i), SAMPLE_RATE), self.max_seconds)
            except FacevoxError as err:
                same = np.flatnonzero(self.labels == self.labels[i])
                if not self.skip_bad or tried >= len(same) - 1:
                    raise
                print(f"skipped bad file {err}", file=sys.stderr)
                i, tried = int(same[(np.searchsorted(same, i) + 1) % len(same)]), tried + 1

    def wave(self, i: int) -> np.ndarray:
        return self._int16(i).astype(np.float32) / 32767.0

    def crop(self, i: int, length: int, rng: np.random.Generator) -> np.ndarray:
        """A random ``length``-sample window of utterance ``i`` as float32 (cut before converting)."""
        return crop_int16(self._int16(i), length, rng)

    def seconds(self) -> float:
        return float(self.durations.sum())


def make_augment(noise_prob: float, snr_db: tuple[float, float], speed_prob: float,
                 waves: Waves | LazyWaves | None = None, bank: list[np.ndarray] | None = None) -> WaveAugment:
    # other training utterances make a babble-like noise bank, as MUSAN's speech part does
    if bank is None:
        rng = np.random.default_rng(0)
        bank = [waves.wave(int(i)) for i in rng.choice(len(waves), size=min(32, len(waves)), replace=False)]
    return WaveAugment(noise_prob=noise_prob, snr_db=tuple(snr_db), noise_bank=bank, speed_prob=speed_prob)


class SpeakerRecord:
    """A shard item -> (crop (L,) float32, speaker label): the crop :class:`CropDataset` makes of the same file."""

    def __init__(self, crop_samples: int, augment: WaveAugment | None, max_seconds: float) -> None:
        self.crop, self.augment, self.max_seconds = crop_samples, augment, max_seconds

    def wave16(self, data: bytes, meta: dict[str, Any]) -> np.ndarray:
        from facevox.datasets.decode import decode_bytes

        wave = decode_bytes(data, meta["_ext"], meta["_where"], lambda p: load_audio(p, SAMPLE_RATE))
        return quantise(wave, self.max_seconds)

    def __call__(self, data: bytes, meta: dict[str, Any], rng: np.random.Generator) -> tuple[torch.Tensor, int]:
        w16 = self.wave16(data, meta)
        if self.augment is None:
            x = crop_int16(w16, self.crop, rng)
        else:
            x = self.augment(crop_int16(w16, self.augment.input_length(self.crop), rng), rng, self.crop)
        return torch.from_numpy(x), int(meta["label_index"])


def augmented_crop(waves: Waves | LazyWaves, i: int, length: int, augment: WaveAugment | None,
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

    def __init__(self, waves: Waves | LazyWaves, crop_samples: int, length: int, augment: WaveAugment | None,
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

    def __init__(self, waves: Waves | LazyWaves, crop_samples: int, length: int, target_fraction: float,
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
    """(training utterances, held-out calibration utterances of ``n_speakers`` speakers with 2+
    utterances), chosen by :func:`facevox.verification.heldout.hold_out`."""
    groups = corpus.by_speaker()
    held = hold_out({s: len(us) for s, us in groups.items()}, n_speakers, seed, "data.calib_speakers", noun="speakers")
    return ([u for u in corpus.utterances if u.speaker not in held],
            [u for u in corpus.utterances if u.speaker in held])


def split_calibration_index(index: FileIndex, n_speakers: int, seed: int = 0) -> tuple[FileIndex, list[Utterance]]:
    """:func:`split_calibration` on a file index: (training items, held-out calibration utterances);
    the same speakers are held out as from the corpus the index was read from."""
    if n_speakers <= 0:
        return index, []
    counts = np.bincount(index.labels, minlength=len(index.classes))
    present = {index.classes[c]: int(counts[c]) for c in range(len(index.classes)) if counts[c] > 0}
    held = hold_out(present, n_speakers, seed, "data.calib_speakers", noun="speakers")
    is_held = np.isin(index.labels, [index.classes.index(s) for s in held])
    calib = [Utterance(index.path(i), index.label_name(i)) for i in np.flatnonzero(is_held)]
    return index.take(np.flatnonzero(~is_held)), calib
