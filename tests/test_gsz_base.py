"""The .gsz base layer: round trips within the quantiser bounds, bit-exactness, bad input."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from gscodec.container import Chunk, read_container, write_container
from gscodec.errors import GscodecError, InputError, LimitError
from gscodec.scene import GaussianScene, decode_scene, encode_scene
from gscodec.scene.base.params import QUALITIES
from gscodec.scene.base.pose import canonical_pose
from gscodec.scene.codec import decode_base_integers, encode_base_chunks, sort_order


def make_scene(n: int, degree: int, seed: int = 0) -> GaussianScene:
    """Gaussians near a surface with spatially smooth colours, like a trained scene."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(-1, 1, size=(n, 2))
    means = np.stack([u[:, 0], u[:, 1], 0.3 * np.sin(3 * u[:, 0])], 1) + 0.01 * rng.normal(size=(n, 3))
    k1 = (degree + 1) ** 2 - 1
    dc = np.stack([np.sin(2 * u[:, 0]), np.cos(2 * u[:, 1]), u[:, 0] * u[:, 1]], 1) + 0.1 * rng.normal(size=(n, 3))
    rest = 0.1 * rng.laplace(size=(n, k1, 1)) + 0.02 * rng.normal(size=(n, k1, 3))
    return GaussianScene(means.astype(np.float32), dc.astype(np.float32), rest.astype(np.float32),
                         rng.normal(1, 2, size=n).astype(np.float32),
                         rng.uniform(-7, -3, size=(n, 3)).astype(np.float32),
                         rng.normal(size=(n, 4)).astype(np.float32))


def _check_bounds(scene: GaussianScene, quality: str, group_size: int) -> None:
    q = QUALITIES[quality]
    chunks, ints = encode_base_chunks(scene, quality=quality, group_size=group_size)
    data = write_container("gsz", chunks)
    dec = decode_scene(data)
    assert dec.count == scene.count and dec.sh_degree == scene.sh_degree
    origin, step, nb, gq, codes, order = sort_order(scene, q.pos_bits)
    o = scene.subset(order)
    # The encoder relabels each Gaussian's axes (same covariance); compare in its labelling.
    o.rotations, o.scales = canonical_pose(o.rotations, o.scales)
    assert np.abs(dec.means - o.means).max() <= 0.5 * step * 1.001 + 1e-6
    cls = ints["class"]
    caps = q.caps()
    for attr, st, cap in (("opacity", q.opacity_step, caps[0]), ("scales", q.scale_step, caps[1]),
                          ("sh_dc", q.dc_step, caps[3])):
        err = np.abs(getattr(dec, attr) - getattr(o, attr)).reshape(scene.count, -1).max(1)
        assert (err <= 0.5 * st * (1 << np.minimum(cls, cap)) * 1.001 + 1e-6).all(), attr
    # Rotation: w is the largest component, coded as 1; the others keep their ratio to it.
    assert (dec.rotations[:, 0] == 1).all()
    ratio = o.rotations / o.rotations[:, :1]
    bound = 0.5 * (1 << np.minimum(cls, caps[2])) / q.rot_levels * 1.001 + 1e-6
    assert (np.abs(dec.rotations - ratio).max(1) <= bound).all()
    if scene.sh_degree:
        direct = ints["sh_path"] == 0
        # With an SH transform the quantiser cell is a rotated cube: bound the error vector's
        # length (sqrt(D) half-steps; the integer basis is orthonormal to about 2**-14).
        d = 3 * scene.sh_rest.shape[1]
        err = np.linalg.norm((dec.sh_rest - o.sh_rest).reshape(scene.count, -1), axis=1)
        half = 0.5 * q.rest_step * (1 << np.minimum(cls, caps[4]))
        assert (err[direct] <= np.sqrt(d) * half[direct] * 1.002 + 1e-6).all()
        cb_start = np.concatenate([[0], np.cumsum(ints["codebook_sizes"])[:-1]])
        group = np.arange(scene.count) // group_size
        cw = ints["codebook"][cb_start[group] + ints["sh_index"]]
        t = ints["sh_transform"].reshape(-1, d, d)[group]
        vq = ~direct
        np.testing.assert_array_equal(ints["sh_rest"].reshape(scene.count, -1)[vq],
                                      np.einsum("nj,nji->ni", cw, t)[vq])
    # The decoder reproduces the encoder's canonical integers exactly.
    d = decode_base_integers(data)
    for k, v in ints.items():
        np.testing.assert_array_equal(d[k], v, err_msg=k)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_round_trip_every_degree(degree):
    _check_bounds(make_scene(1500, degree, seed=degree), "medium", 600)


@pytest.mark.parametrize("quality", ["low", "high"])
def test_round_trip_qualities(quality):
    _check_bounds(make_scene(700, 1, seed=7), quality, 1 << 18)


def test_both_sh_paths_used():
    ints = encode_base_chunks(make_scene(3000, 2, seed=3), quality="low")[1]
    assert 0 < ints["sh_path"].sum() < ints["sh_path"].size
    assert len(np.unique(ints["class"])) > 2


def test_sizes_grow_with_quality():
    s = make_scene(2000, 1, seed=4)
    sizes = [len(encode_scene(s, quality=q)) for q in ("low", "medium", "high")]
    assert sizes[0] < sizes[1] < sizes[2]


def test_bit_exact_and_deterministic():
    s = make_scene(1200, 3, seed=5)
    a = encode_scene(s, quality="medium")
    assert a == encode_scene(s, quality="medium")
    d1, d2 = decode_scene(a), decode_scene(a)
    for f in ("means", "sh_dc", "sh_rest", "opacity", "scales", "rotations"):
        assert getattr(d1, f).tobytes() == getattr(d2, f).tobytes()
    i1, i2 = decode_base_integers(a), decode_base_integers(a)
    assert all(np.array_equal(i1[k], i2[k]) for k in i1)


def test_duplicates_on_the_grid_are_kept():
    s = make_scene(300, 1, seed=6)
    idx = np.concatenate([np.arange(300), np.zeros(5, int), np.full(3, 17)])
    d = s.subset(idx)
    d.means[300:] += 1e-7  # same grid cell, not bit-identical
    out = decode_scene(encode_scene(d))
    assert out.count == 308
    _, counts = np.unique(out.means, axis=0, return_counts=True)
    assert sorted(counts)[-2:] == [4, 6]


def test_single_gaussian_and_flat_scene():
    s = make_scene(1, 2)
    assert decode_scene(encode_scene(s)).count == 1
    f = make_scene(50, 0)
    f.means[:] = 1.5
    out = decode_scene(encode_scene(f))
    assert np.abs(out.means - 1.5).max() < 1e-5


def test_bad_scenes_raise_input_error():
    s = make_scene(20, 1)
    s.scales[3, 0] = np.nan
    with pytest.raises(InputError):
        encode_scene(s)
    with pytest.raises(InputError):
        encode_scene(make_scene(20, 1), quality="ultra")


def test_extra_chunks_and_metadata():
    s = make_scene(100, 0)
    data = encode_scene(s, metadata={"x": 1}, extra_chunks=[Chunk(b"vabc", b"hello")])
    c = read_container(data)
    assert c.get(b"vabc") == b"hello" and c.metadata == {"x": 1}
    assert decode_scene(data).count == 100


def test_corrupt_and_truncated_files_raise_library_errors():
    s = make_scene(800, 2, seed=8)
    chunks, _ = encode_base_chunks(s, group_size=400)
    data = write_container("gsz", chunks)
    for cut in range(0, len(data), max(1, len(data) // 20)):
        with pytest.raises(GscodecError):
            decode_scene(data[:cut])
    rng = np.random.default_rng(0)
    ok = 0
    for trial in range(30):
        which = 0 if trial < 10 else 1 + trial % 2
        buf = bytearray(chunks[which].data)
        for _ in range(1 + trial % 3):
            buf[rng.integers(len(buf))] ^= 1 << int(rng.integers(8))
        bad = [Chunk(c.type, bytes(buf) if i == which else c.data) for i, c in enumerate(chunks)]
        try:
            decode_scene(write_container("gsz", bad))
            ok += 1
        except GscodecError:
            pass
    assert ok < 30
    with pytest.raises(GscodecError):
        decode_scene(write_container("gsz", chunks[:1] + chunks[2:]))
    with pytest.raises(GscodecError):
        decode_scene(write_container("gsz", [Chunk(b"SXYZ", b"")] + chunks))


def test_decoder_does_not_import_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import numpy as np\n"
            "from gscodec.scene import decode_scene\n"
            "from gscodec.scene.codec import encode_scene\n"
            "from gscodec.scene.model import GaussianScene\n"
            "r = np.random.default_rng(0)\n"
            "s = GaussianScene(*(r.normal(size=sh).astype('f4') for sh in [(50,3),(50,3),(50,3,3),(50,),(50,3),(50,4)]))\n"
            "print(decode_scene(encode_scene(s)).count)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "50"


def test_render_importance_ranks_visible_gaussians_and_round_trips():
    pytest.importorskip("torch")
    from gscodec.scene.base.importance import geometric_importance, importance, render_importance
    from gscodec.scene.codec import encode_scene as encode_base

    s = make_scene(300, 1, seed=3)
    s.scales[0] = -1.0          # large and opaque: covers many pixels in every view
    s.opacity[0] = 6.0
    s.scales[1] = -9.0          # tiny and nearly transparent
    s.opacity[1] = -6.0
    w = render_importance(s)
    assert w.shape == (300,) and np.isfinite(w).all() and (w > 0).all()
    assert w[0] > 10 * np.median(w) > w[1]
    # Small scenes take the geometric measure under 'auto'.
    np.testing.assert_array_equal(importance(s, "auto"), geometric_importance(s.opacity, s.scales))
    a = encode_base(s, quality="medium", importance="render")
    b = encode_base(s, quality="medium", importance="geometric")
    assert a != b   # different precision classes ...
    for blob in (a, b):  # ... both decode, within the per-class quantiser bounds
        dec = decode_scene(blob)
        assert dec.count == s.count
    with pytest.raises(InputError, match="importance"):
        encode_base(s, importance="psychic")


def test_decoded_cells_bound_the_quantisation_error():
    from gscodec.scene.codec import decode_base_cells

    scene = make_scene(1200, 2, seed=11)
    chunks, ints = encode_base_chunks(scene, quality="medium")
    dec, cells = decode_base_cells(read_container(write_container("gsz", chunks), "gsz"))
    assert np.array_equal(dec.sh_dc, decode_scene(write_container("gsz", chunks)).sh_dc)
    o = scene.subset(sort_order(scene, QUALITIES["medium"].pos_bits)[-1])
    o.rotations, o.scales = canonical_pose(o.rotations, o.scales)
    for attr in ("means", "opacity", "scales", "sh_dc"):
        c = cells[attr]
        assert c.dtype == np.float32 and (c > 0).all()
        err = np.abs(getattr(dec, attr) - getattr(o, attr))
        assert (err <= 0.5 * c * 1.001 + 1e-6).all(), attr
    direct = ints["sh_path"] == 0
    err = np.linalg.norm((dec.sh_rest - o.sh_rest)[direct].reshape(int(direct.sum()), -1), axis=1)
    d = 3 * scene.sh_rest.shape[1]
    assert (err <= 0.5 * np.sqrt(d) * cells["sh_rest"][direct].reshape(-1) * 1.002 + 1e-6).all()
    # Coarser precision classes have larger cells.
    cls = ints["class"]
    assert cells["sh_dc"][cls == cls.max()].min() > cells["sh_dc"][cls == cls.min()].max()


def test_sh_transform_on_large_groups_only():
    from gscodec.scene.base.transform import ONE

    big = encode_base_chunks(make_scene(700, 1, seed=21), quality="medium")[1]["sh_transform"]
    small = encode_base_chunks(make_scene(600, 1, seed=21), quality="medium")[1]["sh_transform"]
    assert not np.array_equal(big, np.eye(9, dtype=np.int64) * ONE)     # 700 >= 8 * 9**2
    np.testing.assert_array_equal(small, np.eye(9, dtype=np.int64) * ONE)
    # Rows are orthonormal up to the 2**-14 rounding, ordered by decreasing energy.
    np.testing.assert_allclose(big @ big.T / ONE**2, np.eye(9), atol=1e-3)


def test_sh_transform_round_trip_degree_2():
    _check_bounds(make_scene(4700, 2, seed=22), "medium", 1 << 18)


def test_sh_transform_dequantisation_is_exact_integer_arithmetic():
    from gscodec.scene.base.transform import TBITS

    s = make_scene(700, 1, seed=23)
    data = encode_scene(s, quality="low")
    ints = decode_base_integers(data)
    c = np.linalg.solve(ints["sh_transform"].T.astype(np.float64), ints["sh_rest"].reshape(700, -1).T).T
    np.testing.assert_allclose(c, np.rint(c), atol=1e-6)    # s = c @ T with integer c
    step = np.float64(np.float32(QUALITIES["low"].rest_step)) * 2.0 ** -TBITS
    expect = (ints["sh_rest"].astype(np.float64) * step).astype(np.float32)
    assert decode_scene(data).sh_rest.tobytes() == expect.tobytes()


def test_version_1_files_still_decode():
    from gscodec.scene.base.transform import ONE

    from gscodec.scene import codec

    s = make_scene(700, 1, seed=24)
    v1, v2 = codec.encode_scene(s, quality="medium", major=1), encode_scene(s, quality="medium")
    assert read_container(v1, "gsz").version[0] == 1 and read_container(v2, "gsz").version[0] == 2
    i1 = decode_base_integers(v1)
    np.testing.assert_array_equal(i1["sh_transform"], np.eye(9, dtype=np.int64) * ONE)
    assert not np.array_equal(decode_base_integers(v2)["sh_transform"], i1["sh_transform"])
    d1, d2 = decode_scene(v1), decode_scene(v2)
    for f in ("means", "sh_dc", "opacity", "scales", "rotations"):
        np.testing.assert_array_equal(getattr(d1, f), getattr(d2, f))
    # Both rest reconstructions are within the quantiser of the same originals.
    assert np.abs(d1.sh_rest - d2.sh_rest).max() < 0.5


def test_sh_transform_entry_over_the_cap_is_refused(monkeypatch):
    from gscodec.errors import LimitError
    from gscodec.scene.base import group
    from gscodec.scene.base.transform import ONE

    monkeypatch.setattr(group, "klt", lambda x: np.eye(x.shape[1], dtype=np.int64) * (ONE + 1))
    data = encode_scene(make_scene(700, 1, seed=25), quality="medium")
    with pytest.raises(LimitError):
        decode_scene(data)


def test_group_by_group_decoding_matches_the_merged_integers():
    from gscodec.scene.codec import HEADER_TYPE, _dequantise, _read_header, decode_base_cells

    scene = make_scene(1300, 2, seed=31)
    chunks, ints = encode_base_chunks(scene, quality="medium", group_size=500)
    lean, none = encode_base_chunks(scene, quality="medium", group_size=500, keep_ints=False)
    assert none is None and [c.data for c in lean] == [c.data for c in chunks]
    c = read_container(write_container("gsz", chunks))
    whole = _dequantise(_read_header(c.require(HEADER_TYPE), c.version[0]), ints)
    dec, cells = decode_base_cells(c)
    for name in ("means", "sh_dc", "sh_rest", "opacity", "scales", "rotations"):
        assert np.array_equal(getattr(dec, name), getattr(whole, name)), name
    step = QUALITIES["medium"].rest_step * 2.0 ** np.minimum(ints["class"], QUALITIES["medium"].caps()[4])
    assert np.allclose(cells["sh_rest"][:, 0, 0], step)


def test_header_count_beyond_the_group_bytes_is_refused_before_allocating():
    from gscodec.scene.codec import HEADER_TYPE, _write_header, _read_header

    chunks, _ = encode_base_chunks(make_scene(300, 1, seed=32), quality="low")
    h = _read_header(chunks[0].data, 2)
    h.count = 1 << 20                      # one group may hold this many, a few KB may not
    bad = [Chunk(HEADER_TYPE, _write_header(h))] + chunks[1:]
    with pytest.raises(LimitError, match="declares"):
        decode_scene(write_container("gsz", bad))
