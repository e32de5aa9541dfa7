"""Frechet distance between Gaussian fits of two sets of features.

FD = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))  (Dowson and Landau 1982; the formula of
FID, Heusel et al. 2017). It is called "FD (<network>)" here: FID means Inception-v3 features,
which this project does not have.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg

from facevox.errors import FacevoxError


def gaussian_fit(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) (sample covariance, N - 1) of features (N, D), N >= 2."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise FacevoxError(f"a Gaussian fit needs features (N, D) with N >= 2, got shape {f.shape}")
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2).

    The matrix square root of sigma1 @ sigma2 is taken with ``scipy.linalg.sqrtm``. When it is
    not finite or has a sizeable imaginary part (singular covariances: fewer samples than
    dimensions), ``eps`` times the mean variance is added to both diagonals and it is taken
    again. The imaginary round-off left then is dropped; a large one is an error.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise FacevoxError(f"FD needs means (D,) and covariances (D, D) of one D, got {mu1.shape}, {s1.shape}, "
                           f"{mu2.shape}, {s2.shape}")
    diff = mu1 - mu2
    covmean = _sqrtm(s1 @ s2)
    if not _usable(covmean):
        scale = max(np.trace(s1), np.trace(s2)) / s1.shape[0] or 1.0
        offset = np.eye(s1.shape[0]) * eps * scale
        covmean = _sqrtm((s1 + offset) @ (s2 + offset))
        if not _usable(covmean):
            raise FacevoxError("FD: no usable square root of the covariance product (not finite or complex)")
    fd = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean.real))
    return max(fd, 0.0)  # round-off can leave -1e-12 for identical sets


def _sqrtm(a: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a singular product warns; the caller checks the result
        return linalg.sqrtm(a)


def _usable(root: np.ndarray) -> bool:
    if not np.isfinite(root).all():
        return False
    if not np.iscomplexobj(root):
        return True
    return np.abs(root.imag).max() <= 1e-3 * max(1.0, np.abs(root.real).max())


def feature_fd(a: np.ndarray, b: np.ndarray) -> float:
    """FD between the Gaussian fits of two feature sets (N_a, D) and (N_b, D).

    With fewer samples than dimensions both covariances and the mean difference lie in the span
    of the centred samples (at most N_a + N_b - 1 dimensions); the features are first expressed
    in an orthonormal basis of that span, which leaves the FD unchanged and keeps ``sqrtm`` small
    (a 512-dimensional ``sqrtm`` takes seconds, a 99-dimensional one milliseconds).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise FacevoxError(f"FD needs two feature sets (N, D) of one D, got shapes {a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    span = np.concatenate([a - mu_a, b - mu_b, (mu_a - mu_b)[None]])
    if span.shape[0] < a.shape[1]:
        _, sv, vt = np.linalg.svd(span, full_matrices=False)
        basis = vt[sv > sv.max() * 1e-12] if sv.max() > 0 else vt[:1]
        a, b = a @ basis.T, b @ basis.T
    return frechet_distance(*gaussian_fit(a), *gaussian_fit(b))
