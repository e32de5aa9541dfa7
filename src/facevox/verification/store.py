"""An on-disk embedding store: one folder, memory-mapped arrays, parts appended without rewriting.

Layout (``DIR`` is the store)::

    DIR/meta.json                 {"format": "facevox-embeddings", "version": 1, "fingerprint": ...,
                                   "dim": D, "count": N, "dtype": "float32", "parts": [...], "settings": {...}}
    DIR/part-<id>/keys.npy        (n,) bytes: absolute file paths (UTF-8), sorted, for a binary search
    DIR/part-<id>/rows.npy        (n,) int64: the row of embeddings.npy each sorted key points to
    DIR/part-<id>/stamps.npy      (n, 2) int64: file size and mtime (ns) when embedded; size -1 marks a
                                  file that could not be read (``--skip-bad``), never a hit
    DIR/part-<id>/embeddings.npy  (n, D) float32 unit rows

Everything is a plain ``.npy`` read with ``np.load(mmap_mode="r")`` (never unpickled), so opening
a store of 1M x 256 only maps files: O(seconds) whatever its size. float32, not float16: float16
rounds a cosine by up to ~1e-3, above the 1e-4 that batched extraction is held to.

Writes are atomic at two levels: a part is written in a temporary folder and renamed into place;
it only becomes part of the store when ``meta.json`` (rewritten atomically) lists it. A failed
or interrupted write therefore leaves the previous store as it was. New files go into a new part;
old parts are never rewritten. When a file is embedded again (it changed), the later part wins.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facevox.errors import FacevoxError
from facevox.fileio import atomic_write_json

FORMAT = "facevox-embeddings"
VERSION = 1
DTYPE = np.float32
BAD = -1  # stamps[:, 0] of a file that could not be read


def model_fingerprint(model: torch.nn.Module) -> str:
    """A short hash of the weights: stored embeddings are only reused for the same model."""
    h = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def store_fingerprint(model_fp: str, settings: dict[str, Any]) -> str:
    """The key of a store: the weights and every setting that changes an embedding (windows,
    input size, flip, precision)."""
    return hashlib.sha1((model_fp + json.dumps(settings, sort_keys=True)).encode()).hexdigest()[:16]


def file_keys(paths: Sequence[str | Path]) -> np.ndarray:
    """The store's keys for ``paths``: absolute, resolved paths as a compact bytes array (n,)."""
    return np.array([os.fsencode(Path(p).resolve()) for p in paths], dtype=bytes)


def file_stamps(paths: Sequence[str | Path]) -> np.ndarray:
    """(n, 2) int64 size and mtime_ns of each file; (-2, -2) for a file that does not exist."""
    out = np.full((len(paths), 2), -2, dtype=np.int64)
    for i, p in enumerate(paths):
        try:
            st = os.stat(p)
        except OSError:
            continue
        out[i] = st.st_size, st.st_mtime_ns
    return out


@dataclass
class _Part:
    name: str
    keys: np.ndarray  # (n,) bytes, sorted
    rows: np.ndarray  # (n,) int64
    stamps: np.ndarray  # (n, 2) int64
    embeddings: np.ndarray  # (n, D) float32, memory-mapped


class PartWriter:
    """Rows of a new part, written into a memory-mapped ``embeddings.npy`` as they are computed."""

    def __init__(self, folder: Path, n: int) -> None:
        self.folder, self.n = folder, n
        self.emb: np.ndarray | None = None
        self.bad = np.zeros(n, dtype=bool)
        self.done = np.zeros(n, dtype=bool)

    def put(self, index: int, embedding: np.ndarray) -> None:
        if self.emb is None:
            self.emb = np.lib.format.open_memmap(self.folder / "embeddings.npy", mode="w+", dtype=DTYPE,
                                                 shape=(self.n, int(embedding.shape[-1])))
        self.emb[index] = embedding
        self.done[index] = True

    def mark_bad(self, index: int) -> None:
        self.bad[index] = True


class EmbeddingStore:
    """Embeddings of files, keyed by absolute path, valid while the file's size and mtime are unchanged.

    Open (or start) one with :meth:`open`; :meth:`lookup` maps paths to global rows, :meth:`take`
    gathers rows, :meth:`new_part` + :meth:`commit` add embeddings.
    """

    def __init__(self, path: Path, fingerprint: str, settings: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.settings = dict(settings or {})
        self.parts: list[_Part] = []
        self.dim = 0
        self.pending: list[str] = []  # parts written by this process, not yet in meta.json
        self._rebuild = False  # a damaged store is being replaced: its old parts go on the next commit

    # -- reading -----------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, fingerprint: str, settings: dict[str, Any] | None = None, *,
             damaged: str = "error", where: str | None = None) -> EmbeddingStore:
        """Open the store in ``path`` (an empty one when the folder is new or empty).

        ``damaged="warn"`` (the default cache): a store that cannot be read is dropped with a
        one-line warning and rebuilt. ``"error"`` (a store the user named): a one-line error.
        A store made by another model (``fingerprint``) is an error either way.
        """
        store = cls(Path(path), fingerprint, settings)
        meta = store.path / "meta.json"
        if store.path.exists() and not store.path.is_dir():
            raise FacevoxError("not a folder: an embedding store is a folder", where or store.path)
        if not meta.is_file():
            # parts never committed (a crash before the first meta.json) and temporaries do not count
            if store.path.is_dir() and any(not p.name.startswith((".", "part-")) for p in store.path.iterdir()):
                if damaged == "warn":
                    store._warn("no meta.json")
                    return store
                raise FacevoxError("not an embedding store (no meta.json); give a new or empty folder",
                                   where or store.path)
            return store
        try:
            store._load(json.loads(meta.read_text(encoding="utf-8")))
        except FacevoxError:
            raise
        except Exception as err:  # damaged files raise many types (JSON, OS, shape, value)
            if damaged != "warn":
                reason = " ".join(str(err).split())[:120] or type(err).__name__
                raise FacevoxError(f"unreadable embedding store ({reason})", where or store.path) from None
            store._warn(" ".join(str(err).split())[:120] or type(err).__name__)
        return store

    def _warn(self, reason: str) -> None:
        print(f"warning: {self.path}: unreadable embedding store ({reason}); rebuilding it", file=sys.stderr)
        self.parts, self.dim = [], 0
        self._rebuild = True

    def _load(self, meta: dict[str, Any]) -> None:
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise ValueError(f"not a {FORMAT} v{VERSION} meta.json")
        if meta["fingerprint"] != self.fingerprint:
            raise FacevoxError(f"these embeddings were made by another model or settings (fingerprint "
                               f"{meta['fingerprint']}, this scorer {self.fingerprint}); give another folder",
                               self.path)
        dim = int(meta["dim"])
        parts = []
        for name in meta["parts"]:
            folder = self.path / name
            keys = np.load(folder / "keys.npy", mmap_mode="r", allow_pickle=False)
            rows = np.load(folder / "rows.npy", mmap_mode="r", allow_pickle=False)
            stamps = np.load(folder / "stamps.npy", mmap_mode="r", allow_pickle=False)
            emb = np.load(folder / "embeddings.npy", mmap_mode="r", allow_pickle=False)
            n = len(keys)
            if (keys.dtype.kind != "S" or rows.shape != (n,) or stamps.shape != (n, 2) or emb.dtype != DTYPE
                    or emb.ndim != 2 or emb.shape[1] != dim or (n and (rows.min() < 0 or rows.max() >= len(emb)))):
                raise ValueError(f"{name}: arrays do not fit together")
            parts.append(_Part(name, keys, rows, stamps, emb))
        if sum(len(p.embeddings) for p in parts) != int(meta["count"]):
            raise ValueError("count in meta.json does not match the parts")
        self.parts, self.dim = parts, dim

    def reload(self) -> None:
        """Read meta.json again (after another process committed parts)."""
        meta = self.path / "meta.json"
        if meta.is_file():
            self._load(json.loads(meta.read_text(encoding="utf-8")))

    def __len__(self) -> int:
        return sum(len(p.embeddings) for p in self.parts)

    def lookup(self, paths: Sequence[str | Path], keys: np.ndarray | None = None,
               stamps: np.ndarray | None = None) -> np.ndarray:
        """Global row of each path's embedding, -1 where it is missing or stale (size/mtime changed)."""
        keys = file_keys(paths) if keys is None else keys
        stamps = file_stamps(paths) if stamps is None else stamps
        out = np.full(len(keys), -1, dtype=np.int64)
        offset = 0
        for part in self.parts:  # later parts win
            if len(part.keys):
                pos = np.searchsorted(part.keys, keys).clip(0, len(part.keys) - 1)
                hit = (part.keys[pos] == keys) & (part.stamps[pos] == stamps).all(axis=1) & (stamps[:, 0] >= 0)
                out[hit] = offset + part.rows[pos[hit]]
            offset += len(part.embeddings)
        return out

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Embeddings (n, D) float32 of global ``rows`` (all >= 0), gathered part by part."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.dim), dtype=DTYPE)
        offset = 0
        for part in self.parts:
            n = len(part.embeddings)
            sel = np.flatnonzero((rows >= offset) & (rows < offset + n))
            if len(sel):
                local = rows[sel] - offset
                order = np.argsort(local, kind="stable")  # sequential reads of the memory map
                out[sel[order]] = part.embeddings[local[order]]
            offset += n
        return out

    # -- writing -----------------------------------------------------------------------------------

    def new_part(self, keys: np.ndarray, stamps: np.ndarray) -> _NewPart:
        """A context manager yielding a :class:`PartWriter` for ``keys``; on success the part is in
        place (not yet committed: call :meth:`commit`)."""
        return _NewPart(self, keys, stamps)

    def commit(self, names: Sequence[str] | None = None) -> None:
        """List ``names`` (default: the parts this process wrote) in meta.json, atomically, and reload."""
        names = list(self.pending if names is None else names)
        self.pending = [n for n in self.pending if n not in names]
        names = [n for n in names if (self.path / n / "keys.npy").is_file()]
        if not names and (self.path / "meta.json").is_file() and not self._rebuild:
            return
        if self._rebuild:
            for old in self.path.glob("part-*"):
                if old.name not in names:
                    shutil.rmtree(old, ignore_errors=True)
            self._rebuild = False
        dims = {int(np.load(self.path / n / "embeddings.npy", mmap_mode="r").shape[1]) for n in names}
        if self.dim:
            dims.add(self.dim)
        if len(dims) > 1:
            raise FacevoxError(f"embeddings of different sizes {sorted(dims)} in one store", self.path)
        listed = [p.name for p in self.parts] + names
        count = sum(len(p.embeddings) for p in self.parts) + sum(
            int(np.load(self.path / n / "embeddings.npy", mmap_mode="r").shape[0]) for n in names)
        meta = {"format": FORMAT, "version": VERSION, "fingerprint": self.fingerprint,
                "dim": dims.pop() if dims else 0, "count": count, "dtype": "float32", "parts": listed,
                "settings": self.settings}
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path / "meta.json", meta)
        self._load(meta)


class _NewPart:
    def __init__(self, store: EmbeddingStore, keys: np.ndarray, stamps: np.ndarray) -> None:
        self.store, self.keys, self.stamps = store, np.asarray(keys, dtype=bytes), np.asarray(stamps, np.int64)
        self.name = f"part-{uuid.uuid4().hex[:16]}"

    def __enter__(self) -> PartWriter:
        self.store.path.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.name}.", suffix=".tmp", dir=self.store.path))
        self.writer = PartWriter(self.tmp, len(self.keys))
        return self.writer

    def __exit__(self, exc_type, exc, tb) -> None:
        w = self.writer
        try:
            if exc_type is not None or w.emb is None:  # failed, or nothing embedded (empty / all bad)
                return
            missing = ~(w.done | w.bad)
            if missing.any():
                raise RuntimeError(f"{int(missing.sum())} rows of the part were never written")
            w.emb.flush()
            w.emb = None
            stamps = self.stamps.copy()
            stamps[w.bad] = BAD
            order = np.argsort(self.keys, kind="stable")
            np.save(self.tmp / "keys.npy", self.keys[order])
            np.save(self.tmp / "rows.npy", order.astype(np.int64))
            np.save(self.tmp / "stamps.npy", stamps[order])
            os.replace(self.tmp, self.store.path / self.name)
            self.store.pending.append(self.name)
        finally:
            w.emb = None
            shutil.rmtree(self.tmp, ignore_errors=True)
