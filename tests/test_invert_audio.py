"""``facevox invert`` on an audio generator (``wavegan:MODEL_FOLDER``): the generator wrapper, the audio
perceptual loss, recovering a known z by optimisation, real clips, and train-encoder / eval / run end to end."""

from __future__ import annotations

import contextlib
import io
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from facevox.audio.gan_losses import MultiResolutionSTFTLoss
from facevox.audio.io import save_wav
from facevox.checkpoint import ModelCard, save_model
from facevox.errors import FacevoxError
from facevox.nets.wavegan import SAMPLES
from facevox.registry import create_model
from facevox.tasks.invert.audio import AudioPerceptual, load_clips, mrstft_per_clip
from facevox.tasks.invert.config import OptimSettings
from facevox.tasks.invert.generators import load_generator, sample_latents
from facevox.tasks.invert.optimise import optimise_latents

NZ = 4


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def wavegan(tmp_path_factory):
    """An untrained tiny WaveGAN saved as voice train-gan saves one (nz=4, d=2)."""
    torch.manual_seed(0)
    net = create_model("wavegan_generator", nz=NZ, d=2)
    folder = tmp_path_factory.mktemp("wg") / "model"
    save_model(folder, net, card=ModelCard(task="audio-gan", data="none", licence="MIT"),
               extra={"task": "audio-gan", "nz": NZ, "samples": SAMPLES, "sample_rate": 16000})
    return folder


@pytest.fixture(scope="module")
def real_clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("real")
    rng = np.random.default_rng(0)
    t = np.arange(20000) / 16000
    for i in range(2):
        save_wav(folder / f"clip{i}.wav", (0.3 * np.sin(2 * np.pi * 300 * (i + 1) * t)
                                           + 0.02 * rng.standard_normal(t.size)).astype(np.float32))
    return folder


def test_generator_wrapper(wavegan):
    gen = load_generator(f"wavegan:{wavegan}")
    assert gen.kind == "audio" and gen.nz == NZ and gen.output_shape == (1, SAMPLES) and gen.image_size is None
    assert gen.spec["source"] == f"wavegan:{wavegan.resolve()}"
    assert "16384 samples" in gen.describe()
    x = gen(torch.randn(2, NZ, requires_grad=True))
    assert x.shape == (2, 1, SAMPLES) and x.requires_grad


def test_per_clip_mrstft_matches_the_shared_loss():
    torch.manual_seed(0)
    a, b = torch.randn(3, 1, 4096) * 0.1, torch.randn(3, 1, 4096) * 0.1
    per = mrstft_per_clip(a, b)
    ref = [float(MultiResolutionSTFTLoss()(a[i : i + 1], b[i : i + 1])) for i in range(3)]
    torch.testing.assert_close(per, torch.tensor(ref), rtol=1e-4, atol=1e-5)
    p = AudioPerceptual()
    assert torch.allclose(p(a, a), torch.zeros(3), atol=1e-5) and (p(a, b) > 0).all()


def test_optimisation_recovers_a_known_z(wavegan):
    gen = load_generator(f"wavegan:{wavegan}")
    z = sample_latents(4, NZ, seed=3)
    with torch.no_grad():
        targets = gen(z)
    settings = OptimSettings(steps=100, lr=0.05, pixel=1.0, perceptual=0.0, log_every=0, restarts=2)
    result = optimise_latents(gen, targets, settings)
    err = (result.latents - z).norm(dim=1).mean()
    random_err = (sample_latents(4, NZ, seed=99) - z).norm(dim=1).mean()
    assert result.images.shape == (4, 1, SAMPLES) and result.images.abs().max() <= 1
    assert err < 0.25 * random_err, (float(err), float(random_err))


def test_real_clips_are_cut_and_bad_ones_refused(real_clips, tmp_path):
    clips, files = load_clips([real_clips], SAMPLES)
    assert clips.shape == (2, 1, SAMPLES) and [f.name for f in files] == ["clip0.wav", "clip1.wav"]
    save_wav(tmp_path / "short.wav", np.full(8000, 0.2, np.float32))
    with pytest.raises(FacevoxError, match="audio too short"):
        load_clips([tmp_path / "short.wav"], SAMPLES)
    quiet = np.full(20000, 2e-4, np.float32)
    quiet[:100] = 0.5
    save_wav(tmp_path / "quiet.wav", quiet)
    with pytest.raises(FacevoxError, match="near-silent"):
        load_clips([tmp_path / "quiet.wav"], SAMPLES)


def facevox(*args: str) -> SimpleNamespace:
    """``facevox invert ARGS`` in this process (starting Python and torch again costs seconds)."""
    from facevox.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["invert", *args])
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


TINY = ["encoder.width=4", "encoder.samples_per_epoch=8", "train.batch_size=4", "train.max_steps=2",
        "train.precision=fp32", "train.warmup_steps=0"]


@pytest.fixture(scope="module")
def encoder(wavegan, tmp_path_factory):
    out = tmp_path_factory.mktemp("enc")
    done = facevox("train-encoder", "--recipe", "encoder_wavegan", "--generator", f"wavegan:{wavegan}",
                   "--device", "cpu", "--out", str(out), *[a for kv in TINY for a in ("--set", kv)])
    assert done.returncode == 0, done.stderr[-2000:]
    extra = json.loads((out / "model" / "extra.json").read_text())
    assert extra["modality"] == "audio" and extra["nz"] == NZ and extra["input_size"] == [80, 65]
    return out / "model"


def test_eval_all_methods_on_generated_clips(wavegan, encoder, tmp_path):
    out = tmp_path / "eval"
    # the encoder names its WaveGAN (weights only, no code): no --generator needed
    done = facevox("eval", "--encoder", str(encoder), "--n", "2", "--steps", "2", "--hybrid-steps", "1",
                   "--device", "cpu", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads((out / "results.json").read_text())
    assert doc["table"]["header"] == ["method", "MR-STFT", "log-mel L1", "SNR (dB)", "latent error",
                                      "seconds (all)", "seconds / clip"]
    assert [r[0].split(" (")[0] for r in doc["table"]["rows"]] == ["optimisation", "encoder", "hybrid"]
    assert all(np.isfinite(v) for r in doc["table"]["rows"] for v in r[1:])
    assert sorted(p.name for p in (out / "wavs").iterdir()) == ["encoder", "hybrid", "optim", "targets"]
    assert len(list((out / "wavs" / "hybrid").glob("*.wav"))) == 2 and (out / "grid.png").is_file()


def test_run_hybrid_on_real_clips(wavegan, encoder, real_clips, tmp_path):
    out = tmp_path / "run"
    done = facevox("run", str(real_clips), "--method", "hybrid", "--encoder", str(encoder), "--hybrid-steps", "1",
                   "--device", "cpu", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 clip(s)" in done.stdout and "SNR" in done.stdout
    assert np.load(out / "latents.npy").shape == (2, NZ)
    assert sorted(p.name for p in (out / "reconstructions").glob("*.wav")) == ["0000_clip0.wav", "0001_clip1.wav"]
    assert len(list((out / "targets").glob("*.wav"))) == 2


def test_facevox_load_gives_the_audio_inverter_and_the_generator(wavegan, encoder, real_clips):
    import facevox as fv

    inverter = fv.load(encoder, device="cpu")
    inverter.cfg.optim.hybrid_steps = 1
    result = inverter.invert(real_clips, method="hybrid")
    assert result.latents.shape == (2, NZ)
    gen = fv.load(wavegan, device="cpu")
    assert gen.kind == "audio" and gen(torch.zeros(1, NZ)).shape[-1] == gen.samples


def test_an_image_encoder_does_not_pair_with_an_audio_generator(wavegan, encoder, tmp_path):
    done = facevox("run", str(tmp_path), "--method", "encoder", "--encoder", str(encoder), "--generator",
                   "dcgan-face", "--device", "cpu", "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "error" in done.stderr
