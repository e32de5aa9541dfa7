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

import numpy as np

from facevox.data import SeededDataset
from facevox.errors import FacevoxError
from facevox.fileio import atomic_write_text, load_each, report_skipped
from facevox.image.io import list_image_files, load_image
from facevox.image.transforms import AugmentSettings, augment, mask_region, resize_square
from facevox.textfile import check_utf8_name, read_text

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


class TrainImages(SeededDataset):
    """Augmented random crops of images held in memory: item -> (image (3, crop, crop), label)."""

    def __init__(self, arrays: list[np.ndarray], labels: Sequence[int], crop: int, settings: AugmentSettings):
        self.arrays, self.labels, self.crop, self.settings = arrays, list(labels), crop, settings

    def __len__(self) -> int:
        return len(self.arrays)

    def get(self, index: int, rng: np.random.Generator):
        import torch

        img = augment(self.arrays[index], self.crop, rng, self.settings)
        x = torch.from_numpy(np.array(img)).permute(2, 0, 1).float().div_(255.0)  # a writable copy
        return x, torch.tensor(float(self.labels[index]))
