"""``facevox voice train-vocoder`` and ``facevox voice vocode``: bad log-mel files, a model of another
task, settings that do not fit together, short or missing audio."""

from __future__ import annotations

import io

import numpy as np

from bad_inputs.harness import Case, Env


def _npy(e: Env, name: str, array: np.ndarray) -> str:
    buf = io.BytesIO()
    np.save(buf, array)
    return str(e.write(name, buf.getvalue()))


def vocode(e: Env, *inputs: str, model: str = "griffinlim") -> list[str]:
    return ["voice", "vocode", *inputs, "--model", model, "--out", str(e.out), "--no-pesq"]


def train(e: Env, *sets: str) -> list[str]:
    argv = ["voice", "train-vocoder", str(e.fx.corpus), "--recipe", "melgan_cpu", "--out", str(e.out)]
    for s in sets:
        argv += ["--set", s]
    return argv


CASES = [
    Case("vocode-npy-wrong-bands", "log-mel frames with 40 bands for an 80-band vocoder", "(80, F)",
         lambda e: vocode(e, _npy(e, "mel40.npy", np.zeros((40, 20), np.float32)))),
    Case("vocode-npy-too-short", "log-mel frames with 2 frames", "at least 4 mel frames",
         lambda e: vocode(e, _npy(e, "short.npy", np.zeros((80, 2), np.float32)))),
    Case("vocode-npy-not-numpy", "a .npy file that is not a NumPy array", "cannot read log-mel frames",
         lambda e: vocode(e, str(e.write("junk.npy", b"not numpy")))),
    Case("vocode-npy-nan", "log-mel frames holding NaN", "NaN",
         lambda e: vocode(e, _npy(e, "nan.npy", np.full((80, 10), np.nan, np.float32)))),
    Case("vocode-not-audio-extension", "an input that is neither audio nor .npy", "not an audio file",
         lambda e: vocode(e, str(e.write("notes.txt", "hello")))),
    Case("vocode-speaker-model", "a speaker model folder given as the vocoder", "speaker model folder",
         lambda e: vocode(e, str(e.fx.wav_a), model=str(e.fx.model_sp))),
    Case("vocode-audio-too-short", "audio shorter than --min-seconds", "too short",
         lambda e: vocode(e, str(e.fx.wav_a)) + ["--min-seconds", "5"]),
    Case("train-vocoder-hop-mismatch", "upsampling ratios whose product is not the mel hop", "mel.hop_length",
         lambda e: train(e, "model.upsample_ratios=[8,8,2]")),
    Case("train-vocoder-warmup-without-reconstruction", "generator-only steps with no reconstruction loss",
         "loss.adversarial_start", lambda e: train(e, "loss.stft=0", "loss.mel_l1=0")),
    Case("train-vocoder-no-corpus", "a training corpus folder that does not exist", "not found",
         lambda e: ["voice", "train-vocoder", str(e.tmp / "nowhere"), "--out", str(e.out)]),
]
