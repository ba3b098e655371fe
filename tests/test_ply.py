"""PLY reading and writing: round trips, dtypes, ASCII, and every kind of bad input."""
from __future__ import annotations

import numpy as np
import pytest

from gscodec.errors import InputError
from gscodec.scene import GaussianScene, read_ply, write_ply
from gscodec.scene.ply import ply_bytes, read_ply_bytes


def make_scene(n: int = 50, degree: int = 1, seed: int = 0) -> GaussianScene:
    rng = np.random.default_rng(seed)
    k1 = (degree + 1) ** 2 - 1
    return GaussianScene(
        rng.normal(size=(n, 3)).astype(np.float32), rng.normal(size=(n, 3)).astype(np.float32),
        (0.2 * rng.normal(size=(n, k1, 3))).astype(np.float32), rng.normal(size=n).astype(np.float32),
        rng.uniform(-6, -2, size=(n, 3)).astype(np.float32), rng.normal(size=(n, 4)).astype(np.float32))


def _same(a: GaussianScene, b: GaussianScene) -> None:
    for f in ("means", "sh_dc", "sh_rest", "opacity", "scales", "rotations"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_round_trip(tmp_path, degree):
    s = make_scene(40, degree)
    p = tmp_path / "s.ply"
    write_ply(s, p)
    r = read_ply(p)
    assert r.sh_degree == degree
    _same(s, r)


def test_channel_major_f_rest():
    s = make_scene(3, 1)
    import io

    import plyfile

    v = plyfile.PlyData.read(io.BytesIO(ply_bytes(s)))["vertex"]
    # f_rest_0..2 are the three red coefficients, f_rest_3 the first green one.
    np.testing.assert_array_equal(v["f_rest_1"], s.sh_rest[:, 1, 0])
    np.testing.assert_array_equal(v["f_rest_3"], s.sh_rest[:, 0, 1])
    np.testing.assert_array_equal(v["nx"], 0)


def _plyfile_bytes(arrays: dict, text: bool = False, dtype: str = "f4") -> bytes:
    import io

    import plyfile

    n = len(next(iter(arrays.values())))
    rec = np.zeros(n, dtype=[(k, dtype) for k in arrays])
    for k, v in arrays.items():
        rec[k] = v
    buf = io.BytesIO()
    plyfile.PlyData([plyfile.PlyElement.describe(rec, "vertex")], text=text).write(buf)
    return buf.getvalue()


def _props(s: GaussianScene) -> dict:
    d = {"x": s.means[:, 0], "y": s.means[:, 1], "z": s.means[:, 2]}
    for i in range(3):
        d[f"f_dc_{i}"] = s.sh_dc[:, i]
    rest = s.sh_rest.transpose(0, 2, 1).reshape(s.count, -1)
    for i in range(rest.shape[1]):
        d[f"f_rest_{i}"] = rest[:, i]
    d["opacity"] = s.opacity
    for i in range(3):
        d[f"scale_{i}"] = s.scales[:, i]
    for i in range(4):
        d[f"rot_{i}"] = s.rotations[:, i]
    return d


@pytest.mark.parametrize("text,dtype", [(True, "f4"), (False, "f8"), (False, "i2")])
def test_ascii_and_other_dtypes(text, dtype):
    s = make_scene(20, 2)
    if dtype == "i2":
        for f in ("means", "sh_dc", "sh_rest", "opacity", "scales", "rotations"):
            setattr(s, f, np.rint(getattr(s, f) * 10).astype(np.float32))
    r = read_ply_bytes(_plyfile_bytes(_props(s), text=text, dtype=dtype))
    np.testing.assert_allclose(r.sh_rest, s.sh_rest, rtol=1e-6)
    np.testing.assert_allclose(r.means, s.means, rtol=1e-6)
    np.testing.assert_allclose(r.rotations, s.rotations, rtol=1e-6)


@pytest.mark.parametrize("byte_order", ["<", ">"])
def test_binary_fast_path_matches_plyfile(byte_order):
    import io

    import plyfile

    from gscodec.scene.ply import _to_scene

    s = make_scene(30, 1, seed=3)
    props = _props(s)
    rec = np.zeros(30, dtype=[(k, "f8" if k == "x" else "f4") for k in props] + [("red", "u1")])
    for k, v in props.items():
        rec[k] = v
    head = np.zeros(2, dtype=[("a", "i2"), ("b", "f8")])   # an element before the vertices
    buf = io.BytesIO()
    plyfile.PlyData([plyfile.PlyElement.describe(head, "extra"), plyfile.PlyElement.describe(rec, "vertex")],
                    byte_order=byte_order).write(buf)
    data = buf.getvalue()
    slow = _to_scene(plyfile.PlyData.read(io.BytesIO(data))["vertex"].data, "reject")
    _same(read_ply_bytes(data), slow)
    _same(read_ply_bytes(data), s)


def test_missing_property():
    d = _props(make_scene(5, 0))
    del d["scale_1"]
    with pytest.raises(InputError, match="scale_1"):
        read_ply_bytes(_plyfile_bytes(d))


def test_bad_rest_count():
    d = _props(make_scene(5, 1))
    del d["f_rest_8"]
    with pytest.raises(InputError, match="f_rest"):
        read_ply_bytes(_plyfile_bytes(d))


def test_nan_reject_and_drop():
    s = make_scene(10, 1)
    s.means[2, 1] = np.nan
    s.sh_rest[5, 0, 2] = np.inf
    data = ply_bytes(s)
    with pytest.raises(InputError, match="2 of 10"):
        read_ply_bytes(data)
    r = read_ply_bytes(data, nan_policy="drop")
    assert r.count == 8
    np.testing.assert_array_equal(r.means, np.delete(s.means, [2, 5], axis=0))
    s.opacity[:] = np.nan
    with pytest.raises(InputError):
        read_ply_bytes(ply_bytes(s), nan_policy="drop")


def test_infinite_opacity_saturates_with_warning():
    s = make_scene(10, 1)
    s.opacity[:] = np.linspace(-3, 3, 10)
    s.opacity[1], s.opacity[4] = np.inf, -np.inf
    s.scales[7, 0] = -np.inf  # Inf outside the opacity is still bad data
    data = ply_bytes(s)
    with pytest.raises(InputError, match="1 of 10"):
        with pytest.warns(UserWarning):
            read_ply_bytes(data)
    with pytest.warns(UserWarning, match="2 Gaussians with an infinite opacity"):
        r = read_ply_bytes(data, nan_policy="drop")
    assert r.count == 9 and np.isfinite(r.opacity).all()
    assert r.opacity[1] == 12.0 and r.opacity[4] == -12.0
    keep = np.delete(np.arange(10), 7)
    np.testing.assert_array_equal(np.delete(r.opacity, [1, 4]), np.delete(s.opacity[keep], [1, 4]))
    # The saturation level follows the largest finite logit when that is larger.
    s.scales[7, 0] = 0.0
    s.opacity[0] = 20.5
    with pytest.warns(UserWarning):
        r = read_ply_bytes(ply_bytes(s))
    assert r.count == 10 and r.opacity[1] == np.float32(20.5) and r.opacity[4] == np.float32(-20.5)


def test_zero_vertices_not_ply_truncated_absurd():
    s = make_scene(4, 0)
    data = ply_bytes(s)
    with pytest.raises(InputError, match="zero"):
        read_ply_bytes(data.replace(b"element vertex 4", b"element vertex 0").split(b"end_header\n")[0]
                       + b"end_header\n")
    with pytest.raises(InputError, match="not a PLY"):
        read_ply_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(InputError, match="truncated"):
        read_ply_bytes(data[:-5])
    with pytest.raises(InputError):
        read_ply_bytes(data.replace(b"element vertex 4", b"element vertex 400000000000"))
    with pytest.raises(InputError):
        read_ply_bytes(b"ply\nformat binary_little_endian 1.0\n")
    with pytest.raises(InputError, match="no 'vertex'"):
        read_ply_bytes(b"ply\nformat ascii 1.0\nelement face 0\nend_header\n")


def test_missing_file(tmp_path):
    with pytest.raises(InputError):
        read_ply(tmp_path / "nope.ply")


def test_write_is_atomic_and_respects_force(tmp_path):
    from gscodec.errors import OutputError

    p = tmp_path / "o.ply"
    write_ply(make_scene(3, 0), p)
    with pytest.raises(OutputError):
        write_ply(make_scene(3, 0), p, force=False)
    assert [x.name for x in tmp_path.iterdir()] == ["o.ply"]


def test_written_in_parts_gives_the_same_file(tmp_path, monkeypatch):
    from gscodec.scene import ply

    s = make_scene(50, 2, seed=5)
    whole = ply_bytes(s)
    monkeypatch.setattr(ply, "PLY_ROWS", 7)
    assert len(list(ply.ply_parts(s))) == 1 + 8
    write_ply(s, tmp_path / "p.ply")
    assert (tmp_path / "p.ply").read_bytes() == whole
    _same(s, read_ply(tmp_path / "p.ply"))
