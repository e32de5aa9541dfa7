"""A labelled-files index held as a few numpy arrays, not lists of Python objects.

DataLoader workers are forked from the training process. A list of a million ``Path`` or
dataclass objects is copied page by page into every worker as soon as the workers touch the
objects' reference counts (copy-on-write), so memory grows with corpus size x workers. A
:class:`FileIndex` keeps every path in one ``uint8`` buffer with ``int64`` offsets, the labels as
one ``int64`` array, durations as one ``float32`` array and group columns as small code arrays:
a handful of numpy buffers that workers share untouched. Items are decoded one at a time,
inside the workers, by the task's dataset.

Whether a task holds its decoded corpus in RAM (the old behaviour, fastest for tiny sets) or
decodes lazily is chosen by ``data.in_memory``: ``true``, ``false`` or ``auto`` (in RAM for up
to :data:`IN_MEMORY_LIMIT` files, lazy above).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# ``data.in_memory: auto`` decodes a corpus into RAM only up to this many files (a few hundred MB at most
# for 2,000 clips of 30 s as int16 or 2,000 images of 256 px); larger corpora are decoded lazily
IN_MEMORY_LIMIT = 2000


def use_memory(setting: bool | str, n_files: int) -> bool:
    """Whether to decode ``n_files`` into RAM for the ``data.in_memory`` setting (True, False or "auto")."""
    if setting == "auto":
        return n_files <= IN_MEMORY_LIMIT
    return bool(setting)


class PathArray:
    """Many paths in one byte buffer: ``paths[i]`` is a :class:`~pathlib.Path` made on demand."""

    def __init__(self, paths: Iterable[str | Path]) -> None:
        encoded = [os.fsencode(p) for p in paths]
        lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
        self.offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self.offsets[1:])
        self.buffer = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> Path:
        i = int(i)
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        return Path(os.fsdecode(self.buffer[self.offsets[i] : self.offsets[i + 1]].tobytes()))

    def take(self, indices: Sequence[int] | np.ndarray) -> PathArray:
        return PathArray(self[int(i)] for i in indices)

    @property
    def nbytes(self) -> int:
        return int(self.buffer.nbytes + self.offsets.nbytes)


@dataclass
class FileIndex:
    """Labelled files: ``paths[i]`` has label ``labels[i]`` (an index into ``classes``).

    ``durations`` (seconds, NaN where unknown) is set for audio. ``groups`` maps a column name
    (fakeface's audit groups, the split) to ``(codes int32, values)``: item ``i``'s value is
    ``values[codes[i]]``.
    """

    paths: PathArray
    labels: np.ndarray
    classes: tuple[str, ...]
    durations: np.ndarray | None = None
    groups: dict[str, tuple[np.ndarray, tuple[str, ...]]] = field(default_factory=dict)

    @classmethod
    def build(cls, paths: Sequence[str | Path], names: Sequence[str], classes: Sequence[str] | None = None,
              durations: Sequence[float] | None = None, groups: Mapping[str, Sequence[str]] | None = None,
              ) -> FileIndex:
        """From parallel sequences of paths and label names (``classes``: the label order; default sorted)."""
        classes = tuple(sorted(set(names)) if classes is None else classes)
        lookup = {c: i for i, c in enumerate(classes)}
        labels = np.fromiter((lookup[n] for n in names), dtype=np.int64, count=len(names))
        dur = None if durations is None else np.asarray(durations, dtype=np.float32)
        coded = {k: encode_column(v) for k, v in (groups or {}).items()}
        return cls(PathArray(paths), labels, classes, dur, coded)

    def __len__(self) -> int:
        return len(self.labels)

    def path(self, i: int) -> Path:
        return self.paths[i]

    def label_name(self, i: int) -> str:
        return self.classes[int(self.labels[i])]

    def group(self, name: str, i: int) -> str:
        codes, values = self.groups[name]
        return values[int(codes[i])]

    def group_dict(self, i: int) -> dict[str, str]:
        return {k: values[int(codes[i])] for k, (codes, values) in self.groups.items()}

    def take(self, indices: Sequence[int] | np.ndarray) -> FileIndex:
        """The items ``indices`` in that order (labels keep indexing the same ``classes``)."""
        idx = np.asarray(indices, dtype=np.int64)
        return FileIndex(self.paths.take(idx), self.labels[idx].copy(), self.classes,
                         None if self.durations is None else self.durations[idx].copy(),
                         {k: (codes[idx].copy(), values) for k, (codes, values) in self.groups.items()})

    def relabel(self, classes: Sequence[str]) -> FileIndex:
        """The same items with labels re-indexed to ``classes`` (which must hold every used class)."""
        lookup = np.array([{c: i for i, c in enumerate(classes)}.get(c, -1) for c in self.classes], dtype=np.int64)
        return FileIndex(self.paths, lookup[self.labels], tuple(classes), self.durations, self.groups)

    def seconds(self) -> float:
        return float(np.nansum(self.durations)) if self.durations is not None else float("nan")

    @property
    def nbytes(self) -> int:
        extra = sum(c.nbytes for c, _ in self.groups.values())
        return self.paths.nbytes + self.labels.nbytes + (0 if self.durations is None else self.durations.nbytes) + extra


def encode_column(values: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """``(codes int32, distinct values sorted)`` of a column of strings."""
    distinct = tuple(sorted(set(values)))
    lookup = {v: i for i, v in enumerate(distinct)}
    return np.fromiter((lookup[v] for v in values), dtype=np.int32, count=len(values)), distinct


def read_labelled(source: str | Path, extensions: tuple[str, ...], kind: str, label_column: str = "label",
                  what: str = "class") -> FileIndex:
    """A :class:`FileIndex` from a folder per class (``<root>/<class>/**/<file>``) or a CSV manifest.

    A manifest has columns ``path`` and ``label_column`` (paths relative to the manifest), an
    optional ``duration`` (seconds; for audio it spares reading every header), and any other
    columns as groups. Files are in sorted order (folders) or manifest order; classes sorted.
    ``kind`` ("audio", "image") and ``what`` ("speaker", "identity") word the errors.
    """
    import csv
    import io

    from facevox.errors import FacevoxError
    from facevox.fileio import list_files
    from facevox.textfile import check_utf8_name, read_text

    source = Path(source)
    if source.is_file() and source.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(read_text(source), newline=""))
        cols = [(c or "").strip() for c in reader.fieldnames or []]
        missing = {"path", label_column} - set(cols)
        if missing:
            raise FacevoxError(f"manifest needs columns path,{label_column} (missing {', '.join(sorted(missing))})",
                               source)
        group_cols = [c for c in cols if c not in ("path", label_column, "duration")]
        paths: list[str] = []
        names: list[str] = []
        durations: list[float] | None = [] if "duration" in cols else None
        groups: dict[str, list[str]] = {c: [] for c in group_cols}
        for line, row in enumerate(reader, 2):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
            name, label = row.get("path", ""), row.get(label_column, "")
            if not name:
                raise FacevoxError(f"line {line}: empty path", source)
            if Path(name).suffix.lower() not in extensions:
                raise FacevoxError(f"line {line}: not an {kind} file extension: {name}", source)
            if not label:
                raise FacevoxError(f"line {line}: no {label_column} given for {name}", source)
            f = Path(name)
            paths.append(str(f if f.is_absolute() else source.parent / f))
            names.append(label)
            if durations is not None:
                try:
                    durations.append(float(row.get("duration") or "nan"))
                except ValueError:
                    raise FacevoxError(f"line {line}: duration {row.get('duration')!r} is not a number",
                                       source) from None
            for c in group_cols:
                groups[c].append(row.get(c, ""))
        if not paths:
            raise FacevoxError("manifest lists no files", source)
        return FileIndex.build(paths, names, durations=durations, groups=groups)
    if not source.exists():
        raise FacevoxError("corpus folder or manifest not found", source)
    files = list_files(source, extensions, kind)
    paths, names = [], []
    for f in files:
        check_utf8_name(f)
        rel = f.relative_to(source)
        if len(rel.parts) < 2:
            raise FacevoxError(f"{kind} file directly under the corpus root ({rel}); expected <root>/<{what}>/...",
                               source)
        paths.append(str(f))
        names.append(rel.parts[0])
    del files
    return FileIndex.build(paths, names)
