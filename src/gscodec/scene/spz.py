"""A reader for Niantic SPZ files (versions 2 and 3: gzip; version 4: ZSTD streams).

Used by the benchmark to compare against SPZ. The SPZ spec says RUB coordinates (OpenGL), but
converters writing with an unspecified coordinate system keep the PLY's frame (the shared
files do), so the reader returns the stored frame unless flip_yz=True (RUB -> RDF: y and z
negated, with the matching quaternion and SH sign changes).
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np

from ..container.files import read_file
from ..errors import InputError, LimitError
from .model import GaussianScene

MAGIC = 0x5053474E
COLOR_SCALE = 0.15
MAX_POINTS = 1 << 28
REST = {0: 0, 1: 3, 2: 8, 3: 15}
# Sign of each SH basis function (degrees 1..3, standard order) under y -> -y, z -> -z.
_FLIP = np.array([-1, -1, 1, -1, 1, 1, -1, 1, -1, 1, -1, -1, 1, -1, 1], dtype=np.float32)


def read_spz(path: str | os.PathLike, flip_yz: bool = False) -> GaussianScene:
    """Read an .spz file as a GaussianScene in PLY conventions."""
    try:
        return spz_to_scene(read_file(path), flip_yz)
    except InputError as exc:
        raise exc.with_path(str(path)) from None


def _streams_v4(data: bytes) -> tuple[tuple, list[bytes]]:
    import imagecodecs

    if len(data) < 32:
        raise InputError("SPZ file is truncated (header)")
    magic, version, n, deg, frac, flags, nstreams, toc = struct.unpack("<IIIBBBBI", data[:20])
    if toc < 32 or toc + 16 * nstreams > len(data):
        raise InputError("SPZ table of contents is out of bounds")
    sizes = np.frombuffer(data[toc:toc + 16 * nstreams], "<u8").reshape(-1, 2)
    off = toc + 16 * nstreams
    out = []
    for comp, raw in sizes:
        if off + int(comp) > len(data) or int(raw) > 64 * len(data) + (1 << 20):
            raise InputError("SPZ stream is out of bounds")
        try:
            out.append(bytes(imagecodecs.zstd_decode(data[off:off + int(comp)])))
        except Exception:
            raise InputError("SPZ stream is not valid ZSTD") from None
        off += int(comp)
    return (magic, version, n, deg, frac, flags), out


def spz_to_scene(data: bytes, flip_yz: bool = False) -> GaussianScene:
    """Decode SPZ bytes (v2, v3 or v4)."""
    if data[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            raise InputError("SPZ gzip stream is corrupt") from None
        if len(raw) < 16:
            raise InputError("SPZ file is truncated (header)")
        magic, version, n, deg, frac, flags, _ = struct.unpack("<IIIBBBB", raw[:16])
        streams = None
        body = raw[16:]
    else:
        if len(data) < 8:
            raise InputError("not an SPZ file")
        (magic, version, n, deg, frac, flags), streams = _streams_v4(data)
    if magic != MAGIC:
        raise InputError("not an SPZ file (bad magic)")
    if version not in (2, 3, 4):
        raise InputError(f"unsupported SPZ version {version}")
    if deg not in REST:
        raise InputError(f"unsupported SPZ SH degree {deg}")
    if n == 0 or n > MAX_POINTS:
        raise LimitError(f"SPZ declares {n} points")
    k = REST[deg]
    rot_bytes = 4 if version >= 3 else 3
    widths = [9, 1, 3, 3, rot_bytes, 3 * k]
    if streams is None:
        need = n * sum(widths)
        if len(body) < need:
            raise InputError("SPZ payload is truncated")
        streams, off = [], 0
        for w in widths:
            streams.append(body[off:off + n * w])
            off += n * w
    while len(streams) < 6:
        streams.append(b"")
    for s, w in zip(streams, widths):
        if len(s) < n * w:
            raise InputError("SPZ payload is truncated")
    pos = np.frombuffer(streams[0][:9 * n], np.uint8).reshape(n, 3, 3).astype(np.int32)
    p = pos[..., 0] | (pos[..., 1] << 8) | (pos[..., 2] << 16)
    p = np.where(p & 0x800000, p - (1 << 24), p)
    means = (p / float(1 << frac)).astype(np.float32)
    a = np.frombuffer(streams[1][:n], np.uint8).astype(np.float64) / 255.0
    a = np.clip(a, 1e-6, 1 - 1e-6)
    opacity = np.log(a / (1 - a)).astype(np.float32)
    col = np.frombuffer(streams[2][:3 * n], np.uint8).reshape(n, 3).astype(np.float32)
    dc = (col / 255.0 - 0.5) / COLOR_SCALE
    scales = np.frombuffer(streams[3][:3 * n], np.uint8).reshape(n, 3).astype(np.float32) / 16.0 - 10.0
    xyzw = _rotations(streams[4], n, version)
    rest = (np.frombuffer(streams[5][:3 * k * n], np.uint8).reshape(n, k, 3).astype(np.float32) - 128.0) / 128.0
    rot = xyzw[:, [3, 0, 1, 2]]
    if flip_yz:
        means = means * np.array([1, -1, -1], np.float32)
        rot = rot * np.array([1, 1, -1, -1], np.float32)
        rest = rest * _FLIP[:k, None]
    return GaussianScene(means.astype(np.float32), dc.astype(np.float32), rest.astype(np.float32),
                         opacity, scales.astype(np.float32), rot.astype(np.float32))


def _rotations(buf: bytes, n: int, version: int) -> np.ndarray:
    """(n, 4) quaternions x, y, z, w."""
    if version >= 3:
        comp = np.frombuffer(buf[:4 * n], "<u4").astype(np.int64)
        largest = comp >> 30
        out = np.zeros((n, 4), np.float64)
        c = comp.copy()
        sq = np.zeros(n)
        for i in (3, 2, 1, 0):
            keep = largest != i
            mag = c & 511
            neg = (c >> 9) & 1
            v = np.sqrt(0.5) * mag / 511.0 * np.where(neg == 1, -1.0, 1.0)
            out[keep, i] = v[keep]
            sq += np.where(keep, v * v, 0.0)
            c = np.where(keep, c >> 10, c)
        out[np.arange(n), largest] = np.sqrt(np.maximum(0.0, 1.0 - sq))
        return out.astype(np.float32)
    xyz = np.frombuffer(buf[:3 * n], np.uint8).reshape(n, 3).astype(np.float64) / 127.5 - 1.0
    w = np.sqrt(np.maximum(0.0, 1.0 - (xyz * xyz).sum(1)))
    return np.concatenate([xyz, w[:, None]], axis=1).astype(np.float32)


def flip_yz(scene: GaussianScene) -> GaussianScene:
    """The scene in the other of the RUB / RDF frames (y and z negated)."""
    k = scene.sh_rest.shape[1]
    return GaussianScene(scene.means * np.array([1, -1, -1], np.float32), scene.sh_dc.copy(),
                         scene.sh_rest * _FLIP[:k, None], scene.opacity.copy(), scene.scales.copy(),
                         scene.rotations * np.array([1, 1, -1, -1], np.float32))


def match_frame(scene: GaussianScene, reference_means: np.ndarray) -> GaussianScene:
    """The SPZ scene in the frame (stored or y/z-flipped) whose positions match the reference's."""
    a = np.nanmedian(np.abs(scene.means - reference_means))
    f = flip_yz(scene)
    b = np.nanmedian(np.abs(f.means - reference_means))
    return f if b < a else scene
