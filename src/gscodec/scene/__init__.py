"""3DGS scenes: PLY I/O, the .gsz base layer, side information, restoration, refinement.

`encode_scene` / `decode_scene` code the base layer alone (decoding uses numpy + constriction only;
the encoder uses torch, when installed, to measure each Gaussian's importance in renders);
given enhancement-layer options (cameras, side_views, ... / refine_steps, restore, ...) they
hand over to gscodec.scene.enhanced, which adds or uses the side information.
"""
from __future__ import annotations

from . import codec as _codec
from .codec import decode_base, decode_base_integers
from .model import GaussianScene
from .ply import read_ply, write_ply


def encode_scene(scene: GaussianScene, *, quality: str = "medium", progress: bool = False,
                 metadata: dict | None = None, extra_chunks=(), importance: str = "auto",
                 **side_options) -> bytes:
    """Encode a scene to .gsz bytes (base layer; plus side information when side options are given)."""
    if side_options:
        from .enhanced import encode_scene_full

        return encode_scene_full(scene, quality=quality, progress=progress, metadata=metadata,
                                 **side_options)
    return _codec.encode_scene(scene, quality=quality, progress=progress, metadata=metadata,
                               extra_chunks=extra_chunks, importance=importance)


def decode_scene(data: bytes, progress: bool = False, **enhance_options) -> GaussianScene:
    """Decode .gsz bytes (base layer; restored and refined when enhancement options are given)."""
    if enhance_options:
        from .enhanced import decode_scene_full

        return decode_scene_full(data, progress=progress, **enhance_options)
    return _codec.decode_scene(data, progress=progress)


__all__ = ["GaussianScene", "decode_base", "decode_base_integers", "decode_scene", "encode_scene",
           "read_ply", "write_ply"]
