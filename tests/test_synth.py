"""Tests for facevox.audio.synth: the procedural voice synthesiser behind the demo corpus."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf

from facevox.audio import synth
from facevox.audio.synth import Voice, make_corpus, synthesize
from facevox.errors import FacevoxError
from facevox.metrics import eer

SR = 16000


def _voice(seed: int, sex: str | None = None) -> Voice:
    return Voice.random(np.random.default_rng(seed), sex=sex)


def _estimate_f0(wave: np.ndarray, sample_rate: int = SR) -> float:
    """Median f0 over clearly periodic 40 ms frames, from the normalised autocorrelation peak."""
    frame, hop = int(0.04 * sample_rate), int(0.01 * sample_rate)
    lo, hi = sample_rate // 400, sample_rate // 60
    estimates = []
    for start in range(0, wave.size - frame, hop):
        x = wave[start : start + frame].astype(np.float64)
        x = x - x.mean()
        ac = np.correlate(x, x, "full")[frame - 1 :]
        if ac[0] <= 0.0:
            continue
        ac = ac / ac[0]
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.5:  # voiced: a strong repetition at one period
            estimates.append(sample_rate / lag)
    assert len(estimates) > 10, "no voiced frames found"
    return float(np.median(estimates))


def _mean_log_mel(wave: np.ndarray, sample_rate: int = SR, bands: int = 40, n_fft: int = 512) -> np.ndarray:
    """A crude speaker feature: mean log-mel power over the louder 70% of 10 ms frames."""
    frames = np.lib.stride_tricks.sliding_window_view(wave.astype(np.float64), n_fft)[:: sample_rate // 100]
    power = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)) ** 2
    mel = np.linspace(0.0, 2595.0 * np.log10(1.0 + sample_rate / 2 / 700.0), bands + 2)
    edges = 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    rising = (freqs[None] - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None])
    falling = (edges[2:, None] - freqs[None]) / (edges[2:, None] - edges[1:-1, None])
    log_mel = np.log(power @ np.maximum(0.0, np.minimum(rising, falling)).T + 1e-10)
    energy = log_mel.mean(axis=1)
    return log_mel[energy > np.percentile(energy, 30)].mean(axis=0)


# ---------------------------------------------------------------------------------------------
# voices


def test_voice_random_ranges_and_determinism() -> None:
    males = [_voice(s, "m") for s in range(20)]
    females = [_voice(s, "f") for s in range(20)]
    assert all(85.0 <= v.f0 <= 155.0 and v.sex == "m" for v in males)
    assert all(165.0 <= v.f0 <= 255.0 and v.sex == "f" for v in females)
    assert all(0.85 <= v.tract <= 1.2 for v in males + females)
    assert np.mean([v.tract for v in females]) > np.mean([v.tract for v in males])
    assert _voice(3) == _voice(3)
    assert _voice(3) != _voice(4)
    assert {_voice(s).sex for s in range(20)} == {"m", "f"}
    assert len(_voice(0).vowel_offsets) == len(synth.VOWELS)


def test_voice_rejects_bad_traits() -> None:
    with pytest.raises(FacevoxError, match="sex"):
        Voice.random(np.random.default_rng(0), sex="x")
    with pytest.raises(FacevoxError, match="f0"):
        dataclasses.replace(_voice(0), f0=1000.0)
    with pytest.raises(FacevoxError, match="open_quotient"):
        dataclasses.replace(_voice(0), open_quotient=1.5)


# ---------------------------------------------------------------------------------------------
# synthesize


def test_synthesize_is_deterministic_per_seed() -> None:
    voice = _voice(1)
    a = synthesize(voice, np.random.default_rng(7), 1.5)
    b = synthesize(voice, np.random.default_rng(7), 1.5)
    c = synthesize(voice, np.random.default_rng(8), 1.5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # two utterances of one voice are different signals, not one clip with new noise
    assert abs(np.corrcoef(a, c)[0, 1]) < 0.5


@pytest.mark.parametrize(("seconds", "sample_rate"), [(2.0, 16000), (0.73, 16000), (3.2, 16000), (1.0, 8000)])
def test_synthesize_length_dtype_and_level(seconds: float, sample_rate: int) -> None:
    for seed in range(3):
        wave = synthesize(_voice(seed), np.random.default_rng(seed), seconds, sample_rate)
        assert wave.dtype == np.float32
        assert wave.shape == (round(seconds * sample_rate),)
        assert np.isfinite(wave).all()
        peak = float(np.abs(wave).max())
        assert 0.5 - 1e-6 <= peak <= 0.9 + 1e-6
        assert float(np.sqrt(np.mean(wave.astype(np.float64) ** 2))) > 0.02  # not silent
        assert abs(float(wave.mean())) < 0.01  # no DC offset


def test_synthesize_has_speech_and_silence() -> None:
    wave = synthesize(_voice(2), np.random.default_rng(0), 3.0).astype(np.float64)
    frame_db = 10.0 * np.log10(np.mean(wave[: wave.size // 160 * 160].reshape(-1, 160) ** 2, axis=1) + 1e-12)
    # loud vowels and near-silent pauses / leading silence with only background noise
    assert np.percentile(frame_db, 95) - np.percentile(frame_db, 5) > 25.0


def test_synthesize_rejects_bad_arguments() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(FacevoxError, match="seconds"):
        synthesize(_voice(0), rng, 0.0)
    with pytest.raises(FacevoxError, match="seconds"):
        synthesize(_voice(0), rng, float("nan"))
    with pytest.raises(FacevoxError, match="sample_rate"):
        synthesize(_voice(0), rng, 1.0, sample_rate=4000)


def test_fundamental_frequency_matches_the_voice() -> None:
    for seed in range(6):
        voice = _voice(100 + seed, "mf"[seed % 2])
        wave = synthesize(voice, np.random.default_rng(seed), 2.5)
        estimate = _estimate_f0(wave)
        assert abs(estimate / voice.f0 - 1.0) < 0.2, (voice.sex, voice.f0, estimate)


def test_speakers_are_distinguishable_but_not_trivially() -> None:
    feats, labels = [], []
    for spk in range(10):
        voice = Voice.random(np.random.default_rng((0, spk, 0)), sex="mf"[spk % 2])
        for utt in range(6):
            rng = np.random.default_rng((0, spk, 1, utt))
            feats.append(_mean_log_mel(synthesize(voice, rng, float(rng.uniform(2.0, 3.0)))))
            labels.append(spk)
    x = np.array(feats)
    x -= x.mean(axis=0)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.array(labels)
    i, j = np.triu_indices(len(y), k=1)
    rate, _ = eer((x @ x.T)[i, j], (y[i] == y[j]).astype(int))
    # a crude spectral average separates speakers well above chance, but far from perfectly:
    # a trained embedding has something left to learn
    assert 0.05 < rate < 0.35


# ---------------------------------------------------------------------------------------------
# make_corpus

SMALL = {"n_speakers": 3, "utterances": 2, "seconds": (0.5, 0.8), "seed": 5, "progress": False}


def test_make_corpus_layout(tmp_path) -> None:
    root = make_corpus(tmp_path / "corpus", **SMALL)
    assert root == tmp_path / "corpus"
    speakers = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert speakers == ["spk000", "spk001", "spk002"]
    for spk in speakers:
        files = sorted(p.name for p in (root / spk).iterdir())
        assert files == ["utt00.wav", "utt01.wav"]
        for name in files:
            info = sf.info(root / spk / name)
            assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
            assert 0.5 <= info.frames / 16000 <= 0.8
    assert (root / "speakers.csv").read_text().splitlines() == ["speaker,sex", "spk000,m", "spk001,f", "spk002,m"]
    readme = (root / "README.txt").read_text()
    assert "synthetic" in readme.lower() and "seed: 5" in readme and "speakers: 3" in readme
    assert json.loads((root / ".complete").read_text())["seed"] == 5
    assert not list(root.rglob("*.tmp"))


def test_make_corpus_matches_synthesize(tmp_path) -> None:
    root = make_corpus(tmp_path / "c", **SMALL)
    voice = Voice.random(np.random.default_rng((5, 1, 0)), sex="f")
    rng = np.random.default_rng((5, 1, 1, 0))
    expected = synthesize(voice, rng, float(rng.uniform(0.5, 0.8)))
    wave, rate = sf.read(root / "spk001" / "utt00.wav", dtype="float32")
    assert rate == 16000
    np.testing.assert_allclose(wave, expected, atol=1.0 / 32767)


def test_make_corpus_is_byte_deterministic(tmp_path) -> None:
    a = make_corpus(tmp_path / "a", **SMALL)
    b = make_corpus(tmp_path / "b", **SMALL)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    c = make_corpus(tmp_path / "c", **{**SMALL, "seed": 6})
    assert (a / "spk000" / "utt00.wav").read_bytes() != (c / "spk000" / "utt00.wav").read_bytes()


def test_make_corpus_reuses_a_complete_corpus(tmp_path, monkeypatch) -> None:
    root = make_corpus(tmp_path / "c", **SMALL)
    stamp = {p: p.stat().st_mtime_ns for p in root.rglob("*")}

    def fail(*args, **kwargs):
        raise AssertionError("synthesize called for a complete corpus")

    monkeypatch.setattr(synth, "synthesize", fail)
    assert make_corpus(root, **SMALL) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == stamp


def test_make_corpus_rebuilds_for_other_parameters(tmp_path) -> None:
    root = make_corpus(tmp_path / "c", **{**SMALL, "n_speakers": 4, "utterances": 3})
    make_corpus(root, **SMALL)
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["spk000", "spk001", "spk002"]
    assert sorted(p.name for p in (root / "spk000").iterdir()) == ["utt00.wav", "utt01.wav"]
    assert json.loads((root / ".complete").read_text())["n_speakers"] == 3
    fresh = make_corpus(tmp_path / "fresh", **SMALL)
    for rel in ("spk002/utt01.wav", "speakers.csv", "README.txt", ".complete"):
        assert (root / rel).read_bytes() == (fresh / rel).read_bytes(), rel


def test_make_corpus_without_marker_is_rebuilt(tmp_path) -> None:
    root = make_corpus(tmp_path / "c", **SMALL)
    (root / ".complete").unlink()
    (root / "spk000" / "utt00.wav").write_bytes(b"half a file")
    make_corpus(root, **SMALL)
    assert (root / ".complete").exists()
    assert sf.info(root / "spk000" / "utt00.wav").frames > 0


def test_make_corpus_progress(tmp_path, capsys) -> None:
    make_corpus(tmp_path / "c", **{**SMALL, "progress": True})
    assert "3/3 speakers" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "where"),
    [
        ({"n_speakers": 0}, "n_speakers"),
        ({"utterances": 1.5}, "utterances"),
        ({"seconds": (3.0, 2.0)}, "seconds"),
        ({"seconds": 2.0}, "seconds"),
        ({"seed": -1}, "seed"),
        ({"sample_rate": 100}, "sample_rate"),
    ],
)
def test_make_corpus_rejects_bad_arguments(tmp_path, kwargs, where) -> None:
    with pytest.raises(FacevoxError) as err:
        make_corpus(tmp_path / "c", **{**SMALL, **kwargs})
    assert err.value.where == where
    assert not (tmp_path / "c").exists()


def test_make_corpus_rejects_a_file_as_root(tmp_path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(FacevoxError, match="not a folder"):
        make_corpus(target, **SMALL)
