"""A damaged speaker embedding cache is rebuilt with a one-line warning, never unpickled, never a crash."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import facevox
from facevox.audio.io import save_wav
from facevox.checkpoint import ModelCard, save_model
from facevox.cli import main
from facevox.tasks.speaker.scoring import EmbeddingCache

TINY_XVECTOR = {"channels": 8, "embed_dim": 4}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    rng = np.random.default_rng(0)
    for s in ("spk1", "spk2"):
        for u in ("u1", "u2"):
            save_wav(root / s / f"{u}.wav", 0.3 * rng.standard_normal(16000).astype(np.float32))
    (root / "trials.txt").write_text("1 spk1/u1.wav spk1/u2.wav\n0 spk1/u1.wav spk2/u1.wav\n"
                                     "0 spk1/u2.wav spk2/u2.wav\n")
    torch.manual_seed(0)
    model = facevox.create_model("speaker_embedder", backbone="xvector", backbone_kwargs=TINY_XVECTOR)
    folder = save_model(root / "model", model, extra={"kind": "embedding"},
                        card=ModelCard(task="speaker verification", data="noise", licence="MIT"))
    return root, folder


def _eval(setup, out) -> int:
    root, folder = setup
    code = main(["speaker", "eval", str(root / "trials.txt"), "--model", str(folder), "--out", str(out)])
    return code


def _npz(path, **arrays) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


DAMAGE = {
    "garbage": lambda p: p.write_bytes(b"PK\x03\x04 not really a zip"),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "pickled": lambda p: _npz(p, **{"x|1|2": np.array([{"evil": 1}], dtype=object)}),  # only unpickling reads it
    "ragged": lambda p: _npz(p, **{"a|1|2": np.ones(4, np.float32), "b|1|2": np.ones(3, np.float32)}),
    "nan": lambda p: _npz(p, **{"a|1|2": np.full(4, np.nan, np.float32)}),
}


def test_speaker_eval_rebuilds_a_damaged_cache(setup, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACEVOX_CACHE", str(tmp_path / "cache"))
    assert _eval(setup, tmp_path / "first") == 0
    capsys.readouterr()
    (cache,) = (tmp_path / "cache").iterdir()
    good = dict(np.load(cache))
    DAMAGE["garbage"](cache)
    assert _eval(setup, tmp_path / "second") == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(cache) in warnings[0] and "rebuilding it" in warnings[0], err
    assert "Traceback" not in err
    assert (tmp_path / "second" / "scores.txt").read_text() == (tmp_path / "first" / "scores.txt").read_text()
    rebuilt = dict(np.load(cache))  # rewritten whole, readable without pickle
    assert rebuilt.keys() == good.keys() and all(np.allclose(rebuilt[k], good[k]) for k in good)


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_each_kind_of_damage_is_rebuilt_with_one_warning(setup, tmp_path, capsys, damage):
    from facevox.tasks.speaker.scoring import embed_files

    root, _ = setup
    files = sorted(root.glob("spk*/*.wav"))
    embed = lambda wave: np.array([wave.mean(), wave.std(), wave.max(), wave.min()], np.float32)  # noqa: E731
    path = tmp_path / "c.npz"
    first = embed_files(files, embed, EmbeddingCache(path))
    DAMAGE[damage](path)
    capsys.readouterr()
    again = embed_files(files, embed, EmbeddingCache(path))
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"warning: {path}: unreadable embedding cache"), err
    assert all(np.array_equal(first[f], again[f]) for f in files)
    cache = EmbeddingCache(path)  # rewritten whole: read back with no warning
    assert len(cache.data) == len(files) and capsys.readouterr().err == ""


def test_cache_is_read_without_pickle(tmp_path, monkeypatch):
    calls = []
    real = np.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("allow_pickle"))
        return real(*args, **kwargs)

    path = tmp_path / "c.npz"
    np.savez(path, **{"a|1|2": np.ones(4, np.float32)})
    monkeypatch.setattr(np, "load", spy)
    assert list(EmbeddingCache(path).data) == ["a|1|2"]
    assert calls == [False]
