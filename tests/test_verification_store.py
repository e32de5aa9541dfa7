"""The embedding store: round trip, staleness, incremental parts, atomic writes, model fingerprint."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from facevox.errors import FacevoxError
from facevox.verification import EmbeddingStore, embed_paths
from facevox.verification.store import file_keys, file_stamps


def _files(folder, n, start=0):
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(start, start + n):
        p = folder / f"f{i:03d}.bin"
        p.write_bytes(bytes([i % 251]) * (i + 1))
        out.append(p)
    return out


def _fake_extract(calls):
    """An extractor that 'embeds' a file as a unit vector from its size: known answers, counts calls."""
    def extract(paths, sink):
        for i, raw in enumerate(paths):
            size = os.path.getsize(os.fsdecode(raw))
            calls.append(os.fsdecode(raw))
            v = np.array([size, 1.0, 2.0], np.float32)
            sink(i, v / np.linalg.norm(v))
        return []
    return extract


def _expected(paths):
    v = np.array([[os.path.getsize(p), 1.0, 2.0] for p in paths], np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_round_trip_and_incremental_parts(tmp_path):
    files = _files(tmp_path / "d", 30)
    calls = []
    store = EmbeddingStore.open(tmp_path / "s", "fp1")
    emb, ok, bad = embed_paths(files[:20], _fake_extract(calls), store)
    assert ok.all() and not bad and len(calls) == 20
    np.testing.assert_allclose(emb, _expected(files[:20]), rtol=1e-6)
    old_part = sorted((tmp_path / "s").glob("part-*"))
    mtimes = {p: (p / "embeddings.npy").stat().st_mtime_ns for p in old_part}

    again = EmbeddingStore.open(tmp_path / "s", "fp1")
    order = files[::-1]  # any order, duplicates allowed
    emb, ok, _ = embed_paths(order + order[:3], _fake_extract(calls), again)
    assert len(calls) == 30  # only the 10 new files were embedded
    np.testing.assert_allclose(emb, _expected(order + order[:3]), rtol=1e-6)
    parts = sorted((tmp_path / "s").glob("part-*"))
    assert len(parts) == 2 and all((p / "embeddings.npy").stat().st_mtime_ns == m for p, m in mtimes.items())
    third = EmbeddingStore.open(tmp_path / "s", "fp1")
    assert len(third) == 30 and third.dim == 3
    rows = third.lookup(files)
    assert (rows >= 0).all() and len(set(rows.tolist())) == 30


def test_a_changed_file_is_embedded_again_and_the_later_part_wins(tmp_path):
    files = _files(tmp_path / "d", 5)
    calls = []
    embed_paths(files, _fake_extract(calls), EmbeddingStore.open(tmp_path / "s", "fp"))
    time.sleep(0.01)
    files[2].write_bytes(b"longer content than before, so the size changes")
    store = EmbeddingStore.open(tmp_path / "s", "fp")
    assert (store.lookup(files) >= 0).tolist() == [True, True, False, True, True]
    emb, ok, _ = embed_paths(files, _fake_extract(calls), store)
    assert len(calls) == 6 and ok.all()
    np.testing.assert_allclose(emb, _expected(files), rtol=1e-6)
    files[4].unlink()
    assert EmbeddingStore.open(tmp_path / "s", "fp").lookup(files)[4] == -1  # a missing file is never a hit


def test_a_failed_write_leaves_the_old_store(tmp_path):
    files = _files(tmp_path / "d", 6)
    calls = []
    embed_paths(files[:3], _fake_extract(calls), EmbeddingStore.open(tmp_path / "s", "fp"))
    before = sorted(p.name for p in (tmp_path / "s").iterdir())
    meta = (tmp_path / "s" / "meta.json").read_bytes()

    def broken(paths, sink):
        sink(0, np.ones(3, np.float32))
        raise RuntimeError("killed half way")

    with pytest.raises(RuntimeError, match="half way"):
        embed_paths(files, broken, EmbeddingStore.open(tmp_path / "s", "fp"))
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == before  # no part, no temporary left
    assert (tmp_path / "s" / "meta.json").read_bytes() == meta
    emb, ok, _ = embed_paths(files[:3], _fake_extract(calls), EmbeddingStore.open(tmp_path / "s", "fp"))
    assert len(calls) == 3 and ok.all()
    # a part written but never committed (a crash before meta.json) is not read
    store = EmbeddingStore.open(tmp_path / "s", "fp")
    with store.new_part(file_keys(files[3:]), file_stamps(files[3:])) as w:
        for i in range(3):
            w.put(i, np.ones(3, np.float32))
    assert (EmbeddingStore.open(tmp_path / "s", "fp").lookup(files)[3:] == -1).all()


def test_another_model_or_a_foreign_folder_is_a_one_line_error(tmp_path):
    files = _files(tmp_path / "d", 2)
    embed_paths(files, _fake_extract([]), EmbeddingStore.open(tmp_path / "s", "fp1"))
    with pytest.raises(FacevoxError, match="made by another model"):
        EmbeddingStore.open(tmp_path / "s", "fp2")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(FacevoxError, match="not an embedding store"):
        EmbeddingStore.open(tmp_path / "other", "fp1")


def test_skipped_files_are_not_stored_as_hits(tmp_path):
    files = _files(tmp_path / "d", 4)

    def extract(paths, sink):
        for i in range(len(paths)):
            if i % 2 == 0:
                sink(i, np.ones(3, np.float32))
        return [(i, "cannot decode") for i in range(1, len(paths), 2)]

    emb, ok, bad = embed_paths(files, extract, EmbeddingStore.open(tmp_path / "s", "fp"))
    assert ok.sum() == 2 and len(bad) == 2 and all(p in files for p, _ in bad)
    assert (emb[~ok] == 0).all()
    assert (EmbeddingStore.open(tmp_path / "s", "fp").lookup(files) >= 0).sum() == 2


def test_no_store_embeds_in_memory_with_duplicates(tmp_path):
    files = _files(tmp_path / "d", 4)
    calls = []
    paths = [files[1], files[0], files[1], files[3]]
    emb, ok, _ = embed_paths(paths, _fake_extract(calls), None)
    assert len(calls) == 3 and ok.all()
    np.testing.assert_allclose(emb, _expected(paths), rtol=1e-6)


def test_a_large_store_opens_fast(tmp_path):
    n, d = 200_000, 256  # 200 MB of float32; opening maps files, reading is only what lookup touches
    store = EmbeddingStore.open(tmp_path / "s", "fp")
    keys = np.array([f"/data/{i:08d}.wav".encode() for i in range(n)])
    with store.new_part(keys, np.ones((n, 2), np.int64)) as w:
        w.put(0, np.zeros(d, np.float32))
        w.done[:] = True
    store.commit()
    t0 = time.perf_counter()
    again = EmbeddingStore.open(tmp_path / "s", "fp")
    rows = again.lookup([f"/data/{i:08d}.wav" for i in (5, 7)], keys=keys[[5, 7]], stamps=np.ones((2, 2), np.int64))
    assert time.perf_counter() - t0 < 2.0 and len(again) == n
    assert sorted(rows.tolist()) == [5, 7]
