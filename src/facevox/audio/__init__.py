"""Audio building blocks for the speaker tasks.

- :mod:`facevox.audio.io`: load any WAV/FLAC/Ogg/MP3 file as float32 mono at a fixed rate, with a
  one-line :class:`~facevox.errors.FacevoxError` for every bad file; list, batch-load, save.
- :mod:`facevox.audio.features`: torch front ends (:class:`Fbank`, :class:`Spectrogram`,
  :class:`SpecAugment`) and numpy waveform crops (:func:`random_crop`, :func:`fixed_windows`).
- :mod:`facevox.audio.augment`: seeded waveform augmentation (noise, speed, gain).
"""

from facevox.audio.augment import WaveAugment, add_noise, coloured_noise, speed_perturb
from facevox.audio.features import (
    Fbank,
    SpecAugment,
    Spectrogram,
    fixed_windows,
    frames_for,
    mel_filterbank,
    random_crop,
)
from facevox.audio.io import (
    AUDIO_EXTENSIONS,
    audio_info,
    list_audio_files,
    load_audio,
    load_many,
    resample,
    save_wav,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "Fbank",
    "SpecAugment",
    "Spectrogram",
    "WaveAugment",
    "add_noise",
    "audio_info",
    "coloured_noise",
    "fixed_windows",
    "frames_for",
    "list_audio_files",
    "load_audio",
    "load_many",
    "mel_filterbank",
    "random_crop",
    "resample",
    "save_wav",
    "speed_perturb",
]
