"""Inverting an audio generator (``--generator wavegan:MODEL``) and training one (``voice train-gan``):
missing or wrong generator folders, real clips that are too short, silent or quiet where they are cut,
and a corpus without one crop's worth of audio."""

from __future__ import annotations

import numpy as np

from bad_inputs import files
from bad_inputs.harness import Case, Env


def wavegan(e: Env) -> str:
    """An untrained tiny WaveGAN model folder (nz=4, d=1), as voice train-gan saves one."""
    import torch

    from facevox.checkpoint import ModelCard, save_model
    from facevox.registry import create_model

    torch.manual_seed(0)
    folder = e.path("wavegan")
    save_model(folder, create_model("wavegan_generator", nz=4, d=1),
               card=ModelCard(task="audio-gan", data="none", licence="MIT"),
               extra={"task": "audio-gan", "nz": 4, "samples": 16384, "sample_rate": 16000})
    return str(folder)


def invert_run(e: Env, clip: str, gen: str | None = None) -> list[str]:
    return ["invert", "run", clip, "--generator", gen or f"wavegan:{wavegan(e)}", "--steps", "1", "--perceptual",
            "0", "--device", "cpu", "--out", str(e.out)]


def clip(e: Env, wave: np.ndarray, name: str = "clip.wav") -> str:
    return str(files.wav(e.path(name), wave.astype(np.float32)))


def quiet_centre(e: Env) -> str:
    wave = files.noise(3.0)
    wave[4000:-4000] *= 1e-3  # loud edges, near-silent seconds in the middle
    return clip(e, wave)


def train_gan(e: Env, corpus: str) -> list[str]:
    return ["voice", "train-gan", corpus, "--out", str(e.out), "--device", "cpu", "--set", "model.d=1",
            "--set", "train.max_steps=1", "--set", "train.batch_size=2", "--set", "train.num_workers=0"]


def short_corpus(e: Env) -> str:
    files.wav(e.path("corpus") / "spk" / "a.wav", files.noise(0.5))
    return str(e.path("corpus"))


CASES = [
    Case("invert-wavegan-missing", "--generator wavegan: names no folder", "model folder not found",
         lambda e: invert_run(e, clip(e, files.noise(1.5)), f"wavegan:{e.path('nope')}")),
    Case("invert-wavegan-empty", "--generator wavegan: with no folder", "wavegan:MODEL_FOLDER",
         lambda e: invert_run(e, clip(e, files.noise(1.5)), "wavegan:")),
    Case("invert-wavegan-other-task", "--generator wavegan: names a speaker model folder",
         "this is a speaker model folder", lambda e: invert_run(e, clip(e, files.noise(1.5)),
                                                                f"wavegan:{e.fx.model_sp}")),
    Case("invert-wavegan-no-weights", "--generator wavegan: names a folder without weights", "is missing",
         lambda e: invert_run(e, clip(e, files.noise(1.5)),
                              f"wavegan:{files.write(e.path('empty') / 'model.yaml', 'name: x').parent}")),
    Case("invert-audio-too-short", "a real clip shorter than the generator's 16384 samples", "audio too short",
         lambda e: invert_run(e, clip(e, files.noise(0.5)))),
    Case("invert-audio-silent", "a real clip that is digital silence", "silent audio",
         lambda e: invert_run(e, str(files.silent_wav(e.path("silent.wav"), 1.5)))),
    Case("invert-audio-quiet-centre", "a real clip whose centre second is near-silent", "near-silent",
         lambda e: invert_run(e, quiet_centre(e))),
    Case("voice-train-gan-short-corpus", "train-gan on a corpus with no file of one crop (1.02 s)",
         "no audio file of at least", lambda e: train_gan(e, short_corpus(e))),
    Case("voice-train-gan-no-corpus", "train-gan on a folder that does not exist", "corpus folder not found",
         lambda e: train_gan(e, str(e.path("nope")))),
]
