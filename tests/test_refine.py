"""Decoder refinement against restored views, and the full .gsz encode/decode path."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gscodec.container import read_container, write_container  # noqa: E402
from gscodec.errors import GscodecError, InputError  # noqa: E402
from gscodec.render.cameras import orbit_cameras  # noqa: E402
from gscodec.render.scene3d import render_gaussian_scene  # noqa: E402
from gscodec.scene import refine as rf  # noqa: E402
from synthetic_scenes import perturb, tiny_scene  # noqa: E402


def mean_loss(scene, cams, targets) -> float:
    return float(np.mean([float(rf.refine_loss(render_gaussian_scene(scene, c), torch.from_numpy(t)))
                          for c, t in zip(cams, targets)]))


@pytest.fixture(scope="module")
def setup():
    scene = tiny_scene()
    base = perturb(scene)
    cams = orbit_cameras(scene.means, n=6, width=32, height=32)
    targets = [render_gaussian_scene(scene, c).clamp(0, 1).numpy() for c in cams]
    return scene, base, cams, targets


def test_refinement_reduces_loss(setup):
    _, base, cams, targets = setup
    losses = []
    out = rf.refine_scene(base, cams, targets, 20, device="cpu", patch=None,
                          callback=lambda i, v: losses.append(v))
    assert len(losses) == 20 and out.count == base.count
    assert out.sh_rest.shape == base.sh_rest.shape
    before, after = mean_loss(base, cams, targets), mean_loss(out, cams, targets)
    assert after < 0.85 * before, (before, after)


def test_zero_steps_returns_base(setup):
    _, base, cams, targets = setup
    assert rf.refine_scene(base, cams, targets, 0, device="cpu") is base
    with pytest.raises(InputError):
        rf.refine_scene(base, cams, targets[:2], 5, device="cpu")
    with pytest.raises(InputError):
        rf.refine_scene(base, cams, targets, -1, device="cpu")


def test_defaults():
    cams = orbit_cameras(np.random.default_rng(0).normal(size=(50, 3)), n=4, width=800, height=600)
    assert rf.default_steps("cuda") == 5000 and 0 < rf.default_steps("cpu") < 5000
    assert rf.default_patch("cuda") is None and 0 < rf.default_patch("cpu") < 800
    crop = rf.crop_camera(cams[0], 100, 50, 64, 32)
    assert (crop.width, crop.height) == (64, 32)
    # A crop camera sees exactly the window of the full view.
    from gscodec.render.scene3d import render_gaussian_scene as rgs
    scene = tiny_scene(50)
    c = orbit_cameras(scene.means, n=1, width=48, height=40)[0]
    full = rgs(scene, c).numpy()
    part = rgs(scene, rf.crop_camera(c, 8, 4, 24, 20)).numpy()
    # (float rounding and the renderer's frustum-relative Jacobian clamp differ slightly)
    np.testing.assert_allclose(part, full[4:24, 8:32], atol=1e-3)


def test_patch_and_scale_refinement(setup):
    _, base, cams, targets = setup
    out = rf.refine_scene(base, cams, targets, 3, device="cpu", patch=16)
    assert np.isfinite(out.means).all() and not np.array_equal(out.sh_dc, base.sh_dc)
    out = rf.refine_scene(base, cams, targets, 2, device="cpu", scale=0.5)
    assert np.isfinite(out.means).all() and not np.array_equal(out.sh_dc, base.sh_dc)


def test_ssim_map_identity():
    x = torch.rand(1, 3, 16, 16)
    assert torch.allclose(rf.ssim_map(x, x), torch.ones(1, 3, 16, 16), atol=1e-4)
    assert float(rf.ssim_map(x, torch.rand(1, 3, 16, 16)).mean()) < 0.5


# ----------------------------------------------------------------------------- full .gsz path


@pytest.fixture(scope="module")
def full_file(setup):
    pytest.importorskip("gscodec.scene.codec")
    from gscodec.scene.enhanced import encode_scene_full

    scene, _, cams, _ = setup
    return scene, cams, encode_scene_full(scene, quality="low", cameras=cams, side_views=0.5,
                                          residual_quality="high", device="cpu")


def test_full_round_trip(full_file):
    from gscodec.scene.codec import decode_scene
    from gscodec.scene.enhanced import decode_scene_full
    from gscodec.scene.sideinfo import decode_side_info, has_side_info

    scene, cams, blob = full_file
    cont = read_container(blob, "gsz")
    assert has_side_info(cont) and decode_side_info(cont).count == 3
    base = decode_scene(blob)                  # base-only decoders skip the side information
    same = decode_scene_full(blob, refine_steps=0)
    assert np.array_equal(same.means, base.means) and np.array_equal(same.sh_dc, base.sh_dc)
    assert np.array_equal(decode_scene_full(blob, restore="none").sh_dc, base.sh_dc)
    out = decode_scene_full(blob, refine_steps=15, restore="residual", device="cpu",
                            refine_scale=1.0)
    assert out.count == base.count
    # The refined Gaussians render closer to the original at the side-information views.
    side = decode_side_info(cont)
    tg = [render_gaussian_scene(scene, c).clamp(0, 1).numpy() for c in side.cameras]
    assert mean_loss(out, side.cameras, tg) < mean_loss(base, side.cameras, tg)


def test_full_without_side_info(setup):
    pytest.importorskip("gscodec.scene.codec")
    from gscodec.scene.enhanced import decode_scene_full, encode_scene_full
    from gscodec.scene.sideinfo import has_side_info

    scene, _, cams, _ = setup
    blob = encode_scene_full(scene, quality="low", side_info=False)
    assert not has_side_info(read_container(blob, "gsz"))
    out = decode_scene_full(blob, refine_steps=10)
    assert out.count == scene.count


def test_full_corrupt_side_info(full_file):
    from gscodec.scene.enhanced import decode_scene_full

    _, _, blob = full_file
    cont = read_container(blob, "gsz")
    from gscodec.container import Chunk

    keep = [Chunk(c.type, c.data) for c in cont.chunks if c.type not in (b"meta", b"GEND")]
    dropped = [c for i, c in enumerate(keep) if not (c.type == b"vres" and i == len(keep) - 1)]
    broken = write_container("gsz", dropped)
    with pytest.raises(GscodecError):
        decode_scene_full(broken, refine_steps=5, restore="residual", device="cpu")


def test_crops_centre_on_content():
    target = np.zeros((64, 80, 3), np.float32)
    target[50:60, 5:12] = 0.7                      # content only near the bottom-left corner
    content = rf.content_pixels(target)
    assert content.size == 70
    rng = np.random.default_rng(0)
    for _ in range(50):
        x0, y0 = rf.crop_origin(content, 80, 64, 24, 24, rng)
        assert 0 <= x0 <= 80 - 24 and 0 <= y0 <= 64 - 24
        assert target[y0:y0 + 24, x0:x0 + 24].any()
    # A view with nothing but background falls back to every pixel.
    assert rf.content_pixels(np.zeros((4, 5, 3), np.float32)).size == 20


def test_cell_refinement_stays_within_cells(setup):
    _, base, cams, targets = setup
    n = base.count
    rng = np.random.default_rng(3)
    cells = {"means": np.full((n, 1), 0.02, np.float32), "sh_dc": rng.uniform(0.05, 0.2, (n, 1)).astype(np.float32),
             "sh_rest": np.full((n, 1, 1), 0.05, np.float32), "opacity": np.full(n, 0.2, np.float32),
             "scales": np.full((n, 1), 0.1, np.float32), "rotations": np.full((n, 1), 0.05, np.float32)}
    out = rf.refine_scene(base, cams, targets, 40, device="cpu", patch=None, cells=cells)
    rf.refine_scene(base, cams, targets, 2, device="cpu", patch=16, cells=cells)  # crops too
    for k, c in cells.items():
        moved = np.abs(getattr(out, k) - getattr(base, k))
        assert (moved <= rf.CELL_BOUND * c * (1 + 1e-5) + 1e-6).all(), k
    assert mean_loss(out, cams, targets) < mean_loss(base, cams, targets)
