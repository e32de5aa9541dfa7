"""The valid commands the cases start from: tiny settings per task and argv builders.

Each builder takes ``e`` (anything with ``.fx``, the :class:`~bad_inputs.fixtures.Fixtures`, and
``.out``, the case's output path) and extra ``--set`` overrides, and returns a valid argv of a
tiny run; a case adds the one bad thing. The fixtures train their model folders with the same
builders, so a case that reruns ``train`` into a copy of a fixture run differs only in what it
changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

# one epoch of two or three steps on the fixtures' data; no max_steps, so train.epochs counts
SP_TINY = ("train.epochs=1", "train.batch_size=4", "train.precision=fp32", "train.progress=false",
           "data.crop_seconds=0.5", "data.crops_per_epoch=8", "model.backbone=xvector",
           "model.backbone_kwargs={channels: 16, embed_dim: 8}")
FF_TINY = ("model.name=resnet18", "data.load_size=32", "data.crop_size=32", "data.split_fractions=[0.7, 0.3, 0.0]",
           "train.epochs=1", "train.batch_size=4", "train.precision=fp32", "train.progress=false")
FA_TINY = ("data.input_size=[32, 32]", "model.backbone=mobilefacenet", "model.backbone_kwargs={width: 8}",
           "model.embed_dim=16", "train.epochs=1", "train.batch_size=4", "train.precision=fp32",
           "train.progress=false")
IN_GEN = ("--generator", "bad_inputs_gen:tiny", "--nz", "8", "--device", "cpu")
IN_TINY = ("encoder.width=8", "encoder.samples_per_epoch=16", "train.epochs=1", "train.batch_size=8",
           "train.precision=fp32", "train.warmup_steps=0", "train.progress=false")

# the small demo: if a bad setting is accepted, the demo still finishes in seconds
DEMO_TINY = ("corpus.train_speakers=3", "corpus.train_utterances=2", "corpus.test_speakers=2",
             "corpus.test_utterances=2", "corpus.seconds=[0.6, 0.7]", "speaker.data.calib_speakers=0",
             "speaker.data.crop_seconds=0.5", "speaker.data.crops_per_epoch=4", "speaker.train.epochs=1",
             "speaker.train.batch_size=4", "speaker.train.warmup_steps=0", "speaker.train.precision=fp32",
             "speaker.train.progress=false", "speaker.model.backbone=xvector",
             "speaker.model.backbone_kwargs={channels: 16, embed_dim: 8}")


def sets(*overrides: str) -> list[str]:
    """``--set`` before each override."""
    return [a for kv in overrides for a in ("--set", kv)]


def _out(e: Any, out: Path | str | None) -> str:
    return str(e.out if out is None else out)


def sp_train(e: Any, *extra: str, data: Path | str | None = None, out: Path | str | None = None,
             opts: Sequence[str] = ()) -> list[str]:
    return ["speaker", "train", "--data", str(data or e.fx.corpus), "--out", _out(e, out), *opts,
            *sets(*SP_TINY, *extra)]


def ff_train(e: Any, *extra: str, data: Path | str | None = None, out: Path | str | None = None,
             opts: Sequence[str] = ()) -> list[str]:
    return ["fakeface", "train", "--data", str(data or e.fx.images), "--out", _out(e, out), *opts,
            *sets(*FF_TINY, *extra)]


def fa_train(e: Any, *extra: str, data: Path | str | None = None, out: Path | str | None = None,
             opts: Sequence[str] = ()) -> list[str]:
    return ["face", "train", "--data", str(data or e.fx.people), "--out", _out(e, out), *opts,
            *sets(*FA_TINY, *extra)]


def in_train(e: Any, *extra: str, out: Path | str | None = None, opts: Sequence[str] = (),
             gen: Sequence[str] = IN_GEN) -> list[str]:
    return ["invert", "train-encoder", *gen, "--out", _out(e, out), *opts, *sets(*IN_TINY, *extra)]


def sp_verify(e: Any, a: Path | str | None = None, b: Path | str | None = None,
              model: Path | str | None = None) -> list[str]:
    return ["speaker", "verify", str(a or e.fx.wav_a), str(b or e.fx.wav_b), "--model", str(model or e.fx.model_sp)]


def sp_eval(e: Any, trials: Path | str | None = None, model: Path | str | None = None,
            opts: Sequence[str] = ()) -> list[str]:
    return ["speaker", "eval", str(trials or e.fx.trials), "--audio-root", str(e.fx.corpus),
            "--model", str(model or e.fx.model_sp), "--no-cache", "--out", str(e.out), *opts]


def ff_predict(e: Any, *paths: Path | str, model: Path | str | None = None, opts: Sequence[str] = ()) -> list[str]:
    return ["fakeface", "predict", *(str(p) for p in (paths or [e.fx.photo])), "--model",
            str(model or e.fx.model_ff), *opts]


def ff_eval(e: Any, data: Path | str | None = None, model: Path | str | None = None,
            opts: Sequence[str] = ()) -> list[str]:
    return ["fakeface", "eval", "--data", str(data or e.fx.split_ff), "--split", "val", "--model",
            str(model or e.fx.model_ff), "--out", str(e.out), *opts]


def fa_verify(e: Any, a: Path | str | None = None, b: Path | str | None = None, model: Path | str | None = None,
              opts: Sequence[str] = ()) -> list[str]:
    return ["face", "verify", str(a or e.fx.face_a), str(b or e.fx.face_b), "--aligned", "--model",
            str(model or e.fx.model_fa), *opts]


def fa_eval(e: Any, pairs: Path | str | None = None, root: Path | str | None = None,
            model: Path | str | None = None, opts: Sequence[str] = ()) -> list[str]:
    return ["face", "eval", str(pairs or e.fx.pairs), "--root", str(root or e.fx.people), "--model",
            str(model or e.fx.model_fa), "--out", str(e.out), *opts]


def in_run(e: Any, *images: Path | str, opts: Sequence[str] = (), gen: Sequence[str] = IN_GEN) -> list[str]:
    return ["invert", "run", *(str(p) for p in (images or [e.fx.photo])), *gen, "--steps", "2", "--out",
            str(e.out), *opts]


def in_encoder_run(e: Any, encoder: Path | str | None = None, opts: Sequence[str] = ()) -> list[str]:
    return ["invert", "run", str(e.fx.photo), "--method", "encoder", "--encoder", str(encoder or e.fx.model_in),
            "--generator", "bad_inputs_gen:tiny", "--device", "cpu", "--out", str(e.out), *opts]
