""".gsi: images as 2D Gaussians (SmartSplat), with real entropy-coded files.

`encode_image` needs torch (imported lazily); `decode_image` and `decode_gaussians` need only
numpy and constriction.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from ..container import read_container
from ..errors import CorruptError, GscodecError, InputError, LimitError
from .codec import CHUNK_TYPE, MAX_PIXELS, MAX_SIDE, decode_payload
from .quantize import dequantize, dequantize_colors

__all__ = ["encode_image", "decode_image", "decode_gaussians", "budget_bytes", "MAX_SIDE", "MAX_PIXELS"]

DEFAULT_RATIO = 100.0


def _as_image(image: np.ndarray) -> np.ndarray:
    """Validate an 8-bit image and return it as float32 (H, W, C), C in {1, 3}."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InputError(f"image must hold 8-bit samples (uint8), got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):
        raise InputError(f"image must be (H, W) or (H, W, C) with C in 1..4, got shape {image.shape}")
    h, w, c = image.shape
    if h == 0 or w == 0:
        raise InputError(f"image is empty ({w}x{h})")
    if h < 2 or w < 2:
        raise InputError(f"image is {w}x{h}; both sides must be at least 2 pixels")
    if h > MAX_SIDE or w > MAX_SIDE or h * w > MAX_PIXELS:
        raise InputError(f"image is {w}x{h}; the limits are {MAX_SIDE} per side and {MAX_PIXELS} pixels")
    if c in (2, 4):
        warnings.warn("alpha channel dropped: .gsi codes grey or RGB only", stacklevel=3)
        image = image[:, :, : c - 1]
    return image.astype(np.float32) / np.float32(255.0)


def budget_bytes(height: int, width: int, channels: int, ratio: float | None = None,
                 max_bytes: int | None = None, bpp: float | None = None) -> int:
    """Byte budget of a file: the tightest of C*H*W/ratio, max_bytes and bpp*H*W/8 (ratio 100 if none)."""
    for name, v in (("ratio", ratio), ("bpp", bpp), ("max_bytes", max_bytes)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating))
                              or not math.isfinite(v) or v <= 0):
            raise InputError(f"{name} must be a positive number, got {v!r}")
    if ratio is None and max_bytes is None and bpp is None:
        ratio = DEFAULT_RATIO
    caps = []
    if ratio is not None:
        caps.append(math.floor(channels * height * width / ratio))
    if bpp is not None:
        caps.append(math.floor(bpp * height * width / 8))
    if max_bytes is not None:
        caps.append(int(max_bytes))
    return int(min(caps))


def encode_image(image: np.ndarray, *, ratio: float | None = None, max_bytes: int | None = None,
                 bpp: float | None = None, steps: int | None = None, device: str = "auto",
                 seed: int = 0, progress: bool = False, metadata: dict | None = None) -> bytes:
    """Encode an 8-bit grey/RGB(A) array into .gsi bytes no larger than the budget."""
    from .encoder import encode_array

    img = _as_image(image)
    h, w, c = img.shape
    budget = budget_bytes(h, w, c, ratio, max_bytes, bpp)
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer))):
        raise InputError(f"steps must be an integer, got {steps!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise InputError(f"seed must be an integer, got {seed!r}")
    return encode_array(img, budget, steps=steps, device=device, seed=int(seed), progress=progress,
                        metadata=metadata)


def decode_gaussians(data: bytes) -> dict:
    """Parse a .gsi file into its canonical integers and dequantised (bit-exact) parameters."""
    try:
        cont = read_container(bytes(data), kind="gsi", known={CHUNK_TYPE})
        ints, spec, h, w, c, bg = decode_payload(cont.require(CHUNK_TYPE), major=cont.version[0])
    except GscodecError:
        raise
    except (ValueError, IndexError, OverflowError, MemoryError) as exc:  # defensive: never leak these
        raise CorruptError(f"invalid .gsi payload ({type(exc).__name__})") from None
    out = dequantize(ints, spec)
    out.update({"width": w, "height": h, "channels": c, "count": int(len(ints["px"])),
                "background": dequantize_colors(bg[None, :], spec)[0][0], "background_ints": bg,
                "beta": spec.beta,
                "ints": ints, "spec": spec, "metadata": cont.metadata})
    return out


def output_size(h: int, w: int, width: int | None, height: int | None, scale: float | None) -> tuple[int, int]:
    """Output (height, width) from at most one of width/height/scale, keeping the aspect ratio."""
    given = [x is not None for x in (width, height, scale)]
    if sum(given) > 1:
        if width is not None and height is not None and scale is None:
            oh, ow = height, width
        else:
            raise InputError("give at most one of scale and width/height")
    elif width is not None:
        ow, oh = width, max(1, round(width * h / w))
    elif height is not None:
        oh, ow = height, max(1, round(height * w / h))
    elif scale is not None:
        if not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
            raise InputError(f"scale must be a positive number, got {scale!r}")
        oh, ow = max(1, round(h * scale)), max(1, round(w * scale))
    else:
        oh, ow = h, w
    for name, v in (("height", oh), ("width", ow)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
            raise InputError(f"output {name} must be a positive integer, got {v!r}")
    if oh > MAX_SIDE or ow > MAX_SIDE or oh * ow > MAX_PIXELS:
        raise LimitError(f"output size {ow}x{oh} exceeds {MAX_SIDE} per side or {MAX_PIXELS} pixels")
    return int(oh), int(ow)


def decode_image(data: bytes, width: int | None = None, height: int | None = None,
                 scale: float | None = None) -> np.ndarray:
    """Decode .gsi bytes to a uint8 (H, W, C) array at the stored size or any other (torch-free)."""
    from ..render.image2d_np import render_image_np

    g = decode_gaussians(data)
    oh, ow = output_size(g["height"], g["width"], width, height, scale)
    img = render_image_np(g["means"].astype(np.float32), g["scales"].astype(np.float32),
                          g["angles"].astype(np.float32), g["colors"].astype(np.float32),
                          src_size=(g["height"], g["width"]), out_size=(oh, ow), beta=g["beta"])
    return to_uint8(img + g["background"].astype(np.float32))


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Clamp to [0, 1] and round to 8-bit samples."""
    return np.floor(np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
