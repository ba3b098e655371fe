"""The SPZ reader: synthetic v2/v3 files, error handling, and the shared .spz files vs their PLYs."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from gscodec.errors import InputError
from gscodec.scene.spz import spz_to_scene


def _v3_bytes(n: int, deg: int, version: int = 3) -> tuple[bytes, dict]:
    rng = np.random.default_rng(1)
    k = {0: 0, 1: 3, 2: 8, 3: 15}[deg]
    pos = rng.integers(-(1 << 20), 1 << 20, size=(n, 3))
    u = pos & 0xFFFFFF
    pos_b = np.stack([u & 255, (u >> 8) & 255, u >> 16], -1).astype(np.uint8)
    alpha = rng.integers(1, 255, n).astype(np.uint8)
    col = rng.integers(0, 256, (n, 3)).astype(np.uint8)
    sc = rng.integers(0, 256, (n, 3)).astype(np.uint8)
    sh = rng.integers(0, 256, (n, k, 3)).astype(np.uint8)
    if version == 3:
        # Largest component w (index 3), the others 0 -> identity rotation.
        rot = np.full(n, 3 << 30, dtype="<u4").tobytes()
    else:
        rot = np.full((n, 3), 127, np.uint8).tobytes()
    head = struct.pack("<IIIBBBB", 0x5053474E, version, n, deg, 10, 0, 0)
    body = head + pos_b.tobytes() + alpha.tobytes() + col.tobytes() + sc.tobytes() + rot + sh.tobytes()
    return gzip.compress(body), {"pos": pos / 1024.0, "alpha": alpha, "col": col, "sc": sc, "sh": sh}


@pytest.mark.parametrize("version", [2, 3])
def test_synthetic_gzip_file(version):
    data, ref = _v3_bytes(30, 2, version)
    s = spz_to_scene(data)
    np.testing.assert_allclose(s.means, ref["pos"], atol=1e-6)
    np.testing.assert_allclose(s.scales, ref["sc"] / 16.0 - 10.0, atol=1e-6)
    np.testing.assert_allclose(s.sh_dc, (ref["col"] / 255.0 - 0.5) / 0.15, atol=1e-5)
    np.testing.assert_allclose(1 / (1 + np.exp(-s.opacity)), ref["alpha"] / 255.0, atol=1e-5)
    np.testing.assert_allclose(s.sh_rest, (ref["sh"] - 128.0) / 128.0, atol=1e-6)
    q = s.rotations / np.linalg.norm(s.rotations, axis=1, keepdims=True)
    np.testing.assert_allclose(np.abs(q[:, 0]), 1.0, atol=1e-2)


def test_bad_spz_raises_input_error():
    data, _ = _v3_bytes(10, 1)
    for bad in (b"", b"NGSP", data[:20], gzip.compress(b"x" * 40), gzip.compress(gzip.decompress(data)[:100])):
        with pytest.raises(InputError):
            spz_to_scene(bad)


@pytest.mark.parametrize("name", ["playbot_lod2", "biker"])
def test_shared_spz_matches_ply(shared_data, name):
    import plyfile

    spz = shared_data / "scenes" / f"{name}.spz"
    ply = shared_data / "scenes" / f"{name}.ply"
    if not spz.exists() or not ply.exists():
        pytest.skip("scene not present")
    from gscodec.scene.spz import match_frame, read_spz

    v = plyfile.PlyData.read(str(ply))["vertex"].data
    xyz = np.stack([v["x"], v["y"], v["z"]], 1)
    s = match_frame(read_spz(spz), xyz)
    assert s.count == len(v)
    ok = np.isfinite(xyz).all(1) & np.isfinite(v["opacity"])
    # Positions to SPZ's fixed point, scales to its 1/16 log steps, colours within its range.
    assert np.median(np.abs(s.means[ok] - xyz[ok])) < 1e-3
    sc = np.stack([v[f"scale_{i}"] for i in range(3)], 1)[ok]
    assert np.median(np.abs(s.scales[ok] - np.clip(sc, -10, 5.9))) < 0.05
    dc = np.stack([v[f"f_dc_{i}"] for i in range(3)], 1)[ok]
    inside = np.abs(dc) < 3
    assert np.median(np.abs(s.sh_dc[ok][inside] - dc[inside])) < 0.02
    q = np.stack([v[f"rot_{i}"] for i in range(4)], 1)[ok]
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    qs = s.rotations[ok] / np.linalg.norm(s.rotations[ok], axis=1, keepdims=True)
    assert np.median(np.abs((q * qs).sum(1))) > 0.999
