"""Tests for facevox.audio.io on small audio files generated with numpy + soundfile."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from facevox.audio import io as aio
from facevox.errors import FacevoxError

SR = 16000

TINY_XVECTOR = {"channels": 8, "embed_dim": 4}


def _sine(freq: float = 440.0, seconds: float = 1.0, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


def _peak_hz(wave: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / sr)[np.argmax(spectrum)])


def _raises(path, match: str, **kwargs) -> FacevoxError:
    with pytest.raises(FacevoxError, match=match) as info:
        aio.load_audio(path, **kwargs)
    err = info.value
    assert err.where == str(path)  # names the file
    assert str(path) in str(err) and "\n" not in str(err)
    return err


# ---------------------------------------------------------------------------------------------
# decoding


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG", "MP3"])
def test_round_trip_formats(tmp_path, fmt):
    x = _sine()
    path = tmp_path / f"tone.{fmt.lower()}"
    sf.write(path, x, SR, format=fmt)
    y = aio.load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1
    assert np.abs(y).max() <= 1.0
    assert _peak_hz(y, SR) == pytest.approx(440.0, abs=2.0)
    if fmt in ("WAV", "FLAC"):  # lossless: equal up to 16-bit quantisation
        assert len(y) == len(x)
        np.testing.assert_allclose(y, x, atol=1e-4)
    else:  # lossy codecs keep the length close and the energy about right
        assert abs(len(y) - len(x)) < 0.05 * SR
        assert np.sqrt(np.mean(y**2)) == pytest.approx(np.sqrt(np.mean(x**2)), rel=0.2)
    assert aio.audio_info(path)[:2] == (SR, 1)


def test_upper_case_extension_is_listed_and_loaded(tmp_path):
    path = tmp_path / "LOUD.WAV"
    sf.write(path, _sine(), SR, format="WAV")
    assert aio.list_audio_files(tmp_path) == [path]
    assert len(aio.load_audio(path)) == SR


def test_stereo_48k_becomes_mono_16k(tmp_path):
    sr = 48000
    left, right = _sine(1000.0, 1.5, sr, 0.6), _sine(1000.0, 1.5, sr, 0.2)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), sr, subtype="PCM_16")
    assert aio.audio_info(path) == (sr, 2, int(1.5 * sr))
    y = aio.load_audio(path, sample_rate=SR)
    assert y.shape == (int(1.5 * SR),)
    assert _peak_hz(y, SR) == pytest.approx(1000.0, abs=2.0)
    mid = y[1000:-1000]  # the channel average has amplitude (0.6 + 0.2) / 2
    assert np.abs(mid).max() == pytest.approx(0.4, abs=0.01)


def test_8000_to_16000_length(tmp_path):
    path = tmp_path / "narrow.flac"
    sf.write(path, _sine(300.0, 0.5, 8000), 8000)
    y = aio.load_audio(path)
    assert len(y) == SR // 2
    assert _peak_hz(y, SR) == pytest.approx(300.0, abs=3.0)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_wav_sample_formats(tmp_path, subtype):
    x = _sine(amp=0.9)
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, x, SR, subtype=subtype)
    y = aio.load_audio(path)
    assert y.dtype == np.float32 and y.min() >= -1.0 and y.max() <= 1.0
    tol = 1 / 64 if subtype == "PCM_U8" else 1e-5
    np.testing.assert_allclose(y, x, atol=tol)


def test_float_wav_over_full_scale_is_clipped(tmp_path):
    path = tmp_path / "hot.wav"
    sf.write(path, 2.0 * _sine(), SR, subtype="FLOAT")
    y = aio.load_audio(path)
    assert y.max() == 1.0 and y.min() == -1.0


# ---------------------------------------------------------------------------------------------
# bad files


def test_missing_file(tmp_path):
    _raises(tmp_path / "nope.wav", "file not found")
    with pytest.raises(FacevoxError, match="file not found"):
        aio.audio_info(tmp_path / "nope.wav")


def test_folder_instead_of_file(tmp_path):
    (tmp_path / "dir.wav").mkdir()
    _raises(tmp_path / "dir.wav", "not a file")


def test_random_bytes_are_not_decodable(tmp_path):
    path = tmp_path / "noise.wav"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    err = _raises(path, r"cannot decode audio \(format not recognised\)")
    assert "Error" not in err.problem and "Traceback" not in err.problem
    with pytest.raises(FacevoxError, match="cannot decode audio"):
        aio.audio_info(path)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "zero.flac"
    path.write_bytes(b"")
    _raises(path, "cannot decode audio")


def test_truncated_flac(tmp_path):
    good = tmp_path / "good.flac"
    sf.write(good, _sine(seconds=2.0), SR)
    data = good.read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(data[: len(data) // 3])
    _raises(cut, "cannot decode audio")
    head = tmp_path / "head.flac"
    head.write_bytes(data[:30])
    _raises(head, "cannot decode audio")


def test_empty_wav(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), SR)
    _raises(path, r"empty audio file \(0 samples\)")
    with pytest.raises(FacevoxError, match="empty"):
        aio.audio_info(path)


def test_silent_wav(tmp_path):
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros(SR, dtype=np.float32), SR)
    _raises(path, "silent audio")


def test_too_short(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(path, _sine(seconds=0.5), SR)
    err = _raises(path, "too short", min_seconds=1.0)
    assert "0.50 s" in err.problem and "1 s" in err.problem
    assert len(aio.load_audio(path, min_seconds=0.5)) == SR // 2


# ---------------------------------------------------------------------------------------------
# folders, batches, writing


def test_list_audio_files_nested(tmp_path):
    expected = []
    for rel in ["spk1/a.wav", "spk1/b.flac", "spk2/sub/c.ogg", "spk2/d.MP3", "e.wav"]:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")  # listing goes by name only
        expected.append(path)
    (tmp_path / "spk1" / "notes.txt").write_text("not audio")
    (tmp_path / "spk1" / "._a.wav").write_bytes(b"macOS metadata")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.wav").write_bytes(b"x")
    assert aio.list_audio_files(tmp_path) == sorted(expected)


def test_list_audio_files_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no audio here")
    with pytest.raises(FacevoxError, match=r"no audio files \(\.wav, \.flac, \.ogg, \.mp3, \.m4a, \.mp4, \.aac\)"):
        aio.list_audio_files(tmp_path / "empty")
    with pytest.raises(FacevoxError, match="folder not found"):
        aio.list_audio_files(tmp_path / "missing")


def test_load_many_skip_bad(tmp_path):
    good1, good2 = tmp_path / "a.wav", tmp_path / "c.wav"
    sf.write(good1, _sine(), SR)
    sf.write(good2, _sine(880.0), SR)
    silent, missing = tmp_path / "b.wav", tmp_path / "d.wav"
    sf.write(silent, np.zeros(SR), SR)
    paths = [good1, silent, good2, missing]
    waves, bad = aio.load_many(paths, skip_bad=True)
    assert len(waves) == 2 and _peak_hz(waves[1], SR) == pytest.approx(880.0, abs=2.0)
    assert [p for p, _ in bad] == [silent, missing]
    assert "silent" in bad[0][1] and "not found" in bad[1][1]
    with pytest.raises(FacevoxError, match="silent") as info:
        aio.load_many(paths)
    assert info.value.where == str(silent)


def test_save_wav_atomic_round_trip(tmp_path):
    path = tmp_path / "out" / "saved.wav"
    x = _sine()
    x[:10] = 1.5  # clipped, not wrapped around
    assert aio.save_wav(path, x) == path
    assert sorted(os.listdir(path.parent)) == ["saved.wav"]  # no temporary files left over
    info = sf.info(str(path))
    assert (info.format, info.subtype, info.samplerate) == ("WAV", "PCM_16", SR)
    y = aio.load_audio(path)
    assert np.all(y[:10] > 0.99)
    np.testing.assert_allclose(y[10:], x[10:], atol=1e-4)
    aio.save_wav(path, 0.5 * x, sample_rate=8000)  # overwriting replaces the file
    assert aio.audio_info(path) == (8000, 1, SR)
    assert sorted(os.listdir(path.parent)) == ["saved.wav"]


def test_save_wav_failure_leaves_old_file(tmp_path):
    path = tmp_path / "keep.wav"
    aio.save_wav(path, _sine())
    before = path.read_bytes()
    with pytest.raises(ValueError, match="too many dimensions"):  # soundfile fails inside the atomic block
        aio.save_wav(path, np.zeros((2, 2, 2)))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["keep.wav"]


# ---------------------------------------------------------------------------------------------
# damaged headers and file names that are not UTF-8


def _raw_wav(path, rate: int, channels: int, samples: np.ndarray) -> None:
    """A 16-bit PCM WAV whose header says ``rate`` Hz and ``channels`` channels, whatever the data is."""
    import struct

    data = (samples * 20000).astype("<i2").tobytes()
    block = max(channels, 1) * 2
    fmt = struct.pack("<HHIIHH", 1, channels, rate, (rate * block) % 2**32, block, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


@pytest.mark.parametrize("rate", [1, 999, 384001, 2**31 - 1])
def test_absurd_sample_rate_in_the_header(tmp_path, rate):
    path = tmp_path / "odd.wav"
    _raw_wav(path, rate, 1, _sine(seconds=0.1))
    err = _raises(path, f"the header claims a sample rate of {rate} Hz")
    assert "1000 to 384000 Hz" in err.problem
    with pytest.raises(FacevoxError, match=f"sample rate of {rate} Hz") as info:
        aio.audio_info(path)
    assert info.value.where == str(path)


def test_plausible_rates_at_the_limits_still_load(tmp_path):
    for rate in (1000, 8000, 384000):
        path = tmp_path / f"r{rate}.wav"
        _raw_wav(path, rate, 1, _sine(seconds=0.2, sr=rate))
        assert aio.audio_info(path) == (rate, 1, int(0.2 * rate))
        assert len(aio.load_audio(path)) == pytest.approx(0.2 * SR, abs=2)


def test_zero_channels_in_the_header(tmp_path):
    path = tmp_path / "c0.wav"
    _raw_wav(path, SR, 0, _sine(seconds=0.1))
    _raises(path, "cannot decode audio|channels")
    with pytest.raises(FacevoxError, match="channel"):
        aio.audio_info(path)


def test_cli_names_the_file_with_a_1hz_header(tmp_path, capsys):
    import facevox
    from facevox.cli import main

    model = facevox.create_model("speaker_embedder", backbone="xvector", backbone_kwargs=TINY_XVECTOR)
    folder = facevox.save_model(tmp_path / "model", model, extra={"kind": "embedding"},
                                card=facevox.ModelCard(task="speaker verification", data="none", licence="MIT"))
    good, odd = tmp_path / "good.wav", tmp_path / "odd.wav"
    sf.write(good, _sine(), SR)
    _raw_wav(odd, 1, 1, _sine())
    assert main(["speaker", "verify", str(good), str(odd), "--model", str(folder)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    assert captured.err.strip().splitlines() == [
        f"facevox: error: {odd}: the header claims a sample rate of 1 Hz (expected 1000 to 384000 Hz): "
        "a damaged header or not an audio file"]


def test_a_file_name_that_is_not_utf8(tmp_path):
    name = os.fsdecode(b"\xff\xfe.wav")  # a valid Linux file name; Python holds the bytes as surrogates
    spk = tmp_path / "corpus" / "spk1"
    spk.mkdir(parents=True)
    sf.write(os.fsencode(spk / name), _sine(), SR, format="WAV")
    assert len(aio.load_audio(spk / name)) == SR  # it can be read when named directly
    assert aio.audio_info(spk / name) == (SR, 1, SR)
    with pytest.raises(FacevoxError, match="file name is not UTF-8") as info:
        aio.list_audio_files(tmp_path / "corpus")  # but not listed into trial lists and reports
    assert info.value.where.endswith("spk1/\\xff\\xfe.wav")
    info.value.where.encode("utf-8")  # printable on any terminal
    with pytest.raises(FacevoxError, match="file not found") as info:
        aio.load_audio(spk / os.fsdecode(b"\xfe.wav"))
    assert info.value.where.endswith("\\xfe.wav")
