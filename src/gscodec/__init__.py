"""gscodec: codecs for Gaussian-splat content (.gsi images, .gsz 3DGS scenes)."""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import GscodecError  # noqa: E402

__all__ = ["GscodecError", "__version__"]
