"""The .gsz enhancement layer: JPEG XL coded rendering residuals at a sample of views.

Encoder: render the original scene (I) and the decoded base layer (I~) at a uniform sample
of views, map R = I - I~ to 8-bit pixels 128 + s * R (s per view, stored), code them with
JPEG XL. Chunks (ancillary, so base-only decoders skip them; spec/gsz.md "Side information"):
  vhdr  format version, background, and per view: size, intrinsics, world-to-camera, scale s
  vres  one per view, in vhdr order: a JPEG XL codestream of the mapped residual
Decoding (`decode_side_info`) needs numpy and imagecodecs only, never torch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from ..container import Chunk
from ..container.byteio import ByteReader, ByteWriter
from ..errors import CorruptError, InputError, LimitError, UnsupportedError
from ..render.cameras import Camera, load_cameras_json, orbit_cameras
from .model import GaussianScene

HEADER_TYPE = b"vhdr"
RESIDUAL_TYPE = b"vres"
SIDEINFO_TYPES = frozenset({HEADER_TYPE, RESIDUAL_TYPE})
FORMAT_VERSION = 1
OFFSET = 128                       # the pixel value that means "no residual"
PEAK = 112.0                       # |R| at the 99.9th percentile maps to OFFSET +- PEAK
MIN_SCALE, MAX_SCALE = 127.0, 8192.0
# JPEG XL butteraugli distances of the presets (the paper's lambda_rate; larger = fewer bytes).
RESIDUAL_DISTANCES = {"low": 8.0, "medium": 4.0, "high": 2.0}
JXL_EFFORT = 7
MAX_VIEWS = 4096
MAX_VIEW_PIXELS = 1 << 25          # per view; 32 Mpixel, 96 MiB decoded
MAX_TOTAL_PIXELS = 1 << 28
VIEW_RECORD_BYTES = 2 + 2 + 4 * 4 + 12 * 4 + 4   # minimum bytes per view in vhdr
ORBIT_VIEWS = 24
ORBIT_SIZE = 512                   # default side views: 24 orbit views of 512 x 512


@dataclass
class SideInfo:
    """Decoded side information: the views and their residuals R~ (float32, image units)."""

    cameras: list[Camera]
    residuals: list[np.ndarray]            # (H, W, 3) float32, R~ = (pixel - 128) / scale
    scales: list[float]
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    coded_bytes: list[int] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Number of views carrying side information."""
        return len(self.cameras)


# ----------------------------------------------------------------------------- residual mapping


def residual_scale(residual: np.ndarray) -> float:
    """Per-view gain s so that the 99.9th percentile of |R| maps to +-PEAK grey levels."""
    a = np.abs(np.asarray(residual, dtype=np.float32)).ravel()
    a = a[a > 0]
    if a.size == 0:
        return MAX_SCALE
    q = float(np.quantile(a, 0.999))
    s = PEAK / max(q, 1e-12)
    # Stored as float32: round now so encoder and decoder use the same value.
    return float(np.float32(min(max(s, MIN_SCALE), MAX_SCALE)))


def residual_to_pixels(residual: np.ndarray, scale: float) -> np.ndarray:
    """Map R (float, image units) to uint8 pixels round(128 + s * R), clipped to 0..255."""
    r = np.asarray(residual, dtype=np.float32)
    return np.clip(np.rint(OFFSET + np.float32(scale) * r), 0, 255).astype(np.uint8)


def pixels_to_residual(pixels: np.ndarray, scale: float) -> np.ndarray:
    """Inverse mapping: R~ = (pixel - 128) / s as float32."""
    return (pixels.astype(np.float32) - np.float32(OFFSET)) / np.float32(scale)


def residual_distance(quality: str | float) -> float:
    """JPEG XL distance of a preset name (low/medium/high) or a number (0 = lossless)."""
    if isinstance(quality, str):
        if quality not in RESIDUAL_DISTANCES:
            raise InputError(f"unknown residual quality {quality!r} "
                             f"(choose from {', '.join(RESIDUAL_DISTANCES)})")
        return RESIDUAL_DISTANCES[quality]
    d = float(quality)
    if not 0.0 <= d <= 25.0:
        raise InputError(f"JPEG XL distance must be in 0..25, got {d:g}")
    return d


def jxl_encode(pixels: np.ndarray, distance: float) -> bytes:
    """JPEG XL codestream of an (H, W, 3) uint8 image (lossless when distance is 0)."""
    import imagecodecs

    if distance <= 0:
        return bytes(imagecodecs.jpegxl_encode(pixels, lossless=True, effort=JXL_EFFORT))
    return bytes(imagecodecs.jpegxl_encode(pixels, distance=distance, effort=JXL_EFFORT))


def jxl_decode(data: bytes, height: int, width: int) -> np.ndarray:
    """Decode a residual codestream, checking it is (height, width, 3) uint8."""
    import imagecodecs

    try:
        img = imagecodecs.jpegxl_decode(data)
    except Exception as exc:  # imagecodecs raises its own or RuntimeError on bad streams
        raise CorruptError(f"side-information residual is not valid JPEG XL ({exc})") from None
    if img.shape != (height, width, 3) or img.dtype != np.uint8:
        raise CorruptError(f"side-information residual has shape {img.shape} {img.dtype}, "
                           f"expected ({height}, {width}, 3) uint8")
    return img


# ----------------------------------------------------------------------------- views


def resolve_cameras(scene: GaussianScene, cameras: None | str | os.PathLike | Sequence[Camera],
                    orbit_views: int = ORBIT_VIEWS, orbit_size: int = ORBIT_SIZE) -> list[Camera]:
    """The encoder's view set: given cameras, a cameras.json path, or orbit views."""
    if cameras is None:
        return orbit_cameras(scene.means, n=orbit_views, width=orbit_size, height=orbit_size)
    if isinstance(cameras, (str, os.PathLike)):
        return load_cameras_json(cameras)
    cams = list(cameras)
    if not cams:
        raise InputError("no cameras given for side information")
    return cams


def sample_views(n: int, fraction: float, seed: int = 0) -> np.ndarray:
    """Indices of a uniform sample of round(fraction * n) views (at least 1), phase from seed."""
    if not 0.0 < fraction <= 1.0:
        raise InputError(f"side-views fraction must be in (0, 1], got {fraction:g}")
    k = max(1, min(n, int(round(fraction * n))))
    step = n / k
    phase = (seed % max(1, int(step))) if seed else 0
    return np.unique((np.floor(np.arange(k) * step).astype(np.int64) + phase) % n)


# ----------------------------------------------------------------------------- chunks


def _check_camera(cam: Camera) -> None:
    if not (0 < cam.width < 65536 and 0 < cam.height < 65536):
        raise InputError(f"camera {cam.name!r}: size {cam.width}x{cam.height} is out of range")
    if cam.width * cam.height > MAX_VIEW_PIXELS:
        raise InputError(f"camera {cam.name!r}: {cam.width}x{cam.height} exceeds "
                         f"{MAX_VIEW_PIXELS} pixels")


def write_header(cameras: Sequence[Camera], scales: Sequence[float],
                 background: Iterable[float] = (0.0, 0.0, 0.0)) -> bytes:
    """The vhdr payload (see spec/gsz.md)."""
    w = ByteWriter()
    w.u8(FORMAT_VERSION)
    for c in background:
        w.u8(int(round(min(max(float(c), 0.0), 1.0) * 255)))
    w.varint(len(cameras))
    for cam, s in zip(cameras, scales):
        _check_camera(cam)
        w.u16(int(cam.width)).u16(int(cam.height))
        k = np.asarray(cam.K, dtype=np.float64)
        w.raw(np.array([k[0, 0], k[1, 1], k[0, 2], k[1, 2]], dtype="<f4").tobytes())
        w.raw(np.asarray(cam.viewmat, dtype=np.float64)[:3, :4].astype("<f4").tobytes())
        w.f32(float(s))
    return w.getvalue()


def read_header(data: bytes) -> tuple[list[Camera], list[float], tuple[float, float, float]]:
    """Parse a vhdr payload; every failure is a GscodecError."""
    r = ByteReader(data, "side-information header")
    version = r.u8()
    if version != FORMAT_VERSION:
        raise UnsupportedError(f"side-information format {version} is not supported "
                               f"(this decoder reads {FORMAT_VERSION})")
    background = tuple(r.u8() / 255.0 for _ in range(3))
    n = r.varint(MAX_VIEWS)
    if n == 0:
        raise CorruptError("side-information header declares no views")
    if n * VIEW_RECORD_BYTES > r.remaining:
        raise CorruptError(f"side-information header declares {n} views, "
                           f"{r.remaining} bytes present")
    cams, scales, total = [], [], 0
    for i in range(n):
        width, height = r.u16(), r.u16()
        if width == 0 or height == 0 or width * height > MAX_VIEW_PIXELS:
            raise LimitError(f"side-information view {i}: size {width}x{height} out of range")
        total += width * height
        if total > MAX_TOTAL_PIXELS:
            raise LimitError("side-information views exceed the total pixel limit")
        fx, fy, cx, cy = np.frombuffer(r.raw(16), dtype="<f4").astype(np.float64)
        view = np.eye(4)
        view[:3, :4] = np.frombuffer(r.raw(48), dtype="<f4").astype(np.float64).reshape(3, 4)
        s = r.f32()
        vals = np.array([fx, fy, cx, cy, s, *view[:3].ravel()])
        if not np.isfinite(vals).all() or fx <= 0 or fy <= 0 or not s > 0:
            raise CorruptError(f"side-information view {i}: invalid camera or scale")
        k = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        cams.append(Camera(view, k, int(width), int(height), f"side_{i:03d}"))
        scales.append(float(s))
    r.expect_end()
    return cams, scales, background  # type: ignore[return-value]


def has_side_info(container) -> bool:
    """Whether a parsed .gsz container carries side-information chunks."""
    return any(c.type in SIDEINFO_TYPES for c in container.chunks)


def decode_side_info(container) -> SideInfo:
    """Cameras and residual images R~ from a parsed .gsz container (numpy + imagecodecs only)."""
    head = container.get(HEADER_TYPE)
    if head is None:
        raise CorruptError("the file carries no side information (vhdr chunk missing)")
    cams, scales, background = read_header(head)
    blobs = container.all(RESIDUAL_TYPE)
    if len(blobs) != len(cams):
        raise CorruptError(f"side information declares {len(cams)} views but holds "
                           f"{len(blobs)} residual chunks")
    residuals = [pixels_to_residual(jxl_decode(b, c.height, c.width), s)
                 for b, c, s in zip(blobs, cams, scales)]
    return SideInfo(cams, residuals, scales, background, [len(b) for b in blobs])


# ----------------------------------------------------------------------------- encoder


def _render_numpy(scene: GaussianScene, cam: Camera, background, device: str) -> np.ndarray:
    import torch

    from ..render.scene3d import render_gaussian_scene

    with torch.no_grad():
        img = render_gaussian_scene(scene, cam, background=tuple(background), device=device)
    return img.detach().clamp(0.0, 1.0).cpu().numpy().astype(np.float32)


def resolve_device(device: str = "auto") -> str:
    """'cuda' when asked for or available under 'auto', else 'cpu'."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was requested but no CUDA device is available")
    if device not in ("cpu", "cuda"):
        raise InputError(f"unknown device {device!r}")
    return device


def encode_side_info(scene: GaussianScene, base: GaussianScene, *,
                     cameras: None | str | os.PathLike | Sequence[Camera] = None,
                     side_views: float = 0.4, residual_quality: str | float = "medium",
                     device: str = "auto", seed: int = 0, progress: bool = False,
                     background: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> list[Chunk]:
    """Side-information chunks (vhdr + one vres per sampled view) for `scene` over `base`."""
    distance = residual_distance(residual_quality)
    dev = resolve_device(device)
    views = resolve_cameras(scene, cameras)
    idx = sample_views(len(views), side_views, seed)
    chosen = [views[i] for i in idx]
    for cam in chosen:
        _check_camera(cam)
    scales, blobs = [], []
    it = chosen
    if progress:
        from tqdm import tqdm
        it = tqdm(chosen, desc="side information", unit="view", leave=False)
    for cam in it:
        orig = _render_numpy(scene, cam, background, dev)
        degraded = _render_numpy(base, cam, background, dev)
        res = orig - degraded
        s = residual_scale(res)
        scales.append(s)
        blobs.append(jxl_encode(residual_to_pixels(res, s), distance))
    chunks = [Chunk(HEADER_TYPE, write_header(chosen, scales, background))]
    chunks += [Chunk(RESIDUAL_TYPE, b) for b in blobs]
    return chunks


__all__ = ["SideInfo", "encode_side_info", "decode_side_info", "has_side_info",
           "residual_scale", "residual_to_pixels", "pixels_to_residual", "residual_distance",
           "sample_views", "resolve_cameras", "RESIDUAL_DISTANCES", "SIDEINFO_TYPES"]
