"""Saliency maps drawn over their images: one row per image, one column per method."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps

from facevox.errors import FacevoxError


def normalise_map(saliency: np.ndarray, percentile: float = 99.0) -> np.ndarray:
    """(H, W) -> [0, 1], clipped at the ``percentile`` so a few extreme pixels do not wash it out."""
    m = np.abs(np.asarray(saliency, dtype=np.float64))
    top = np.percentile(m, percentile)
    return np.clip(m / top, 0.0, 1.0) if top > 0 else np.zeros_like(m)


def overlay(image: np.ndarray, saliency: np.ndarray, alpha: float = 0.55, cmap: str = "jet") -> np.ndarray:
    """uint8 RGB image (H, W, 3) with the normalised map blended on top in ``cmap`` colours."""
    if image.shape[:2] != saliency.shape:
        raise FacevoxError(f"saliency map {saliency.shape} does not match image {image.shape[:2]}")
    heat = colormaps[cmap](normalise_map(saliency))[..., :3]
    out = (1 - alpha) * image.astype(np.float64) / 255.0 + alpha * heat
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def plot_saliency_grid(images: Sequence[np.ndarray], maps: Mapping[str, Sequence[np.ndarray]], path: str | Path,
                       row_titles: Sequence[str] | None = None) -> Path:
    """Rows: images; columns: the image, then each method's overlay. ``maps[method][i]`` is (H, W)."""
    from facevox.report import _figure, _save

    if not images:
        raise FacevoxError("no images to explain")
    methods = list(maps)
    ncols = 1 + len(methods)
    cell = 2.0
    fig = _figure(cell * ncols, (cell + 0.3) * len(images))
    axes = fig.subplots(len(images), ncols, squeeze=False)
    for r, img in enumerate(images):
        axes[r, 0].imshow(img)
        axes[r, 0].set_title(row_titles[r] if row_titles else "image", fontsize=8)
        for c, method in enumerate(methods, start=1):
            axes[r, c].imshow(overlay(img, np.asarray(maps[method][r])))
            if r == 0:
                axes[r, c].set_title(method.replace("_", " "), fontsize=9)
        for ax in axes[r]:
            ax.axis("off")
    return _save(fig, path)
