"""Side information (.gsz enhancement layer): residual mapping, chunk round trip, bad input."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from gscodec.container import Chunk, read_container, write_container
from gscodec.errors import (CorruptError, GscodecError, InputError, LimitError, TruncatedError,
                            UnsupportedError)
from gscodec.render.cameras import orbit_cameras
from gscodec.scene import sideinfo as si
from synthetic_scenes import perturb, tiny_scene


@pytest.fixture(scope="module")
def coded():
    scene = tiny_scene()
    base = perturb(scene)
    cams = orbit_cameras(scene.means, n=5, width=32, height=24)
    chunks = si.encode_side_info(scene, base, cameras=cams, side_views=0.4,
                                 residual_quality=0.0, device="cpu")
    return scene, base, cams, chunks


def test_residual_mapping_inverse():
    rng = np.random.default_rng(0)
    r = rng.normal(0, 0.05, (17, 13, 3)).astype(np.float32)
    s = si.residual_scale(r)
    assert si.MIN_SCALE <= s <= si.MAX_SCALE
    px = si.residual_to_pixels(r, s)
    assert px.dtype == np.uint8
    back = si.pixels_to_residual(px, s)
    inside = (px > 0) & (px < 255)
    assert inside.mean() > 0.99                 # the 99.9th percentile maps inside the range
    assert np.abs(back - r)[inside].max() <= 0.5 / s + 1e-6
    assert si.residual_to_pixels(np.zeros((2, 2, 3)), s).max() == si.OFFSET


def test_residual_scale_bounds():
    assert si.residual_scale(np.zeros((4, 4, 3))) == si.MAX_SCALE
    assert si.residual_scale(np.full((4, 4, 3), 0.9)) == si.MIN_SCALE


def test_sample_views_uniform():
    idx = si.sample_views(24, 0.4)
    assert len(idx) == 10 and len(set(idx.tolist())) == 10
    assert np.diff(idx).max() <= 3
    assert len(si.sample_views(3, 0.01)) == 1
    with pytest.raises(InputError):
        si.sample_views(10, 0.0)


def test_distance_presets():
    d = [si.residual_distance(q) for q in ("low", "medium", "high")]
    assert d[0] > d[1] > d[2] > 0
    with pytest.raises(InputError):
        si.residual_distance("ultra")


def test_chunks_round_trip(coded):
    from gscodec.render.scene3d import render_gaussian_scene

    scene, base, cams, chunks = coded
    assert [c.type for c in chunks] == [b"vhdr"] + [b"vres"] * 2
    assert all(not (0x41 <= c.type[0] <= 0x5A) for c in chunks)     # ancillary
    cont = read_container(write_container("gsz", chunks))
    assert si.has_side_info(cont)
    side = si.decode_side_info(cont)
    assert side.count == 2
    for cam, got, res, s in zip([cams[i] for i in si.sample_views(5, 0.4)], side.cameras,
                                side.residuals, side.scales):
        assert (got.width, got.height) == (cam.width, cam.height)
        np.testing.assert_allclose(got.viewmat, cam.viewmat, atol=1e-6)
        np.testing.assert_allclose(got.K, cam.K, rtol=1e-6)
        true = (render_gaussian_scene(scene, cam).clamp(0, 1) -
                render_gaussian_scene(base, cam).clamp(0, 1)).numpy()
        assert res.shape == (cam.height, cam.width, 3)
        assert np.abs(res - true).max() <= 0.5 / s + 1e-5     # lossless JPEG XL: quantisation only
        assert np.abs(true).max() > 0.01


def test_lossy_presets_shrink(coded):
    scene, base, cams, _ = coded
    sizes = {}
    for q in ("high", "low"):
        ch = si.encode_side_info(scene, base, cameras=cams[:1], side_views=1.0,
                                 residual_quality=q, device="cpu")
        sizes[q] = len(ch[1].data)
    assert sizes["low"] < sizes["high"]


def _container(chunks):
    return read_container(write_container("gsz", chunks))


def test_missing_and_corrupt_chunks(coded):
    _, _, _, chunks = coded
    head, res = chunks[0], chunks[1:]
    bad = []
    bad.append(_container(res))                                          # no header
    bad.append(_container([head] + res[:1]))                             # a residual missing
    bad.append(_container([Chunk(b"vhdr", head.data[:-3])] + res))       # truncated header
    bad.append(_container([Chunk(b"vhdr", bytes([9]) + head.data[1:])] + res))   # version
    bad.append(_container([head, Chunk(b"vres", b"\xff\x0a garbage")] + res[1:]))  # bad JXL
    bad.append(_container([Chunk(b"vhdr", head.data[:4] + b"\xff\x1f")] + res))   # absurd count
    swapped = bytearray(head.data)
    swapped[5:7] = (1000).to_bytes(2, "little")                           # width disagrees
    bad.append(_container([Chunk(b"vhdr", bytes(swapped))] + res))
    kinds = []
    for cont in bad:
        with pytest.raises(GscodecError) as exc:
            si.decode_side_info(cont)
        kinds.append(type(exc.value))
    assert kinds[0] is CorruptError and kinds[1] is CorruptError
    assert kinds[2] in (CorruptError, TruncatedError)
    assert kinds[3] is UnsupportedError and kinds[4] is CorruptError
    assert kinds[5] in (CorruptError, LimitError) and kinds[6] is CorruptError


def test_decode_without_torch(coded, tmp_path):
    _, _, _, chunks = coded
    blob = write_container("gsz", chunks)
    (tmp_path / "s.gsz").write_bytes(blob)
    side = si.decode_side_info(read_container(blob))
    np.save(tmp_path / "r0.npy", side.residuals[0])
    code = textwrap.dedent(f"""
        import sys
        class _Block:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked")
        sys.meta_path.insert(0, _Block())
        import numpy as np
        from gscodec.container import read_container
        from gscodec.scene.sideinfo import decode_side_info
        side = decode_side_info(read_container(open({str(tmp_path / 's.gsz')!r}, 'rb').read()))
        assert np.array_equal(side.residuals[0], np.load({str(tmp_path / 'r0.npy')!r}))
        assert "torch" not in sys.modules
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]
