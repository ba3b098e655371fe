"""Full .gsz coding: base layer + side information (encoder), restore + refine (decoder)."""
from __future__ import annotations

import os
import warnings
from typing import Sequence

import numpy as np

from ..container import END_TYPE, META_TYPE, Chunk, read_container, write_container
from ..errors import InputError
from ..render.cameras import Camera
from .codec import KNOWN_CRITICAL
from .model import GaussianScene
from .sideinfo import decode_side_info, encode_side_info, has_side_info


def _append_chunks(base_bytes: bytes, extra: list[Chunk]) -> bytes:
    """Re-frame a base-layer file with `extra` chunks before its end chunk (no re-encoding)."""
    c = read_container(base_bytes, "gsz", known=KNOWN_CRITICAL)
    chunks = [Chunk(ci.type, ci.data) for ci in c.chunks if ci.type not in (META_TYPE, END_TYPE)]
    meta = c.metadata if c.get(META_TYPE) is not None else None
    return write_container("gsz", chunks + list(extra), metadata=meta, minor=c.version[1])


def encode_scene_full(scene: GaussianScene, *, quality: str = "medium", progress: bool = False,
                      metadata: dict | None = None,
                      cameras: None | str | os.PathLike | Sequence[Camera] = None,
                      side_views: float = 0.4, residual_quality: str | float = "medium",
                      device: str = "auto", seed: int = 0, side_info: bool = True) -> bytes:
    """A .gsz file: the base layer, plus side information unless `side_info` is False."""
    from .codec import decode_base, encode_scene

    base_bytes = encode_scene(scene, quality=quality, progress=progress, metadata=metadata)
    if not side_info:
        return base_bytes
    # The encoder decodes its own base layer so I~ is exactly what the decoder will render.
    base = decode_base(read_container(base_bytes, "gsz", known=KNOWN_CRITICAL))
    extra = encode_side_info(scene, base, cameras=cameras, side_views=side_views,
                             residual_quality=residual_quality, device=device, seed=seed,
                             progress=progress)
    return _append_chunks(base_bytes, extra)


def restored_targets(base: GaussianScene, side, restore: str = "network", device: str = "cpu",
                     weights=None, progress: bool = False) -> list[np.ndarray]:
    """Restored images I^ at the side-information views (renders of `base` restored with R~)."""
    import torch

    from ..render.scene3d import render_gaussian_scene
    from .restore import load_network, restore as restore_image

    if restore == "network" and load_network(weights, device) is None:
        # Warn once per decode, not once per view.
        warnings.warn("no restoration-network weights are packaged; restoring with the "
                      "decoded residual alone (--restore residual)", stacklevel=2)
        restore = "residual"
    out = []
    it = list(zip(side.cameras, side.residuals))
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc="restore", unit="view", leave=False)
    for cam, res in it:
        with torch.no_grad():
            img = render_gaussian_scene(base, cam, background=side.background, device=device)
        img = img.clamp(0.0, 1.0).cpu().numpy().astype(np.float32)
        out.append(restore_image(img, res, mode=restore, weights=weights, device=device))
    return out


def decode_scene_full(data: bytes, *, refine_steps: int | None = None, restore: str = "network",
                      device: str = "auto", progress: bool = False, weights=None,
                      refine_scale: float | None = None, seed: int = 0) -> GaussianScene:
    """Decoded Gaussians: the base layer, refined against restored side-information views.

    Returns the base layer alone when the file has no side information, when
    refine_steps == 0, or when restore == "none" (nothing to refine towards).
    """
    from .codec import decode_base_cells
    from .restore import MODES

    if restore not in MODES:
        raise InputError(f"unknown restore mode {restore!r} (choose from {', '.join(MODES)})")
    if refine_steps is not None and refine_steps < 0:
        raise InputError(f"refine steps must be >= 0, got {refine_steps}")
    container = read_container(data, "gsz", known=KNOWN_CRITICAL)
    base, cells = decode_base_cells(container)
    if refine_steps == 0 or restore == "none" or not has_side_info(container):
        return base
    side = decode_side_info(container)
    from .refine import refine_scene
    from .sideinfo import resolve_device

    dev = resolve_device(device)
    targets = restored_targets(base, side, restore, dev, weights, progress)
    return refine_scene(base, side.cameras, targets, refine_steps, device=dev, scale=refine_scale,
                        background=side.background, seed=seed, progress=progress, cells=cells)
