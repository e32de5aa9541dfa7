"""Batched, parallel embedding extraction: DataLoader workers decode files, the main process batches.

Audio: each file becomes one or more *chunks* of one length (the whole utterance, or equal windows
when windowed scoring is on or the utterance is longer than the model's limit). Chunks are grouped
by exact length across files and run through the model ``batch_size`` at a time; a file's
embedding is the unit mean of its chunks' unit embeddings, as one-at-a-time scoring computes it.
Only equal lengths share a batch: padding changes a speaker model's output (STFT edges,
convolution boundaries, statistics pooling), so this is the design that stays exact (within float
rounding; tested to 1e-4). Files are ordered by size first, so equal lengths arrive together; a
bounded buffer of pending chunks (``buffer_items``) keeps memory flat on corpora where lengths
rarely repeat (they then run one at a time, decoding still in parallel).

Images: aligned crops are one size, so they batch fully.

Under torchrun each rank embeds ``todo[rank::world]`` into its own part of the store; rank 0
lists all parts in the store after a barrier (:func:`embed_paths`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from facevox.audio.io import load_audio
from facevox.errors import FacevoxError
from facevox.verification.store import EmbeddingStore, file_keys, file_stamps

Sink = Callable[[int, np.ndarray], None]  # (index into the paths, unit embedding (D,))
Bad = list[tuple[int, str]]  # (index, problem) of files skipped with skip_bad


def _path(raw: bytes) -> Path:
    return Path(os.fsdecode(raw))


def _as_list(batch: list) -> list:
    return batch


class AudioFiles(Dataset):
    """item -> (index, chunks (n, L) float32, None), or (index, None, (problem, where)) for a file that
    cannot be read.

    ``chunker`` turns a wave (T,) into its chunks; paths are a compact bytes array, so forked
    workers do not copy a list of Python objects.
    """

    def __init__(self, paths: np.ndarray, sample_rate: int, min_seconds: float,
                 chunker: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        self.paths, self.sample_rate, self.min_seconds, self.chunker = paths, sample_rate, min_seconds, chunker

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            wave = load_audio(_path(self.paths[i]), self.sample_rate, self.min_seconds)
        except FacevoxError as err:
            return i, None, (err.problem, err.where)
        chunks = self.chunker(wave) if self.chunker is not None else wave[None]
        return i, np.ascontiguousarray(chunks, dtype=np.float32), None


class ImageFiles(Dataset):
    """item -> (index, uint8 RGB (H, W, 3), None) resized to ``size`` when given, or (index, None, (problem, where))."""

    def __init__(self, paths: np.ndarray, size: tuple[int, int] | None = None) -> None:
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from facevox.image.io import load_image
        from facevox.tasks.face.data import resize_to

        try:
            img = load_image(_path(self.paths[i]))
        except FacevoxError as err:
            return i, None, (err.problem, err.where)
        return i, (resize_to(img, self.size) if self.size else img), None


def _loader(ds: Dataset, workers: int) -> DataLoader:
    return DataLoader(ds, batch_size=4, shuffle=False, num_workers=workers, collate_fn=_as_list,
                      prefetch_factor=4 if workers else None)


class _Progress:
    def __init__(self, total: int, show: bool, what: str) -> None:
        self.total, self.show, self.what, self.n = total, show and total > 20, what, 0

    def step(self, k: int = 1) -> None:
        self.n += k
        every = max(50, self.total // 20)
        if self.show and (self.n % every < k or self.n == self.total):
            print(f"embedded {self.n}/{self.total} {self.what}", file=sys.stderr, flush=True)


def _bad(i: int, error: tuple[str, str | None], skip_bad: bool, bad: Bad) -> None:
    problem, where = error
    if not skip_bad:
        raise FacevoxError(problem, where)  # as decoding said it: one line naming the file
    bad.append((i, problem))


def extract_waves(paths: np.ndarray, embed_batch: Callable[[np.ndarray], np.ndarray], sink: Sink, *,
                  chunker: Callable[[np.ndarray], np.ndarray] | None, sample_rate: int = 16000,
                  min_seconds: float = 0.0, workers: int = 0, batch_size: int = 32, skip_bad: bool = False,
                  buffer_items: int | None = None, progress: bool = True) -> Bad:
    """Embed audio files: ``embed_batch`` maps chunks (B, L) of one length to unit embeddings (B, D).

    Calls ``sink(i, embedding)`` for every readable file ``paths[i]``; returns the skipped ones.
    """
    buffer_items = buffer_items or 4 * batch_size
    buckets: dict[int, list[tuple[int, np.ndarray]]] = {}
    acc: dict[int, list] = {}  # index -> [sum of chunk embeddings, chunks done, chunks in all]
    bad: Bad = []
    shown = _Progress(len(paths), progress, "files")
    pending = 0

    def run(items: list[tuple[int, np.ndarray]]) -> None:
        emb = np.asarray(embed_batch(np.stack([c for _, c in items])), dtype=np.float64)
        for (i, _), e in zip(items, emb, strict=True):
            a = acc[i]
            a[0] = e if a[0] is None else a[0] + e
            a[1] += 1
            if a[1] == a[2]:
                mean = a[0] / a[2]
                sink(i, (mean / max(np.linalg.norm(mean), 1e-12)).astype(np.float32))
                del acc[i]
                shown.step()

    for batch in _loader(AudioFiles(paths, sample_rate, min_seconds, chunker), workers):
        for i, chunks, problem in batch:
            if chunks is None:
                _bad(i, problem, skip_bad, bad)
                shown.step()
                continue
            acc[i] = [None, 0, len(chunks)]
            for c in chunks:
                bucket = buckets.setdefault(len(c), [])
                bucket.append((i, c))
                pending += 1
                if len(bucket) == batch_size:
                    run(buckets.pop(len(c)))
                    pending -= batch_size
            if pending > buffer_items:  # lengths are not repeating: run what is there, biggest groups first
                for length in sorted(buckets, key=lambda n: -len(buckets[n])):
                    run(buckets.pop(length))
                pending = 0
    for length in list(buckets):
        run(buckets.pop(length))
    return bad


def extract_waves_each(paths: np.ndarray, embed: Callable[[np.ndarray], np.ndarray], sink: Sink, *,
                       sample_rate: int = 16000, min_seconds: float = 0.0, workers: int = 0,
                       skip_bad: bool = False, progress: bool = True) -> Bad:
    """Embed audio files one at a time with ``embed(wave (T,)) -> (D,)`` (backends that do not batch);
    decoding still runs in the workers."""
    bad: Bad = []
    shown = _Progress(len(paths), progress, "files")
    for batch in _loader(AudioFiles(paths, sample_rate, min_seconds), workers):
        for i, chunks, problem in batch:
            if chunks is None:
                _bad(i, problem, skip_bad, bad)
            else:
                sink(i, np.asarray(embed(chunks[0]), dtype=np.float32))
            shown.step()
    return bad


def extract_images(paths: np.ndarray, embed: Callable[[Sequence[np.ndarray]], np.ndarray], sink: Sink, *,
                   size: tuple[int, int] | None = None, workers: int = 0, batch_size: int = 64,
                   skip_bad: bool = False, progress: bool = True) -> Bad:
    """Embed image files ``batch_size`` at a time with ``embed(list of crops) -> (B, D)``."""
    bad: Bad = []
    shown = _Progress(len(paths), progress, "images")
    todo: list[tuple[int, np.ndarray]] = []

    def run() -> None:
        for (i, _), e in zip(todo, embed([img for _, img in todo]), strict=True):
            sink(i, np.asarray(e, dtype=np.float32))
        shown.step(len(todo))
        todo.clear()

    for batch in _loader(ImageFiles(paths, size), workers):
        for i, img, problem in batch:
            if img is None:
                _bad(i, problem, skip_bad, bad)
                shown.step()
                continue
            todo.append((i, img))
            if len(todo) == batch_size:
                run()
    if todo:
        run()
    return bad


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (0, 1 outside torchrun); joins the process
    group when launched by torchrun (gloo on CPUs, nccl on GPUs)."""
    dist = torch.distributed
    if int(os.environ.get("WORLD_SIZE", 1)) > 1 and dist.is_available() and not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    if dist.is_available() and dist.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def check_one_process(task: str) -> None:
    """Evaluation writes one report: under torchrun, embed in parallel first, then evaluate once."""
    if int(os.environ.get("WORLD_SIZE", 1)) > 1:
        raise FacevoxError(f"eval runs in one process; under torchrun run '{task} embed SOURCE --out DIR', "
                           f"then '{task} eval --embeddings DIR' without torchrun", "torchrun")


Extract = Callable[[np.ndarray, Sink], Bad]  # (paths as bytes, sink) -> skipped files


def embed_paths(paths: Sequence[str | Path], extract: Extract, store: EmbeddingStore | None = None
                ) -> tuple[np.ndarray, np.ndarray, list[tuple[Path, str]]]:
    """Embeddings of ``paths`` (each file embedded once; already stored ones are not embedded again).

    Returns ``(embeddings (n, D) float32, ok (n,) bool, skipped [(path, problem)])`` in the order of
    ``paths``; rows of files that were skipped are zero and ``ok`` is False there. With a store the
    new embeddings are added to it (one part per process; under torchrun each rank embeds a
    disjoint slice and rank 0 commits them all).
    """
    keys = file_keys(paths)  # resolved: the store's identity of a file
    given = np.array([os.fsencode(p) for p in paths], dtype=bytes)  # decoded and named in messages as given
    stamps = file_stamps(paths)
    n = len(keys)
    rows = store.lookup(paths, keys, stamps) if store is not None else np.full(n, -1, dtype=np.int64)
    missing = np.flatnonzero(rows < 0)
    _, first = np.unique(keys[missing], return_index=True)  # each file once
    todo = missing[np.sort(first)]
    todo = todo[np.argsort(-stamps[todo, 0], kind="stable")]  # by size: equal lengths arrive together
    skipped: list[tuple[Path, str]] = []
    if store is None:
        found: dict[int, np.ndarray] = {}  # index into todo -> embedding
        bad = extract(given[todo], found.__setitem__)
        skipped = [(_path(given[todo[i]]), p) for i, p in bad]
        order = np.argsort(keys[todo], kind="stable")
        where = order[np.searchsorted(keys[todo][order], keys).clip(0, max(len(todo) - 1, 0))] if n else order
        dim = len(next(iter(found.values()))) if found else 0
        emb = np.zeros((n, dim), dtype=np.float32)
        ok = np.array([int(j) in found for j in where], dtype=bool)
        for i in np.flatnonzero(ok):
            emb[i] = found[int(where[i])]
        return emb, ok, skipped
    rank, world = rank_and_world()
    mine = todo[rank::world]
    if len(todo):
        with store.new_part(keys[mine], stamps[mine]) as writer:
            bad = extract(given[mine], writer.put)
            for i, _ in bad:
                writer.mark_bad(i)
        skipped = [(_path(given[mine[i]]), p) for i, p in bad]
        if world > 1:
            names: list = [None] * world
            torch.distributed.all_gather_object(names, store.pending)
            if rank == 0:
                store.commit([name for part in names for name in part])
            torch.distributed.barrier()
            store.reload()
        else:
            store.commit()
        rows = store.lookup(paths, keys, stamps)
    ok = rows >= 0
    emb = np.zeros((n, store.dim), dtype=np.float32)
    if ok.any():
        emb[ok] = store.take(rows[ok])
    return emb, ok, skipped
