"""SmartSplat initialisation: shapes, determinism, feature-driven placement, scales, PSNR."""
from __future__ import annotations

import math

import numpy as np
import pytest

from gscodec.image import init as ini
from gscodec.image.init import smartsplat_init
from gscodec.render.image2d_np import render_image_np


def _synthetic(h=48, w=64, c=3):
    """Smooth background plus a few hard-edged shapes: edges and flat areas both present."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([0.3 + 0.4 * x, 0.5 - 0.3 * y, 0.4 + 0.2 * x * y], axis=2)[..., :c]
    img[10:25, 8:30] = [0.9, 0.2, 0.1][:c]
    disc = (np.mgrid[0:h, 0:w][0] - 30) ** 2 + (np.mgrid[0:h, 0:w][1] - 45) ** 2 < 100
    img[disc] = [0.1, 0.1, 0.8][:c]
    return img.astype(np.float32)


def _psnr(a, b):
    return 10 * math.log10(1.0 / float(np.mean((np.clip(a, 0, 1) - b) ** 2)))


def _render(g, shape):
    return render_image_np(g["means"], g["scales"], g["angles"], g["colors"], shape[:2])


@pytest.mark.parametrize("shape,n", [((48, 64, 3), 150), ((8, 8, 3), 1), ((8, 8, 1), 200),
                                     ((1, 9, 3), 4), ((5, 3, 1), 7)])
def test_shapes_and_bounds(shape, n):
    img = np.random.default_rng(0).random(shape).astype(np.float32)
    g = smartsplat_init(img, n, seed=1, color_steps=1)
    assert g["means"].shape == (n, 2) and g["scales"].shape == (n, 2)
    assert g["angles"].shape == (n,) and g["colors"].shape == (n, shape[2])
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in g.values())
    h, w = shape[:2]
    assert (g["means"] >= 0).all() and (g["means"][:, 0] <= w).all() and (g["means"][:, 1] <= h).all()
    assert (g["scales"] > 0).all()


def test_deterministic_per_seed():
    img = _synthetic()
    a, b = smartsplat_init(img, 120, seed=3), smartsplat_init(img, 120, seed=3)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    c = smartsplat_init(img, 120, seed=4, color_steps=0)
    assert not np.array_equal(a["means"], c["means"])


def test_bad_arguments():
    with pytest.raises(ValueError):
        smartsplat_init(_synthetic(), 0)
    with pytest.raises(ValueError):
        smartsplat_init(_synthetic(), 10, scale_mode="nope")


def test_more_points_where_gradient_is_high():
    rng = np.random.default_rng(0)
    img = np.full((64, 64, 3), 0.5, np.float32)
    img[:, 32:] = rng.random((64, 32, 3))            # textured right half, flat left half
    g = smartsplat_init(img, 400, seed=0, color_steps=0)
    right = int((g["means"][:, 0] >= 32).sum())
    # 70 % are variational and nearly all of those land on the texture
    assert right > 0.75 * 400
    assert right < 400                                # uniform points still cover the flat half


def test_variational_scales_follow_weights():
    img = _synthetic()
    h, w = img.shape[:2]
    base = ini.base_scale(h, w, 200)
    pts, s = ini.variational_sample(img, 140, base, np.random.default_rng(0))
    assert len(pts) == 140
    assert (s <= base + 1e-12).all() and (s >= base / math.e - 1e-12).all()
    wt = ini.tile_weights(img, 0, h, 0, w)
    at = wt[(pts[:, 1] - 0.5).astype(int), (pts[:, 0] - 0.5).astype(int)]
    assert np.corrcoef(at, s)[0, 1] < -0.99           # exact exponential decay in one tile


def test_tile_weights_match_whole_image_maps():
    img = np.random.default_rng(0).random((30, 40, 3)).astype(np.float32)
    grad, var = ini.feature_maps(img)
    sub = ini.tile_weights(img, 7, 12, 9, 20)
    g, v = grad[7:19, 9:29], var[7:19, 9:29]
    np.testing.assert_allclose(sub, 0.9 * ini._normalise(g) + 0.1 * ini._normalise(v), atol=1e-6)


def test_tile_layout():
    assert ini.tile_layout(700) == [(0, 700)]
    tiles = ini.tile_layout(3000)
    assert len(tiles) == 3 and tiles[0] == (0, 1024) and tiles[-1][0] + 1024 == 3000
    strides = np.diff([t[0] for t in tiles])
    assert strides.max() - strides.min() <= 1


def test_knn_distances_match_brute_force():
    rng = np.random.default_rng(2)
    # clustered plus sparse points: the grid search must widen its cells where needed
    refs = np.concatenate([rng.normal(20, 1.0, (300, 2)), rng.uniform(0, 200, (60, 2))])
    queries = refs[::7]
    got = ini.knn_distances(queries, refs, 3, cell=1.0, skip_self=True)
    d = np.sqrt(((queries[:, None] - refs[None]) ** 2).sum(-1))
    ref = np.sort(d, axis=1)[:, 1:4]
    np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_uniform_points_respect_exclusion_and_get_knn_scales():
    img = _synthetic()
    h, w = img.shape[:2]
    rng = np.random.default_rng(0)
    var_pts = rng.uniform(0, [w, h], (40, 2))
    uni = ini.uniform_sample(var_pts, 30, 4.0, h, w, rng)
    assert uni.shape == (30, 2)
    d = np.sqrt(((uni[:, None] - var_pts[None]) ** 2).sum(-1)).min(1)
    assert (d >= 4.0).all()
    g = smartsplat_init(img, 200, seed=0, color_steps=0)
    n_var = int(round(0.7 * 200))
    pts, s = g["means"].astype(np.float64), g["scales"][:, 0].astype(np.float64)
    dd = np.sqrt(((pts[n_var:, None] - pts[None]) ** 2).sum(-1))
    knn = np.sort(dd, axis=1)[:, 1:4].mean(1)
    np.testing.assert_allclose(s[n_var:], knn, rtol=1e-5)


def test_weighted_median_colours():
    img = np.full((20, 20, 3), 0.25, np.float32)
    img[10, 10] = 1.0                                   # an outlier under the centre is ignored
    pts = np.array([[10.5, 10.5], [3.5, 3.5]])
    cols = ini.weighted_median_colors(img, pts, np.array([2.0, 0.3]))
    np.testing.assert_allclose(cols, 0.25)


@pytest.mark.parametrize("mode,floor", [("paper", 17.5), ("knn", 20.0)])
def test_initial_render_approximates_image(mode, floor):
    img = _synthetic()
    g = smartsplat_init(img, 300, seed=0, scale_mode=mode)
    out = _render(g, img.shape)
    assert _psnr(out, img) > floor
    assert abs(float(out.mean()) - float(img.mean())) < 0.05 * float(img.mean())


def test_colour_fit_improves_on_median_colours():
    img = _synthetic()
    raw = smartsplat_init(img, 300, seed=0, color_steps=0)
    med = ini.weighted_median_colors(img, raw["means"].astype(np.float64),
                                     raw["scales"][:, 0].astype(np.float64))
    p_med = _psnr(_render(dict(raw, colors=med.astype(np.float32)), img.shape), img)
    p_norm = _psnr(_render(raw, img.shape), img)
    p_cg = _psnr(_render(smartsplat_init(img, 300, seed=0, color_steps=4), img.shape), img)
    assert p_med < p_norm < p_cg
