"""gscodec: codecs for Gaussian-splat content (.gsi images, .gsz 3DGS scenes).

The public functions are imported lazily so that decoding never pulls in torch.
"""
from __future__ import annotations

import importlib

__version__ = "0.5.0"

from .errors import GscodecError  # noqa: E402

_LAZY = {
    "encode_image": "gscodec.image",
    "decode_image": "gscodec.image",
    "read_ply": "gscodec.scene",
    "write_ply": "gscodec.scene",
    "encode_scene": "gscodec.scene",
    "decode_scene": "gscodec.scene",
    "GaussianScene": "gscodec.scene.model",
    "read_image": "gscodec.imageio",
    "write_image": "gscodec.imageio",
    "open": "gscodec.viewer",
    "Camera": "gscodec.render.cameras",
    "orbit_cameras": "gscodec.render.cameras",
    "load_cameras_json": "gscodec.render.cameras",
}

__all__ = ["GscodecError", "__version__", *sorted(_LAZY)]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gscodec' has no attribute {name!r}")
