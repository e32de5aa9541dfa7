"""Labelled face images, the split file, and the datasets the detector trains and scores on.

A data source is either a folder with ``real/`` and ``fake/`` sub-folders (nested folders
allowed inside each) or a CSV manifest with columns ``path,label`` (label ``real``/``fake`` or
``0``/``1``; paths relative to the manifest) and any number of group columns (``sex``, ``age``,
``skin``...) used by the per-group audit.

The split file (CSV ``path,label,split[,groups...]``) assigns every image to train, val or
test, stratified by label and seeded. It is written once; every later run that names it reads
it back unchanged, so models trained at different times are compared on the same test images.
"""

from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facevox.data import SeededDataset
from facevox.errors import FacevoxError
from facevox.fileio import atomic_write_text, load_each, report_skipped
from facevox.image.io import list_image_files, load_image
from facevox.image.transforms import AugmentSettings, augment, mask_region, resize_square
from facevox.textfile import check_utf8_name, read_text

if TYPE_CHECKING:
    from facevox.datasets.index import FileIndex

CLASSES = ("real", "fake")  # label 0, label 1: the detector's score is P(fake)
SPLITS = ("train", "val", "test")
Box = tuple[float, float, float, float]
_LABELS = {"real": 0, "0": 0, "fake": 1, "1": 1}


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    label: int  # 0 real, 1 fake
    groups: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


def read_source(source: str | Path) -> list[LabelledImage]:
    """Images and labels from a ``real/`` + ``fake/`` folder or a CSV manifest."""
    source = Path(source)
    if source.is_file():
        if source.suffix.lower() != ".csv":
            raise FacevoxError("expected a folder with real/ and fake/, or a CSV manifest (path,label)", source)
        return _read_manifest(source)
    if not source.is_dir():
        raise FacevoxError("data folder or manifest not found", source)
    missing = [c for c in CLASSES if not (source / c).is_dir()]
    if missing:
        raise FacevoxError(f"expected sub-folders real/ and fake/; missing: {', '.join(missing)}/", source)
    items = [LabelledImage(p, label) for label, c in enumerate(CLASSES) for p in list_image_files(source / c)]
    for it in items:  # their paths go into the split file
        check_utf8_name(it.path)
    return items


def _read_manifest(path: Path) -> list[LabelledImage]:
    with io.StringIO(read_text(path), newline="") as fh:
        reader = csv.DictReader(fh)
        cols = [c.strip() for c in reader.fieldnames or []]
        if "path" not in cols or "label" not in cols:
            raise FacevoxError(f"manifest needs columns path,label; found: {', '.join(cols) or '(none)'}", path)
        group_cols = [c for c in cols if c not in ("path", "label", "split")]
        items = []
        for line, row in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            label = _LABELS.get(row["label"].lower())
            if label is None:
                raise FacevoxError(f"line {line}: label '{row['label']}' is not real/fake or 0/1", path)
            if not row["path"]:
                raise FacevoxError(f"line {line}: empty path", path)
            p = Path(row["path"])
            items.append(LabelledImage(p if p.is_absolute() else path.parent / p, label,
                                       {c: row.get(c, "") for c in group_cols}))
    if not items:
        raise FacevoxError("manifest lists no images", path)
    return items


def make_split(items: Sequence[LabelledImage], fractions: Sequence[float] = (0.7, 0.1, 0.2),
               seed: int = 0) -> list[str]:
    """A split name per item: stratified by label, shuffled with ``seed``, rounded per class."""
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise FacevoxError(f"split fractions must be three non-negative numbers summing to 1, got {list(fractions)}")
    out = [""] * len(items)
    rng = np.random.default_rng(seed)
    for label in (0, 1):
        idx = [i for i, it in enumerate(items) if it.label == label]
        idx = [idx[j] for j in rng.permutation(len(idx))]
        n_train = round(fractions[0] * len(idx))
        n_val = round(fractions[1] * len(idx))
        for k, i in enumerate(idx):
            out[i] = "train" if k < n_train else "val" if k < n_train + n_val else "test"
    return out


def _relative(path: Path, folder: Path) -> str:
    """``path`` relative to ``folder`` (how a manifest's paths are read back), else absolute."""
    try:
        return Path(os.path.relpath(path.resolve(), folder.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return str(path.resolve())


def write_split(path: Path, items: Sequence[LabelledImage], splits: Sequence[str]) -> None:
    """Paths are written relative to the split file's folder, so data and split can move together."""
    group_cols = sorted({c for it in items for c in it.groups})
    lines = [",".join(["path", "label", "split", *group_cols])]
    for it, s in zip(items, splits, strict=True):
        cells = [_relative(it.path, path.parent), CLASSES[it.label], s, *(it.groups.get(c, "") for c in group_cols)]
        lines.append(",".join(_csv_cell(c) for c in cells))
    atomic_write_text(path, "\n".join(lines) + "\n")


def _csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(ch in text for ch in ',"\n') else text


def read_split(path: Path) -> dict[str, list[LabelledImage]]:
    """Split name -> images, from a split file."""
    items = _read_manifest(path)
    with io.StringIO(read_text(path), newline="") as fh:
        splits = [(row.get("split") or "").strip() for row in csv.DictReader(fh)]
    out: dict[str, list[LabelledImage]] = {s: [] for s in SPLITS}
    for line, (it, s) in enumerate(zip(items, splits, strict=True), start=2):
        if s not in out:
            raise FacevoxError(f"line {line}: split '{s}' is not train/val/test", path)
        groups = {k: v for k, v in it.groups.items() if k != "split"}
        out[s].append(LabelledImage(it.path, it.label, groups))
    return out


def split_for(source: str, split_file: Path, fractions: Sequence[float], seed: int,
              announce: bool = True) -> dict[str, list[LabelledImage]]:
    """Read ``split_file`` if it exists, else split ``source`` and write it there first (saying so on
    stderr when ``announce``)."""
    if split_file.is_file():
        return read_split(split_file)
    if not source:
        raise FacevoxError("no data given (set data.source to a folder with real/ and fake/ or a manifest)",
                           "data.source")
    items = read_source(source)
    counts = [sum(it.label == c for it in items) for c in (0, 1)]
    if min(counts) < 3:
        raise FacevoxError(f"need at least 3 images of each class, found {counts[0]} real, {counts[1]} fake", source)
    write_split(split_file, items, make_split(items, fractions, seed))
    if announce:
        print(f"fakeface: wrote split {split_file} ({len(items)} images)", file=sys.stderr)
    return read_split(split_file)


def load_resized(items: Sequence[LabelledImage], size: int, skip_bad: bool, mask: Box | None = None,
                 ) -> tuple[list[np.ndarray], list[LabelledImage]]:
    """Decode every image once, resize it to ``size`` x ``size`` and grey out ``mask``; bad files
    raise or are skipped and listed."""

    def load(p: Path) -> np.ndarray:
        return mask_region(resize_square(load_image(p), size), mask)

    arrays, bad = load_each([it.path for it in items], load, skip_bad)
    bad_paths = report_skipped(bad, "image")
    return arrays, [it for it in items if it.path not in bad_paths]


def prepared(img: np.ndarray, size: int, mask: Box | None) -> np.ndarray:
    """A decoded image as training and scoring see it: resized to the ``size`` square, ``mask`` greyed out."""
    return mask_region(resize_square(img, size), mask)


def train_item(array: np.ndarray, label: float, crop: int, settings: AugmentSettings, rng: np.random.Generator):
    """(image (3, crop, crop) float in [0, 1], label): an augmented random crop of a prepared image."""
    import torch

    img = augment(array, crop, rng, settings)
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1).float().div_(255.0)  # a writable copy
    return x, torch.tensor(float(label))


class TrainImages(SeededDataset):
    """Augmented random crops of images held in memory: item -> (image (3, crop, crop), label)."""

    def __init__(self, arrays: list[np.ndarray], labels: Sequence[int], crop: int, settings: AugmentSettings):
        self.arrays, self.labels, self.crop, self.settings = arrays, list(labels), crop, settings

    def __len__(self) -> int:
        return len(self.arrays)

    def get(self, index: int, rng: np.random.Generator):
        return train_item(self.arrays[index], self.labels[index], self.crop, self.settings, rng)


class LazyTrainImages(SeededDataset):
    """:class:`TrainImages` decoding each image in the DataLoader worker (the same tensors): only the
    index (paths in one buffer, labels in one array) is held. ``skip_bad``: an image that fails to
    decode is replaced by the next one of its class and listed on stderr."""

    def __init__(self, index: FileIndex, size: int, mask: Box | None, crop: int, settings: AugmentSettings,
                 skip_bad: bool = False) -> None:
        self.index, self.labels = index, index.labels
        self.size, self.mask, self.crop, self.settings, self.skip_bad = size, mask, crop, settings, skip_bad

    def __len__(self) -> int:
        return len(self.labels)

    def array(self, index: int) -> np.ndarray:
        return load_prepared(self.index, self.labels, index, self.size, self.mask, self.skip_bad)

    def get(self, index: int, rng: np.random.Generator):
        return train_item(self.array(index), self.labels[index], self.crop, self.settings, rng)


def load_prepared(index: FileIndex, labels: np.ndarray, i: int, size: int, mask: Box | None,
                  skip_bad: bool) -> np.ndarray:
    """Image ``i`` decoded and prepared; with ``skip_bad`` a bad one gives the next of its class (listed)."""
    tried = 0
    while True:
        try:
            return prepared(load_image(index.path(i)), size, mask)
        except FacevoxError as err:
            same = np.flatnonzero(labels == labels[i])
            if not skip_bad or tried >= len(same) - 1:
                raise
            print(f"skipped bad image {err}", file=sys.stderr)
            i, tried = int(same[(np.searchsorted(same, i) + 1) % len(same)]), tried + 1


def image_index(items: Sequence[LabelledImage], skip_bad: bool) -> FileIndex:
    """A compact index of ``items`` whose headers check out (bad ones raise, or are skipped and listed)."""
    from facevox.datasets.checks import check_each
    from facevox.datasets.index import FileIndex
    from facevox.image.io import image_size

    keep = check_each([it.path for it in items], image_size, skip_bad, "image")
    return FileIndex.build([items[i].path for i in keep], [CLASSES[items[i].label] for i in keep], classes=CLASSES)


class PreparedImages:
    """Map-style: item ``i`` -> (prepared image or None when it fails to decode and ``skip_bad``, label)."""

    def __init__(self, index: FileIndex, size: int, mask: Box | None, skip_bad: bool) -> None:
        self.index, self.size, self.mask, self.skip_bad = index, size, mask, skip_bad

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[np.ndarray | None, int]:
        try:
            return prepared(load_image(self.index.path(i)), self.size, self.mask), int(self.index.labels[i])
        except FacevoxError as err:
            if not self.skip_bad:
                raise
            print(f"skipped bad image {err}", file=sys.stderr)
            return None, int(self.index.labels[i])


def batched_probs(detector, dataset, batch_size: int = 32, num_workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(P(fake), labels) over a dataset of (prepared image, label) items (map-style or iterable), a batch at a
    time, decoded in ``num_workers`` DataLoader workers: the split is never held in RAM."""
    from torch.utils.data import DataLoader

    probs, labels = [], []
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=list)
    for batch in loader:
        batch = [(a, y) for a, y in batch if a is not None]
        if batch:
            probs.append(detector.probs([a for a, _ in batch]))
            labels.append(np.array([y for _, y in batch], dtype=np.int64))
    if not probs:
        return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
    return np.concatenate(probs), np.concatenate(labels)


class ImageRecord:
    """A shard item -> what the file gives: a training crop (``crop`` set) or (prepared image, label)."""

    def __init__(self, size: int, mask: Box | None, crop: int | None = None,
                 settings: AugmentSettings | None = None) -> None:
        self.size, self.mask, self.crop, self.settings = size, mask, crop, settings

    def __call__(self, data: bytes, meta: dict, rng: np.random.Generator):
        from facevox.datasets.decode import decode_bytes

        array = prepared(decode_bytes(data, meta["_ext"], meta["_where"], load_image), self.size, self.mask)
        if self.crop is None:
            return array, int(meta["label_index"])
        return train_item(array, float(meta["label_index"]), self.crop, self.settings, rng)
