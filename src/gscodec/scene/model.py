"""The in-memory 3DGS scene, in the conventions of the standard 3DGS PLY file."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SH_COEFFS = {0: 1, 1: 4, 2: 9, 3: 16}


@dataclass
class GaussianScene:
    """N Gaussians with the standard 3DGS PLY parameterisation (float32 numpy arrays).

    means: (N, 3) world positions x, y, z.
    sh_dc: (N, 3) DC spherical-harmonic coefficients (f_dc_0..2).
    sh_rest: (N, K-1, 3) higher-order SH coefficients, coefficient-major as in the PLY's
        channel-major f_rest_* order reshaped to (3, K-1) and transposed; K = (degree+1)**2.
    opacity: (N,) opacity logits (pre-sigmoid).
    scales: (N, 3) log scales (pre-exp).
    rotations: (N, 4) quaternions w, x, y, z (rot_0..3), not necessarily normalised.
    """

    means: np.ndarray
    sh_dc: np.ndarray
    sh_rest: np.ndarray
    opacity: np.ndarray
    scales: np.ndarray
    rotations: np.ndarray

    @property
    def count(self) -> int:
        """Number of Gaussians."""
        return int(self.means.shape[0])

    @property
    def sh_degree(self) -> int:
        """Spherical-harmonic degree (0..3)."""
        k = self.sh_rest.shape[1] + 1
        for deg, n in SH_COEFFS.items():
            if n == k:
                return deg
        raise ValueError(f"invalid SH coefficient count {k}")

    def subset(self, idx: np.ndarray) -> "GaussianScene":
        """Return the Gaussians at `idx` (indices or boolean mask)."""
        return GaussianScene(self.means[idx], self.sh_dc[idx], self.sh_rest[idx],
                             self.opacity[idx], self.scales[idx], self.rotations[idx])

    def sh(self) -> np.ndarray:
        """All SH coefficients as (N, K, 3), DC first."""
        return np.concatenate([self.sh_dc[:, None, :], self.sh_rest], axis=1)
