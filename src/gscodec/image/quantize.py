"""Quantisation of 2D Gaussians to the canonical integers of a .gsi file, and back.

Canonical integers per Gaussian (see spec/gsi.md, section 3):
  px, py  position cell on a grid of step 2**-pos_shift pixels
  sx, sy  sub-cell of a Gaussian with r > 0 refinement levels (r from its minor scale):
          mean = centre of sub-cell (sx, sy) of the cell split 2**r times per axis
  ls      major axis log2 scale in 1/K octave steps (K = 2**scale_bits)
  la      aspect: major minus minor log2 scale index (>= 0)
  t       angle of the major axis in pi/A steps (A = 2**angle_bits), 0 when la == 0
  q       colour per channel (Y, Co, Cg or grey) in 2**-color_shift steps
Dequantisation uses float64 +, -, * and exact power-of-two scaling only, so it is bit-exact.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOG2_SCALE_MIN = -3.0           # sigma >= 1/8 pixel
LOG2_SCALE_MAX = 13.0           # sigma <= 8192 pixels
COLOR_RANGE = {"Y": (-1.0, 2.0), "C": (-1.0, 1.0)}
PI64 = float.fromhex("0x1.921fb54442d18p+1")

# 2**(j/16), correctly rounded binary64: the only non-dyadic constants of the scale dequantiser.
EXP2_16THS = np.array([float.fromhex(h) for h in (
    "0x1.0000000000000p+0", "0x1.0b5586cf9890fp+0", "0x1.172b83c7d517bp+0", "0x1.2387a6e756238p+0",
    "0x1.306fe0a31b715p+0", "0x1.3dea64c123422p+0", "0x1.4bfdad5362a27p+0", "0x1.5ab07dd485429p+0",
    "0x1.6a09e667f3bcdp+0", "0x1.7a11473eb0187p+0", "0x1.8ace5422aa0dbp+0", "0x1.9c49182a3f090p+0",
    "0x1.ae89f995ad3adp+0", "0x1.c199bdd85529cp+0", "0x1.d5818dcfba487p+0", "0x1.ea4afa2a490dap+0")],
    dtype=np.float64)


GAUSSIAN_KERNEL = 4             # kernel code of the Gaussian (beta 1), the only kernel before version 4


@dataclass(frozen=True)
class QuantSpec:
    """Bit depths of one file: every field is stored in the header."""

    pos_shift: int = 1              # position step 2**-pos_shift px, -4..6
    scale_bits: int = 3             # K = 2**scale_bits log2-scale steps per octave, 0..4
    angle_bits: int = 5             # A = 2**angle_bits angle steps over [0, pi), 1..10
    color_shifts: tuple = (6, 5, 5)  # per channel, colour step 2**-shift, 1..12
    pos_refine: int = 0             # most refinement levels of a position (0: none; version 3)
    pos_rel: int = 0                # refined step about minor sigma / 2**pos_rel .. 2**(pos_rel+1)
    kernel: int = GAUSSIAN_KERNEL   # kernel exponent beta = kernel / 4, 4..16 (version 4; older: 4)

    @property
    def beta(self) -> float:
        """Exponent of the rendering kernel exp(-(q/2)^beta) (spec/render2d.md section 4)."""
        return self.kernel / 4.0

    @property
    def K(self) -> int:  # noqa: N802 (name of the spec)
        return 1 << self.scale_bits

    @property
    def A(self) -> int:  # noqa: N802
        return 1 << self.angle_bits

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Number of position cells along x and y."""
        return _cells(width, self.pos_shift), _cells(height, self.pos_shift)

    def color_bounds(self, channels: int) -> list[tuple[int, int]]:
        """Allowed integer range of each colour channel."""
        names = ["Y"] if channels == 1 else ["Y", "C", "C"]
        out = []
        for name, s in zip(names, self.color_shifts):
            lo, hi = COLOR_RANGE[name]
            out.append((int(lo * (1 << s)), int(hi * (1 << s))))
        return out

    def fake_quant_torch(self, means, log2_scales, angles, colors, size):
        """Straight-through quantisation of the fitting parameters (forward = dequantised values)."""
        import torch

        def ste(x, q):
            return x + (q - x).detach()

        h, w = size
        k = float(self.K)
        ls = ste(log2_scales, torch.round(log2_scales.detach() * k).clamp(LOG2_SCALE_MIN * k, LOG2_SCALE_MAX * k) / k)
        lq = ls.detach() * k
        lq_np = lq.round().to(torch.int64).cpu().numpy()
        la = np.abs(lq_np[:, 0] - lq_np[:, 1])
        r = refine_levels(lq_np.max(1), la, self)
        fine = _fine_cells(means.detach().cpu().numpy().astype(np.float64), r, self, size)
        step = np.ldexp(1.0, -(self.pos_shift + r))[:, None]
        m = ste(means, torch.as_tensor((fine + 0.5) * step, dtype=means.dtype, device=means.device))
        a_step = torch.as_tensor(PI64 / (1 << angle_bits_for(la, self)), dtype=angles.dtype,
                                 device=angles.device)
        a = ste(angles, torch.round(angles.detach() / a_step) * a_step)
        return m, ls, a, ste(colors, self.round_colors_torch(colors.detach()))

    def round_colors_torch(self, colors):
        """Coded-space colours (torch) rounded to this spec's grid within its limits, as the file stores them."""
        import torch

        cols = []
        for ch, (s, (lo, hi)) in enumerate(zip(self.color_shifts, self.color_bounds(colors.shape[1]))):
            f = float(1 << s)
            cols.append(torch.round(colors[:, ch] * f).clamp(lo, hi) / f)
        return torch.stack(cols, 1)


def angle_bits_for(la: np.ndarray, spec: QuantSpec) -> np.ndarray:
    """Angle precision (bits over [0, pi)) of each Gaussian from its aspect index.

    A near-round Gaussian hardly changes when turned, so it gets one angle bit less for each
    d in 1..4 with la * 2**d <= K (never below 1 bit).
    """
    la = np.maximum(np.asarray(la, np.int64), 1)
    deficit = sum(((la << d) <= spec.K).astype(np.int64) for d in range(1, 5))
    return np.maximum(spec.angle_bits - deficit, 1)


def refine_levels(ls: np.ndarray, la: np.ndarray, spec: QuantSpec) -> np.ndarray:
    """Position refinement levels per Gaussian from its minor-axis scale index ls - la.

    The refined step is 2**(floor(log2 minor sigma) - pos_rel) pixels, at most pos_refine
    halvings below the grid step: small Gaussians get fine positions, large ones do not pay.
    """
    lm = np.asarray(ls, np.int64) - np.asarray(la, np.int64)
    r = spec.pos_rel - spec.pos_shift - (lm >> spec.scale_bits)
    return np.clip(r, 0, spec.pos_refine).astype(np.int64)


def _fine_cells(means: np.ndarray, r: np.ndarray, spec: QuantSpec, size: tuple[int, int]) -> np.ndarray:
    """Refined cell indices (M, 2) at step 2**-(pos_shift + r), within the grid's cells."""
    h, w = size
    gx, gy = spec.grid(h, w)
    r = np.asarray(r, np.int64)[:, None]
    fine = np.floor(np.ldexp(means, (spec.pos_shift + r).astype(np.int32))).astype(np.int64)
    cells = np.clip(fine >> r, 0, np.array([gx - 1, gy - 1]))
    return (cells << r) + np.clip(fine - (cells << r), 0, (np.int64(1) << r) - 1)


def _cells(extent: int, shift: int) -> int:
    return extent << shift if shift >= 0 else (extent + (1 << -shift) - 1) >> -shift


def color_matrices(channels: int) -> tuple[np.ndarray, np.ndarray]:
    """(forward, inverse) matrices between RGB and the coded colour space (YCoCg; identity for grey)."""
    if channels == 1:
        return np.eye(1), np.eye(1)
    fwd = np.array([[0.25, 0.5, 0.25], [0.5, 0.0, -0.5], [-0.25, 0.5, -0.25]])
    inv = np.array([[1.0, 1.0, -1.0], [1.0, 0.0, 1.0], [1.0, -1.0, -1.0]])
    return fwd, inv


def quantize(params: dict, spec: QuantSpec, size: tuple[int, int]) -> dict:
    """Float parameters (fit.export layout) -> canonical integer arrays."""
    k = spec.K
    lq = np.rint(np.clip(np.asarray(params["log2_scales"], np.float64), LOG2_SCALE_MIN, LOG2_SCALE_MAX) * k)
    lq = lq.astype(np.int64)
    ang = np.asarray(params["angles"], np.float64)
    swap = lq[:, 1] > lq[:, 0]
    ls = np.where(swap, lq[:, 1], lq[:, 0])
    la = np.abs(lq[:, 0] - lq[:, 1])
    b = angle_bits_for(la, spec)
    levels = np.int64(1) << b
    # Swapping the axes turns the major axis by a quarter turn: half of the 2**b levels.
    t = np.rint(ang / (PI64 / levels)).astype(np.int64) + np.where(swap, levels >> 1, 0)
    t = np.mod(t, levels) << (spec.angle_bits - b)
    t = np.where(la == 0, 0, t)
    q = _quantize_coded(params["colors"], spec)
    r = refine_levels(ls, la, spec)
    fine = _fine_cells(np.asarray(params["means"], np.float64).reshape(-1, 2), r, spec, size)
    cells = fine >> r[:, None]
    sub = fine - (cells << r[:, None])
    return {"px": cells[:, 0], "py": cells[:, 1], "sx": sub[:, 0], "sy": sub[:, 1],
            "ls": ls, "la": la, "t": t, "q": q}


def _quantize_coded(cols: np.ndarray, spec: QuantSpec) -> np.ndarray:
    """Coded-space colours (M, C) -> integers at the spec's precision, within the colour limits."""
    cols = np.asarray(cols, np.float64)
    q = np.empty(cols.shape, np.int64)
    for ch, (s, (lo, hi)) in enumerate(zip(spec.color_shifts, spec.color_bounds(cols.shape[1]))):
        q[:, ch] = np.clip(np.rint(cols[:, ch] * (1 << s)), lo, hi).astype(np.int64)
    return q


def exp2_fixed(idx: np.ndarray, bits: int) -> np.ndarray:
    """2**(idx / 2**bits) from the constant table and exact power-of-two scaling."""
    idx = np.asarray(idx, np.int64)
    frac = (idx & ((1 << bits) - 1)) << (4 - bits)
    return np.ldexp(EXP2_16THS[frac], (idx >> bits).astype(np.int32))


def dequantize(ints: dict, spec: QuantSpec) -> dict:
    """Canonical integers -> float64 parameters, bit-exact on every IEEE-754 machine."""
    ls, la = ints["ls"], ints["la"]
    r = refine_levels(ls, la, spec)
    zero = np.zeros_like(ints["px"])
    fx = (ints["px"] << r) + ints.get("sx", zero)
    fy = (ints["py"] << r) + ints.get("sy", zero)
    e = (-(spec.pos_shift + r)).astype(np.int32)
    means = np.stack([np.ldexp(fx.astype(np.float64) + 0.5, e), np.ldexp(fy.astype(np.float64) + 0.5, e)], 1)
    scales = np.stack([exp2_fixed(ls, spec.scale_bits), exp2_fixed(ls - la, spec.scale_bits)], 1)
    log2_scales = np.stack([ls, ls - la], 1).astype(np.float64) / spec.K
    angles = ints["t"].astype(np.float64) * (PI64 / spec.A)
    colors, coded = dequantize_colors(ints["q"], spec)
    return {"means": means, "scales": scales, "log2_scales": log2_scales, "angles": angles,
            "colors": colors, "coded_colors": coded}


def quantize_colors(rgb: np.ndarray, spec: QuantSpec) -> np.ndarray:
    """RGB (or grey) colours (M, C) -> coded-space integers at the spec's colour precision."""
    rgb = np.asarray(rgb, np.float64)
    fwd, _ = color_matrices(rgb.shape[1])
    return _quantize_coded(rgb @ fwd.T, spec)


def dequantize_colors(q: np.ndarray, spec: QuantSpec) -> tuple[np.ndarray, np.ndarray]:
    """Colour integers (M, C) -> (RGB or grey, coded-space values), float64, bit-exact."""
    q = np.asarray(q, np.int64)
    coded = np.empty(q.shape, np.float64)
    for ch, s in enumerate(spec.color_shifts[: q.shape[1]]):
        coded[:, ch] = np.ldexp(q[:, ch].astype(np.float64), -s)
    if q.shape[1] == 3:
        y, co, cg = coded[:, 0], coded[:, 1], coded[:, 2]
        colors = np.stack([(y + co) - cg, y + cg, (y - co) - cg], 1)
    else:
        colors = coded.copy()
    return colors, coded
