"""Canonical pose of a Gaussian: the cheapest of the 24 equivalent (rotation, scales) pairs (encoder only).

A Gaussian's covariance R diag(s^2) R^T does not change when R is followed by any of the 24
rotations of the cube (signed axis permutations with determinant +1), provided the scales are
permuted with the axes. The encoder picks the equivalent whose quaternion is closest to the
identity, so every coded quaternion has w as its largest component and its ratios x/w, y/w,
z/w lie in [-(sqrt 2 - 1), sqrt 2 - 1]: the rotation index costs nothing and the ratios span
about 0.41 of their former range. The rendered scene is the same; only the labelling of the
axes changes. Decoders need not know about it.
"""
from __future__ import annotations

import numpy as np

_H = 0.5
_S = float(np.sqrt(0.5))
# The 24 proper rotations of the cube as unit quaternions (w, x, y, z), one of each +-q pair.
CUBE_ROTATIONS = np.array(
    [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    + [[_H, a * _H, b * _H, c * _H] for a in (1, -1) for b in (1, -1) for c in (1, -1)]
    + [[_S, _S, 0, 0], [_S, -_S, 0, 0], [_S, 0, _S, 0], [_S, 0, -_S, 0], [_S, 0, 0, _S], [_S, 0, 0, -_S],
       [0, _S, _S, 0], [0, _S, -_S, 0], [0, 0, _S, _S], [0, 0, _S, -_S], [0, _S, 0, _S], [0, _S, 0, -_S]],
    dtype=np.float64)


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of quaternions (..., 4) in (w, x, y, z) order."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def _axis_permutations() -> np.ndarray:
    """For each cube rotation G, the source axis of each new axis: s'_j = s_perm[j] (24, 3)."""
    w, x, y, z = CUBE_ROTATIONS.T
    cols = np.stack([np.stack([1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y)], -1),
                     np.stack([2 * (x * y - w * z), 1 - 2 * (x * x + z * z), 2 * (y * z + w * x)], -1),
                     np.stack([2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y)], -1)], 1)
    # cols[g, j] is column j of R(G); its single non-zero row says which old axis it carries.
    return np.argmax(np.abs(cols), axis=2)


PERMUTATIONS = _axis_permutations()


_CONJ = CUBE_ROTATIONS * np.array([1.0, -1.0, -1.0, -1.0])


def _closest_to_identity(q: np.ndarray) -> np.ndarray:
    """Index of the cube rotation G maximising |w| of q * G (the w component of q * G is q . conj(G))."""
    return np.argmax(np.abs(q @ _CONJ.T), axis=1)


def canonical_pose(rotations: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Equivalent (quaternions (N,4), scales (N,3)) with w >= |x|, |y|, |z|; same covariances."""
    q = np.asarray(rotations, dtype=np.float64)
    s = np.asarray(scales)
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    q = np.where(norm > 0, q / np.where(norm > 0, norm, 1.0), np.array([1.0, 0.0, 0.0, 0.0]))
    best = _closest_to_identity(q)
    out = quat_multiply(q, CUBE_ROTATIONS[best])
    out *= np.where(out[:, :1] < 0, -1.0, 1.0)
    new_scales = np.take_along_axis(s, PERMUTATIONS[best], axis=1)
    return out.astype(np.asarray(rotations).dtype), new_scales


def nearest_pose(reference: np.ndarray, rotations: np.ndarray, scales: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The equivalent of each (rotation, scales) whose quaternion is closest to `reference` (for error measures)."""
    ref = np.asarray(reference, dtype=np.float64)
    ref = ref / np.maximum(np.linalg.norm(ref, axis=1, keepdims=True), 1e-300)
    q = np.asarray(rotations, dtype=np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-300)
    # <q G, ref> is the w component of conj(ref) q G: the same choice as the canonical pose
    # of conj(ref) q, without building all 24 candidates per Gaussian.
    best = _closest_to_identity(quat_multiply(ref * np.array([1.0, -1.0, -1.0, -1.0]), q))
    out = quat_multiply(q, CUBE_ROTATIONS[best])
    out *= np.where((out * ref).sum(1, keepdims=True) < 0, -1.0, 1.0)
    return out, np.take_along_axis(np.asarray(scales), PERMUTATIONS[best], axis=1)
