"""Morton (Z-order) codes of 3D grid coordinates, up to 21 bits per axis."""
from __future__ import annotations

import numpy as np

_M = [(32, 0x1F00000000FFFF), (16, 0x1F0000FF0000FF), (8, 0x100F00F00F00F00F),
      (4, 0x10C30C30C30C30C3), (2, 0x1249249249249249)]


def _spread(v: np.ndarray) -> np.ndarray:
    x = v.astype(np.uint64) & np.uint64(0x1FFFFF)
    for shift, mask in _M:
        x = (x | (x << np.uint64(shift))) & np.uint64(mask)
    return x


def _compact(x: np.ndarray) -> np.ndarray:
    x = x & np.uint64(0x1249249249249249)
    for shift, mask in [(2, 0x10C30C30C30C30C3), (4, 0x100F00F00F00F00F),
                                 (8, 0x1F0000FF0000FF), (16, 0x1F00000000FFFF),
                                 (32, 0x1FFFFF)]:
        x = (x | (x >> np.uint64(shift))) & np.uint64(mask)
    return x


def morton_encode(q: np.ndarray) -> np.ndarray:
    """(N,3) non-negative ints < 2**21 -> (N,) uint64 codes, x in the lowest bit."""
    return _spread(q[:, 0]) | (_spread(q[:, 1]) << np.uint64(1)) | (_spread(q[:, 2]) << np.uint64(2))


def morton_decode(code: np.ndarray) -> np.ndarray:
    """(N,) uint64 codes -> (N,3) int64 grid coordinates."""
    c = code.astype(np.uint64)
    return np.stack([_compact(c), _compact(c >> np.uint64(1)), _compact(c >> np.uint64(2))],
                    axis=1).astype(np.int64)


def bit_length(v: np.ndarray) -> np.ndarray:
    """Number of significant bits of each uint64 (0 for 0)."""
    x = v.astype(np.uint64)
    out = np.zeros(x.shape, dtype=np.int64)
    for s in (32, 16, 8, 4, 2, 1):
        big = x >= (np.uint64(1) << np.uint64(s))
        out[big] += s
        x = np.where(big, x >> np.uint64(s), x)
    out[x > 0] += 1
    return out
