"""A damaged speaker embedding cache (a store folder) is rebuilt with a one-line warning, never
unpickled, never a crash."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import facevox
from facevox.audio.io import save_wav
from facevox.checkpoint import ModelCard, save_model
from facevox.cli import main
from facevox.verification import EmbeddingStore

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
    return main(["speaker", "eval", str(root / "trials.txt"), "--model", str(folder), "--out", str(out),
                 "--workers", "0"])


def _part(store):
    (part,) = store.glob("part-*")
    return part


def _npy(path, array) -> None:
    with open(path, "wb") as fh:
        np.save(fh, array, allow_pickle=True)


DAMAGE = {
    "garbage meta": lambda s: (s / "meta.json").write_bytes(b"\xff not json"),
    "meta of another format": lambda s: (s / "meta.json").write_text(json.dumps({"format": "x"})),
    "missing part": lambda s: (_part(s) / "keys.npy").unlink(),
    "truncated embeddings": lambda s: (_part(s) / "embeddings.npy").write_bytes(
        (_part(s) / "embeddings.npy").read_bytes()[:100]),
    "pickled keys": lambda s: _npy(_part(s) / "keys.npy", np.array([{"evil": 1}] * 4, dtype=object)),
    "ragged": lambda s: np.save(_part(s) / "rows.npy", np.arange(3)),
}


def test_speaker_eval_rebuilds_a_damaged_cache(setup, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACEVOX_CACHE", str(tmp_path / "cache"))
    assert _eval(setup, tmp_path / "first") == 0
    capsys.readouterr()
    (store,) = (tmp_path / "cache").iterdir()
    assert store.name.startswith("speaker-") and (store / "meta.json").is_file()
    DAMAGE["garbage meta"](store)
    assert _eval(setup, tmp_path / "second") == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning:") and "TAR@FAR" not in line]
    assert len(warnings) == 1 and str(store) in warnings[0] and "rebuilding it" in warnings[0], err
    assert "Traceback" not in err
    assert (tmp_path / "second" / "scores.txt").read_text() == (tmp_path / "first" / "scores.txt").read_text()
    assert len(list(store.glob("part-*"))) == 1  # the old part was dropped with the damaged store
    assert _eval(setup, tmp_path / "third") == 0  # rebuilt: read back with no warning
    assert "rebuilding" not in capsys.readouterr().err


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_each_kind_of_damage_is_rebuilt_with_one_warning(setup, tmp_path, capsys, damage):
    from facevox.tasks.speaker.scoring import embed_files

    root, _ = setup
    files = sorted(root.glob("spk*/*.wav"))
    embed = lambda wave: np.array([wave.mean(), wave.std(), wave.max(), wave.min()], np.float32)  # noqa: E731
    path = tmp_path / "store"
    first = embed_files(files, embed, EmbeddingStore.open(path, "fp"), progress=False)
    DAMAGE[damage](path)
    capsys.readouterr()
    again = embed_files(files, embed, EmbeddingStore.open(path, "fp", damaged="warn"), progress=False)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"warning: {path}: unreadable embedding store"), err
    assert all(np.array_equal(first[f], again[f]) for f in files)
    store = EmbeddingStore.open(path, "fp")  # rewritten: read back with no warning
    assert len(store) == len(files) and capsys.readouterr().err == ""


def test_a_damaged_store_the_user_names_is_a_one_line_error(setup, tmp_path, capsys):
    root, folder = setup
    store = tmp_path / "store"
    assert main(["speaker", "embed", str(root), "--model", str(folder), "--out", str(store), "--workers", "0"]) == 0
    DAMAGE["garbage meta"](store)
    capsys.readouterr()
    code = main(["speaker", "eval", str(root / "trials.txt"), "--model", str(folder), "--out", str(tmp_path / "e"),
                 "--embeddings", str(store), "--workers", "0"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("facevox: error: --embeddings: unreadable"), err


def test_store_is_read_without_pickle_and_memory_mapped(tmp_path, monkeypatch):
    store = EmbeddingStore.open(tmp_path / "s", "fp")
    (tmp_path / "a.wav").write_bytes(b"x")
    with store.new_part(np.array([b"/x/a"]), np.array([[1, 2]])) as w:
        w.put(0, np.ones(4, np.float32))
    store.commit()
    calls = []
    real = np.load

    def spy(*args, **kwargs):
        calls.append((kwargs.get("allow_pickle"), kwargs.get("mmap_mode")))
        return real(*args, **kwargs)

    monkeypatch.setattr(np, "load", spy)
    assert len(EmbeddingStore.open(tmp_path / "s", "fp")) == 1
    assert calls and all(c == (False, "r") for c in calls)
