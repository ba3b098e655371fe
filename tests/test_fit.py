"""GaussianFitter: relocation of weak Gaussians to where the error is."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gscodec.image.fit import GaussianFitter  # noqa: E402


def _fitter(image: np.ndarray, n: int, seed: int = 0) -> GaussianFitter:
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    init = {"means": rng.uniform([0, 0], [w, h], (n, 2)), "scales": np.full((n, 2), 2.0),
            "angles": np.zeros(n), "colors": np.full((n, image.shape[2]), 0.01)}
    return GaussianFitter(image, init, seed=seed)


def _square_target() -> np.ndarray:
    img = np.zeros((48, 64, 3), np.float32)
    img[30:44, 40:60] = (0.9, 0.5, 0.2)
    return img


def test_relocate_moves_the_weakest_into_the_error():
    img = _square_target()
    fit = _fitter(img, 200)
    with torch.no_grad():
        fit.colors[:100] *= 50          # the first half is strong and must stay put
    before = fit.means.detach().clone()
    out = fit.target.clone()
    out[30:44, 40:60] = 0              # the fit so far misses the square entirely
    assert fit.relocate(out, fit.target, 0.25) == 50
    after = fit.means.detach()
    moved = (after != before).any(1).numpy()
    assert not moved[:100].any()
    assert moved.sum() == 50
    x, y = after[moved, 0].numpy(), after[moved, 1].numpy()
    inside = (x >= 40) & (x <= 60) & (y >= 30) & (y <= 44)
    assert inside.all()
    rgb = (fit.colors.detach() @ fit._inv.T)[moved][inside].numpy()
    assert np.all(rgb[:, 0] > rgb[:, 2])   # seeded with the residual colour (red > blue)


def test_relocation_is_deterministic_and_keeps_the_count():
    img = _square_target()
    runs = []
    for _ in range(2):
        fit = _fitter(img, 60, seed=3)
        fit.run(12, relocate_every=4, relocate_frac=0.1, relocate_until=1.0)
        assert fit.count == 60
        runs.append(fit.export())
    for k in runs[0]:
        np.testing.assert_array_equal(runs[0][k], runs[1][k])


def test_relocation_helps_a_sparse_fit():
    img = _square_target()
    losses = []
    for every in (0, 5):
        fit = _fitter(img, 12, seed=1)
        with torch.no_grad():
            fit.means[:, 0] = fit.means[:, 0].clamp(max=30)   # start away from the square
        fit.run(60, relocate_every=every, relocate_frac=0.25, relocate_until=0.7)
        out = fit.render().detach()
        losses.append(float(((out - fit.target) ** 2).mean()))
    assert losses[1] < 0.7 * losses[0]


def test_default_steps_follow_the_device():
    from gscodec.image.fit import default_steps

    # the documented defaults (gsenc --help, spec/gsi.md 7)
    assert default_steps("cpu") == 600
    assert default_steps("cuda") == 3000


def test_background_is_rendered_under_the_gaussians():
    rng = np.random.default_rng(0)
    img = rng.random((12, 16, 3)).astype(np.float32)
    init = {"means": np.array([[8.0, 6.0]]), "scales": np.array([[2.0, 2.0]]), "angles": np.zeros(1),
            "colors": np.zeros((1, 3))}
    bg = np.array([0.25, 0.5, 0.75])
    f = GaussianFitter(img, init, background=bg)
    out = f.render().detach().numpy()
    np.testing.assert_allclose(out, np.broadcast_to(bg, out.shape), atol=1e-6)
    # the least-squares colour solve fits the difference to the background
    f.solve_colors(5)
    alone = GaussianFitter(img - bg.astype(np.float32), init)
    alone.solve_colors(5)
    np.testing.assert_allclose(f.colors.detach().numpy(), alone.colors.detach().numpy(), atol=1e-5)


def test_sparse_fits_get_larger_rates():
    from gscodec.image.fit import FitConfig, fit_config

    base = FitConfig()
    fast = fit_config(1000.0)
    assert fast.lr_means == 2 * base.lr_means and fast.lr_colors == 2 * base.lr_colors
    assert fast.lr_angles == base.lr_angles
    assert fit_config(100.0) == base


def test_loss_has_an_mse_term():
    import torch

    from gscodec.image.fit import FitConfig, GaussianFitter

    img = np.zeros((16, 16, 1), np.float32)
    init = {"means": [[8.0, 8.0]], "scales": [[2.0, 2.0]], "angles": [0.0], "colors": [[0.5]]}
    out, target = torch.full((16, 16, 1), 0.5), torch.zeros(16, 16, 1)
    l1 = GaussianFitter(img, init, config=FitConfig(l1_weight=1.0, l2_weight=0.0)).loss(out, target)
    both = GaussianFitter(img, init, config=FitConfig(l1_weight=1.0, l2_weight=3.0)).loss(out, target)
    assert float(l1) == pytest.approx(0.5) and float(both) == pytest.approx(0.5 + 3 * 0.25)


def test_staged_freezing_fixes_quantised_values_and_lets_the_rest_adapt():
    from gscodec.image.quantize import QuantSpec, dequantize, quantize

    img = _square_target()
    fit = _fitter(img, 40, seed=1)
    with torch.no_grad():
        fit.angles.uniform_(0.0, 3.0)
        fit.log_scales[:, 1] -= 1.0            # elongated, so every angle is coded
    spec = QuantSpec(pos_shift=1, scale_bits=3, angle_bits=6, color_shifts=(6, 6, 6))
    fit.freeze(spec, ("angles",))
    assert not fit.angles.requires_grad and fit.means.requires_grad
    frozen = fit.angles.clone()
    want = dequantize(quantize(fit.export(), spec, fit.size), spec)["angles"]
    np.testing.assert_allclose(frozen.numpy(), want, atol=1e-6)
    means = fit.means.detach().clone()
    fit.run(5)
    assert torch.equal(fit.angles, frozen)
    assert not torch.equal(fit.means.detach(), means)   # positions still adapt
    fit.keep(np.arange(0, 40, 2))                        # pruning keeps the frozen state
    assert not fit.angles.requires_grad and fit.means.requires_grad and fit.count == 20
    fit.freeze(spec, ("means",))
    cells = fit.means.numpy() / 0.5
    np.testing.assert_allclose(cells - np.floor(cells), 0.5, atol=1e-5)  # cell centres
    scales = fit.log_scales.detach().clone()
    fit.run(5)
    assert not torch.equal(fit.log_scales.detach(), scales)
    assert [len(g["params"]) for g in fit.opt.param_groups] == [1, 1]   # scales and colours


def test_settled_colours_are_on_the_grid_and_beat_plain_rounding():
    from gscodec.image.quantize import QuantSpec, quantize

    rng = np.random.default_rng(3)
    img = (0.5 + 0.3 * np.sin(np.arange(48)[:, None, None] / 5.0 + np.arange(64)[None, :, None] / 7.0
                              + np.arange(3)) + 0.05 * rng.normal(size=(48, 64, 3))).astype(np.float32)
    fit = _fitter(img, 60, seed=2)
    fit.run(30)
    spec = QuantSpec(pos_shift=1, scale_bits=3, angle_bits=6, color_shifts=(4, 4, 4))   # coarse colours
    fit.freeze_geometry(spec)
    fit.solve_colors(10)

    def mse(colors):
        with torch.no_grad():
            out = fit.render_fn(fit.means, torch.exp2(fit.log_scales), fit.angles, colors @ fit._inv.T,
                                src_size=fit.size) + fit.background
        return float(((out - fit.target) ** 2).mean())

    rounded = torch.as_tensor(quantize(fit.export(), spec, fit.size)["q"] / 16.0, dtype=torch.float32)
    best = mse(fit.colors.detach())                                 # float colours
    fit.settle_colors(spec, 4, 4)
    q = fit.colors.detach().numpy() * 16.0
    np.testing.assert_array_equal(q, np.round(q))                   # exactly on the grid
    np.testing.assert_array_equal(quantize(fit.export(), spec, fit.size)["q"], q.astype(np.int64))
    # the colours still free absorb part of the quantisation error of those already fixed
    assert mse(fit.colors.detach()) - best < 0.8 * (mse(rounded) - best)
