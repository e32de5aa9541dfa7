"""Aligned face crops in memory or decoded per item in the DataLoader workers, and the training datasets
over them (the same tensors either way, and from shards through :class:`FaceRecord`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from facevox.data import SeededDataset
from facevox.errors import FacevoxError
from facevox.fileio import load_each, report_skipped
from facevox.image.io import load_image
from facevox.image.transforms import to_tensor

if TYPE_CHECKING:
    from facevox.datasets.index import FileIndex


def resize_to(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An aligned crop resized to (height, width) (bicubic; a no-op at the right size)."""
    from PIL import Image

    h, w = size
    if img.shape[:2] == (h, w):
        return img
    return np.asarray(Image.fromarray(img).resize((w, h), Image.BICUBIC))


def load_faces(paths: Sequence[Path], size: tuple[int, int], skip_bad: bool) -> tuple[list[np.ndarray], list[Path]]:
    """Decode and resize aligned crops; bad files raise, or are skipped and listed on stderr."""
    arrays, bad = load_each(paths, lambda p: resize_to(load_image(p), size), skip_bad)
    bad_paths = report_skipped(bad, "image")
    return arrays, [Path(p) for p in paths if Path(p) not in bad_paths]


class FaceImages(SeededDataset):
    """item -> (image (3, H, W) in [0, 1], identity index), with a random horizontal flip."""

    def __init__(self, arrays: list[np.ndarray], labels: Sequence[int], flip: bool) -> None:
        self.arrays, self.labels, self.flip = arrays, list(labels), flip

    def __len__(self) -> int:
        return len(self.arrays)

    def get(self, index: int, rng: np.random.Generator):
        return face_item(self.arrays[index], self.labels[index], self.flip, rng)


def face_item(img: np.ndarray, label: Any, flip: bool, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(image (3, H, W) in [0, 1], identity index) of an aligned, resized crop, flipped at random when ``flip``."""
    if flip and rng.random() < 0.5:
        img = img[:, ::-1]
    return to_tensor([img])[0], torch.tensor(label)


class LazyFaceImages(SeededDataset):
    """:class:`FaceImages` decoding each crop in the DataLoader worker (the same tensors); only the index is
    held. ``skip_bad``: a crop that fails to decode is replaced by the next one of its identity (listed)."""

    def __init__(self, index: FileIndex, size: tuple[int, int], flip: bool, skip_bad: bool = False) -> None:
        self.index, self.labels, self.size, self.flip, self.skip_bad = index, index.labels, size, flip, skip_bad

    def __len__(self) -> int:
        return len(self.labels)

    def array(self, i: int) -> np.ndarray:
        tried = 0
        while True:
            try:
                return resize_to(load_image(self.index.path(i)), self.size)
            except FacevoxError as err:
                same = np.flatnonzero(self.labels == self.labels[i])
                if not self.skip_bad or tried >= len(same) - 1:
                    raise
                print(f"skipped bad image {err}", file=sys.stderr)
                i, tried = int(same[(np.searchsorted(same, i) + 1) % len(same)]), tried + 1

    def get(self, index: int, rng: np.random.Generator):
        return face_item(self.array(index), self.labels[index], self.flip, rng)


class FaceRecord:
    """A shard item -> the (image, identity) :class:`FaceImages` gives for the same file."""

    def __init__(self, size: tuple[int, int], flip: bool) -> None:
        self.size, self.flip = size, flip

    def __call__(self, data: bytes, meta: dict, rng: np.random.Generator):
        from facevox.datasets.decode import decode_bytes

        img = resize_to(decode_bytes(data, meta["_ext"], meta["_where"], load_image), self.size)
        return face_item(img, np.int64(meta["label_index"]), self.flip, rng)
