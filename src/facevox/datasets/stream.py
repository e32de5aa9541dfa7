"""Reading tar shards for training: seeded shard order, disjoint readers, a shuffle buffer, exact resume.

The shards are in webdataset layout (see :mod:`facevox.datasets.shards`), so
``webdataset.WebDataset`` reads them too; training reads them with this small reader instead,
because it needs two things webdataset's pipeline does not give: (1) per-sample seeds that depend
only on (run seed, epoch, shard, member), so augmentation is the same whatever the number of
workers, and (2) resuming in the middle of an epoch at exactly the next batch, by skipping tar
members on their headers alone (nothing read or decoded) rather than replaying the epoch.

One epoch of a :class:`BatchStream`:

* the epoch's shard order is a permutation seeded by (seed, epoch); with ``world`` ranks and
  ``W = max(1, num_workers)`` workers per rank there are ``world x W`` readers, and the shard at
  position ``p`` of the order goes to reader ``p mod (world x W)`` (rank ``r`` = reader mod world,
  worker = reader // world): every shard is read by exactly one reader, and no two readers share one;
* each reader streams its shards' items (member headers only) through a seeded shuffle buffer
  (``buffer`` items, default 1,000), decodes an item only when the buffer lets it out, through the
  task's ``record(bytes, meta, rng)`` (the same item code a file on disk goes through), and collates
  its own batches of ``batch_size`` items;
* every reader yields the same number of batches, ``floor(L / batch_size)`` (``ceil`` without
  ``drop_last``), where ``L`` is the item count of the ``floor(S / readers)`` smallest shards: a
  bound every reader reaches in every epoch whatever the permutation, so all ranks take the same
  number of steps with no communication and an epoch has the same length every time. Items past
  a reader's quota wait for another epoch (they are a random few per epoch, as with ``drop_last``);
* the DataLoader takes batches from its workers round-robin, so global batch ``b`` of a rank comes
  from worker ``b mod W``. Resuming at batch ``start`` (the batches of this epoch already done)
  makes worker ``d`` play the role of worker ``(d + start) mod W`` and skip the items of the batches
  that role already gave: the resumed run then yields exactly batches ``start, start + 1, ...`` of
  the uninterrupted epoch, provided ``num_workers`` and the number of ranks are unchanged (other
  counts give another, equally valid, order) and no item was dropped as bad (``skip_bad``) before
  the resume point in the same epoch.

A bad item (undecodable bytes, a shard cut short) is a one-line :class:`FacevoxError` naming
``shard.tar:member``; with ``skip_bad`` it is dropped and listed on stderr, and a reader that runs
short because of drops starts a second seeded pass over its shards to fill its quota.
"""

from __future__ import annotations

import json
import math
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info
from torch.utils.data._utils.collate import default_collate

from facevox.datasets.shards import ShardSet
from facevox.errors import FacevoxError

Record = Callable[[bytes, dict[str, Any], np.random.Generator], Any]
# (item number in the shard, key, ext, data offset, data size, json offset, json size)
Ref = tuple[int, str, str, int, int, int, int]


def shard_members(path: Path) -> list[Ref]:
    """The items of one shard from its member headers only (no data read)."""
    refs: list[Ref] = []
    data: dict[str, tuple[str, int, int]] = {}
    meta: dict[str, tuple[int, int]] = {}
    order: list[str] = []
    try:
        with tarfile.open(path, "r:") as tar:
            for m in tar:
                if not m.isfile():
                    continue
                base = m.name.rsplit("/", 1)[-1]
                key, dot, ext = base.partition(".")
                if not dot:
                    continue
                if key not in data and key not in meta:
                    order.append(key)
                if ext == "json":
                    meta[key] = (m.offset_data, m.size)
                else:
                    data[key] = (ext, m.offset_data, m.size)
    except (tarfile.TarError, OSError, EOFError) as err:
        raise FacevoxError(f"cannot read this shard ({' '.join(str(err).split()) or type(err).__name__})",
                           path) from None
    for n, key in enumerate(order):
        if key not in data or key not in meta:
            raise FacevoxError(f"item {key} has {'no data file' if key not in data else 'no .json'}", path)
        ext, off, size = data[key]
        refs.append((n, key, ext, off, size, *meta[key]))
    return refs


def sample_rng(seed: int, epoch: int, shard: int, member: int, attempt: int = 0) -> np.random.Generator:
    """The generator of one item: from (seed, epoch, shard, member) only (and the refill pass, if any)."""
    words = [seed, epoch, shard, member] + ([attempt] if attempt else [])
    return np.random.default_rng(np.random.SeedSequence(words))


class _Reader:
    """Reads member bytes by offset, keeping a few shards open."""

    def __init__(self) -> None:
        self.open: dict[Path, Any] = {}

    def read(self, path: Path, offset: int, size: int) -> bytes:
        fh = self.open.get(path)
        if fh is None:
            if len(self.open) >= 4:
                old = next(iter(self.open))
                self.open.pop(old).close()
            fh = self.open[path] = open(path, "rb")  # noqa: SIM115 - kept open while the shard is in the buffer
        fh.seek(offset)
        data = fh.read(size)
        if len(data) != size:
            raise EOFError("shard cut short")
        return data

    def close(self) -> None:
        for fh in self.open.values():
            fh.close()
        self.open.clear()


def read_item(reader: _Reader, path: Path, ref: Ref) -> tuple[bytes, dict[str, Any]]:
    """(data bytes, meta) of one item; meta gains ``_where`` (``shard.tar:member``) and ``_ext``."""
    _, key, ext, off, size, joff, jsize = ref
    where = f"{path}:{key}.{ext}"
    try:
        data = reader.read(path, off, size)
        meta = json.loads(reader.read(path, joff, jsize).decode("utf-8"))
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FacevoxError(f"cannot read this item ({' '.join(str(err).split()) or type(err).__name__})",
                           where) from None
    meta["_where"], meta["_ext"] = where, "." + ext
    return data, meta


class BatchStream:
    """Batches of shard items for the Trainer (see the module docstring for the epoch's rules).

    ``record(bytes, meta, rng) -> item`` decodes one item; ``split`` restricts to the shards of
    one split (fakeface); ``collate`` makes a batch of items (default: torch's default_collate).
    """

    def __init__(self, shards: ShardSet, record: Record, *, split: str | None = None, buffer: int = 1000,
                 collate: Callable[[list[Any]], Any] | None = None, skip_bad: bool = False) -> None:
        self.shards, self.record, self.split, self.buffer = shards, record, split, max(1, buffer)
        self.collate = collate or default_collate
        self.skip_bad = skip_bad
        self.selected = shards.select(split)
        if not len(self.selected):
            raise FacevoxError(f"no shard holds {split} items", shards.list_path)

    def __len__(self) -> int:
        """Items in the selected shards."""
        return int(self.shards.counts[self.selected].sum())

    def per_reader_items(self, world: int, num_workers: int) -> int:
        """L: the items every reader is sure to get in any epoch."""
        readers = world * max(1, num_workers)
        n = len(self.selected)
        if n < readers:
            raise FacevoxError(f"{n} shards for {world} process(es) x {max(1, num_workers)} worker(s): every reader "
                               "needs a shard of its own; write smaller shards (facevox data shard --per-shard) or "
                               "use fewer workers (train.num_workers)", self.shards.list_path)
        counts = np.sort(self.shards.counts[self.selected])
        return int(counts[: n // readers].sum())

    def quota(self, batch_size: int, world: int, num_workers: int, drop_last: bool) -> int:
        """Batches each reader (worker) yields per epoch."""
        items = self.per_reader_items(world, num_workers)
        return items // batch_size if drop_last else math.ceil(items / batch_size)

    def batches_per_epoch(self, batch_size: int, world: int, num_workers: int, drop_last: bool) -> int:
        """Batches each rank yields per epoch (``batch_size``: per rank); the same for every epoch and rank."""
        q = self.quota(batch_size, world, num_workers, drop_last)
        if q == 0:
            raise FacevoxError(f"each of the {world * max(1, num_workers)} readers gets "
                               f"{self.per_reader_items(world, num_workers)} items, fewer than one batch of "
                               f"{batch_size}; use fewer workers or a smaller batch", self.shards.list_path)
        return q * max(1, num_workers)

    def iterable(self, *, seed: int, epoch: int, start: int, batch_size: int, rank: int, world: int,
                 num_workers: int, drop_last: bool) -> IterableDataset:
        """The epoch's batches for one rank, from batch ``start`` on, for a DataLoader with
        ``batch_size=None`` and ``num_workers`` workers."""
        return _EpochStream(self, seed=seed, epoch=epoch, start=start, batch_size=batch_size, rank=rank,
                            world=world, num_workers=num_workers, drop_last=drop_last)

    def shard_order(self, seed: int, epoch: int) -> np.ndarray:
        """Global shard indices in the epoch's order."""
        perm = np.random.default_rng(np.random.SeedSequence([seed, epoch, 11])).permutation(len(self.selected))
        return self.selected[perm]

    def reader_shards(self, seed: int, epoch: int, rank: int, world: int, worker: int, num_workers: int) -> np.ndarray:
        """The shards reader (rank, worker) reads in this epoch, in order."""
        readers = world * max(1, num_workers)
        return self.shard_order(seed, epoch)[worker * world + rank :: readers]


class _EpochStream(IterableDataset):
    def __init__(self, stream: BatchStream, **kw: Any) -> None:
        super().__init__()
        self.stream = stream
        self.__dict__.update(kw)

    def __iter__(self) -> Iterator[Any]:
        s = self.stream
        info = get_worker_info()
        workers = max(1, self.num_workers)
        if info is not None and info.num_workers != workers:
            raise RuntimeError(f"stream built for {workers} workers, read by {info.num_workers}")
        d = info.id if info is not None else 0
        role = (d + self.start) % workers  # the DataLoader asks worker 0 first, also after a resume
        quota = s.quota(self.batch_size, self.world, self.num_workers, self.drop_last)
        done = self.start // workers + (1 if role < self.start % workers else 0)
        shards = s.reader_shards(self.seed, self.epoch, self.rank, self.world, role, self.num_workers)
        yield from _batches(s, shards, self.seed, self.epoch, role * self.world + self.rank,
                            quota, done, self.batch_size, self.drop_last)


def _shuffled(s: BatchStream, shards: np.ndarray, seed: int, epoch: int, reader: int,
              attempt: int) -> Iterator[tuple[int, Ref]]:
    """(shard, ref) of a reader's items through the seeded shuffle buffer."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, epoch, 13, reader, attempt]))
    buf: list[tuple[int, Ref]] = []
    for j in shards:
        for ref in shard_members(s.shards.paths[int(j)]):
            if len(buf) < s.buffer:
                buf.append((int(j), ref))
                continue
            k = int(rng.integers(len(buf)))
            out, buf[k] = buf[k], (int(j), ref)
            yield out
    for k in rng.permutation(len(buf)):
        yield buf[int(k)]


def _batches(s: BatchStream, shards: np.ndarray, seed: int, epoch: int, reader: int, quota: int, done: int,
             batch_size: int, drop_last: bool) -> Iterator[Any]:
    """A reader's batches ``done`` .. ``quota - 1`` of the epoch."""
    io = _Reader()
    to_skip = done * batch_size
    made, items, attempt = done, [], 0
    try:
        while made < quota:
            good = 0
            for j, ref in _shuffled(s, shards, seed, epoch, reader, attempt):
                if to_skip:  # resume: the items of batches already done, on their headers alone
                    to_skip, good = to_skip - 1, good + 1
                    continue
                path = s.shards.paths[j]
                try:
                    data, meta = read_item(io, path, ref)
                    item = s.record(data, meta, sample_rng(seed, epoch, j, ref[0], attempt))
                except FacevoxError as err:
                    if not s.skip_bad:
                        raise
                    print(f"skipped bad item {err}", file=sys.stderr)
                    continue
                good += 1
                items.append(item)
                if len(items) == batch_size:
                    yield s.collate(items)
                    items, made = [], made + 1
                    if made >= quota:
                        return
            if good == 0:
                raise FacevoxError("no item of these shards decodes", s.shards.list_path)
            if items and not drop_last and made == quota - 1:  # the reader's last, partial batch
                yield s.collate(items)
                return
            attempt += 1  # short of the quota after dropping bad items: another seeded pass
    finally:
        io.close()


def iter_records(shards: ShardSet, split: str | None = None, indices: np.ndarray | None = None,
                 ) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """(bytes, meta) of every item of ``split`` (or of the shards ``indices``), in shard order."""
    io = _Reader()
    try:
        for j in shards.select(split) if indices is None else indices:
            path = shards.paths[int(j)]
            for ref in shard_members(path):
                yield read_item(io, path, ref)
    finally:
        io.close()


class RecordDataset(IterableDataset):
    """Every item of ``split`` as ``record(bytes, meta, rng)``, shards divided among DataLoader workers
    (order not kept across workers: return the label with the item). For validation and scoring."""

    def __init__(self, shards: ShardSet, record: Record, split: str | None = None, seed: int = 0) -> None:
        super().__init__()
        self.shards, self.record, self.split, self.seed = shards, record, split, seed
        self.both_classes = False  # set by a caller that knows the split has both classes (fakeface validation)

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        sel = self.shards.select(self.split)
        if info is not None:
            sel = sel[info.id :: info.num_workers]
        io = _Reader()
        try:
            for j in sel:
                path = self.shards.paths[int(j)]
                for ref in shard_members(path):
                    data, meta = read_item(io, path, ref)
                    yield self.record(data, meta, sample_rng(self.seed, 0, int(j), ref[0]))
        finally:
            io.close()
