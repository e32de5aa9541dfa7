"""Resizing, training augmentation and test-time perturbations of uint8 RGB images (H, W, 3).

Training augmentation follows Wang et al., "CNN-generated images are surprisingly easy to
spot... for now", CVPR 2020: with probability 0.5 a Gaussian blur (sigma ~ U[0, 3]), with
probability 0.5 a JPEG re-compression (quality ~ U{30..100}), then a random crop and a
horizontal flip. All randomness comes from the ``numpy.random.Generator`` passed in, so a
resumed run sees the same images (see :mod:`facevox.data`).

The perturbations (:data:`PERTURBATIONS`) are the robustness checks of ``fakeface eval
--perturb``: JPEG at quality 95/75/50, blur with sigma 1/2, downscaling by 2.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image, ImageFilter

from facevox.config import PROB, ranged
from facevox.errors import FacevoxError


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """Shorter side to ``size`` (Lanczos when shrinking, bicubic when enlarging), centre crop to size x size."""
    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    method = Image.LANCZOS if scale < 1 else Image.BICUBIC
    out = np.asarray(Image.fromarray(img).resize((nw, nh), method))
    top, left = (nh - size) // 2, (nw - size) // 2
    return out[top : top + size, left : left + size]


def mask_region(img: np.ndarray, box: tuple[float, float, float, float] | None) -> np.ndarray:
    """Grey out the rectangle ``box`` = (x0, y0, x1, y1) in fractions of width and height.

    For cues that must not count, e.g. a generator's watermark in a corner: masking the same
    region of every image, real or fake, at training and test time takes it out of the data.
    """
    if not box:
        return img
    h, w = img.shape[:2]
    x0, y0, x1, y1 = box
    out = img.copy()
    out[int(round(y0 * h)) : int(round(y1 * h)), int(round(x0 * w)) : int(round(x1 * w))] = 128
    return out


def check_box(box: tuple[float, float, float, float] | None, key: str) -> None:
    if box and not (len(box) == 4 and 0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1):
        raise FacevoxError(f"a box is (x0, y0, x1, y1) with 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, got {box}", key)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """Re-compress as a JPEG of ``quality`` (1-100), in memory."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` pixels (no change for sigma <= 0)."""
    if sigma <= 0:
        return img
    return np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(radius=float(sigma))))


def downscale(img: np.ndarray, factor: float) -> np.ndarray:
    """Shrink both sides by ``factor`` (area-averaging); the model's resize brings it back up."""
    h, w = img.shape[:2]
    size = (max(1, round(w / factor)), max(1, round(h / factor)))
    return np.asarray(Image.fromarray(img).resize(size, Image.BOX))


PERTURBATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "jpeg95": lambda im: jpeg(im, 95),
    "jpeg75": lambda im: jpeg(im, 75),
    "jpeg50": lambda im: jpeg(im, 50),
    "blur1": lambda im: gaussian_blur(im, 1.0),
    "blur2": lambda im: gaussian_blur(im, 2.0),
    "downscale2": lambda im: downscale(im, 2.0),
}


@dataclasses.dataclass
class AugmentSettings:
    """Training augmentation (Wang et al. 2020 defaults); ranges checked by :func:`facevox.config.validate`."""

    blur_prob: float = ranged(0.5, **PROB)
    blur_sigma: tuple[float, float] = ranged((0.0, 3.0), ge=0, order="<=")  # (low, high) pixels
    jpeg_prob: float = ranged(0.5, **PROB)
    jpeg_quality: tuple[int, int] = ranged((30, 100), ge=1, le=100, order="<=")  # (low, high)
    flip: bool = True


def augment(img: np.ndarray, crop: int, rng: np.random.Generator, s: AugmentSettings) -> np.ndarray:
    """Blur and JPEG (each with its probability), a random ``crop`` x ``crop`` window, a flip."""
    if rng.random() < s.blur_prob:
        img = gaussian_blur(img, rng.uniform(*s.blur_sigma))
    if rng.random() < s.jpeg_prob:
        img = jpeg(img, int(rng.integers(s.jpeg_quality[0], s.jpeg_quality[1] + 1)))
    h, w = img.shape[:2]
    if crop < min(h, w):
        top, left = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
        img = img[top : top + crop, left : left + crop]
    if s.flip and rng.random() < 0.5:
        img = img[:, ::-1]
    return img


def to_tensor(images: list[np.ndarray] | np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) images of one size -> float (B, 3, H, W) in [0, 1]."""
    batch = np.stack([np.ascontiguousarray(im) for im in images])
    return torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)
