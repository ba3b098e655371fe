"""Canonical pose: the encoder's choice among the 24 equivalent (rotation, scales) pairs."""
from __future__ import annotations

import numpy as np

from gscodec.scene.base.pose import CUBE_ROTATIONS, canonical_pose, nearest_pose, quat_multiply


def _covariance(q: np.ndarray, log_s: np.ndarray) -> np.ndarray:
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    r = np.stack([np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
                  np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
                  np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1)], 1)
    return r @ (np.exp(2 * log_s)[:, :, None] * np.swapaxes(r, 1, 2))


def test_cube_rotations_form_a_group():
    # Closure up to sign: every product is again one of the 24 (as +-q).
    prod = quat_multiply(CUBE_ROTATIONS[:, None], CUBE_ROTATIONS[None]).reshape(-1, 4)
    match = np.abs(prod @ CUBE_ROTATIONS.T).max(1)
    np.testing.assert_allclose(match, 1.0, atol=1e-12)
    assert len({tuple(np.round(g * np.sign(g[np.argmax(np.abs(g))]), 9)) for g in CUBE_ROTATIONS}) == 24


def test_same_covariance_and_reduced_domain():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(5000, 4))
    s = rng.uniform(-6, -1, size=(5000, 3))
    cq, cs = canonical_pose(q, s)
    np.testing.assert_allclose(_covariance(cq, cs), _covariance(q, s), rtol=1e-9, atol=1e-14)
    ratios = np.abs(cq[:, 1:] / cq[:, :1])
    assert (cq[:, 0] > 0).all()
    assert ratios.max() <= np.sqrt(2) - 1 + 1e-9
    assert ratios.sum(1).max() <= 1 + 1e-9
    # The scales are a permutation of the input's, and a canonical pose is its own canonical pose.
    np.testing.assert_array_equal(np.sort(cs, 1), np.sort(s, 1))
    cq2, cs2 = canonical_pose(cq, cs)
    np.testing.assert_allclose(cq2, cq, atol=1e-12)
    np.testing.assert_array_equal(cs2, cs)


def test_zero_quaternion_is_identity():
    cq, cs = canonical_pose(np.zeros((1, 4), np.float32), np.array([[1.0, 2.0, 3.0]], np.float32))
    np.testing.assert_array_equal(cq, [[1, 0, 0, 0]])
    np.testing.assert_array_equal(cs, [[1, 2, 3]])
    assert cq.dtype == np.float32


def test_nearest_pose_undoes_the_relabelling():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(500, 4))
    s = rng.uniform(-6, -1, size=(500, 3))
    cq, cs = canonical_pose(q, s)
    nq, ns = nearest_pose(q, cq, cs)
    np.testing.assert_allclose(nq, q / np.linalg.norm(q, axis=1, keepdims=True), atol=1e-12)
    np.testing.assert_array_equal(ns, s)
