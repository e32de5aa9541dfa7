"""Aligned face crops in memory, and the training dataset over them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from facevox.data import SeededDataset
from facevox.fileio import load_each, report_skipped
from facevox.image.io import load_image
from facevox.image.transforms import to_tensor


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
        img = self.arrays[index]
        if self.flip and rng.random() < 0.5:
            img = img[:, ::-1]
        return to_tensor([img])[0], torch.tensor(self.labels[index])
