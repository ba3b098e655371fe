"""Per-Gaussian importance: how much a Gaussian's attribute errors show in renders (encoder only).

The precision class of a Gaussian (its quantiser step multiplier) follows its importance, so
that every Gaussian adds about the same importance-weighted error. Two measures:

- geometric: opacity times the area of its two largest axes (no rendering);
- render: the blending weight the Gaussian receives (alpha times transmittance), summed over
  the pixels of a few small orbit views around the scene (what the gradient of the summed
  render with respect to its colour would give, in one forward pass), so hidden and
  sub-pixel Gaussians rank low and large visible ones rank high.
  It needs torch (imported lazily); the decoder never computes importance.
"""
from __future__ import annotations

import numpy as np

RENDER_VIEWS = ((3, 35.0), (2, -10.0))    # (views, elevation in degrees) of the orbit rings
RENDER_SIZE = 400                         # pixels per side of the importance renders
# 400 rather than 200 px: on playbot_lod2 medium 0.07 bytes/Gaussian fewer and 0.04 dB more
# (24 views at 800 px), for about 0.4 s more encoding.
FLOOR = 1e-3                              # share of geometric importance kept (views miss some Gaussians)
MIN_RENDER = 4096                         # smaller scenes use the geometric measure


def geometric_importance(opacity: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Opacity times projected area (two largest scales), normalised by its median."""
    s = np.sort(scales.astype(np.float64), axis=1)
    a = np.clip(s[:, 1] + s[:, 2], -60, 60)
    imp = np.exp(a) / (1.0 + np.exp(-np.clip(opacity.astype(np.float64), -60, 60)))
    return _normalise(imp)


def _normalise(imp: np.ndarray) -> np.ndarray:
    med = float(np.median(imp))
    return imp / med if med > 0 else np.ones_like(imp)


def render_importance(scene) -> np.ndarray:
    """Summed blending weight over small orbit renders, normalised by its median (needs torch)."""
    import torch

    from ...render.cameras import orbit_cameras
    from ...render.scene3d import activate_scene, blend_weights

    geo = geometric_importance(scene.opacity, scene.scales)
    cams = [c for n, el in RENDER_VIEWS
            for c in orbit_cameras(scene.means, n=n, width=RENDER_SIZE, height=RENDER_SIZE, elevation_deg=el)]
    m, q, s, o, _ = activate_scene(scene, "cpu", with_sh=False)
    w = torch.zeros(scene.count, dtype=torch.float64)
    for cam in cams:
        w += blend_weights(m, q, s, o, cam).double()
    w = w.numpy()
    if not np.isfinite(w).all() or not (w > 0).any():
        return geo
    w = _normalise(w) if np.median(w) > 0 else w / float(w[w > 0].mean())
    return w + FLOOR * geo


def importance(scene, mode: str = "auto") -> np.ndarray:
    """Importance of every Gaussian: mode 'render', 'geometric' or 'auto' (render when torch is there)."""
    if mode == "geometric" or (mode == "auto" and scene.count < MIN_RENDER):
        return geometric_importance(scene.opacity, scene.scales)
    if mode not in ("auto", "render"):
        raise ValueError(f"unknown importance mode {mode!r}")
    try:
        return render_importance(scene)
    except ImportError:
        if mode == "render":
            raise
        return geometric_importance(scene.opacity, scene.scales)
