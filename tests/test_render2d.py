"""2D Gaussian rasteriser: closed forms, cut-off, resizing, numpy/torch/CUDA parity, gradients."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

import gscodec.render.image2d as r2d
import gscodec.render.image2d_np as r2d_np
from gscodec.render.image2d import render_image
from gscodec.render.image2d_np import render_image_np


def _t(*arrays, dtype=torch.float64):
    return [torch.as_tensor(np.asarray(a), dtype=dtype) for a in arrays]


def _one(mean, scale, angle=0.0, color=(1.0,)):
    return (np.array([mean], np.float64), np.array([scale], np.float64), np.array([angle]),
            np.array([color], np.float64))


def _brute(means, scales, angles, colors, src, out=None, beta=1.0):
    """Dense float64 reference written straight from spec/render2d.md."""
    h, w = src
    oh, ow = out or src
    fx, fy = ow / w, oh / h
    ys, xs = np.mgrid[0:oh, 0:ow] + 0.5
    img = np.zeros((oh, ow, colors.shape[1]))
    ax = 0.25 * max(0.0, 1 - fx * fx)
    ay = 0.25 * max(0.0, 1 - fy * fy)
    for m, s, a, c in zip(means, scales, angles, colors):
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        d = np.diag([fx, fy])
        cov = d @ rot @ np.diag(np.square(s)) @ rot.T @ d
        cov_f = cov + np.diag([ax, ay])
        amp = math.sqrt(np.linalg.det(cov) / np.linalg.det(cov_f))
        inv = np.linalg.inv(cov_f)
        dx, dy = xs - m[0] * fx, ys - m[1] * fy
        q = inv[0, 0] * dx * dx + 2 * inv[0, 1] * dx * dy + inv[1, 1] * dy * dy
        img += (np.where(q <= 9.0, np.exp(-((0.5 * q) ** beta)), 0.0) * amp)[..., None] * c
    return img


def _random(n, h, w, seed=0, channels=3):
    rng = np.random.default_rng(seed)
    means = rng.uniform([-3, -3], [w + 3, h + 3], (n, 2))
    scales = np.exp(rng.uniform(-1.7, 1.3, (n, 2)))
    angles = rng.uniform(-4, 4, n)
    colors = rng.normal(size=(n, channels))
    return means, scales, angles, colors


@pytest.mark.parametrize("impl", ["torch", "numpy"])
def test_isotropic_closed_form(impl):
    g = _one((10.5, 7.5), (2.0, 2.0), 0.3, (0.8, 0.2, -0.4))
    img = render_image(*_t(*g), (15, 21)).numpy() if impl == "torch" else render_image_np(*g, (15, 21))
    assert img.shape == (15, 21, 3)
    assert img[7, 10] == pytest.approx([0.8, 0.2, -0.4], abs=1e-6)
    for dr, dc in [(0, 1), (0, -3), (2, 0), (2, 2), (-3, 4)]:
        expect = math.exp(-0.5 * (dr * dr + dc * dc) / 4.0)
        assert img[7 + dr, 10 + dc, 0] == pytest.approx(0.8 * expect, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("impl", ["torch", "numpy"])
def test_rotation_and_anisotropy(impl):
    # first axis (sigma 3) along +45 degrees (towards +y), second axis (sigma 1) across it
    g = _one((10.5, 10.5), (3.0, 1.0), math.pi / 4)
    img = render_image(*_t(*g), (21, 21)).numpy() if impl == "torch" else render_image_np(*g, (21, 21))
    img = img[..., 0]
    for k in (1, 2, 3):
        along = math.exp(-0.5 * (2 * k * k) / 9.0)       # offset (k, k): distance k*sqrt(2)
        assert img[10 + k, 10 + k] == pytest.approx(along, rel=1e-5)
        assert img[10 - k, 10 - k] == pytest.approx(along, rel=1e-5)
    across = math.exp(-0.5 * 2.0 / 1.0)                   # offset (+1, -1): distance sqrt(2)
    assert img[9, 11] == pytest.approx(across, rel=1e-5)
    assert img[11, 9] == pytest.approx(across, rel=1e-5)
    # angle pi/2 swaps the axes
    g2 = _one((10.5, 10.5), (3.0, 1.0), math.pi / 2)
    img2 = render_image_np(*g2, (21, 21))[..., 0]
    assert img2[12, 10] == pytest.approx(math.exp(-0.5 * 4 / 9), rel=1e-5)
    assert img2[10, 12] == pytest.approx(math.exp(-0.5 * 4), rel=1e-5)


@pytest.mark.parametrize("impl", ["torch", "numpy"])
def test_three_sigma_cutoff(impl):
    def val(sigma):
        g = _one((5.5, 5.5), (sigma, sigma))          # pixel (5, 8) lies 3 px right of the mean
        img = render_image(*_t(*g), (11, 11)).numpy() if impl == "torch" else render_image_np(*g, (11, 11))
        return img[5, 8, 0]
    assert val(3.0 / 2.99) == pytest.approx(math.exp(-0.5 * 2.99 ** 2), rel=1e-4)
    assert val(3.0 / 3.01) == 0.0


@pytest.mark.parametrize("impl", ["torch", "numpy"])
def test_super_gaussian_kernel_and_cutoff(impl):
    # beta 2: weight exp(-(q/2)^2), cut at the same 3-sigma ellipse q = 9 as the Gaussian
    def val(sigma, beta=2.0):
        g = _one((5.5, 5.5), (sigma, sigma))          # pixel (5, 8) lies 3 px right of the mean
        img = (render_image(*_t(*g), (11, 11), beta=beta).numpy() if impl == "torch"
               else render_image_np(*g, (11, 11), beta=beta))
        return img[5, 8, 0]
    assert val(3.0) == pytest.approx(math.exp(-(0.5 ** 2)), rel=1e-5)       # q = 1
    assert val(3.0 / 2.0) == pytest.approx(math.exp(-4.0), rel=1e-5)         # q = 4
    assert val(3.0 / 2.99) == pytest.approx(math.exp(-(2.99 ** 4) / 4), rel=1e-3)
    assert val(3.0 / 3.01) == 0.0
    assert val(3.0, beta=1.0) == pytest.approx(math.exp(-0.5), rel=1e-5)
    for bad in (0.5, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            val(3.0, beta=bad)


@pytest.mark.parametrize("beta", [1.0, 2.0, 1.5])
def test_matches_dense_reference_at_all_sizes(beta):
    g = _random(40, 19, 27)
    for out in [None, (19, 27), (38, 54), (10, 13), (5, 30), (3, 3)]:
        ref = _brute(*g, (19, 27), out, beta)
        got_t = render_image(*_t(*g), (19, 27), out, beta=beta).numpy()
        got_n = render_image_np(*g, (19, 27), out, beta=beta)
        assert got_t.shape == ref.shape == got_n.shape
        np.testing.assert_allclose(got_t, ref, atol=1e-10)
        np.testing.assert_allclose(got_n, ref, atol=2e-5)


def test_upscale_maps_coordinates():
    g = _one((4.5, 2.5), (1.0, 0.5), 0.0)
    img = render_image_np(*g, (6, 10), (12, 30))[..., 0]    # x3 in width, x2 in height
    # the mean maps to (13.5, 5.0) output px; sigma to (3, 1) output px
    assert img[4, 13] == pytest.approx(math.exp(-0.5 * (0.5 ** 2) / 1.0), rel=1e-5)
    assert img[4, 16] == pytest.approx(math.exp(-0.5 * (9 / 9 + 0.25)), rel=1e-5)


def test_downscale_keeps_mass():
    # tiny and large Gaussians: the AA filter keeps the integral when drawn 8x smaller
    rng = np.random.default_rng(1)
    for sigma in (0.7, 8.0):
        n = 30
        means = rng.uniform(40, 200, (n, 2))
        g = (means, np.full((n, 2), sigma), rng.uniform(0, 3, n), np.ones((n, 1)))
        full = render_image_np(*g, (240, 240)).sum()
        small = render_image_np(*g, (240, 240), (30, 30)).sum() * 64
        assert small == pytest.approx(full, rel=0.02)


@pytest.mark.parametrize("beta", [1.0, 2.0])
@pytest.mark.parametrize("out", [None, (11, 40)])
def test_adjoint_is_transpose(out, beta):
    g = _random(50, 19, 27, seed=8)
    y = torch.rand(*(out or (19, 27)), 3, dtype=torch.float64)
    img = render_image(*_t(*g), (19, 27), out, beta=beta)
    at_y = r2d.splat_adjoint(*_t(*g[:3]), y, (19, 27), out, beta=beta)
    assert at_y.shape == (50, 3)
    lhs = float((img * y).sum())
    rhs = float((torch.as_tensor(g[3]) * at_y).sum())
    assert lhs == pytest.approx(rhs, rel=1e-12)


def test_float32_output_and_empty():
    g = _random(10, 8, 9, channels=1)
    out = render_image(*_t(*g, dtype=torch.float32), (8, 9))
    assert out.dtype == torch.float32 and out.shape == (8, 9, 1)
    assert render_image_np(*g, (8, 9)).dtype == np.float32
    empty = [np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0), np.zeros((0, 3))]
    assert not render_image(*_t(*empty), (4, 5)).any()
    assert render_image_np(*empty, (4, 5), (2, 3)).shape == (2, 3, 3)
    far = _one((-50.0, 3.0), (2.0, 2.0))
    assert not render_image_np(*far, (6, 6)).any()
    with pytest.raises(ValueError):
        render_image_np(*far, (0, 6))


def test_torch_numpy_agree_float32():
    g = _random(300, 40, 56, seed=3)
    for out in [None, (17, 23), (80, 100)]:
        a = render_image(*_t(*g, dtype=torch.float32), (40, 56), out).numpy()
        b = render_image_np(*g, (40, 56), out)
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_chunking_is_invisible(monkeypatch):
    g = _random(60, 23, 31, seed=5)
    ref_t = render_image(*_t(*g), (23, 31), (30, 20)).numpy()
    ref_n = render_image_np(*g, (23, 31), (30, 20))
    for mod in (r2d, r2d_np):
        monkeypatch.setattr(mod, "ROW_CHUNK", 7)
        monkeypatch.setattr(mod, "PIXEL_CHUNK", 13)
    np.testing.assert_allclose(render_image(*_t(*g), (23, 31), (30, 20)).numpy(), ref_t, atol=1e-12)
    np.testing.assert_allclose(render_image_np(*g, (23, 31), (30, 20)), ref_n, atol=1e-5)


@pytest.mark.parametrize("beta", [1.0, 2.0, 1.5])
@pytest.mark.parametrize("out", [None, (5, 4), (12, 15)])
def test_gradcheck(out, beta):
    torch.manual_seed(0)
    n, h, w = 3, 7, 9
    means = (torch.rand(n, 2, dtype=torch.float64) * torch.tensor([w, h])).requires_grad_()
    scales = (0.7 + torch.rand(n, 2, dtype=torch.float64) * 1.5).requires_grad_()
    angles = (torch.rand(n, dtype=torch.float64) * 3).requires_grad_()
    colors = torch.rand(n, 3, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda m, s, a, c: render_image(m, s, a, c, (h, w), out, beta=beta),
                                    (means, scales, angles, colors), atol=1e-6,
                                    fast_mode=True)


def _brute_torch(means, scales, angles, colors, src, out=None, beta=1.0):
    """Dense autograd reference of the render (float64), the same equation as _brute."""
    h, w = src
    oh, ow = out or src
    fx, fy = ow / w, oh / h
    ys, xs = torch.meshgrid(torch.arange(oh, dtype=torch.float64) + 0.5,
                            torch.arange(ow, dtype=torch.float64) + 0.5, indexing="ij")
    ax = 0.25 * max(0.0, 1 - fx * fx)
    ay = 0.25 * max(0.0, 1 - fy * fy)
    c, s = torch.cos(angles), torch.sin(angles)
    v1, v2 = scales[:, 0] ** 2, scales[:, 1] ** 2
    sxx = (c * c * v1 + s * s * v2) * fx * fx + ax
    syy = (s * s * v1 + c * c * v2) * fy * fy + ay
    sxy = c * s * (v1 - v2) * fx * fy
    det0 = v1 * v2 * (fx * fy) ** 2
    det = sxx * syy - sxy * sxy
    amp = torch.sqrt(det0 / det)
    dx = xs[None] - (means[:, 0] * fx)[:, None, None]
    dy = ys[None] - (means[:, 1] * fy)[:, None, None]
    q = (syy[:, None, None] * dx * dx - 2 * sxy[:, None, None] * dx * dy
         + sxx[:, None, None] * dy * dy) / det[:, None, None]
    wgt = torch.where(q.detach() <= 9.0, torch.exp(-((0.5 * q).clamp_min(0) ** beta)),
                      torch.zeros_like(q)) * amp[:, None, None]
    return torch.einsum("nhw,nc->hwc", wgt, colors)


@pytest.mark.parametrize("beta", [1.0, 2.0])
@pytest.mark.parametrize("cache", [True, False])
@pytest.mark.parametrize("out", [None, (17, 12), (46, 62)])
def test_gradients_match_dense_autograd(monkeypatch, cache, out, beta):
    # many Gaussians, tiny chunks: the backward walks several batches and pair chunks, from
    # the forward's cached tables or by enumerating the pairs again
    monkeypatch.setattr(r2d, "ROW_CHUNK", 7)
    monkeypatch.setattr(r2d, "PIXEL_CHUNK", 13)
    if not cache:
        monkeypatch.setattr(r2d, "CACHE_PAIRS", 0)
    g = _random(40, 23, 31, seed=11)
    weights = torch.as_tensor(np.random.default_rng(3).normal(size=(out or (23, 31)) + (3,)))
    grads = []
    for fn in (render_image, _brute_torch):
        x = [t.clone().requires_grad_() for t in _t(*g)]
        (fn(*x, (23, 31), out, beta=beta) * weights).sum().backward()
        grads.append([t.grad for t in x])
    for a, b in zip(*grads):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-7, atol=1e-9)


def _raster_node(img):
    node = img.grad_fn
    while type(node).__name__ != "_RasterBackward":
        node = node.next_functions[0][0]
    return node


def test_backward_memory_is_bounded(monkeypatch):
    g = _t(*_random(30, 20, 24, seed=2))
    for t in g:
        t.requires_grad_()
    assert _raster_node(render_image(*g, (20, 24))).cache          # small: pair tables kept
    monkeypatch.setattr(r2d, "CACHE_PAIRS", 50)
    img = render_image(*g, (20, 24))
    assert _raster_node(img).cache is None                          # large: recomputed
    img.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in g)


def test_colour_gradient_is_the_adjoint():
    m, s, a, c = _t(*_random(50, 21, 27, seed=4))
    weights = torch.as_tensor(np.random.default_rng(1).normal(size=(21, 27, 3)))
    c.requires_grad_()
    (render_image(m, s, a, c, (21, 27)) * weights).sum().backward()
    np.testing.assert_allclose(c.grad.numpy(), r2d.splat_adjoint(m, s, a, weights, (21, 27)).numpy(),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_parity():
    g = _random(2000, 120, 160, seed=7)
    for out in [None, (60, 80), (240, 320)]:
        cpu = render_image(*_t(*g, dtype=torch.float32), (120, 160), out)
        cuda_in = [x.cuda().requires_grad_() for x in _t(*g, dtype=torch.float32)]
        gpu = render_image(*cuda_in, (120, 160), out)
        assert gpu.is_cuda
        np.testing.assert_allclose(gpu.detach().cpu().numpy(), cpu.numpy(), atol=1e-4)
        gpu.square().sum().backward()
        assert all(torch.isfinite(x.grad).all() for x in cuda_in)


def test_numpy_module_is_torch_free():
    code = ("import sys, numpy as np; import gscodec.render.image2d_np as m; "
            "m.render_image_np(np.ones((1,2)), np.ones((1,2)), np.zeros(1), np.ones((1,3)), (4,4)); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
