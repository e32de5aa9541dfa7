"""The silero-vad trim (facevox.audio.vad): keeps the speech of a silence + voice + silence wave, and a
missing package is a one-line error."""

from __future__ import annotations

import builtins
import importlib.util

import numpy as np
import pytest

from facevox.errors import FacevoxError

SR = 16000


def _silence_voice_silence(seed: int = 0) -> tuple[np.ndarray, slice]:
    from facevox.audio.synth import Voice, synthesize

    rng = np.random.default_rng(seed)
    voice = synthesize(Voice.random(rng), rng, 3.0).astype(np.float32)
    gap = np.zeros(2 * SR, dtype=np.float32)
    return np.concatenate([gap, voice, gap]), slice(len(gap), len(gap) + len(voice))


@pytest.mark.skipif(importlib.util.find_spec("silero_vad") is None, reason="silero-vad not installed")
def test_trim_keeps_the_voiced_part() -> None:
    from facevox.audio.vad import speech_segments, trim_silence

    wave, voiced = _silence_voice_silence()
    trimmed = trim_silence(wave, SR)
    assert len(trimmed) < len(wave) - 3 * SR  # most of the 4 s of silence is gone
    assert len(trimmed) > 0.8 * (voiced.stop - voiced.start)  # most of the voice is kept
    pad = SR // 10
    for start, end in speech_segments(wave, SR):
        assert voiced.start - pad <= start < end <= voiced.stop + pad
    assert np.sqrt(np.mean(trimmed**2)) > 1.4 * np.sqrt(np.mean(wave**2))  # the silence held no energy


@pytest.mark.skipif(importlib.util.find_spec("silero_vad") is None, reason="silero-vad not installed")
def test_no_speech_keeps_the_whole_wave(capsys: pytest.CaptureFixture[str]) -> None:
    from facevox.audio import vad

    vad._warned = False
    silence = np.zeros(SR, dtype=np.float32)
    assert len(vad.trim_silence(silence, SR)) == SR
    assert len(vad.trim_silence(silence, SR)) == SR
    assert capsys.readouterr().err.count("warning:") == 1


def test_missing_package_is_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from facevox.audio import vad

    real_import = builtins.__import__

    def no_silero(name, *args, **kwargs):
        if name == "silero_vad" or name.startswith("silero_vad."):
            raise ImportError("No module named 'silero_vad'")
        return real_import(name, *args, **kwargs)

    vad.vad_model.cache_clear()
    monkeypatch.setattr(builtins, "__import__", no_silero)
    try:
        with pytest.raises(FacevoxError) as err:
            vad.trim_silence(np.zeros(SR, dtype=np.float32), SR)
    finally:
        vad.vad_model.cache_clear()
    assert "\n" not in str(err.value)
    assert "pip install silero-vad" in str(err.value)


@pytest.mark.skipif(importlib.util.find_spec("silero_vad") is None or importlib.util.find_spec("resemblyzer") is None,
                    reason="silero-vad or resemblyzer not installed")
def test_speaker_scorer_vad_trims_and_keys_its_own_store() -> None:
    from facevox.tasks.speaker.evaluate import SpeakerScorer
    from facevox.verification.store import store_fingerprint

    scorer = SpeakerScorer(backend="resemblyzer", vad=True)
    assert scorer.store_key != store_fingerprint("resemblyzer", {}) and "silero-vad" in scorer.name
    wave, _ = _silence_voice_silence(1)
    assert len(scorer.prepare(wave)) < len(wave)
    assert scorer.verify_waves(wave, wave)["score"] > 0.99
