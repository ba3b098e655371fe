"""Reading and writing raster images (PNG, JPEG, ...) through imagecodecs."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from .container.files import read_file, write_file_atomic
from .errors import InputError, OutputError
from .imageheader import declared_size, jpeg_cmyk

MAX_IMAGE_PIXELS = 1 << 28

_WRITERS = {".png": "png", ".jpg": "jpeg8", ".jpeg": "jpeg8", ".webp": "webp",
            ".jxl": "jpegxl", ".tif": "tiff", ".tiff": "tiff", ".bmp": "bmp", ".avif": "avif"}


def sniff_image(data: bytes) -> str | None:
    """Name the raster format from its magic bytes, or None."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:2] == b"\xff\x0a" or data[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n":
        return "jpegxl"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data[:2] == b"BM":
        return "bmp"
    return None


def decode_image_bytes(data: bytes, name: str = "image") -> np.ndarray:
    """Decode PNG/JPEG/... bytes to a uint8 (H, W, C) array, C in 1..4."""
    import imagecodecs

    fmt = sniff_image(data)
    if fmt is None:
        raise InputError("not a supported image (PNG, JPEG, WebP, JPEG XL, TIFF, BMP)", name)
    _check_declared_size(data, fmt, name)
    try:
        arr = getattr(imagecodecs, f"{fmt}_decode")(data)
    except Exception as exc:  # imagecodecs raises codec-specific errors
        raise InputError(f"cannot decode {fmt.upper()} ({str(exc).splitlines()[0][:120]})", name) from None
    arr = np.asarray(arr)
    if fmt == "jpeg" and arr.ndim == 3 and arr.shape[2] == 4:
        four, adobe = jpeg_cmyk(data)
        if four:
            warnings.warn("CMYK JPEG converted to RGB without colour management", stacklevel=2)
            arr = _cmyk_to_rgb(arr, adobe)
    if arr.dtype == np.uint16:
        arr = (arr.astype(np.uint32) * 255 + 32767) // 65535
        arr = arr.astype(np.uint8)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    if arr.dtype != np.uint8:
        raise InputError(f"unsupported sample type {arr.dtype}", name)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise InputError(f"unsupported image shape {arr.shape}", name)
    if arr.shape[2] == 2:  # grey + alpha
        arr = arr[:, :, :1]
    return arr


def _check_declared_size(data: bytes, fmt: str, name: str) -> None:
    # Refuse absurd sizes from the header, before a decoder allocates the whole raster.
    size = declared_size(data, fmt)
    if size is None:
        return
    w, h = size
    if w == 0 or h == 0:
        raise InputError("image is empty (0 pixels)", name)
    if w * h > MAX_IMAGE_PIXELS:
        raise InputError(f"image of {w}x{h} pixels exceeds the limit of {MAX_IMAGE_PIXELS}", name)


def _cmyk_to_rgb(arr: np.ndarray, inverted: bool) -> np.ndarray:
    """Naive CMYK -> RGB (no colour management); Adobe files store the inks inverted."""
    x = arr.astype(np.uint32)
    if not inverted:
        x = 255 - x
    rgb = (x[:, :, :3] * x[:, :, 3:4] + 127) // 255
    return rgb.astype(np.uint8)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file into a uint8 (H, W, C) array."""
    return decode_image_bytes(read_file(path), str(path))


def encode_image_bytes(image: np.ndarray, fmt: str = "png") -> bytes:
    """Encode a uint8 (H, W, C) array in the named imagecodecs format."""
    import imagecodecs

    arr = np.ascontiguousarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if fmt == "png":
        return imagecodecs.png_encode(arr, level=6)
    if fmt == "jpeg8":
        return imagecodecs.jpeg8_encode(arr, level=95)
    return getattr(imagecodecs, f"{fmt}_encode")(arr)


def write_image(path: str | os.PathLike, image: np.ndarray, force: bool = False) -> None:
    """Write an image, choosing the format by extension; atomic."""
    ext = Path(path).suffix.lower()
    fmt = _WRITERS.get(ext)
    if fmt is None:
        raise OutputError(f"unknown image extension {ext!r} (use one of {', '.join(sorted(_WRITERS))})",
                          str(path))
    try:
        data = encode_image_bytes(image, fmt)
    except Exception as exc:
        raise OutputError(f"cannot encode {fmt} ({exc})", str(path)) from None
    write_file_atomic(path, data, force=force)
