"""The tiny valid inputs every case starts from, built once per session.

A speaker corpus of synthesised voices, folders of generated images, and one trained model folder
per task, each trained in-process for two or three steps through ``facevox.cli.main`` with the
builders of :mod:`bad_inputs.commands` (so the run folders are exactly what a user's ``train``
leaves). :func:`prepared` also sets what the cases need around them: an embedding cache folder
of their own, the tiny generator module on ``sys.path`` and one torch thread.
"""

from __future__ import annotations

import contextlib
import os
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from types import SimpleNamespace

from bad_inputs import commands as c
from bad_inputs import files

# z (B, 8) -> (B, 3, 16, 16) in [-1, 1]: the generator the invert cases invert
TINY_GENERATOR = '''
import torch
from torch import nn


class TinyGen(nn.Module):
    def __init__(self, nz=8):
        super().__init__()
        self.nz = nz
        self.fc = nn.Linear(nz, 16 * 4 * 4)
        self.up = nn.Sequential(nn.LeakyReLU(0.2), nn.ConvTranspose2d(16, 8, 4, 2, 1), nn.LeakyReLU(0.2),
                                nn.ConvTranspose2d(8, 3, 4, 2, 1), nn.Tanh())

    def forward(self, z):
        return self.up(self.fc(z).view(z.shape[0], 16, 4, 4))


def tiny(nz=8):
    torch.manual_seed(0)
    return TinyGen(nz)


def features():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1))
'''


@dataclass(frozen=True)
class Fixtures:
    root: Path
    corpus: Path  # 4 speakers x 3 utterances, folder per speaker
    wav_a: Path
    wav_b: Path
    trials: Path  # all pairs of the corpus, paths relative to it
    run_sp: Path
    model_sp: Path
    images: Path  # real/ and fake/, 6 PNGs each
    photo: Path  # one valid PNG
    run_ff: Path
    model_ff: Path
    split_ff: Path  # the run's split file: train and val, no test
    people: Path  # 4 identities x 3 aligned crops
    face_a: Path
    face_b: Path
    pairs: Path
    run_fa: Path
    model_fa: Path
    helper: Path  # folder of the module bad_inputs_gen
    run_in: Path
    model_in: Path
    scores: Path  # a valid file of scored trials

    def placeholders(self) -> list[tuple[str, str]]:
        """(path, short name) pairs, longest path first, for showing argv without tmp paths."""
        names = {"corpus": "CORPUS", "wav_a": "CORPUS/spk000/utt00.wav", "wav_b": "CORPUS/spk001/utt00.wav",
                 "trials": "TRIALS", "run_sp": "RUN_SP", "model_sp": "MODEL_SP", "images": "IMAGES",
                 "photo": "PHOTO.png", "run_ff": "RUN_FF", "model_ff": "MODEL_FF", "split_ff": "SPLIT_FF",
                 "people": "PEOPLE", "face_a": "PEOPLE/p0/1.png", "face_b": "PEOPLE/p0/2.png", "pairs": "PAIRS",
                 "run_fa": "RUN_FA", "model_fa": "MODEL_FA", "helper": "HELPER", "run_in": "RUN_IN",
                 "model_in": "MODEL_IN", "scores": "SCORES", "root": "FIXTURES"}
        pairs = [(str(getattr(self, f.name)), names[f.name]) for f in fields(self)]
        return sorted(pairs, key=lambda p: -len(p[0]))


def _train(argv: list[str]) -> None:
    from bad_inputs.harness import captured
    from facevox.cli import main

    with captured() as got:
        status = main(argv)
    if status != 0:
        raise RuntimeError(f"fixture command failed ({status}): {' '.join(argv)}\n{got['stderr'][-3000:]}")


def build(root: Path) -> Fixtures:
    """Write every fixture under ``root`` (an empty folder) and train the four model folders."""
    import numpy as np
    from PIL import Image

    from facevox.audio.synth import make_corpus
    from facevox.tasks.speaker.corpus import make_trials, read_corpus, write_trials

    corpus = make_corpus(root / "corpus", n_speakers=4, utterances=3, seconds=(1.0, 1.2), seed=3, progress=False)
    trials = write_trials(root / "trials.txt", make_trials(read_corpus(corpus), mode="all"))
    rng = np.random.default_rng(0)
    for label in ("real", "fake"):
        for i in range(6):
            files.png(root / "images" / label / f"{label}{i}.png", seed=int(rng.integers(1 << 30)))
    photo = files.png(root / "photo.png", seed=7)
    for p in range(4):  # each person a fixed pattern, their photos noisy copies
        base = rng.integers(0, 255, (32, 32, 3)).astype(float)
        for i in range(3):
            img = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
            (root / "people" / f"p{p}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / "people" / f"p{p}" / f"{i + 1}.png")
    helper = root / "helper"
    files.write(helper / "bad_inputs_gen.py", textwrap.dedent(TINY_GENERATOR))
    # two folds of two same and two different pairs; p0/1.png is in the first pair
    files.write(root / "pairs.txt", "2\t2\np0\t1\t2\np1\t1\t2\np0\t1\tp1\t1\np2\t1\tp3\t1\n"
                                    "p2\t1\t3\np3\t2\t3\np0\t2\tp2\t2\np1\t3\tp3\t3\n")
    scores = files.write(root / "scores.txt", "".join(f"{s:.2f} {int(s > 0.45)}\n" for s in np.linspace(0, 1, 12)))

    fx = Fixtures(root=root, corpus=corpus, wav_a=corpus / "spk000" / "utt00.wav",
                  wav_b=corpus / "spk001" / "utt00.wav", trials=trials, run_sp=root / "run_speaker",
                  model_sp=root / "run_speaker" / "model",
                  images=root / "images", photo=photo, run_ff=root / "run_fakeface",
                  model_ff=root / "run_fakeface" / "model", split_ff=root / "run_fakeface" / "split.csv",
                  people=root / "people", face_a=root / "people" / "p0" / "1.png",
                  face_b=root / "people" / "p0" / "2.png", pairs=root / "pairs.txt", run_fa=root / "run_face",
                  model_fa=root / "run_face" / "model", helper=helper, run_in=root / "run_invert",
                  model_in=root / "run_invert" / "model", scores=scores)
    e = SimpleNamespace(fx=fx, out=None)
    _train(c.sp_train(e, out=fx.run_sp))
    _train(c.ff_train(e, out=fx.run_ff))
    _train(c.fa_train(e, out=fx.run_fa))
    with on_path(helper):
        _train(c.in_train(e, out=fx.run_in))
    return fx


@contextlib.contextmanager
def on_path(folder: Path) -> Iterator[None]:
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))


@contextlib.contextmanager
def prepared(root: Path) -> Iterator[Fixtures]:
    """Build the fixtures under ``root`` and hold the settings the cases run with until the block ends."""
    import torch

    threads = torch.get_num_threads()
    old_cache = os.environ.get("FACEVOX_CACHE")
    os.environ["FACEVOX_CACHE"] = str(root / "cache")
    torch.set_num_threads(1)  # tiny tensors: extra threads only spin
    try:
        fx = build(root / "fixtures")
        with on_path(fx.helper):
            yield fx
    finally:
        torch.set_num_threads(threads)
        sys.modules.pop("bad_inputs_gen", None)
        if old_cache is None:
            os.environ.pop("FACEVOX_CACHE", None)
        else:
            os.environ["FACEVOX_CACHE"] = old_cache
