"""``facevox voice make-fakes|train|predict`` (the generated-speech detector): bad corpora, bad audio,
bad index files and generator names, a model folder of another task."""

from __future__ import annotations

from pathlib import Path

from bad_inputs import files
from bad_inputs.cases_files import corpus_with, empty_dir
from bad_inputs.harness import Case, Env


def _voice_run(e: Env) -> tuple[Path, Path]:
    """(index.csv, model folder): made-fakes of the fixture corpus and a spectral detector, built once
    into the fixtures (before the case's snapshot)."""
    from bad_inputs.fixtures import _train

    root = Path(e.fx.root) / "voice"
    index, model = root / "fakes" / "index.csv", root / "run" / "model"
    if not model.is_dir():
        _train(["voice", "make-fakes", str(e.fx.corpus), "--out", str(root / "fakes"), "--clip-seconds", "0.8",
                "--workers", "0"])
        _train(["voice", "train", str(index), "--recipe", "spectral", "--out", str(root / "run"),
                "--set", "data.window_seconds=0.8"])
    return index, model


def fakes(e: Env, corpus: str | Path | None = None, *opts: str) -> list[str]:
    return ["voice", "make-fakes", str(corpus or e.fx.corpus), "--out", str(e.out), "--clip-seconds", "0.8",
            "--workers", "0", *opts]


def train_on(e: Env, edit) -> list[str]:
    index, _ = _voice_run(e)
    bad = e.write("index.csv", edit(index.read_text()).replace("real/", f"{index.parent}/real/")
                  .replace("griffinlim/", f"{index.parent}/griffinlim/").replace("synth/", f"{index.parent}/synth/"))
    return ["voice", "train", str(bad), "--recipe", "spectral", "--out", str(e.out)]


def predict(e: Env, *paths: str | Path, model: Path | None = None) -> list[str]:
    return ["voice", "predict", str(model or _voice_run(e)[1]), *(str(p) for p in paths)]


CASES = [
    Case("voice-make-fakes-corpus-missing", "a corpus folder that does not exist", "ghost",
         lambda e: fakes(e, e.path("ghost"))),
    Case("voice-make-fakes-no-speakers", "a corpus with no speaker sub-folders", "no speaker sub-folders",
         lambda e: fakes(e, empty_dir(e))),
    Case("voice-make-fakes-unknown-generator", "a generator facevox does not have", "unknown generator 'wavenet'",
         lambda e: fakes(e, None, "--generators", "griffinlim", "wavenet")),
    Case("voice-make-fakes-melgan-no-vocoder", "the melgan generator without --vocoder", "--vocoder",
         lambda e: fakes(e, None, "--generators", "melgan")),
    Case("voice-make-fakes-all-too-short", "clips longer than every file", "no audio file of at least 30 s",
         lambda e: fakes(e, None, "--clip-seconds", "30")),
    Case("voice-make-fakes-corrupt-in-corpus", "a corrupt WAV among the speaker's files", "broken.wav",
         lambda e: fakes(e, corpus_with(e, "broken.wav", files.corrupt_wav))),
    Case("voice-make-fakes-silent-in-corpus", "a silent WAV long enough for a clip", "silent.wav",
         lambda e: fakes(e, corpus_with(e, "silent.wav", files.silent_wav))),
    Case("voice-make-fakes-silent-in-worker", "a silent WAV, decoded in a DataLoader worker", "silent.wav",
         lambda e: fakes(e, corpus_with(e, "silent.wav", files.silent_wav), "--workers", "1")),
    Case("voice-train-index-no-generator", "an index without the generator column", "needs a generator column",
         lambda e: train_on(e, lambda t: t.replace(",generator,", ",maker,", 1))),
    Case("voice-train-index-unknown-generator", "an index naming a generator facevox does not have",
         "unknown generator 'wavenet'", lambda e: train_on(e, lambda t: t.replace(",synth,", ",wavenet,", 1))),
    Case("voice-train-index-label-mismatch", "a clip labelled real whose generator is synth", "generator 'synth'",
         lambda e: train_on(e, lambda t: t.replace("fake,train,synth", "real,train,synth", 1))),
    Case("voice-train-index-missing-clip", "an index naming a clip that does not exist", "ghost.wav",
         lambda e: train_on(e, lambda t: t.replace("real/spk000/utt00_0000.wav", "real/spk000/ghost.wav", 1))),
    Case("voice-train-unknown-train-generator", "--train-generators naming an unknown generator", "wavenet",
         lambda e: [*train_on(e, lambda t: t), "--train-generators", "wavenet"]),
    Case("voice-predict-silent", "digital silence", "silent.wav",
         lambda e: predict(e, files.silent_wav(e.path("silent.wav")))),
    Case("voice-predict-too-short", "10 ms of audio", "short.wav",
         lambda e: predict(e, files.short_wav(e.path("short.wav")))),
    Case("voice-predict-png-as-wav", "a PNG named .wav", "picture.wav",
         lambda e: predict(e, files.png(e.path("picture.wav")))),
    Case("voice-predict-fakeface-model", "a fakeface model folder given to voice predict", "fakeface model folder",
         lambda e: predict(e, e.fx.wav_a, model=e.fx.model_ff)),
]
