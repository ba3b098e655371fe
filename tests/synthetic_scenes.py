"""Small random 3DGS scenes shared by the side-information and refinement tests."""
from __future__ import annotations

import numpy as np

from gscodec.scene.model import GaussianScene


def tiny_scene(n: int = 300, degree: int = 1, seed: int = 0) -> GaussianScene:
    """n random Gaussians around the origin with SH of the given degree."""
    rng = np.random.default_rng(seed)
    k = (degree + 1) ** 2
    return GaussianScene(rng.normal(0, 0.5, (n, 3)).astype(np.float32),
                         rng.normal(0, 0.8, (n, 3)).astype(np.float32),
                         rng.normal(0, 0.1, (n, k - 1, 3)).astype(np.float32),
                         rng.normal(1.0, 1.0, n).astype(np.float32),
                         np.log(rng.uniform(0.03, 0.12, (n, 3))).astype(np.float32),
                         rng.normal(0, 1, (n, 4)).astype(np.float32))


def perturb(s: GaussianScene, amount: float = 0.15, seed: int = 1) -> GaussianScene:
    """A copy with Gaussian noise on every attribute (a stand-in for a lossy base layer)."""
    rng = np.random.default_rng(seed)
    j = lambda a, f=1.0: (a + rng.normal(0, amount * f, a.shape)).astype(np.float32)  # noqa: E731
    return GaussianScene(j(s.means, 0.1), j(s.sh_dc), j(s.sh_rest, 0.3), j(s.opacity),
                         j(s.scales), j(s.rotations))
