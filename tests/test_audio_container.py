"""``.m4a`` (AAC in MP4, as VoxCeleb2 ships it) decoded through PyAV, with the same checks and
one-line errors as every other audio format."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from facevox.errors import FacevoxError

pytest.importorskip("av")

from facevox.audio.container import write_m4a  # noqa: E402
from facevox.audio.io import audio_info, list_audio_files, load_audio, load_many  # noqa: E402

RATE = 16000


def _tone(seconds: float = 2.0, rate: int = RATE, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(wave: np.ndarray, rate: int = RATE) -> float:
    return float(np.argmax(np.abs(np.fft.rfft(wave))) * rate / len(wave))


def test_mono_m4a_loads_like_the_signal_it_holds(tmp_path):
    path = write_m4a(tmp_path / "a.m4a", _tone(), RATE)
    wave = load_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    # AAC keeps about 1024 priming samples (plus padding to whole frames): a little longer, never shorter
    assert 32000 <= len(wave) <= 32000 + 3 * 1024
    assert abs(_peak_hz(wave) - 440) < 5
    assert np.sqrt(np.mean(wave[2048:30000] ** 2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.05)
    rate, channels, frames = audio_info(path)
    assert (rate, channels) == (RATE, 1) and 32000 <= frames <= 32000 + 3 * 1024


def test_stereo_44k_m4a_is_mixed_and_resampled(tmp_path):
    left = _tone(rate=44100, freq=300.0)
    path = write_m4a(tmp_path / "t.m4a", np.stack([left, 0.5 * left], axis=1), 44100)
    assert audio_info(path)[:2] == (44100, 2)
    wave = load_audio(path)
    assert 32000 <= len(wave) <= 32000 + 2048 and abs(_peak_hz(wave) - 300) < 5
    assert np.sqrt(np.mean(wave[2048:30000] ** 2)) == pytest.approx(0.75 * 0.3 / np.sqrt(2), rel=0.05)  # the mean


def test_broken_m4a_files_are_one_line_errors(tmp_path):
    good = write_m4a(tmp_path / "good.m4a", _tone(), RATE)
    cases = {"junk.m4a": b"not an mp4 at all", "empty.m4a": b"", "cut.m4a": good.read_bytes()[:3000]}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(FacevoxError) as err:
            load_audio(tmp_path / name)
        assert str(err.value).startswith(str(tmp_path / name)) and "\n" not in str(err.value)
    silent = write_m4a(tmp_path / "silent.m4a", np.zeros(RATE, np.float32), RATE)
    with pytest.raises(FacevoxError, match="silent audio"):
        load_audio(silent)
    waves, bad = load_many(sorted(tmp_path.glob("*.m4a")), skip_bad=True)
    assert len(waves) == 1 and {p.name for p, _ in bad} == {"junk.m4a", "empty.m4a", "cut.m4a", "silent.m4a"}


def test_m4a_in_corpora_and_odd_names(tmp_path):
    (tmp_path / "spk1").mkdir()
    write_m4a(tmp_path / "spk1" / "u1.m4a", _tone(), RATE)
    write_m4a(tmp_path / "spk1" / "U2.M4A", _tone(), RATE)
    assert [p.name for p in list_audio_files(tmp_path)] == ["U2.M4A", "u1.m4a"]
    odd = tmp_path / os.fsdecode(b"\xff\xfe.m4a")
    odd.write_bytes((tmp_path / "spk1" / "u1.m4a").read_bytes())
    assert len(load_audio(odd)) >= 32000  # a name that is not UTF-8 opens when named directly


def test_without_pyav_the_error_says_what_to_install(tmp_path, monkeypatch):
    path = write_m4a(tmp_path / "a.m4a", _tone(), RATE)
    monkeypatch.setitem(sys.modules, "av", None)  # import av -> ImportError
    with pytest.raises(FacevoxError, match=r'pip install "facevox\[m4a\]"'):
        load_audio(path)
