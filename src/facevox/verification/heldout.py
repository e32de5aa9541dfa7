"""The held-out classes of training: speakers or identities kept out to fit the calibration and
threshold. One rule for both tasks, so the same seed holds out the same classes everywhere."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from facevox.errors import FacevoxError


def hold_out(counts: Mapping[str, int], n: int, seed: int, key: str, *, least: int = 1, noun: str = "classes"
             ) -> set[str]:
    """``n`` classes chosen (seeded) among those with 2+ items, in the order of ``counts``.

    At least 2 classes must remain for training, and ``n`` must be 0 or at least ``least``;
    otherwise a one-line error blames ``key`` (e.g. ``data.calib_speakers``)."""
    if n <= 0:
        return set()
    multi = [c for c, k in counts.items() if k >= 2]
    most = min(len(multi), len(counts) - 2)
    if n < least or n > most:
        raise FacevoxError(f"cannot hold out {n} {noun}: {len(counts)} {noun}, {len(multi)} of them with 2 or more "
                           f"items (valid: 0, or {least} to {most}; at least 2 must train)", key)
    return {multi[i] for i in np.random.default_rng(seed).choice(len(multi), n, replace=False)}
