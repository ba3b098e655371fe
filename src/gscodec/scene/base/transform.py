"""Decorrelating transform of the SH rest coefficients (an integer matrix stored per group).

The D = 3 (K_sh - 1) rest coefficients of a Gaussian are strongly correlated across colour
channels and SH bands. The encoder measures their second moments and stores the
eigenvectors (Karhunen-Loeve transform), in decreasing order of energy, as integers in
units of 2**-TBITS; Gaussians are then coded as coefficients c in that basis.
The decoder only multiplies: the rest values in units of rest_step * 2**-TBITS are the
exact integer products c @ T (int64), so the result is the same on every platform.
The rows are orthonormal up to rounding, so a uniform step in c costs the same squared
error per step as in the SH coefficients themselves (the SH basis is orthonormal).
"""
from __future__ import annotations

import numpy as np

TBITS = 14
ONE = 1 << TBITS


def identity(d: int) -> np.ndarray:
    """The integer identity transform (D, D)."""
    return np.eye(d, dtype=np.int64) * ONE


def klt(x: np.ndarray) -> np.ndarray:
    """Integer KLT (D, D) of the rows of x: row j is the j-th most energetic direction (encoder only)."""
    x = np.asarray(x, np.float64)
    # Unweighted: weighting by render importance measured no better on playbot_lod2 (-0.05 dB).
    m = x.T @ x / max(x.shape[0], 1)
    vals, vecs = np.linalg.eigh(m)
    order = np.argsort(-vals, kind="stable")
    t = vecs[:, order].T
    # Deterministic sign: the largest entry of each row is positive.
    big = np.argmax(np.abs(t), axis=1)
    t *= np.sign(t[np.arange(t.shape[0]), big])[:, None]
    return np.rint(t * ONE).astype(np.int64)


def forward(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Float coefficients c with c @ (t / ONE) = x (encoder only)."""
    return np.linalg.solve((t.astype(np.float64) / ONE).T, np.asarray(x, np.float64).T).T


def inverse_fixed(c: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Exact integer reconstruction c @ t, in units of 2**-TBITS of the coefficient step."""
    return np.asarray(c, np.int64) @ np.asarray(t, np.int64)
