"""Restoring degraded renders with side information: I^ = I~ + F(I~, R~).

Modes: "none" returns I~; "residual" returns I~ + R~ (no learned prior, the paper's ablation);
"network" applies the packaged NAFNet-style F (falls back to "residual", with a warning,
when no weights are packaged or given).
"""
from __future__ import annotations

import os
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import InputError

MODES = ("none", "residual", "network")
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "restore_v1.pt"
TILE = 512          # network inference tile side (bounded memory on large views)
HALO = 32           # overlap so tile seams see the same context as the full image


def default_weights() -> Path | None:
    """The packaged weights file, or None when the package ships none."""
    return DEFAULT_WEIGHTS if DEFAULT_WEIGHTS.is_file() else None


@lru_cache(maxsize=4)
def _load(path: str, device: str):
    import torch

    from .restore_net import build

    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        net = build(blob["config"])
        net.load_state_dict({k: v.float() for k, v in blob["state_dict"].items()})
    except Exception as exc:  # torch.load raises many kinds (pickle, zip, key, shape errors)
        msg = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"cannot load restoration weights: {msg}", path) from None
    return net.eval().to(device)


def load_network(weights: str | os.PathLike | None = None, device: str = "cpu"):
    """The restoration network with `weights` (packaged ones when None); None if there are none."""
    path = Path(weights) if weights is not None else default_weights()
    if path is None:
        return None
    return _load(str(path), device)


def apply_network(net, render: np.ndarray, residual: np.ndarray, device: str = "cpu") -> np.ndarray:
    """I~ + F(I~, R~) for (H, W, 3) float arrays, tiled with overlap to bound memory."""
    import torch

    h, w = render.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(render, dtype=np.float32)).permute(2, 0, 1)[None]
    r = torch.from_numpy(np.ascontiguousarray(residual, dtype=np.float32)).permute(2, 0, 1)[None]
    out = torch.empty_like(x)
    with torch.no_grad():
        for y0 in range(0, h, TILE):
            for x0 in range(0, w, TILE):
                ya, xa = max(0, y0 - HALO), max(0, x0 - HALO)
                yb, xb = min(h, y0 + TILE + HALO), min(w, x0 + TILE + HALO)
                corr = net(x[..., ya:yb, xa:xb].to(device), r[..., ya:yb, xa:xb].to(device)).cpu()
                ye, xe = min(h, y0 + TILE), min(w, x0 + TILE)
                out[..., y0:ye, x0:xe] = corr[..., y0 - ya:ye - ya, x0 - xa:xe - xa]
    restored = x + out
    return restored[0].permute(1, 2, 0).clamp(0.0, 1.0).numpy()


def restore(render: np.ndarray, residual: np.ndarray | None, mode: str = "network",
            weights: str | os.PathLike | None = None, device: str = "cpu") -> np.ndarray:
    """Restored image I^ (H, W, 3) float32 in [0, 1] from a degraded render and its R~."""
    if mode not in MODES:
        raise InputError(f"unknown restore mode {mode!r} (choose from {', '.join(MODES)})")
    render = np.asarray(render, dtype=np.float32)
    if mode == "none" or residual is None:
        return np.clip(render, 0.0, 1.0)
    residual = np.asarray(residual, dtype=np.float32)
    if residual.shape != render.shape:
        raise InputError(f"residual shape {residual.shape} does not match render {render.shape}")
    if mode == "network":
        net = load_network(weights, device)
        if net is not None:
            return apply_network(net, render, residual, device)
        warnings.warn("no restoration-network weights are packaged; restoring with the "
                      "decoded residual alone (--restore residual)", stacklevel=2)
    return np.clip(render + residual, 0.0, 1.0)
