"""Scalar quantisers of the Gaussian attributes (float <-> canonical integers).

Dequantisation uses one IEEE-754 binary32 multiplication (or division for rotations) per
value, so every platform decodes the same bits.
"""
from __future__ import annotations

import numpy as np

from .params import QMAX
from .transform import TBITS


def quantise(x: np.ndarray, step: float) -> np.ndarray:
    """Round x / step to the nearest integer, clamped to +-QMAX."""
    q = np.rint(np.asarray(x, dtype=np.float64) / np.float64(np.float32(step)))
    return np.clip(q, -QMAX, QMAX).astype(np.int64)


def quantise_classes(x: np.ndarray, step: float, cls: np.ndarray) -> np.ndarray:
    """Quantise row i with step * 2**cls[i]; returns integers in units of `step` (multiples of 2**cls)."""
    x = np.asarray(x, dtype=np.float64)
    c = cls.reshape((-1,) + (1,) * (x.ndim - 1)).astype(np.int64)
    lim = QMAX >> c
    k = np.clip(np.rint(x / (np.float64(np.float32(step)) * (1 << c))), -lim, lim).astype(np.int64)
    return k << c


def dequantise(q: np.ndarray, step: float) -> np.ndarray:
    """Integer multiples of a float32 step, as float32 (one rounding)."""
    return np.asarray(q).astype(np.float32) * np.float32(step)


def dequantise_fixed(s: np.ndarray, step: float) -> np.ndarray:
    """Integers in units of step * 2**-TBITS (the SH rest form) as float32.

    One binary64 multiplication by float32(step) * 2**-TBITS (exact power-of-two scaling),
    then one rounding to binary32: two correctly rounded IEEE operations, the same bits on
    every platform. When s = v * 2**TBITS the product is exact, giving the bits of
    float32(v) * float32(step).
    """
    scale = np.float64(np.float32(step)) * np.float64(2.0 ** -TBITS)
    return (np.asarray(s).astype(np.float64) * scale).astype(np.float32)


def rotation_to_ints(rot: np.ndarray, levels: int, cls: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Quaternions (N,4) -> index of the largest |component| (N,), the other three as ratios to it in 1/levels units (N,3).

    With classes, row i is quantised with step 2**cls[i] / levels (levels is a multiple of 8).
    """
    q = np.asarray(rot, dtype=np.float64)
    zero = ~(np.abs(q) > 0).any(axis=1)
    q = np.where(zero[:, None], np.array([1.0, 0.0, 0.0, 0.0]), q)
    big = np.argmax(np.abs(q), axis=1)
    lead = q[np.arange(q.shape[0]), big]
    ratio = q / lead[:, None]
    others = _others(big)
    r = np.take_along_axis(ratio, others, axis=1)
    c = np.zeros(q.shape[0], np.int64) if cls is None else cls.astype(np.int64)
    lim = (levels >> c)[:, None]
    k = np.clip(np.rint(r * levels / (1 << c)[:, None]), -lim, lim).astype(np.int64)
    return big.astype(np.int64), k << c[:, None]


def ints_to_rotation(big: np.ndarray, r: np.ndarray, levels: int) -> np.ndarray:
    """Inverse of rotation_to_ints: the largest component is 1, the others r / levels (float32)."""
    n = big.shape[0]
    out = np.zeros((n, 4), dtype=np.float32)
    out[np.arange(n), big] = 1.0
    np.put_along_axis(out, _others(big), r.astype(np.float32) / np.float32(levels), axis=1)
    return out


def _others(big: np.ndarray) -> np.ndarray:
    """The three component indices other than `big`, ascending, (N,3)."""
    base = np.arange(3)[None, :]
    return base + (base >= big[:, None])
