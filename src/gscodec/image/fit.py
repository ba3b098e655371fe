"""Optimisation of 2D Gaussians against an image: Adam on L1 + SSIM, then quantiser in the loop.

Parameters live in the coded parameterisation (log2 scales, angles, decorrelated colours) so the
straight-through quantiser of the fine-tuning phase rounds exactly what the bitstream stores.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from .lsq import cgls
from .quantize import LOG2_SCALE_MAX, LOG2_SCALE_MIN, QuantSpec, color_matrices

# Default iteration counts. On CPU every fit gets 600 steps: on Kodak, 300 -> 600 gave +0.45..0.8
# dB at CR 20 and +0.27..0.38 dB at CR 100 (1000 steps at CR 20: at most +0.26 dB more). Sparse fits
# (about CR 200 and up) kept 300 until the staged quantisation made the longer fit pay there too: +0.17
# dB at CR 500 on Kodak 03, 05, 07, 09, 19, 20 (-0.05..+0.32 per image), while 1000 steps scored
# below 600 (+0.13 over 300; kodim20 -0.28 and kodim05 -0.15 below 300).
CPU_STEPS = 600
DENSE_PPG = 300.0            # from this many pixels per Gaussian a fit is sparse (see fit_config)
CUDA_STEPS = 3000
SPARSE_LR_SCALE = 2.0        # rate multiplier of sparse fits (see fit_config)
SSIM_CROP = 192          # side of the random square on which each step's SSIM term is taken
MIN_COARSE_SIDE = 32     # coarse warm-up levels keep at least this many pixels per side
MAX_COARSE_FACTOR = 8
RELOCATE_SCALE = 1.0     # sigma of a re-seeded Gaussian, in base scales
PARAMS = ("means", "log_scales", "angles", "colors")   # the fitted tensors, as attribute names


@dataclass
class FitConfig:
    """Learning rates (per parameter group) and loss weights."""

    lr_means: float = 0.25        # pixels per step (scaled by the base Gaussian size)
    lr_log_scales: float = 0.03
    lr_angles: float = 0.03
    lr_colors: float = 0.02
    l1_weight: float = 0.9        # loss = w * L1 + (1 - w) * (1 - SSIM), the paper's lambda ...
    l2_weight: float = 3.0        # ... + this times the MSE (see GaussianFitter.loss)
    lr_final: float = 0.3         # cosine decay of every rate down to this fraction (0.1: -0.1 dB)
    min_scale: float = 0.6        # sigma floor (pixels): smaller Gaussians quantise badly


def fit_config(pixels_per_gaussian: float) -> FitConfig:
    """Learning rates for a fit: position, scale and colour rates doubled for sparse fits.

    Large Gaussians must travel far: at 300 steps and 300+ pixels per Gaussian, doubling these
    rates gave +0.14 to +0.22 dB (mean of 4 Kodak images at CR 500 and 1000, two sets of 4
    images; angles were left as they are). Longer fits keep the doubled rates: 700 steps with
    them scored as 300 (CR 500, same 4 images, 24.35 vs 24.41 dB), 1000 steps without them
    0.4 dB below 300 with them (CR 1000, kodim03 and kodim20).
    """
    cfg = FitConfig()
    if pixels_per_gaussian >= DENSE_PPG:
        k = SPARSE_LR_SCALE
        cfg = replace(cfg, lr_means=cfg.lr_means * k, lr_log_scales=cfg.lr_log_scales * k,
                      lr_colors=cfg.lr_colors * k)
    return cfg


def default_steps(device: str) -> int:
    """Default iteration count for a resolved device."""
    return CUDA_STEPS if device == "cuda" else CPU_STEPS


def resolve_device(device: str) -> str:
    """Map 'auto' to 'cuda' when available, else 'cpu'; validate the name."""
    import torch

    from ..errors import InputError

    if device not in ("auto", "cpu", "cuda"):
        raise InputError(f"unknown device {device!r} (use auto, cpu or cuda)")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' requested but CUDA is not available")
    return device


class GaussianFitter:
    """Holds the Gaussians of one image as torch leaves and optimises them.

    beta is the exponent of the rendering kernel (spec/render2d.md section 4) of the default
    renderer; a given render_fn is used as it is.
    """

    def __init__(self, image: np.ndarray, init: dict, device: str = "cpu",
                 config: FitConfig | None = None, render_fn=None, seed: int = 0,
                 background: np.ndarray | None = None, beta: float = 1.0) -> None:
        import torch

        self.torch = torch
        self.cfg = config or FitConfig()
        self.device = torch.device(device)
        if render_fn is None:
            from functools import partial

            from ..render.image2d import render_image
            render_fn = partial(render_image, beta=beta)
        self.render_fn = render_fn
        h, w, c = image.shape
        self.size = (h, w)
        self.channels = c
        self.target = torch.as_tensor(np.ascontiguousarray(image), dtype=torch.float32, device=self.device)
        # Constant colour added under the Gaussians (the file's background; 0 when None).
        bg = np.zeros(c) if background is None else np.asarray(background, np.float64).reshape(c)
        self.background = torch.as_tensor(bg, dtype=torch.float32, device=self.device)
        self._levels = {1: self.target}
        f = 2
        while min(h, w) // f >= MIN_COARSE_SIDE and f <= MAX_COARSE_FACTOR:
            self._levels[f] = _area_resize(self.target, h // f, w // f)
            f *= 2
        self.gen = torch.Generator().manual_seed(seed)
        fwd, inv = color_matrices(c)
        self._fwd = torch.as_tensor(fwd, dtype=torch.float32, device=self.device)
        self._inv = torch.as_tensor(inv, dtype=torch.float32, device=self.device)
        n = len(init["means"])
        self.base = math.sqrt(h * w / (max(n, 1) * math.pi)) / 3
        t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32), device=self.device)  # noqa: E731
        scales = np.clip(np.asarray(init["scales"], np.float64), 2.0 ** LOG2_SCALE_MIN, 2.0 ** LOG2_SCALE_MAX)
        self.means = t(init["means"]).clone().requires_grad_(True)
        self.log_scales = t(np.log2(scales)).clone().requires_grad_(True)
        self.angles = t(init["angles"]).clone().requires_grad_(True)
        self.colors = (t(init["colors"]) @ self._fwd.T).clone().requires_grad_(True)
        self._log2_floor = max(LOG2_SCALE_MIN, math.log2(self.cfg.min_scale))
        with torch.no_grad():
            self.log_scales.clamp_(self._log2_floor, LOG2_SCALE_MAX)
        self._new_optimizer()

    # -- bookkeeping -------------------------------------------------------------------------
    @property
    def count(self) -> int:
        """Number of Gaussians."""
        return int(self.means.shape[0])

    def _new_optimizer(self) -> None:
        """Adam over the parameters still being optimised (frozen ones are plain tensors)."""
        cfg = self.cfg
        pos_lr = cfg.lr_means * min(1.0, max(self.base, 0.25))
        groups = [{"params": [p], "lr": lr} for p, lr in (
            (self.means, pos_lr), (self.log_scales, cfg.lr_log_scales),
            (self.angles, cfg.lr_angles), (self.colors, cfg.lr_colors)) if p.requires_grad]
        self.opt = self.torch.optim.Adam(groups, eps=1e-8)
        self._base_lrs = [g["lr"] for g in self.opt.param_groups]

    def keep(self, idx: np.ndarray) -> None:
        """Keep only the Gaussians at `idx` (pruning); resets the optimiser state."""
        torch = self.torch
        sel = torch.as_tensor(np.asarray(idx, dtype=np.int64), device=self.device)
        with torch.no_grad():
            for name in PARAMS:
                p = getattr(self, name)
                setattr(self, name, p[sel].clone().requires_grad_(p.requires_grad))
        self._new_optimizer()

    def params(self):
        """Renderer inputs (means, scales, angles, RGB colours)."""
        return self.means, self.torch.exp2(self.log_scales), self.angles, self.colors @ self._inv.T

    def render(self, out_size=None):
        """Render the current Gaussians."""
        m, s, a, c = self.params()
        return self.render_fn(m, s, a, c, src_size=self.size, out_size=out_size) + self.background

    def loss(self, out, target):
        """The paper's L1 + SSIM mix plus an MSE term; SSIM on a random crop per step (unbiased, cheaper).

        The MSE term makes the fit aim at what PSNR measures. Measured on Kodak (kodim03, 05, 07,
        20, CPU defaults), weight 3 against none: +0.21 dB at CR 1000, +0.17 dB at CR 500 (weight
        10: +0.18, 40: +0.08), +0.07 dB at CR 100, with MS-SSIM unchanged (0.757 -> 0.760 at
        CR 1000, 0.9387 -> 0.9385 at CR 100).
        """
        from .ssim import ssim

        w = self.cfg.l1_weight
        diff = out - target
        total = w * diff.abs().mean()
        if self.cfg.l2_weight > 0:
            total = total + self.cfg.l2_weight * (diff * diff).mean()
        if w >= 1.0:
            return total
        h, wd = out.shape[:2]
        ch, cw = min(h, SSIM_CROP), min(wd, SSIM_CROP)
        y0 = int(self.torch.randint(0, h - ch + 1, (1,), generator=self.gen))
        x0 = int(self.torch.randint(0, wd - cw + 1, (1,), generator=self.gen))
        crop = (slice(y0, y0 + ch), slice(x0, x0 + cw))
        return total + (1.0 - w) * (1.0 - ssim(out[crop], target[crop]))

    # -- optimisation ------------------------------------------------------------------------
    def coarse_factor(self, wanted: int) -> int:
        """The largest available pyramid factor not above `wanted` (1 = full resolution)."""
        return max(f for f in self._levels if f <= max(wanted, 1))

    def run(self, steps: int, lr_scale: float = 1.0,
            progress=None, decay: bool = True, coarse: float = 0.0, factor: int = 2,
            relocate_every: int = 0, relocate_frac: float = 0.0, relocate_until: float = 0.7) -> float:
        """Run `steps` Adam iterations (cosine-decayed rates); return the last loss.

        The first `coarse` fraction of the steps renders at 1/`factor` resolution against an
        area-averaged target (factor^2 times cheaper; the renderer's anti-aliasing keeps it a
        fair proxy while the Gaussians are larger than a coarse pixel). Every `relocate_every`
        steps within the first `relocate_until` fraction, `relocate` moves the
        weakest `relocate_frac` of the Gaussians.
        """
        torch = self.torch
        h, w = self.size
        last = float("nan")
        factor = self.coarse_factor(factor)
        n_coarse = int(steps * coarse) if factor > 1 else 0
        small = self._levels[factor]
        for i in range(steps):
            frac = i / max(steps - 1, 1)
            f = self.cfg.lr_final + (1 - self.cfg.lr_final) * 0.5 * (1 + math.cos(math.pi * frac)) if decay else 1.0
            for g, lr in zip(self.opt.param_groups, self._base_lrs):
                g["lr"] = lr * f * lr_scale
            self.opt.zero_grad(set_to_none=True)
            if i < n_coarse:
                out = self.render(out_size=tuple(small.shape[:2]))
                loss = self.loss(out, small)
            else:
                out = self.render()
                loss = self.loss(out, self.target)
            loss.backward()
            self.opt.step()
            if relocate_every and i > 0 and i % relocate_every == 0 and i < relocate_until * steps:
                self.relocate(out.detach(), small if i < n_coarse else self.target, relocate_frac)
            with torch.no_grad():
                if self.means.requires_grad:
                    self.means[:, 0].clamp_(0.0, float(w))
                    self.means[:, 1].clamp_(0.0, float(h))
                if self.log_scales.requires_grad:
                    self.log_scales.clamp_(self._log2_floor, LOG2_SCALE_MAX)
            last = float(loss.detach())
            if progress is not None:
                progress.update(1)
        return last

    def relocate(self, out, target, frac: float) -> int:
        """Move the least energetic `frac` of the Gaussians to where the error is largest.

        Few Gaussians settle in local minima that gradient steps never leave; re-seeding the
        weakest ones at pixels drawn in proportion to the squared error (colour = the residual
        there) lets the fit spend them where the picture still lacks detail.
        """
        torch = self.torch
        n = self.count
        k = int(n * frac)
        if k <= 0:
            return 0
        with torch.no_grad():
            res = target - out
            oh, ow = res.shape[:2]
            # inverse-CDF draw (with replacement): multinomial is capped at 2^24 categories
            cdf = (res * res).sum(2).reshape(-1).double().cumsum(0)
            total = float(cdf[-1])
            if not total > 0:
                return 0
            draw = torch.rand(k, generator=self.gen, dtype=torch.float64).to(self.device) * total
            pix = torch.searchsorted(cdf, draw, right=True).clamp_(max=cdf.numel() - 1)
            h, w = self.size
            u = torch.rand(k, 2, generator=self.gen).to(self.device, torch.float32)
            px = ((pix % ow).float() + u[:, 0]) * (w / ow)
            py = ((pix // ow).float() + u[:, 1]) * (h / oh)
            imp = torch.as_tensor(self.importance(), device=self.device)
            dead = torch.argsort(imp, stable=True)[:k]
            self.means[dead, 0] = px
            self.means[dead, 1] = py
            sig = max(self.base * RELOCATE_SCALE, self.cfg.min_scale)
            self.log_scales[dead] = math.log2(sig)
            self.angles[dead] = 0.0
            col = res.reshape(-1, res.shape[2])[pix]
            self.colors[dead] = col @ self._fwd.T
            for p in (self.means, self.log_scales, self.angles, self.colors):
                st = self.opt.state.get(p)
                if st:
                    st["exp_avg"][dead] = 0
                    st["exp_avg_sq"][dead] = 0
        return k

    def freeze(self, spec: QuantSpec, names: tuple[str, ...]) -> None:
        """Fix the named parameters ('means', 'angles') at their quantised values; the others go on.

        Quantising in stages lets the still-free parameters adapt to the error of the frozen
        ones (angles first, their steps cost the most at extreme ratios; then positions).
        """
        torch = self.torch
        with torch.no_grad():
            m, _, a, _ = spec.fake_quant_torch(self.means, self.log_scales, self.angles, self.colors, self.size)
            fixed = {"means": m, "angles": a}
            for name in names:
                setattr(self, name, fixed[name].detach().clone())
        self._new_optimizer()

    def freeze_geometry(self, spec: QuantSpec) -> None:
        """Replace positions, scales and angles by their quantised values and stop optimising them."""
        from .quantize import dequantize, quantize

        torch = self.torch
        dq = dequantize(quantize(self.export(), spec, self.size), spec)
        t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=self.device)  # noqa: E731
        self.means = t(dq["means"])
        self.log_scales = t(dq["log2_scales"])
        self.angles = t(dq["angles"])
        self.colors = self.colors.detach().clone().requires_grad_(True)
        self._new_optimizer()

    def solve_colors(self, iters: int, progress=None, freeze: bool = True) -> None:
        """Least-squares colours for the current (fixed) geometry, by CGLS from the current colours.

        Colours enter the render linearly, so this is the MSE-optimal colour set: after the
        geometry is quantised it recovers most of the quantisation loss in a few iterations.
        With freeze=True the geometry is no longer optimised afterwards; with freeze=False it
        stays trainable (used on the initialisation).
        """
        torch = self.torch
        if self.count == 0 or iters <= 0:
            return
        x = (self.colors.detach() @ self._inv.T).clone()
        x = self._solve(None, x, self.target - self.background, iters, progress)
        self.colors = (x @ self._fwd.T).clone().requires_grad_(True)
        if freeze:
            self.means, self.log_scales, self.angles = (self.means.detach(), self.log_scales.detach(),
                                                        self.angles.detach())
        self._new_optimizer()

    def settle_colors(self, spec: QuantSpec, rounds: int, iters: int) -> None:
        """Quantise the colours in rounds, largest Gaussians first, re-solving the rest in between.

        Each round fixes a share of the colours at their quantised values and lets the colours
        still free absorb the error by least squares (the staged quantisation of the geometry,
        for the colours). Afterwards every colour is on the spec's grid.
        """
        torch = self.torch
        n = self.count
        if n == 0:
            return
        coded = self.colors.detach().clone()
        order = torch.argsort(self.log_scales.detach().sum(1), descending=True, stable=True)
        fixed = torch.zeros(n, dtype=torch.bool, device=self.device)
        rounds = max(1, rounds)
        for k in range(rounds):
            part = order[k * n // rounds:(k + 1) * n // rounds]
            coded[part] = spec.round_colors_torch(coded[part])
            fixed[part] = True
            if k == rounds - 1 or iters <= 0:
                continue
            done, free = torch.nonzero(fixed).squeeze(1), torch.nonzero(~fixed).squeeze(1)
            with torch.no_grad():
                under = self.render_fn(self.means.detach()[done], torch.exp2(self.log_scales.detach()[done]),
                                       self.angles.detach()[done], coded[done] @ self._inv.T, src_size=self.size)
            x = self._solve(free, coded[free] @ self._inv.T, self.target - self.background - under, iters)
            coded[free] = x @ self._fwd.T
        self.colors = coded.requires_grad_(True)
        self._new_optimizer()

    def _solve(self, idx, x, target, iters: int, progress=None):
        """CGLS for the RGB colours x of the Gaussians idx (all when None) against target."""
        torch = self.torch
        m, s, a = self.means.detach(), torch.exp2(self.log_scales.detach()), self.angles.detach()
        if idx is not None:
            m, s, a = m[idx], s[idx], a[idx]

        def fwd(col):
            with torch.no_grad():
                return self.render_fn(m, s, a, col, src_size=self.size)

        def adj(img):
            col = torch.zeros(len(m), img.shape[2], device=self.device, requires_grad=True)
            out = self.render_fn(m, s, a, col, src_size=self.size)
            (g,) = torch.autograd.grad((out * img).sum(), col)
            return g

        return cgls(fwd, adj, x, target, iters, None if progress is None else (lambda: progress.update(1)))

    def importance(self) -> np.ndarray:
        """Energy of each Gaussian (|colour|^2 times area): the pruning order."""
        with self.torch.no_grad():
            m, s, a, c = self.params()
            e = (c * c).sum(1) * s[:, 0] * s[:, 1]
        return e.cpu().numpy().astype(np.float64)

    def export(self) -> dict:
        """Float parameters as numpy arrays (coded parameterisation: log2 scales, decorrelated colours)."""
        with self.torch.no_grad():
            return {"means": self.means.cpu().numpy().astype(np.float64),
                    "log2_scales": self.log_scales.cpu().numpy().astype(np.float64),
                    "angles": self.angles.cpu().numpy().astype(np.float64),
                    "colors": self.colors.cpu().numpy().astype(np.float64)}


def _area_matrix(n_in: int, n_out: int):
    """(n_out, n_in) box-filter weights: output pixel i averages source [i s, (i+1) s), s = n_in/n_out."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    lo, hi = edges[:-1, None], edges[1:, None]
    j = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0, None)
    return overlap / overlap.sum(1, keepdims=True)


def _area_resize(img, h: int, w: int):
    """Area-average an (H, W, C) tensor to (h, w), aligned with the renderer's output mapping."""
    import torch

    ay = torch.as_tensor(_area_matrix(img.shape[0], h), dtype=img.dtype, device=img.device)
    ax = torch.as_tensor(_area_matrix(img.shape[1], w), dtype=img.dtype, device=img.device)
    return torch.einsum("ij,jkc,lk->ilc", ay, img, ax)
