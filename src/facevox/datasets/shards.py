"""Tar shards of a training corpus, in webdataset layout, and the shard list that names them.

``facevox data shard SOURCE --out DIR`` writes ``DIR/shard-000000.tar``, ... (fakeface sources
with a split: ``train-000000.tar``, ``val-...``, ``test-...``), about ``--per-shard`` items each.
Item ``k`` is two members: ``<key>.<ext>``, the source file's own encoded bytes (audio stays
FLAC/MP3/M4A/WAV, images stay JPEG/PNG), and ``<key>.json`` with ``label`` (name),
``label_index``, ``duration`` (seconds, audio), ``groups`` (manifest group columns), ``split``
(fakeface) and ``path`` (the source file, relative to SOURCE). Keys are the 9-digit item number
(no dots, so webdataset groups the two members into one sample).

Next to the shards: ``DIR/shard.list`` (one shard per line, relative to DIR, as WeSpeaker's
``shard.list``) and ``DIR/shards.json`` (format, task, class names, per-shard item counts and
splits, per-class counts, the files skipped). Every file is decoded and checked while sharding,
so a bad one is a one-line error naming it, or with ``--skip-bad`` left out and listed. The
folder is written next to DIR and renamed into place at the end: a failed run leaves nothing.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from facevox.datasets.index import FileIndex
from facevox.errors import FacevoxError
from facevox.fileio import atomic_dir

SHARD_LIST = "shard.list"
SHARD_INFO = "shards.json"
FORMAT = 1
TASKS = ("speaker", "fakeface", "face")
SAMPLE_RATE = 16000


# --------------------------------------------------------------------------------------------
# reading a shard list


@dataclass
class ShardSet:
    """The shards a shard list names, with what ``shards.json`` says about them."""

    list_path: Path
    paths: list[Path]
    counts: np.ndarray  # items per shard
    splits: list[str | None]
    classes: tuple[str, ...]
    task: str
    info: dict[str, Any]

    def select(self, split: str | None) -> np.ndarray:
        """Indices of the shards of ``split`` (None: all)."""
        return np.array([i for i, s in enumerate(self.splits) if split is None or s == split], dtype=np.int64)

    def items(self, split: str | None = None) -> int:
        return int(self.counts[self.select(split)].sum())

    def check_task(self, task: str, key: str) -> None:
        if self.task != task:
            raise FacevoxError(f"these shards were written for the {self.task} task, not {task} "
                               f"(facevox data shard --task {task})", key)


def shard_list_path(source: str | Path) -> Path | None:
    """The shard list ``source`` names (a ``*.list`` file, or a folder holding ``shard.list``), else None."""
    source = Path(source)
    if source.is_dir() and (source / SHARD_LIST).is_file():
        return source / SHARD_LIST
    if source.is_file() and source.suffix.lower() == ".list":
        return source
    return None


def read_shards(source: str | Path) -> ShardSet:
    """The shard set of a shard list (or the folder holding one); one-line errors for what is missing."""
    list_path = shard_list_path(source)
    if list_path is None:
        raise FacevoxError(f"not a shard list (expected a folder with {SHARD_LIST}, or a .list file)", source)
    folder = list_path.parent
    info_path = folder / SHARD_INFO
    if not info_path.is_file():
        raise FacevoxError(f"{SHARD_INFO} not found next to the shard list (write shards with facevox data shard)",
                           list_path)
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
        by_path = {s["path"]: s for s in info["shards"]}
        classes = tuple(str(c) for c in info["classes"])
        task = str(info["task"])
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise FacevoxError(f"not a facevox shard description ({type(err).__name__}: {err})", info_path) from None
    names = [ln.strip() for ln in list_path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not names:
        raise FacevoxError("the shard list names no shards", list_path)
    paths, counts, splits = [], [], []
    for line, name in enumerate(names, 1):
        p = Path(name) if Path(name).is_absolute() else folder / name
        if not p.is_file():
            raise FacevoxError(f"line {line}: shard not found: {name}", list_path)
        entry = by_path.get(name) or by_path.get(os.path.relpath(p, folder))
        if entry is None:
            raise FacevoxError(f"line {line}: shard {name} is not described in {SHARD_INFO}", list_path)
        paths.append(p)
        counts.append(int(entry["count"]))
        splits.append(entry.get("split"))
    return ShardSet(list_path, paths, np.asarray(counts, dtype=np.int64), splits, classes, task, info)


def is_shard_source(source: str | Path) -> bool:
    return bool(source) and shard_list_path(source) is not None


# --------------------------------------------------------------------------------------------
# writing


@dataclass
class ShardItems:
    """What to shard: a file index plus, per item, an optional split name."""

    index: FileIndex
    root: Path
    task: str
    splits: list[str | None] | None = None


def _check_audio(path: Path, min_seconds: float) -> tuple[bool, Any]:
    from facevox.audio.io import load_audio

    try:
        return True, len(load_audio(path, SAMPLE_RATE, min_seconds=min_seconds)) / SAMPLE_RATE
    except FacevoxError as err:
        return False, err.problem


def _check_image(path: Path) -> tuple[bool, Any]:
    from facevox.image.io import load_image

    try:
        load_image(path)
        return True, None
    except FacevoxError as err:
        return False, err.problem


def source_items(source: str | Path, task: str | None = None) -> ShardItems:
    """The labelled files of ``source`` for ``task`` (guessed from the source when None)."""
    from facevox.audio.io import AUDIO_EXTENSIONS
    from facevox.datasets.index import read_labelled

    source = Path(source)
    if not source.exists():
        raise FacevoxError("corpus folder or manifest not found", source)
    task = task or guess_task(source)
    root = source.parent if source.is_file() else source
    if task == "speaker":
        return ShardItems(read_labelled(source, AUDIO_EXTENSIONS, "audio", "speaker", "speaker"), root, task)
    if task == "face":
        from facevox.tasks.face.pairs import read_identities

        ids = read_identities(source)
        return ShardItems(FileIndex.build([p for fs in ids.values() for p in fs],
                                          [n for n, fs in ids.items() for _ in fs], classes=list(ids)), root, task)
    if task == "fakeface":
        from facevox.tasks.fakeface.data import CLASSES, SPLITS, read_source, read_split

        splits: list[str | None] | None = None
        if source.is_file() and "split" in _csv_columns(source):
            by_split = read_split(source)
            items = [it for s in SPLITS for it in by_split[s]]
            splits = [s for s in SPLITS for _ in by_split[s]]
        else:
            items = read_source(source)
        cols = sorted({c for it in items for c in it.groups})
        index = FileIndex.build([it.path for it in items], [CLASSES[it.label] for it in items], classes=CLASSES,
                                groups={c: [it.groups.get(c, "") for it in items] for c in cols})
        return ShardItems(index, root, task, splits)
    raise FacevoxError(f"unknown task '{task}'; valid: {', '.join(TASKS)}", "--task")


def _csv_columns(path: Path) -> list[str]:
    from facevox.textfile import read_text

    first = read_text(path).splitlines()[:1]
    return [c.strip() for c in first[0].split(",")] if first else []


def guess_task(source: Path) -> str:
    """speaker for audio, fakeface for real/ + fake/ or a path,label manifest, face for a folder per identity."""
    from facevox.audio.io import AUDIO_EXTENSIONS

    if source.is_file():
        cols = _csv_columns(source) if source.suffix.lower() == ".csv" else []
        if "speaker" in cols:
            return "speaker"
        if "label" in cols:
            return "fakeface"
        raise FacevoxError("cannot tell the task of this manifest (columns path,speaker or path,label); "
                           "give --task", source)
    if (source / "real").is_dir() and (source / "fake").is_dir():
        return "fakeface"
    for _, _, files in os.walk(source):
        for f in files:
            if not f.startswith(".") and Path(f).suffix.lower() in AUDIO_EXTENSIONS:
                return "speaker"
    return "face"


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def write_shards(items: ShardItems, out: str | Path, *, per_shard: int = 1000, skip_bad: bool = False,
                 min_seconds: float = 0.5, workers: int = 0, check: bool = True,
                 progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Write the shards, ``shard.list`` and ``shards.json`` of ``items`` into ``out`` (atomically).

    Every file is decoded first (``workers`` > 0: in that many processes); a bad one raises,
    or with ``skip_bad`` is left out and listed. ``check=False`` copies bytes unchecked (tests).
    Returns the ``shards.json`` content.
    """
    if per_shard < 1:
        raise FacevoxError(f"must be at least 1, got {per_shard}", "--per-shard")
    index, n = items.index, len(items.index)
    paths = (index.path(i) for i in range(n))
    if not check:
        checker: Callable[[Path], tuple[bool, Any]] = lambda p: (True, None)  # noqa: E731
    elif items.task == "speaker":
        checker = partial(_check_audio, min_seconds=min_seconds)
    else:
        checker = _check_image
    results = _map(checker, paths, workers)
    splits = items.splits or [None] * n
    shards: list[dict[str, Any]] = []
    skipped: list[str] = []
    class_counts = np.zeros(len(index.classes), dtype=np.int64)
    with atomic_dir(out) as tmp:
        tar: tarfile.TarFile | None = None
        current: dict[str, Any] | None = None
        key = 0
        for i, (ok, value) in enumerate(results):
            path = index.path(i)
            if not ok:
                if not skip_bad:
                    raise FacevoxError(value, path)
                skipped.append(f"{path}: {value}")
                continue
            split = splits[i]
            if current is None or current["count"] >= per_shard or current["split"] != split:
                if tar is not None:
                    tar.close()
                prefix = split or "shard"
                number = sum(1 for s in shards if s["split"] == split)
                current = {"path": f"{prefix}-{number:06d}.tar", "count": 0, "split": split, "seconds": 0.0,
                           "label_counts": [0] * len(index.classes)}
                shards.append(current)
                tar = tarfile.open(tmp / current["path"], "w", format=tarfile.USTAR_FORMAT)  # noqa: SIM115
            try:
                data = path.read_bytes()
            except OSError as err:
                raise FacevoxError(f"cannot read ({err.strerror or err})", path) from None
            label = int(index.labels[i])
            meta: dict[str, Any] = {"label": index.classes[label], "label_index": label,
                                    "path": _relative(path, items.root)}
            if value is not None:
                meta["duration"] = float(value)
            elif index.durations is not None and np.isfinite(index.durations[i]):
                meta["duration"] = float(index.durations[i])
            current["seconds"] += meta.get("duration", 0.0)
            if "duration" in meta:
                current["shortest"] = min(current.get("shortest", math.inf), meta["duration"])
            if index.groups:
                meta["groups"] = index.group_dict(i)
            if split is not None:
                meta["split"] = split
            name = f"{key:09d}"
            _tar_add(tar, f"{name}{path.suffix.lower()}", data)
            _tar_add(tar, f"{name}.json", json.dumps(meta, ensure_ascii=False).encode("utf-8"))
            current["count"] += 1
            current["label_counts"][label] += 1
            class_counts[label] += 1
            key += 1
            if progress is not None:
                progress(key)
        if tar is not None:
            tar.close()
        if not shards:
            raise FacevoxError("no usable file to shard", items.root)
        info = {"format": FORMAT, "task": items.task, "classes": list(index.classes), "items": key,
                "per_shard": per_shard, "sample_rate": SAMPLE_RATE if items.task == "speaker" else None,
                "min_seconds": min_seconds if items.task == "speaker" else None,
                "class_counts": class_counts.tolist(), "shards": shards, "skipped": skipped}
        (tmp / SHARD_LIST).write_text("".join(s["path"] + "\n" for s in shards), encoding="utf-8")
        (tmp / SHARD_INFO).write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if skipped:
        print(f"skipped {len(skipped)} bad file(s):", file=sys.stderr)
        for line in skipped:
            print(f"  {line}", file=sys.stderr)
    return info


def _map(fn: Callable[[Path], tuple[bool, Any]], paths: Any, workers: int) -> Any:
    """``fn`` over ``paths`` in order, in ``workers`` processes when > 0."""
    if workers <= 0:
        return map(fn, paths)
    import multiprocessing

    pool = multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn").Pool(workers)
    return _closing(pool, pool.imap(fn, paths, chunksize=16))


def _closing(pool: Any, it: Any) -> Any:
    try:
        yield from it
    finally:
        pool.terminate()
        pool.join()


def member_names(shard: Path) -> Sequence[str]:
    """The member names of a shard (for tests and listings)."""
    with tarfile.open(shard) as tar:
        return tar.getnames()
