"""A procedural multi-speaker voice synthesiser: the built-in corpus for ``facevox demo``.

The demo must run on a fresh machine with no downloads, so the project makes its own speech-like
corpus. Each utterance comes from a small source-filter synthesiser (16 kHz, numpy/scipy only):

* **source**: a Rosenberg glottal pulse train (speaker open and speed quotient) differentiated for
  lip radiation, with per-period jitter and shimmer, pulse-synchronous aspiration noise
  (breathiness) and a speaker-specific spectral tilt;
* **filter**: five cascaded second-order formant resonators whose frequencies follow smoothed
  vowel and consonant targets, scaled by the speaker's vocal-tract length, per-formant offsets
  and a per-vowel "accent", re-designed every 10 ms; then fixed higher poles (the tube's
  resonances above F5) and the speaker's nasal resonance and anti-resonance;
* **consonants**: band-limited frication noise (/s/, /sh/, /f/ and their voiced partners), plosive
  closures with bursts and aspiration, nasals, approximants and /h/;
* **prosody**: random CV(C) words with lexical stress, a declining intonation contour with random
  pitch accents, pauses, and the speaker's speaking rate.

Speaker identity is therefore carried by the cues real speaker recognisers rely on (f0, formant
spacing, voice quality, spectral tilt, nasality, rhythm), while every utterance differs: a new
random "sentence", pitch contour, rate, effort and loudness, a random mild channel EQ and
background noise at 25-40 dB SNR, so memorising one clip does not work.

:func:`make_corpus` writes a folder-per-speaker corpus (``spk000/utt00.wav`` ...) that is
byte-for-byte deterministic for a seed and is reused when it is already complete.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import butter, lfilter, sosfilt

from facevox.errors import FacevoxError
from facevox.fileio import atomic_path, atomic_write_text

__all__ = ["CORPUS_VERSION", "VOWELS", "Voice", "make_corpus", "synthesize"]

# Bump when the synthesiser's output changes, so make_corpus does not reuse an older corpus.
CORPUS_VERSION = 1

# F1-F3 of adult male vowels (Peterson & Barney 1952); speakers scale and perturb them.
VOWELS: dict[str, tuple[float, float, float]] = {
    "i": (270.0, 2290.0, 3010.0),
    "ih": (390.0, 1990.0, 2550.0),
    "e": (530.0, 1840.0, 2480.0),
    "ae": (660.0, 1720.0, 2410.0),
    "a": (730.0, 1090.0, 2440.0),
    "o": (570.0, 840.0, 2410.0),
    "uh": (520.0, 1190.0, 2390.0),
    "u": (300.0, 870.0, 2240.0),
    "er": (490.0, 1350.0, 1690.0),
}
_VOWEL_NAMES = tuple(VOWELS)
_VOWEL_TABLE = np.array([VOWELS[v] for v in _VOWEL_NAMES])

# Fixed upper formants (male reference) and base bandwidths of the five cascaded resonators.
_F4, _F5 = 3400.0, 4400.0
_BANDWIDTHS = np.array([60.0, 90.0, 130.0, 220.0, 300.0])
_SCHWA = (500.0, 1500.0, 2500.0)
_HIGHER_POLES = np.array([5500.0, 6500.0, 7500.0])
_HIGHER_BANDWIDTHS = np.array([500.0, 700.0, 900.0])


@dataclass(frozen=True)
class _Consonant:
    """One consonant class: manner, formant locus, frication band and level, voicing."""

    manner: str  # "fricative", "plosive", "nasal", "approximant" or "h"
    locus: tuple[float, float, float]  # F1-F3 the formants move towards
    band: tuple[float, float] = (0.0, 0.0)  # frication / burst noise band in Hz (male reference); unused if none
    level_db: float = 0.0  # frication level relative to the voiced speech RMS
    voiced: bool = False


_CONSONANTS: dict[str, _Consonant] = {
    "s": _Consonant("fricative", (300.0, 1700.0, 2600.0), (3800.0, 7000.0), -14.0),
    "z": _Consonant("fricative", (300.0, 1700.0, 2600.0), (3800.0, 7000.0), -18.0, voiced=True),
    "sh": _Consonant("fricative", (300.0, 1900.0, 2400.0), (2000.0, 4200.0), -12.0),
    "f": _Consonant("fricative", (300.0, 1000.0, 2300.0), (1200.0, 7200.0), -24.0),
    "v": _Consonant("fricative", (300.0, 1000.0, 2300.0), (1200.0, 7200.0), -26.0, voiced=True),
    "p": _Consonant("plosive", (300.0, 900.0, 2200.0), (400.0, 2000.0), -10.0),
    "b": _Consonant("plosive", (300.0, 900.0, 2200.0), (400.0, 2000.0), -16.0, voiced=True),
    "t": _Consonant("plosive", (300.0, 1800.0, 2700.0), (2800.0, 6500.0), -8.0),
    "d": _Consonant("plosive", (300.0, 1800.0, 2700.0), (2800.0, 6500.0), -14.0, voiced=True),
    "k": _Consonant("plosive", (300.0, 2100.0, 2500.0), (1400.0, 3200.0), -8.0),
    "g": _Consonant("plosive", (300.0, 2100.0, 2500.0), (1400.0, 3200.0), -14.0, voiced=True),
    "m": _Consonant("nasal", (280.0, 1000.0, 2200.0), voiced=True),
    "n": _Consonant("nasal", (280.0, 1600.0, 2600.0), voiced=True),
    "l": _Consonant("approximant", (360.0, 1100.0, 2700.0), voiced=True),
    "r": _Consonant("approximant", (350.0, 1150.0, 1600.0), voiced=True),
    "w": _Consonant("approximant", (300.0, 700.0, 2200.0), voiced=True),
    "j": _Consonant("approximant", (280.0, 2200.0, 3000.0), voiced=True),
    "h": _Consonant("h", _SCHWA),
}
_ONSETS = tuple(_CONSONANTS)
_CODAS = ("s", "z", "sh", "f", "p", "t", "k", "d", "m", "n", "l", "r")


@dataclass(frozen=True)
class Voice:
    """The traits of one synthetic speaker (all frequencies in Hz).

    Attributes:
        sex: ``"m"`` or ``"f"``; sets the ranges the other traits are drawn from.
        f0: mean fundamental frequency.
        f0_range: intonation range in natural-log units (0.15 means accents of up to about +15%).
        jitter: relative standard deviation of the period-to-period f0 perturbation.
        shimmer: standard deviation of the period-to-period log amplitude perturbation.
        tract: formant scale factor; a shorter vocal tract gives larger values (0.85-1.2).
        formant_offsets: extra multipliers of F1-F5 (the speaker's own formant spacing).
        vowel_offsets: per vowel (in :data:`VOWELS` order) multipliers of F1-F3: an "accent".
        bandwidth: multiplier of the formant bandwidths (damping of the vocal tract).
        open_quotient: fraction of each glottal period the glottis is open.
        speed_quotient: opening-to-closing time ratio of the glottal pulse (skew).
        tilt: coefficient of a one-pole low-pass on the voice (0 = none; larger is darker).
        breathiness: level of aspiration noise relative to the glottal pulses.
        nasal_hz: frequency of the nasal-coupling resonance.
        nasal_zero_hz: frequency of the nasal anti-resonance.
        nasality: depth of the nasal anti-resonance, 0-1.
        rate: speaking rate multiplier (1 = about 4-5 syllables per second).
    """

    sex: str
    f0: float
    f0_range: float
    jitter: float
    shimmer: float
    tract: float
    formant_offsets: tuple[float, ...]
    vowel_offsets: tuple[tuple[float, float, float], ...]
    bandwidth: float
    open_quotient: float
    speed_quotient: float
    tilt: float
    breathiness: float
    nasal_hz: float
    nasal_zero_hz: float
    nasality: float
    rate: float

    def __post_init__(self) -> None:
        if self.sex not in ("m", "f"):
            raise FacevoxError(f"must be 'm' or 'f', got {self.sex!r}", "Voice.sex")
        if not 40.0 <= self.f0 <= 600.0:
            raise FacevoxError(f"must be in [40, 600] Hz, got {self.f0}", "Voice.f0")
        if not 0.0 < self.open_quotient < 1.0:
            raise FacevoxError(f"must be in (0, 1), got {self.open_quotient}", "Voice.open_quotient")
        if len(self.formant_offsets) != 5 or len(self.vowel_offsets) != len(VOWELS):
            raise FacevoxError(
                f"need 5 formant offsets and {len(VOWELS)} vowel offsets, got "
                f"{len(self.formant_offsets)} and {len(self.vowel_offsets)}",
                "Voice",
            )

    @classmethod
    def random(cls, rng: np.random.Generator, sex: str | None = None) -> Voice:
        """Draw a speaker from ``rng``; ``sex`` (``"m"``/``"f"``) is random when not given."""
        if sex is None:
            sex = "m" if rng.random() < 0.5 else "f"
        if sex not in ("m", "f"):
            raise FacevoxError(f"must be 'm' or 'f', got {sex!r}", "sex")
        male = sex == "m"
        # Ranges overlap between the sexes on purpose (only f0 is fully separated), so sex alone
        # does not identify a speaker.
        return cls(
            sex=sex,
            f0=float(rng.uniform(85.0, 155.0) if male else rng.uniform(165.0, 255.0)),
            f0_range=float(rng.uniform(0.08, 0.25)),
            jitter=float(rng.uniform(0.002, 0.015)),
            shimmer=float(rng.uniform(0.02, 0.12)),
            tract=float(rng.uniform(0.85, 1.03) if male else rng.uniform(1.0, 1.2)),
            formant_offsets=tuple(float(v) for v in np.exp(rng.normal(0.0, 0.04, 5))),
            vowel_offsets=tuple(
                (float(a), float(b), float(c)) for a, b, c in np.exp(rng.normal(0.0, 0.035, (len(VOWELS), 3)))
            ),
            bandwidth=float(rng.uniform(0.8, 1.5)),
            open_quotient=float(rng.uniform(0.4, 0.65) if male else rng.uniform(0.5, 0.8)),
            speed_quotient=float(rng.uniform(1.5, 4.0)),
            tilt=float(rng.uniform(0.05, 0.7)),
            breathiness=float(rng.uniform(0.0, 0.25) if male else rng.uniform(0.05, 0.4)),
            nasal_hz=float(rng.uniform(220.0, 450.0)),
            nasal_zero_hz=float(rng.uniform(600.0, 1800.0)),
            nasality=float(rng.uniform(0.0, 1.0)),
            rate=float(rng.uniform(0.8, 1.25)),
        )


# ---------------------------------------------------------------------------------------------
# utterance plan: frame-rate control tracks


@dataclass
class _Plan:
    """Control tracks of one utterance at the frame rate, plus the noise events in samples."""

    formants: np.ndarray  # (frames, 3) F1-F3 targets in Hz
    voicing: np.ndarray  # (frames,) glottal source amplitude
    aspiration: np.ndarray  # (frames,) noise into the vocal tract (/h/, plosive release)
    accents: np.ndarray  # (frames,) log-f0 accent bumps
    speech_frames: tuple[int, int]  # first and last frame with speech (for declination)
    events: list[tuple[int, int, tuple[float, float], float, str]]  # start, stop, band, level dB, kind


def _plan(voice: Voice, rng: np.random.Generator, n_frames: int, fps: float, rate: float) -> _Plan:
    """Lay out a random sentence of CV(C) words over ``n_frames`` frames."""
    formants = np.tile(np.array(_SCHWA), (n_frames, 1))
    voicing = np.zeros(n_frames)
    aspiration = np.zeros(n_frames)
    accents = np.zeros(n_frames)
    events: list[tuple[int, int, tuple[float, float], float, str]] = []
    scale = np.array([voice.tract * voice.formant_offsets[k] for k in range(3)])
    speed = voice.rate * rate
    hop_s = 1.0 / fps
    total = n_frames * hop_s

    def frames(t0: float, t1: float) -> slice:
        return slice(min(int(round(t0 * fps)), n_frames), min(int(round(t1 * fps)), n_frames))

    def dur(lo: float, hi: float) -> float:
        return float(rng.uniform(lo, hi)) / speed

    def consonant(name: str, t: float) -> float:
        c = _CONSONANTS[name]
        locus = np.array(c.locus) * scale
        if c.manner == "fricative":
            d = dur(0.06, 0.11)
            span = frames(t, t + d)
            formants[span] = locus
            voicing[span] = 0.3 if c.voiced else 0.0
            events.append((span.start, span.stop, c.band, c.level_db, "fricative"))
            return t + d
        if c.manner == "plosive":
            closure, burst = dur(0.04, 0.08), float(rng.uniform(0.008, 0.018))
            span = frames(t, t + closure)
            formants[span] = locus
            voicing[span] = 0.1 if c.voiced else 0.0  # the voice bar of a voiced closure
            b = frames(t + closure, t + closure + burst)
            formants[b] = locus
            voicing[b] = 0.3 if c.voiced else 0.0
            events.append((b.start, b.stop, c.band, c.level_db, "burst"))
            t += closure + burst
            if not c.voiced:  # aspirated release of a voiceless stop
                d = dur(0.02, 0.045)
                a = frames(t, t + d)
                formants[a] = locus
                aspiration[a] = 0.5
                t += d
            return t
        if c.manner == "h":
            d = dur(0.05, 0.09)
            span = frames(t, t + d)
            formants[span] = locus
            aspiration[span] = 0.6
            return t + d
        d = dur(0.05, 0.09) if c.manner == "nasal" else dur(0.04, 0.07)
        span = frames(t, t + d)
        formants[span] = locus
        voicing[span] = 0.3 if c.manner == "nasal" else 0.6
        return t + d

    def vowel(t: float, stressed: bool) -> float:
        k = int(rng.integers(len(_VOWEL_NAMES)))
        target = _VOWEL_TABLE[k] * scale * np.array(voice.vowel_offsets[k])
        d = dur(0.07, 0.14) * (1.5 if stressed else 1.0)
        span = frames(t, t + d)
        formants[span] = target
        voicing[span] = (1.0 if stressed else 0.75) * float(rng.uniform(0.85, 1.15))
        if stressed and rng.random() < 0.55:
            # a pitch accent: a bump of the log f0 centred on the vowel
            centre, width = (t + d / 2) * fps, max(0.06 * fps / speed, 1.0)
            height = voice.f0_range * float(rng.uniform(0.3, 1.0))
            idx = np.arange(n_frames)
            accents[:] += height * np.exp(-0.5 * ((idx - centre) / width) ** 2)
        return t + d

    start = min(float(rng.uniform(0.05, 0.25)), 0.15 * total)
    end = total - min(float(rng.uniform(0.08, 0.25)), 0.1 * total)
    t = start
    while t < end:
        syllables = int(rng.choice([1, 2, 2, 3]))
        stress = int(rng.integers(syllables))
        for s in range(syllables):
            if rng.random() < 0.75:
                t = consonant(_ONSETS[int(rng.integers(len(_ONSETS)))], t)
            t = vowel(t, s == stress)
            if rng.random() < 0.3:
                t = consonant(_CODAS[int(rng.integers(len(_CODAS)))], t)
        if rng.random() < 0.25:
            t += dur(0.1, 0.3)  # a pause between words
    last = min(int(round(min(t, end) * fps)), n_frames)
    # everything after the end of the sentence is silence, even a half-finished word
    voicing[last:] = 0.0
    aspiration[last:] = 0.0
    events = [e for e in events if e[0] < last]
    return _Plan(formants, voicing, aspiration, accents, (int(round(start * fps)), max(last, 1)), events)


# ---------------------------------------------------------------------------------------------
# signal processing helpers


def _smooth(x: np.ndarray, coef: float) -> np.ndarray:
    """Zero-phase one-pole smoothing along axis 0 (forward then backward)."""
    b, a = [1.0 - coef], [1.0, -coef]
    y = lfilter(b, a, x, axis=0, zi=None)
    return lfilter(b, a, y[::-1], axis=0)[::-1]


def _resonators(freqs: np.ndarray, bands: np.ndarray, sample_rate: int) -> np.ndarray:
    """Second-order sections (..., n, 6) of all-pole resonators with unity gain at DC (Klatt)."""
    r = np.exp(-np.pi * bands / sample_rate)
    a1 = -2.0 * r * np.cos(2.0 * np.pi * freqs / sample_rate)
    a2 = r * r
    sos = np.zeros((*freqs.shape, 6))
    sos[..., 0] = 1.0 + a1 + a2
    sos[..., 3] = 1.0
    sos[..., 4] = a1
    sos[..., 5] = a2
    return sos


@functools.lru_cache(maxsize=256)
def _bandpass(lo: int, hi: int, sample_rate: int) -> np.ndarray:
    # cached: a corpus reuses a few hundred rounded bands, and designing a filter costs more
    # than running it over a 100 ms burst
    return butter(2, [lo, hi], btype="bandpass", fs=sample_rate, output="sos")


def _peaking(freq: float, gain_db: float, q: float, sample_rate: int) -> np.ndarray:
    """One peaking-EQ biquad (RBJ audio EQ cookbook) as a second-order section."""
    amp = 10.0 ** (gain_db / 40.0)
    w = 2.0 * np.pi * freq / sample_rate
    alpha = np.sin(w) / (2.0 * q)
    b = np.array([1.0 + alpha * amp, -2.0 * np.cos(w), 1.0 - alpha * amp])
    a = np.array([1.0 + alpha / amp, -2.0 * np.cos(w), 1.0 - alpha / amp])
    return np.concatenate([b / a[0], a / a[0]])


def _nasal(voice: Voice, sample_rate: int) -> np.ndarray:
    """The speaker's nasal coupling: a resonance and a deeper anti-resonance, two sections.

    Peaking filters rather than a raw pole-zero pair, so the colouring stays local: a pole-zero
    pair normalised at DC would also tilt everything above it by (pole / zero) squared.
    """
    return np.stack(
        [
            _peaking(voice.nasal_hz, 8.0 * voice.nasality, 2.0, sample_rate),
            _peaking(voice.nasal_zero_hz, -15.0 * voice.nasality, 3.0, sample_rate),
        ]
    )


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


def _glottal_source(
    voice: Voice, rng: np.random.Generator, f0: np.ndarray, sample_rate: int, breathiness: float
) -> np.ndarray:
    """Differentiated Rosenberg pulses at ``f0`` (per sample) with jitter, shimmer and aspiration."""
    n = f0.size
    nominal = np.cumsum(f0) / sample_rate
    periods = int(nominal[-1]) + 2
    jitter = 1.0 + voice.jitter * rng.standard_normal(periods)
    phase = np.cumsum(f0 * jitter[nominal.astype(np.int64)]) / sample_rate
    index = phase.astype(np.int64)
    frac = phase - index
    sq = voice.speed_quotient
    t_open = voice.open_quotient * sq / (1.0 + sq)
    t_close = voice.open_quotient / (1.0 + sq)
    rising = 0.5 * (1.0 - np.cos(np.pi * np.minimum(frac / t_open, 1.0)))
    falling = np.cos(0.5 * np.pi * np.clip((frac - t_open) / t_close, 0.0, 1.0))
    flow = np.where(frac < t_open, rising, falling)
    shimmer = np.exp(voice.shimmer * rng.standard_normal(int(index[-1]) + 2))
    flow *= shimmer[index]
    pulses = np.diff(flow, prepend=0.0)  # lip radiation: the flow derivative
    pulses /= _rms(pulses) + 1e-12
    # aspiration: high-passed noise that is loudest while the glottis is open
    noise = np.diff(rng.standard_normal(n + 1)) / np.sqrt(2.0)
    return pulses + breathiness * noise * (0.3 + flow)


# ---------------------------------------------------------------------------------------------
# public API


def synthesize(voice: Voice, rng: np.random.Generator, seconds: float, sample_rate: int = 16000) -> np.ndarray:
    """One random utterance of ``voice``: float32 mono, ``round(seconds * sample_rate)`` samples.

    ``rng`` draws everything that varies between utterances (sentence, intonation, rate, effort,
    channel EQ, background noise, loudness); the same voice, rng state and length give the same
    array. The peak is normalised to a random level in [0.5, 0.9].
    """
    sr = _int_at_least(sample_rate, 8000, "sample_rate")
    try:
        duration = float(seconds)
    except (TypeError, ValueError):
        duration = float("nan")
    if not np.isfinite(duration) or duration < 0.01:
        raise FacevoxError(f"must be a number of seconds >= 0.01, got {seconds!r}", "seconds")
    n = int(round(duration * sr))
    hop = sr // 200  # 5 ms control frames for the plan, intonation and envelopes
    n_frames = -(-n // hop)
    fps = sr / hop

    # per-utterance variation of the speaker: mood, effort, tempo, a little articulation
    f0_mean = voice.f0 * float(np.exp(rng.normal(0.0, 0.04)))
    rate = float(np.exp(rng.normal(0.0, 0.07)))
    tilt = float(np.clip(voice.tilt + rng.normal(0.0, 0.05), 0.0, 0.85))
    breathiness = voice.breathiness * float(rng.uniform(0.8, 1.2))
    plan = _plan(voice, rng, n_frames, fps, rate)

    # intonation: declination over the sentence, accents, and a slow random drift
    first, last = plan.speech_frames
    frame_idx = np.arange(n_frames)
    slope = voice.f0_range * float(rng.uniform(0.6, 1.0))
    pos = np.clip((frame_idx - first) / max(last - first, 1), 0.0, 1.0)
    drift_phase = rng.uniform(0.0, 2.0 * np.pi, 2)
    drift = 0.02 * np.sin(2.0 * np.pi * 0.7 * frame_idx / fps + drift_phase[0])
    drift += 0.015 * np.sin(2.0 * np.pi * 1.9 * frame_idx / fps + drift_phase[1])
    log_f0 = np.log(f0_mean) + slope * (0.5 - pos) + plan.accents + drift
    log_f0 = np.log(f0_mean) + _smooth(log_f0 - np.log(f0_mean), 0.6)
    f0 = np.exp(np.interp(np.arange(n) / hop, frame_idx, log_f0))

    # source: voiced pulses and aspiration gated by the smoothed control tracks
    sample_pos = np.arange(n) / hop
    voicing = np.interp(sample_pos, frame_idx, _smooth(plan.voicing, 0.35))
    aspiration = np.interp(sample_pos, frame_idx, _smooth(plan.aspiration, 0.35))
    excitation = voicing * _glottal_source(voice, rng, f0, sr, breathiness)
    excitation += aspiration * rng.standard_normal(n)

    # filter: time-varying formant cascade, re-designed every two control frames (10 ms); each
    # sosfilt call costs ~25 us, so this update rate is most of the synthesiser's speed
    f13 = _smooth(plan.formants, 0.55)  # coarticulation: targets blend over ~30 ms
    f13 = np.concatenate([f13, f13[-1:].repeat(n_frames % 2, axis=0)]).reshape(-1, 2, 3).mean(axis=1)
    upper = np.array([_F4, _F5]) * voice.tract * np.array(voice.formant_offsets[3:])
    freqs = np.concatenate([f13, np.broadcast_to(upper, (f13.shape[0], 2))], axis=1)
    freqs = np.minimum(freqs, 0.45 * sr)
    bands = _BANDWIDTHS * voice.bandwidth * (1.0 + 0.15 * rng.standard_normal(5)).clip(0.7, 1.3)
    sos = _resonators(freqs, np.broadcast_to(bands, freqs.shape), sr)
    speech = np.empty(n)
    state = np.zeros((5, 2))
    block = 2 * hop
    for k in range(sos.shape[0]):
        s = k * block
        if k:
            # The sections have b1 = b2 = 0, so their transposed-form state is a function of
            # each section's last two outputs: recover those with the old denominators and
            # re-express them with the new ones (a direct-form-I switch), which avoids the
            # clicks that carrying a stale state across a coefficient change would cause.
            a1, a2 = sos[k - 1, :, 4], sos[k - 1, :, 5]
            y1 = -state[:, 1] / a2
            y2 = -(state[:, 0] + a1 * y1) / a2
            state = np.stack([-sos[k, :, 4] * y1 - sos[k, :, 5] * y2, -sos[k, :, 5] * y1], axis=1)
        speech[s : s + block], state = sosfilt(sos[k], excitation[s : s + block], zi=state)
    # higher-pole correction: the tube's resonances above F5, without which an all-pole cascade
    # loses ~60 dB/octave above F5 and the voice has almost nothing above 4 kHz
    high = _HIGHER_POLES * voice.tract * voice.formant_offsets[4]
    high = high[high < 0.46 * sr]
    fixed = np.concatenate(
        [
            _resonators(high, _HIGHER_BANDWIDTHS[: high.size], sr),
            _nasal(voice, sr),
            np.array([[1.0 - tilt, 0.0, 0.0, 1.0, -tilt, 0.0]]),
        ]
    )
    speech = sosfilt(fixed, speech)
    voiced = voicing > 0.5
    level = _rms(speech[voiced]) if voiced.any() else _rms(speech)
    level = level if level > 0.0 else 1.0

    # frication and bursts: band-limited noise after the tract, levels relative to the vowels
    noise = rng.standard_normal(n)
    tract = voice.tract * voice.formant_offsets[2]
    for start_f, stop_f, (lo, hi), level_db, kind in plan.events:
        a, b = start_f * hop, min(stop_f * hop, n)
        if b <= a:
            continue
        lo_hz = int(round(min(lo * tract, 0.4 * sr)))
        hi_hz = int(round(min(hi * tract, 0.47 * sr)))
        hiss = sosfilt(_bandpass(lo_hz, hi_hz, sr), noise[a:b])
        hiss /= _rms(hiss) + 1e-12
        m = b - a
        if kind == "burst":
            envelope = np.exp(-np.arange(m) / max(0.25 * m, 1.0))
        else:
            ramp = np.minimum(1.0, np.minimum(np.arange(1, m + 1), np.arange(m, 0, -1)) / max(0.3 * m, 1.0))
            envelope = np.sin(0.5 * np.pi * ramp) ** 2
        gain = level * 10.0 ** ((level_db + rng.normal(0.0, 2.0)) / 20.0)
        speech[a:b] += gain * envelope * hiss

    # channel: a mild random EQ (tilt, one peak or dip, a high-pass), then background noise
    channel = np.stack(
        [
            butter(1, float(rng.uniform(40.0, 120.0)), btype="highpass", fs=sr, output="sos")[0],
            _peaking(
                min(float(np.exp(rng.uniform(np.log(200.0), np.log(5000.0)))), 0.4 * sr),
                float(rng.uniform(-6, 6)),
                1.0,
                sr,
            ),
        ]
    )
    tilt_coef = float(rng.uniform(-0.25, 0.35))
    out = sosfilt(channel, speech)
    out = lfilter([1.0, -tilt_coef], [1.0 + abs(tilt_coef)], out)
    colour = float(rng.uniform(0.0, 0.9))
    background = lfilter([1.0 - colour], [1.0, -colour], rng.standard_normal(n))
    snr_db = float(rng.uniform(25.0, 40.0))
    # a clip too short to reach its first voiced sound is all background noise, never all zeros
    reference = _rms(out) or level
    out += background * (reference / (_rms(background) + 1e-12)) * 10.0 ** (-snr_db / 20.0)
    peak = float(np.max(np.abs(out)))
    out *= float(rng.uniform(0.5, 0.9)) / (peak if peak > 0.0 else 1.0)
    return out.astype(np.float32)


def _corpus_params(
    n_speakers: int, utterances: int, seconds: tuple[float, float], seed: int, sample_rate: int
) -> dict[str, object]:
    return {
        "version": CORPUS_VERSION,
        "n_speakers": n_speakers,
        "utterances": utterances,
        "seconds": [float(seconds[0]), float(seconds[1])],
        "seed": seed,
        "sample_rate": sample_rate,
    }


def _int_at_least(value: object, minimum: int, name: str) -> int:
    """``value`` as an int, or a FacevoxError naming ``name`` (bools and fractions are refused)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= minimum:
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer() and value >= minimum:
        return int(value)
    raise FacevoxError(f"must be an integer >= {minimum}, got {value!r}", name)


def _remove_stale(root: Path, speaker_names: set[str], utt_names: set[str]) -> None:
    """Delete wav files of an earlier, larger corpus in ``root`` (only names this module writes)."""
    for folder in root.glob("spk*"):
        if not folder.is_dir() or not re.fullmatch(r"spk\d+", folder.name):
            continue
        for wav in folder.glob("utt*.wav"):
            if re.fullmatch(r"utt\d+\.wav", wav.name) and (
                folder.name not in speaker_names or wav.name not in utt_names
            ):
                wav.unlink()
        if folder.name not in speaker_names and not any(folder.iterdir()):
            folder.rmdir()


def make_corpus(
    root: str | Path,
    n_speakers: int = 40,
    utterances: int = 12,
    seconds: tuple[float, float] = (2.0, 4.0),
    seed: int = 0,
    sample_rate: int = 16000,
    progress: bool = True,
) -> Path:
    """Write a synthetic speaker corpus to ``root`` and return ``root``.

    Layout: ``root/spk000/utt00.wav`` ... (16-bit PCM WAV, one folder per speaker),
    ``root/speakers.csv`` (``speaker,sex``), ``root/README.txt``, and ``root/.complete`` (the
    parameters as JSON, written last). Speakers alternate between male and female; utterance
    lengths are uniform in ``seconds``. Every file is derived only from ``(seed, speaker,
    utterance)``, so the corpus is byte-for-byte the same for a seed. When ``root/.complete``
    already records the same parameters and every wav file is there, nothing is written;
    otherwise the corpus is rewritten (wav files of an earlier, larger corpus are removed).
    ``progress`` prints a line on stderr every 10 speakers.
    """
    root = Path(root)
    n_speakers = _int_at_least(n_speakers, 1, "n_speakers")
    utterances = _int_at_least(utterances, 1, "utterances")
    seed = _int_at_least(seed, 0, "seed")
    sample_rate = _int_at_least(sample_rate, 8000, "sample_rate")
    try:
        lo, hi = (float(v) for v in seconds)
    except (TypeError, ValueError):
        raise FacevoxError(f"must be a (min, max) pair of seconds, got {seconds!r}", "seconds") from None
    if not (0.1 <= lo <= hi and np.isfinite(hi)):
        raise FacevoxError(f"must satisfy 0.1 <= min <= max, got {seconds!r}", "seconds")
    if root.exists() and not root.is_dir():
        raise FacevoxError("exists and is not a folder", root)

    params = _corpus_params(n_speakers, utterances, (lo, hi), seed, sample_rate)
    spk_width, utt_width = max(3, len(str(n_speakers - 1))), max(2, len(str(utterances - 1)))
    speaker_names = [f"spk{i:0{spk_width}d}" for i in range(n_speakers)]
    utt_names = [f"utt{u:0{utt_width}d}.wav" for u in range(utterances)]
    marker = root / ".complete"
    if marker.is_file():
        try:
            same = json.loads(marker.read_text(encoding="utf-8")) == params
        except (OSError, ValueError):
            same = False  # an unreadable marker: rebuild the corpus
        # the marker is trusted for contents, but a few hundred stat calls catch deleted files
        if same and all((root / s / u).is_file() for s in speaker_names for u in utt_names):
            return root
        # from here on the folder is not complete until the new marker is written
        marker.unlink()

    root.mkdir(parents=True, exist_ok=True)
    _remove_stale(root, set(speaker_names), set(utt_names))

    sexes = []
    for i, name in enumerate(speaker_names):
        # seed tuples tagged by role (0 = voice, 1 = utterance) so no two streams coincide
        sex = "m" if i % 2 == 0 else "f"
        voice = Voice.random(np.random.default_rng((seed, i, 0)), sex=sex)
        sexes.append(sex)
        for u, utt in enumerate(utt_names):
            rng = np.random.default_rng((seed, i, 1, u))
            wave = synthesize(voice, rng, float(rng.uniform(lo, hi)), sample_rate)
            with atomic_path(root / name / utt) as tmp:
                sf.write(tmp, wave, sample_rate, format="WAV", subtype="PCM_16")
        if progress and ((i + 1) % 10 == 0 or i + 1 == n_speakers):
            print(f"make_corpus: {i + 1}/{n_speakers} speakers written to {root}", file=sys.stderr, flush=True)

    atomic_write_text(
        root / "speakers.csv",
        "speaker,sex\n" + "".join(f"{s},{x}\n" for s, x in zip(speaker_names, sexes, strict=True)),
    )
    atomic_write_text(
        root / "README.txt",
        "Synthetic speech corpus made by facevox (facevox.audio.synth.make_corpus).\n"
        "No recorded speech: every file comes from a procedural source-filter synthesiser (Rosenberg\n"
        "glottal pulses through time-varying formant resonators, noise consonants, random CV(C)\n"
        "sentences with intonation), one random voice per speaker, and per-utterance variation in\n"
        "pitch, rate, effort, a mild random channel EQ and background noise at 25-40 dB SNR.\n\n"
        f"seed: {seed}\nspeakers: {n_speakers} (alternating male and female, see speakers.csv)\n"
        f"utterances per speaker: {utterances}\nduration: {lo:g}-{hi:g} s each\n"
        f"sample rate: {sample_rate} Hz, 16-bit PCM WAV\nsynthesiser version: {CORPUS_VERSION}\n"
        "layout: <speaker>/<utterance>.wav\n"
        f"recreate: make_corpus(root, n_speakers={n_speakers}, utterances={utterances}, "
        f"seconds=({lo:g}, {hi:g}), seed={seed}, sample_rate={sample_rate})\n",
    )
    atomic_write_text(marker, json.dumps(params) + "\n")
    return root
