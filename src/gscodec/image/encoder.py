"""The .gsi encoder: budget -> Gaussian count and bit depths, fit, prune to the byte budget, code.

Rule for the Gaussian count: the paper's N = 3HW / (7 CR) assumes 7 bytes per Gaussian; this
coder spends about 4-5 plus the headers (kodim20 at CR 1000: 224 Gaussians in 1178 bytes), so N
is instead derived from the byte budget and the bytes per Gaussian actually measured on the
coded Gaussians (first estimated, then measured after the first fitting phase, then enforced by
pruning the least energetic Gaussians until the file fits).
"""
from __future__ import annotations

import math

import numpy as np

from ..container import Chunk, write_container
from ..errors import InputError
from .codec import CHUNK_TYPE, coding_order, encode_payload
from .fit import GaussianFitter, default_steps, fit_config, resolve_device
from .quantize import GAUSSIAN_KERNEL, QuantSpec, dequantize_colors, quantize, quantize_colors

PHASES = (0.65, 0.27, 0.08)  # float fit | float fit after the first pruning | staged quantisation
MARGIN = 0.995               # aim the first pruning at 99.5% of the payload budget (0.97 left
                             # 3% unused: -0.045 dB at CR 500 and 1000 on 4 Kodak images)
COARSE_FRACTION = 0.85       # share of the first phase run on a coarse pyramid level
MIN_COARSE_SIGMA = 2.0       # ... only for Gaussians this large (px): sub-pixel ones fit badly there
OVERSHOOT = 1.15             # initial count above the prior estimate
SETTLE_LR_SCALE = 0.3        # rates of the staged-quantisation phase
SETTLE_SPLIT = 0.5           # its share with the angles quantised (then the positions too)
COLOR_ITERS = 15             # CGLS iterations of the final least-squares colour solve
REFIT_ITERS = 4              # CGLS iterations after each budget pruning (and per colour round)
COLOR_ROUNDS = 5             # rounds of the staged colour quantisation (largest Gaussians first)
RELOCATE_EVENTS = 20         # re-seedings of the weakest Gaussians per first phase (at most)
RELOCATE_FRAC = 0.05         # share of the Gaussians re-seeded each time
RELOCATE_UNTIL = 0.7         # ... during this first share of the phase, so they can settle
COARSE_SCALE_PPG = 100       # pixels per Gaussian from which scales take 1/4-octave steps
POS_COARSER = 2              # grid step this many octaves above sigma / 8 ...
POS_REFINE = 5               # ... refined up to this many times for small Gaussians ...
POS_REL = 2                  # ... to a step of minor sigma / 4 .. / 8
INIT_COLOR_ITERS = 4         # CGLS iterations on the initial colours (a far better start than the median)
# Rendering kernel exp(-(q/2)^beta), beta = kernel / 4. For sparse fits the super-Gaussian
# beta = 2 (flatter top, faster fall-off) lets a few hundred Gaussians draw flat regions with
# sharper borders: at CR 500 on Kodak 03, 05, 07, 09, 19, 20 the mean rose from 25.13 dB
# (beta 1) to 25.30 (every image the same or higher; beta 1.5 gave 25.20, beta 3 scored below
# 2 on 4 of the images); kodim03 at CR 1000 +0.28 dB. Dense fits keep the Gaussian: at CR 20
# (about 30 pixels per Gaussian) kodim20 lost 0.71 dB with beta 2. Densities in between
# (CR 100 to 300) were not measured and keep the Gaussian.
SPARSE_KERNEL = 8
SPARSE_KERNEL_PPG = 600.0    # pixels per Gaussian from which the encoder uses SPARSE_KERNEL


def plan_spec(pixels_per_gaussian: float, channels: int) -> QuantSpec:
    """Bit depths from the Gaussian density: the position grid follows the typical Gaussian size."""
    # Typical sigma is about sqrt(pixels per Gaussian) / 3. Version 2 put every position on a
    # grid of about sigma / 8; the grid is now 4 times coarser and each Gaussian's position is
    # refined to 1/8 .. 1/4 of its own minor sigma. Quantising only the positions of a float
    # fit then cost 0.05-0.17 dB instead of 0.08-0.52 at CR 500 (Kodak 03, 05, 07, 09, 19, 20),
    # and the files gained +0.13 dB at CR 500, +0.22 at CR 1000, +0.09 at CR 100 (03, 05, 07,
    # 20); POS_REL 1 or 3 and POS_COARSER 1 scored lower at CR 500, POS_COARSER 3 the same.
    sigma = math.sqrt(pixels_per_gaussian) / 3.0
    pos_shift = int(np.clip(round(-math.log2(max(sigma / 8.0, 1e-3))), -4, 4))
    # Colour and angle depths are the same at every density. Coarser depths all at once (2-bit
    # scales, 4-bit angles, 5-bit colours) for more Gaussians lost at every extreme ratio
    # measured on Kodak with the 0.3.1 fitting: -0.2 dB at CR 500 (8 images), -0.08 dB at
    # CR 1000 (8 images), -0.1 dB at CR 2000 (4 images).
    # Angles were the costliest quantisation at CR 500 (float fit against quantised angles:
    # -0.24 to -0.64 dB on Kodak 07, 09, 19): 64 steps instead of 32 for elongated Gaussians
    # gave +0.13 dB at CR 500 and +0.02 at CR 1000 (Kodak 03, 05, 07, 09, 19, 20); 128: worse.
    # With the staged quantisation, 1/4-octave scale steps (instead of 1/8) paid off from about
    # CR 100 on: Kodak 03, 05, 07, 20 at CR 100 +0.08 dB; 03, 05, 07, 09, 19, 20 at CR 500
    # +0.02 dB, at CR 1000 +0.10 dB. Denser fits (not measured) keep 1/8.
    scale_bits = 2 if pixels_per_gaussian >= COARSE_SCALE_PPG else 3
    base = max(pos_shift - POS_COARSER, -4)
    refine = min(POS_REFINE, 6 - base)
    kernel = SPARSE_KERNEL if pixels_per_gaussian >= SPARSE_KERNEL_PPG else GAUSSIAN_KERNEL
    return QuantSpec(pos_shift=base, scale_bits=scale_bits, angle_bits=6, color_shifts=(6,) * channels,
                     pos_refine=refine, pos_rel=POS_REL, kernel=kernel)


def floor_spec(channels: int) -> QuantSpec:
    """Depths of the empty file (the size floor): the coarsest colours, so the floor is as small as it gets."""
    return QuantSpec(pos_shift=-4, scale_bits=2, angle_bits=4, color_shifts=(5,) * channels)


def estimate_bytes_per_gaussian(pixels_per_gaussian: float, spec: QuantSpec, channels: int) -> float:
    """Prior guess of the coded size of one Gaussian (refined by measurement later)."""
    cells = pixels_per_gaussian * 4.0 ** spec.pos_shift
    position = math.log2(max(cells, 1.0) * math.e) + 0.3 + (2 * POS_COARSER if spec.pos_refine else 0.0)
    # per-attribute entropies measured on fitted Kodak images, relative to the bit depths
    scales = 2 * (spec.scale_bits + 1.9) + (spec.angle_bits - 0.7)
    colors = spec.color_shifts[0] + (2 * spec.color_shifts[0] - 5.2 if channels == 3 else 0.0)
    return (position + scales + colors) / 8.0


def pack(params: dict, spec: QuantSpec, size: tuple[int, int], channels: int,
         metadata: dict | None, background: np.ndarray | None = None) -> tuple[bytes, dict]:
    """Quantise, order and code float parameters (and the background integers) into a .gsi file."""
    h, w = size
    ints = quantize(params, spec, size)
    order = coding_order(ints)
    ints = {k: v[order] for k, v in ints.items()}
    payload = encode_payload(ints, spec, h, w, channels, background)
    return write_container("gsi", [Chunk(CHUNK_TYPE, payload)], metadata or None), ints


def background_for(mean: np.ndarray, spec: QuantSpec) -> tuple[np.ndarray, np.ndarray]:
    """Background from the image's mean colour (C,): (integers as coded, RGB/grey value added).

    Gaussians then only model deviations from the mean, so the sparse fits of extreme ratios
    no longer spend overlapping Gaussians on building up a flat base level (measured on 4
    Kodak images: +0.34 dB at CR 500, +0.2 dB at CR 1000).
    """
    q = quantize_colors(np.asarray(mean, np.float64)[None, :], spec)
    return q[0], dequantize_colors(q, spec)[0][0]


def empty_file(size: tuple[int, int], channels: int, metadata: dict | None,
               background: np.ndarray | None = None) -> bytes:
    """The smallest valid file for this image: no Gaussians, only the background."""
    empty = {"means": np.zeros((0, 2)), "log2_scales": np.zeros((0, 2)), "angles": np.zeros(0),
             "colors": np.zeros((0, channels))}
    return pack(empty, floor_spec(channels), size, channels, metadata, background)[0]


def encode_array(image: np.ndarray, budget: int, *, steps: int | None, device: str, seed: int,
                 progress: bool, metadata: dict | None, init_fn=None, render_fn=None) -> bytes:
    """Encode a float32 (H, W, C) image in [0, 1] into at most `budget` bytes."""
    import torch

    h, w, c = image.shape
    mean = image.reshape(-1, c).mean(0, dtype=np.float64)
    # The empty file (the floor) codes the background at the coarsest colour precision.
    bg_floor = background_for(mean, floor_spec(c))[0]
    floor_bytes = len(empty_file((h, w), c, metadata, bg_floor))
    if budget < floor_bytes:
        raise InputError(f"a budget of {budget} bytes is below the {floor_bytes} bytes of an empty "
                         f"{w}x{h} file{' (metadata included)' if metadata else ''}; allow more bytes "
                         f"(a lower ratio, or a larger byte or bpp cap)")
    dev = resolve_device(device)
    if steps is not None and steps < 0:
        raise InputError("steps must be non-negative")
    torch.manual_seed(seed)
    payload_budget = budget - floor_bytes - 3   # chunk length varint may grow by up to 3 bytes
    n = _initial_count(payload_budget, h, w, c)
    spec = plan_spec(h * w / max(n, 1), c)
    if init_fn is None:
        from functools import partial

        from .init import smartsplat_init
        init_fn = partial(smartsplat_init, device=dev, beta=spec.beta)
    if n == 0:
        return empty_file((h, w), c, metadata, bg_floor)
    if steps is None:
        steps = default_steps(dev)
    bg_q, bg = background_for(mean, spec)
    init = init_fn(image - bg.astype(np.float32), n, seed)
    fitter = GaussianFitter(image, init, device=dev, config=fit_config(h * w / n),
                            render_fn=render_fn, seed=seed, background=bg, beta=spec.beta)
    s1, s2, s3 = _split_steps(steps)
    color_iters = min(COLOR_ITERS, steps // 5)
    init_iters = min(INIT_COLOR_ITERS, steps // 10)
    bar = _progress(progress, steps + color_iters + init_iters)
    try:
        fitter.solve_colors(init_iters, progress=bar, freeze=False)
        factor = _coarse_factor(h, w, n)
        fitter.run(s1, progress=bar, coarse=COARSE_FRACTION, factor=factor,
                   relocate_every=max(10, s1 // RELOCATE_EVENTS), relocate_frac=RELOCATE_FRAC,
                   relocate_until=RELOCATE_UNTIL)
        data, _ = pack(fitter.export(), spec, (h, w), c, metadata, bg_q)
        if len(data) > floor_bytes + payload_budget * MARGIN:
            per = (len(data) - floor_bytes) / fitter.count
            _prune(fitter, int(payload_budget * MARGIN / per))
        # Large Gaussians (extreme ratios) keep half of this phase one level coarser: same result,
        # a fraction of the pixel work.
        fitter.run(s2, lr_scale=0.5, progress=bar, coarse=0.5 if factor >= 4 else 0.0, factor=factor // 2)
        # Staged quantisation: the parameters still free adapt to those already quantised. On
        # Kodak 03, 05, 07, 09, 19, 20 at CR 500, against straight-through fine-tuning of all of
        # them at 1% rates: angles, then the rest +0.09 dB (5-bit angles); with 6-bit angles
        # +0.04, and angles, then positions, then the rest +0.08.
        fitter.freeze(spec, ("angles",))
        s3a = int(round(s3 * SETTLE_SPLIT))
        fitter.run(s3a, lr_scale=SETTLE_LR_SCALE, progress=bar)
        fitter.freeze(spec, ("means",))
        fitter.run(s3 - s3a, lr_scale=SETTLE_LR_SCALE, progress=bar)
        fitter.freeze_geometry(spec)
        fitter.solve_colors(color_iters, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    data = _fit_into(fitter, spec, (h, w), c, metadata, budget, min(color_iters, REFIT_ITERS), bg_q)
    # With every Gaussian pruned, the background at the file's finer colour precision may not
    # fit where the floor (coarsest precision) does.
    return data if len(data) <= budget else empty_file((h, w), c, metadata, bg_floor)


def _fit_into(fitter: GaussianFitter, spec: QuantSpec, size, channels: int, metadata, budget: int,
              refit: int, background: np.ndarray) -> bytes:
    """Code the Gaussians, pruning the weakest until the whole file is within `budget` bytes."""
    while True:
        # Staged colour quantisation: +0.04 dB at CR 500, +0.02 at CR 1000 (Kodak 03, 05, 07,
        # 09, 19, 20) over rounding all colours at once; 3 rounds +0.02 at CR 500.
        fitter.settle_colors(spec, COLOR_ROUNDS, refit)
        data, _ = pack(fitter.export(), spec, size, channels, metadata, background)
        if len(data) <= budget or fitter.count == 0:
            return data
        _prune(fitter, _largest_fitting(fitter, spec, size, channels, metadata, budget, background))
        fitter.solve_colors(refit)


def _largest_fitting(fitter: GaussianFitter, spec: QuantSpec, size, channels: int, metadata,
                     budget: int, background: np.ndarray) -> int:
    """Largest count of the most important Gaussians whose file fits (bisection on real sizes).

    Sizes are not monotone in the count to the byte (the models adapt), so this may leave a few
    bytes; the caller re-checks after the colour refit and prunes again if needed.
    """
    params = fitter.export()
    order = _strongest_first(fitter)
    lo, hi = 0, fitter.count - 1          # lo always fits (0: the caller's empty-file fallback)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        keep = np.sort(order[:mid])
        sub = {k: v[keep] for k, v in params.items()}
        if len(pack(sub, spec, size, channels, metadata, background)[0]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _prune(fitter: GaussianFitter, keep: int) -> None:
    keep = max(0, min(keep, fitter.count))
    if keep == fitter.count:
        return
    fitter.keep(np.sort(_strongest_first(fitter)[:keep]))


def _strongest_first(fitter: GaussianFitter) -> np.ndarray:
    """Gaussian indices by decreasing importance (ties in index order): the pruning order."""
    return np.argsort(-fitter.importance(), kind="stable")


def _initial_count(payload_budget: int, h: int, w: int, c: int) -> int:
    """Gaussian count that the prior size estimate fits into the payload budget (fixed point)."""
    n = max(1, payload_budget // 4)
    for _ in range(8):
        ppg = h * w / max(n, 1)
        spec = plan_spec(ppg, c)
        header = 40 + 4 * c
        n_new = int(max(0, payload_budget - header) / estimate_bytes_per_gaussian(ppg, spec, c))
        n_new = min(n_new, h * w)
        if n_new == n:
            break
        n = max(n_new, 0)
    # Start a little above the estimate: pruning afterwards is cheap, adding Gaussians is not.
    return min(int(n * OVERSHOOT), h * w)


def _coarse_factor(h: int, w: int, n: int) -> int:
    """Warm-up resolution divisor: about one coarse pixel per initial Gaussian sigma (1: none)."""
    sigma = math.sqrt(h * w / (max(n, 1) * math.pi)) / 3.0
    if sigma < MIN_COARSE_SIGMA:
        return 1
    return int(2 ** int(np.clip(math.floor(math.log2(sigma)), 1, 3)))


def _split_steps(steps: int) -> tuple[int, int, int]:
    s1 = int(round(steps * PHASES[0]))
    s2 = int(round(steps * PHASES[1]))
    return s1, s2, steps - s1 - s2


def _progress(enabled: bool, total: int):
    if not enabled or total <= 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="fitting", unit="step", leave=False)
