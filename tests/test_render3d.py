"""3D Gaussian renderer: SH basis, closed-form single Gaussians, conventions, compositing rules,
gradients (analytic backward vs autograd reference and finite differences), gsplat parity."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gscodec.render import scene3d as S
from gscodec.render.cameras import Camera, intrinsics, look_at
from gscodec.render.scene3d import (ALPHA_MAX, ALPHA_MIN, EPS2D, T_MIN, activate_scene,
                                    gsplat_available, render_gaussian_scene, render_scene)
from gscodec.render.sh import SH_C0, eval_sh, sh_basis, sh_to_rgb
from gscodec.scene.model import GaussianScene


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny tensors: thread start-up and contention cost more than the work.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def ident_cam(w: int = 64, h: int = 48, f: float = 60.0, cx: float | None = None,
              cy: float | None = None) -> Camera:
    return Camera(np.eye(4), intrinsics(f, f, w, h, cx, cy), w, h, "test")


def one(mean, scale=(0.1, 0.1, 0.1), quat=(1.0, 0, 0, 0), opacity=0.8, rgb=(0.9, 0.2, 0.4),
        dtype=torch.float64):
    """A single Gaussian whose degree-0 SH gives colour `rgb`."""
    t = lambda v: torch.tensor([v], dtype=dtype)
    sh = (torch.tensor(rgb, dtype=dtype) - 0.5) / SH_C0
    return t(mean), t(quat), t(scale), torch.tensor([opacity], dtype=dtype), sh.reshape(1, 1, 3)


def cat(*gs):
    return tuple(torch.cat(parts) for parts in zip(*gs))


def pixel_grid(w: int, h: int, dtype=torch.float64):
    ys, xs = torch.meshgrid(torch.arange(h, dtype=dtype) + 0.5, torch.arange(w, dtype=dtype) + 0.5,
                            indexing="ij")
    return xs, ys


def random_scene(n: int, seed: int, sh_k: int = 4, dtype=torch.float64, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.rand(*s, generator=g, dtype=dtype)
    means = torch.stack([(r(n) - 0.5) * 2.4 * spread, (r(n) - 0.5) * 1.8 * spread, 2.0 + 3.0 * r(n)], -1)
    quats = torch.randn(n, 4, generator=g, dtype=dtype)
    scales = 0.03 + 0.25 * r(n, 3)
    opac = 0.1 + 0.85 * r(n)
    sh = torch.randn(n, sh_k, 3, generator=g, dtype=dtype) * 0.4
    return means, quats, scales, opac, sh


def reference_render(means, quats, scales, opacities, sh, camera, bg):
    """Dense autograd oracle: every pixel against every visible Gaussian, direct quadratic form."""
    cam = S._cam_tensors(camera, means.device, means.dtype)
    proj = S.project_gaussians(means, quats, scales, opacities, cam)
    colors = sh_to_rgb(sh[proj.ids], means[proj.ids] - cam.campos)
    order = torch.argsort(proj.depths, stable=True)
    m, con, op, col = proj.means2d[order], proj.conics[order], opacities[proj.ids][order], colors[order]
    xs, ys = pixel_grid(camera.width, camera.height, means.dtype)
    dx = m[:, 0] - xs.reshape(-1, 1)
    dy = m[:, 1] - ys.reshape(-1, 1)
    sigma = 0.5 * (con[:, 0] * dx * dx + con[:, 2] * dy * dy) + con[:, 1] * dx * dy
    alpha = (op * torch.exp(-sigma)).clamp(max=ALPHA_MAX)
    alpha = torch.where((alpha >= ALPHA_MIN) & (sigma >= 0), alpha, torch.zeros_like(alpha))
    incl = torch.cumprod(1 - alpha, dim=1)
    keep = incl > T_MIN
    excl = torch.cat([torch.ones_like(incl[:, :1]), incl[:, :-1]], 1)
    w = alpha * excl * keep
    t_fin = torch.where(keep, 1 - alpha, torch.ones_like(alpha)).prod(1)
    out = w @ col + t_fin[:, None] * bg
    return out.reshape(camera.height, camera.width, 3)


# ----------------------------------------------------------------------------- SH


def test_sh_basis_is_orthonormal():
    # Fibonacci sphere quadrature: the 16 real SH functions are orthonormal on the sphere.
    n = 20000
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / n
    phi = math.pi * (1 + 5 ** 0.5) * i
    d = torch.stack([torch.sqrt(1 - z * z) * torch.cos(phi), torch.sqrt(1 - z * z) * torch.sin(phi), z], -1)
    b = sh_basis(d, 3)
    gram = b.T @ b * (4 * math.pi / n)
    assert torch.allclose(gram, torch.eye(16, dtype=torch.float64), atol=2e-3)


def test_sh_signs_match_3dgs_convention():
    x, y, z = 0.48, -0.6, 0.64     # unit vector
    b = sh_basis(torch.tensor([[x, y, z]], dtype=torch.float64), 3)[0].numpy()
    c1 = 0.4886025119029199
    expect = [0.28209479177387814, -c1 * y, c1 * z, -c1 * x,
              1.0925484305920792 * x * y, -1.0925484305920792 * y * z,
              0.31539156525252005 * (2 * z * z - x * x - y * y), -1.0925484305920792 * x * z,
              0.5462742152960396 * (x * x - y * y),
              -0.5900435899266435 * y * (3 * x * x - y * y), 2.890611442640554 * x * y * z,
              -0.4570457994644658 * y * (4 * z * z - x * x - y * y),
              0.3731763325901154 * z * (2 * z * z - 3 * x * x - 3 * y * y),
              -0.4570457994644658 * x * (4 * z * z - x * x - y * y),
              1.445305721320277 * z * (x * x - y * y), -0.5900435899266435 * x * (x * x - 3 * y * y)]
    np.testing.assert_allclose(b, expect, rtol=1e-12)


def test_sh_degree0_colour_formula_and_clamp():
    coeffs = torch.tensor([[[1.0, -3.0, 0.0]]], dtype=torch.float64)
    rgb = sh_to_rgb(coeffs, torch.tensor([[0.3, 2.0, -1.0]], dtype=torch.float64))
    np.testing.assert_allclose(rgb[0].numpy(), [SH_C0 + 0.5, 0.0, 0.5])


def test_sh_direction_is_normalised():
    coeffs = torch.randn(5, 9, 3, dtype=torch.float64)
    d = torch.randn(5, 3, dtype=torch.float64)
    assert torch.allclose(eval_sh(coeffs, d), eval_sh(coeffs, 7.5 * d))


# ----------------------------------------------------------------------------- closed forms


def test_single_gaussian_closed_form_peak_and_falloff():
    f, z, s, op = 60.0, 4.0, 0.1, 0.8
    cam = ident_cam(64, 48, f, cx=32.5, cy=24.5)        # mean projects onto pixel (24, 32)'s centre
    rgb = torch.tensor([0.9, 0.2, 0.4], dtype=torch.float64)
    bg = torch.tensor([0.1, 0.3, 0.05], dtype=torch.float64)
    img = render_scene(*one((0.0, 0.0, z), (s, s, s), opacity=op), cam, bg, backend="torch")
    var = (f * s / z) ** 2 + EPS2D
    xs, ys = pixel_grid(64, 48)
    alpha = op * torch.exp(-0.5 * ((xs - 32.5) ** 2 + (ys - 24.5) ** 2) / var)
    alpha = torch.where(alpha >= ALPHA_MIN, alpha, torch.zeros_like(alpha))
    expect = alpha[..., None] * rgb + (1 - alpha[..., None]) * bg
    assert torch.allclose(img, expect, atol=1e-9)
    assert torch.allclose(img[24, 32], op * rgb + (1 - op) * bg, atol=1e-12)
    assert torch.equal(img[0, 0], bg)                   # tail below 1/255: exactly background


def test_rotated_anisotropic_gaussian_closed_form():
    f, z, th = 50.0, 3.0, 0.6
    sx, sy = 0.2, 0.05
    cam = ident_cam(48, 48, f, cx=24.5, cy=24.5)
    quat = (math.cos(th / 2), 0.0, 0.0, math.sin(th / 2))   # rotation by th about the optical axis
    img = render_scene(*one((0.0, 0.0, z), (sx, sy, 0.01), quat=quat, opacity=0.6, rgb=(1, 1, 1)),
                       cam, (0.0, 0.0, 0.0), backend="torch")
    rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    cov = (f / z) ** 2 * rot @ np.diag([sx * sx, sy * sy]) @ rot.T + EPS2D * np.eye(2)
    inv = np.linalg.inv(cov)
    xs, ys = pixel_grid(48, 48)
    dx, dy = xs.numpy() - 24.5, ys.numpy() - 24.5
    a = 0.6 * np.exp(-0.5 * (inv[0, 0] * dx * dx + 2 * inv[0, 1] * dx * dy + inv[1, 1] * dy * dy))
    a = np.where(a >= ALPHA_MIN, a, 0.0)
    np.testing.assert_allclose(img[..., 0].numpy(), a, atol=1e-9)


def test_off_axis_projection_matches_numeric_jacobian():
    cam = ident_cam(80, 60, 70.0, cx=37.0, cy=31.0)
    mean = torch.tensor([[0.4, -0.3, 2.5]], dtype=torch.float64)
    quat = torch.tensor([[0.9, 0.2, -0.3, 0.1]], dtype=torch.float64)
    scale = torch.tensor([[0.05, 0.12, 0.03]], dtype=torch.float64)
    m2, cov2, z = S._project(mean, quat, scale, S._cam_tensors(cam, mean.device, mean.dtype))
    proj = lambda p: np.array([70.0 * p[0] / p[2] + 37.0, 70.0 * p[1] / p[2] + 31.0])
    p0 = mean[0].numpy()
    jac = np.stack([(proj(p0 + e) - proj(p0 - e)) / 2e-6 for e in np.eye(3) * 1e-6], 1)
    r = S.quat_to_rotmat(quat)[0].numpy()
    sig = r @ np.diag(scale[0].numpy() ** 2) @ r.T
    expect = jac @ sig @ jac.T + EPS2D * np.eye(2)
    np.testing.assert_allclose(m2[0].numpy(), proj(p0), rtol=1e-12)
    np.testing.assert_allclose(cov2[0].numpy(), [expect[0, 0], expect[0, 1], expect[1, 1]], rtol=1e-6)
    assert z.item() == 2.5


# ----------------------------------------------------------------------------- conventions


def brightest(img):
    idx = int(img.sum(-1).argmax())
    return divmod(idx, img.shape[1])          # (row, col)


def test_plus_x_is_right_and_plus_y_is_down():
    cam = ident_cam(64, 64, 60.0)
    row, col = brightest(render_scene(*one((0.5, 0.0, 3.0)), cam, backend="torch"))
    assert col > 40 and abs(row - 32) <= 1
    row, col = brightest(render_scene(*one((0.0, 0.5, 3.0)), cam, backend="torch"))
    assert row > 40 and abs(col - 32) <= 1


def test_look_at_camera_orientation():
    # Camera on -z looking at the origin with world up = -y: world +x right, world +y down.
    k = intrinsics(60.0, 60.0, 64, 64)
    cam = look_at(np.array([0.0, 0.0, -3.0]), np.zeros(3), np.array([0.0, -1.0, 0.0]), k, 64, 64)
    _, col = brightest(render_scene(*one((0.4, 0.0, 0.0)), cam, backend="torch"))
    row, _ = brightest(render_scene(*one((0.0, 0.4, 0.0)), cam, backend="torch"))
    assert col >= 38 and row >= 38 and abs(col - 40) <= 1 and abs(row - 40) <= 1


def test_behind_camera_and_near_plane_are_culled():
    cam = ident_cam()
    bg = (0.2, 0.2, 0.2)
    for z in (-3.0, 0.005):
        img = render_scene(*one((0.0, 0.0, z), (0.5, 0.5, 0.5)), cam, bg, backend="torch")
        assert torch.all(img == 0.2)


def test_near_opaque_gaussian_hides_far_one_regardless_of_input_order():
    cam = ident_cam(32, 32, 40.0, cx=16.5, cy=16.5)
    near = one((0.0, 0.0, 2.0), (0.3, 0.3, 0.3), opacity=1.0, rgb=(1.0, 0.0, 0.0))
    far = one((0.0, 0.0, 4.0), (0.6, 0.6, 0.6), opacity=1.0, rgb=(0.0, 1.0, 0.0))
    a = render_scene(*cat(near, far), cam, backend="torch")
    b = render_scene(*cat(far, near), cam, backend="torch")
    assert torch.equal(a, b)
    # Centre: the near one takes alpha 0.999; the far one would push T below 1e-4: excluded.
    assert torch.allclose(a[16, 16], torch.tensor([ALPHA_MAX, 0.0, 0.0], dtype=torch.float64))


def test_transmittance_stop_is_exclusive():
    cam = ident_cam(16, 16, 40.0, cx=8.5, cy=8.5)
    g1 = one((0.0, 0.0, 2.0), opacity=0.99, rgb=(1.0, 0.0, 0.0))
    g2 = one((0.0, 0.0, 3.0), opacity=0.995, rgb=(0.0, 1.0, 0.0))  # T: 0.01 -> 5e-5: stops
    g3 = one((0.0, 0.0, 2.5), opacity=0.5, rgb=(0.0, 0.0, 1.0))    # between: T 0.01 -> 0.005
    bg = torch.tensor([0.3, 0.3, 0.3], dtype=torch.float64)
    px = render_scene(*cat(g1, g2), cam, bg, backend="torch")[8, 8]
    assert torch.allclose(px, torch.tensor([0.99, 0.0, 0.0], dtype=torch.float64) + 0.01 * bg)
    px = render_scene(*cat(g1, g2, g3), cam, bg, backend="torch")[8, 8]
    # g1, g3 (T=0.005); g2 would give T=2.5e-5 <= 1e-4: excluded.
    expect = torch.tensor([0.99, 0.0, 0.005], dtype=torch.float64) + 0.005 * bg
    assert torch.allclose(px, expect)


def test_background_and_empty_scene():
    cam = ident_cam(20, 10)
    e = torch.zeros(0, 3, dtype=torch.float64)
    img = render_scene(e, torch.zeros(0, 4, dtype=torch.float64), e, torch.zeros(0, dtype=torch.float64),
                       torch.zeros(0, 1, 3, dtype=torch.float64), cam, (0.1, 0.5, 0.9), backend="torch")
    assert img.shape == (10, 20, 3)
    assert torch.allclose(img, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64).expand(10, 20, 3))


def test_low_opacity_gaussian_is_invisible():
    img = render_scene(*one((0.0, 0.0, 3.0), opacity=0.003), ident_cam(), (0.2, 0.4, 0.6), backend="torch")
    assert torch.allclose(img, torch.tensor([0.2, 0.4, 0.6], dtype=torch.float64).expand_as(img))


def test_non_finite_gaussians_are_dropped():
    cam = ident_cam(32, 24, 30.0)
    scene = [t.clone() for t in random_scene(12, seed=11)]
    clean = render_scene(*[t[3:] for t in scene], cam, backend="torch")
    scene[0][0, 1] = float("nan")
    scene[4][1, 0, 2] = float("inf")
    scene[2][2, 0] = float("nan")
    ps = params_with_grad(scene)
    img = render_scene(*ps, cam, backend="torch")
    assert torch.allclose(img, clean, atol=1e-12)
    img.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in ps)


def test_view_dependent_colour_uses_camera_to_gaussian_direction():
    # Degree 1 with only the z-coefficient set: colour = 0.5 + C1 * dir_z * c.
    means, quats, scales, op, _ = one((0.0, 0.0, 3.0), opacity=1.0)
    sh = torch.zeros(1, 4, 3, dtype=torch.float64)
    sh[0, 2] = torch.tensor([0.5, 0.0, -0.5])
    cam = ident_cam(32, 32, 40.0, cx=16.5, cy=16.5)
    px = render_scene(means, quats, scales, op, sh, cam, backend="torch")[16, 16]
    c1 = 0.4886025119029199
    expect = ALPHA_MAX * torch.tensor([0.5 + 0.5 * c1, 0.5, 0.5 - 0.5 * c1], dtype=torch.float64)
    assert torch.allclose(px, expect)


# ----------------------------------------------------------------------------- tiled == dense


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_tiled_matches_dense_reference(dtype):
    cam = ident_cam(53, 37, 30.0)                       # not a multiple of the tile size
    scene = random_scene(80, seed=1, dtype=dtype, spread=1.6)
    bg = torch.tensor([0.2, 0.1, 0.3], dtype=dtype)
    got = render_scene(*scene, cam, bg, backend="torch")
    ref = reference_render(*scene, cam, bg)
    tol = 1e-10 if dtype == torch.float64 else 2e-5
    assert torch.allclose(got, ref, atol=tol)
    assert (got - bg).abs().amax() > 0.1               # the scene is actually visible


def test_small_steps_and_bands_give_the_same_image(monkeypatch):
    cam = ident_cam(50, 40, 30.0)
    scene = random_scene(60, seed=2)
    full = render_scene(*scene, cam, backend="torch")
    monkeypatch.setattr(S, "BLOCK", 3)
    monkeypatch.setattr(S, "STEP_BUDGET", S.TILE ** 2 * 3 * 2)
    monkeypatch.setattr(S, "PAIR_BUDGET", 20)
    assert len(S._make_bands(S.project_gaussians(*scene[:4], S._cam_tensors(cam, "cpu", torch.float64)),
                             50, 40)) > 1
    assert torch.allclose(render_scene(*scene, cam, backend="torch"), full, atol=1e-12)


def test_chunked_culling_gives_the_same_image_and_gradients(monkeypatch):
    cam = ident_cam(50, 40, 30.0)
    scene = random_scene(60, seed=4)
    scene[0].data[5, 2] = float("nan")             # a dropped Gaussian inside one chunk
    results = []
    for chunk in (S.CULL_CHUNK, 7):
        monkeypatch.setattr(S, "CULL_CHUNK", chunk)
        ps = params_with_grad(scene)
        img = render_scene(*ps, cam, backend="torch")
        img.sum().backward()
        results.append([img.detach()] + [torch.nan_to_num(p.grad) for p in ps])
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_worker_threads_give_the_same_image_and_gradients(monkeypatch):
    monkeypatch.setattr(S, "STEP_BUDGET", S.TILE ** 2 * S.BLOCK * 2)   # several batches
    cam = ident_cam(48, 40, 30.0)
    scene = random_scene(50, seed=10)
    results = []
    for threads in (1, 3):
        torch.set_num_threads(threads)
        try:
            ps = params_with_grad(scene)
            img = render_scene(*ps, cam, backend="torch")
            (img * torch.linspace(0, 1, 3, dtype=torch.float64)).sum().backward()
            assert torch.get_num_threads() == threads           # restored after the render
        finally:
            torch.set_num_threads(1)
        results.append([img.detach()] + [p.grad for p in ps])
    for a, b in zip(*results):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def params_with_grad(scene):
    return [p.clone().requires_grad_(True) for p in scene]


@pytest.mark.parametrize("small_steps", [False, True])
def test_analytic_backward_matches_autograd_reference(monkeypatch, small_steps):
    if small_steps:
        monkeypatch.setattr(S, "BLOCK", 4)
        monkeypatch.setattr(S, "STEP_BUDGET", S.TILE ** 2 * 4 * 3)
    cam = ident_cam(40, 30, 28.0)
    scene = random_scene(40, seed=3, sh_k=9)
    weights = torch.rand(30, 40, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    grads = []
    for fn in (lambda *a: render_scene(*a, backend="torch"), reference_render):
        ps = params_with_grad(scene)
        bg = torch.tensor([0.3, 0.6, 0.1], dtype=torch.float64, requires_grad=True)
        (fn(*ps, cam, bg) * weights).sum().backward()
        grads.append([p.grad for p in ps] + [bg.grad])
    for g, r in zip(*grads):
        assert torch.allclose(g, r, rtol=1e-8, atol=1e-10)
    assert all(g.abs().sum() > 0 for g in grads[0])


def test_gradcheck_finite_differences():
    cam = ident_cam(20, 18, 25.0)
    g = torch.Generator().manual_seed(4)
    means = torch.tensor([[0.1, -0.1, 2.0], [-0.2, 0.15, 2.6], [0.25, 0.2, 3.1]], dtype=torch.float64)
    quats = torch.randn(3, 4, generator=g, dtype=torch.float64)
    scales = torch.tensor([[0.2, 0.1, 0.15], [0.15, 0.25, 0.1], [0.3, 0.2, 0.2]], dtype=torch.float64)
    opac = torch.tensor([0.6, 0.7, 0.5], dtype=torch.float64)
    sh = torch.randn(3, 4, 3, generator=g, dtype=torch.float64) * 0.3
    bg = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    inputs = tuple(t.requires_grad_(True) for t in (means, quats, scales, opac, sh, bg))
    fn = lambda m, q, s, o, c, b: render_scene(m, q, s, o, c, cam, b, backend="torch")
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-7, atol=1e-5, rtol=1e-3, fast_mode=True)


def test_optimisation_through_renderer_reduces_loss():
    cam = ident_cam(32, 32, 30.0)
    target_scene = random_scene(20, seed=5, dtype=torch.float32)
    with torch.no_grad():
        target = render_scene(*target_scene, cam, backend="torch")
    start = [t.clone() for t in target_scene]
    start[0] = start[0] + 0.05 * torch.randn(start[0].shape, generator=torch.Generator().manual_seed(0))
    start[4] = start[4] + 0.2
    ps = params_with_grad(start)
    opt = torch.optim.Adam([ps[0], ps[4]], lr=0.01)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = (render_scene(*ps, cam, backend="torch") - target).abs().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


# ----------------------------------------------------------------------------- scene wrapper


def test_render_gaussian_scene_activates_ply_parameters():
    means, quats, scales, opac, sh = random_scene(30, seed=6, sh_k=4, dtype=torch.float32)
    scene = GaussianScene(means.numpy(), sh[:, 0].numpy(), sh[:, 1:].numpy(),
                          torch.logit(opac).numpy(), torch.log(scales).numpy(), (3.0 * quats).numpy())
    cam = ident_cam(40, 30, 30.0)
    got = render_gaussian_scene(scene, cam, (0.5, 0.5, 0.5), backend="torch")
    ref = render_scene(means, quats, scales, opac, sh, cam, (0.5, 0.5, 0.5), backend="torch")
    assert torch.allclose(got, ref, atol=1e-5)
    act = activate_scene(scene)
    assert torch.allclose(act[1].norm(dim=-1), torch.ones(30))


def test_bad_inputs_raise_input_error():
    from gscodec.errors import InputError, UnsupportedError
    scene = random_scene(4, seed=7)
    with pytest.raises(InputError):
        render_scene(scene[0], scene[1], scene[2], scene[3], scene[4][:, :3], ident_cam(), backend="torch")
    with pytest.raises(InputError):
        render_scene(scene[0][:3], *scene[1:], ident_cam(), backend="torch")
    with pytest.raises(InputError):
        render_scene(*scene, ident_cam(), backend="vulkan")
    if not gsplat_available("cuda"):
        with pytest.raises(UnsupportedError):
            render_scene(*scene, ident_cam(), backend="gsplat")


def test_real_scene_renders(shared_data):
    plyfile = pytest.importorskip("plyfile")
    from gscodec.render.cameras import orbit_cameras
    v = plyfile.PlyData.read(str(shared_data / "scenes" / "playbot_lod2.ply"))["vertex"]
    col = lambda names: torch.from_numpy(np.stack([np.asarray(v[n], np.float32) for n in names], 1))
    means = col(["x", "y", "z"])
    cam = orbit_cameras(means.numpy(), n=8, width=160, height=120)[3]
    img = render_scene(means, col(["rot_0", "rot_1", "rot_2", "rot_3"]),
                       torch.exp(col(["scale_0", "scale_1", "scale_2"])),
                       torch.sigmoid(col(["opacity"])[:, 0]),
                       col(["f_dc_0", "f_dc_1", "f_dc_2"])[:, None, :], cam, backend="torch")
    assert img.shape == (120, 160, 3) and torch.isfinite(img).all()
    centre = img[40:80, 50:110].mean()
    assert centre > 0.1 and centre > 2 * img[:, :10].mean()    # the core is framed in the middle


# ----------------------------------------------------------------------------- CUDA parity


@pytest.mark.cuda
@pytest.mark.skipif(not gsplat_available("cuda"), reason="needs CUDA and gsplat")
def test_gsplat_parity():
    cam = ident_cam(96, 72, 60.0)
    scene = [t.float() for t in random_scene(300, seed=8, sh_k=16, spread=1.5)]
    bg = (0.1, 0.2, 0.3)
    cpu = render_scene(*scene, cam, bg, backend="torch")
    gpu = render_scene(*[t.cuda() for t in scene], cam, bg, backend="gsplat").cpu()
    diff = (cpu - gpu).abs()
    assert diff.mean() < 1e-4 and diff.amax() < 2e-2
    ps = params_with_grad(scene)
    render_scene(*ps, cam, bg, backend="torch").sum().backward()
    pg = [p.cuda().detach().requires_grad_(True) for p in scene]
    render_scene(*pg, cam, bg, backend="gsplat").sum().backward()
    for a, b in zip(ps, pg):
        rel = (a.grad - b.grad.cpu()).norm() / b.grad.norm().clamp_min(1e-12)
        assert rel < 2e-2


@pytest.mark.parametrize("size", [(64, 48), (61, 45)])
def test_blend_weights_equal_the_colour_gradient(size):
    from gscodec.render.scene3d import blend_weights

    means, quats, scales, opac, _ = random_scene(60, seed=3, spread=1.6)
    quats = quats / quats.norm(dim=-1, keepdim=True)
    cam = ident_cam(*size)
    sh = torch.zeros(60, 1, 3, dtype=torch.float64, requires_grad=True)
    out = S.render_scene(means, quats, scales, opac, sh, cam, backend="torch")
    (g,) = torch.autograd.grad(out.sum(), sh)
    w = blend_weights(means, quats, scales, opac, cam)
    assert (w > 0).sum() > 10
    torch.testing.assert_close(w, g[:, 0, 0] / SH_C0, rtol=1e-9, atol=1e-12)
