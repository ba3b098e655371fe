"""2D Gaussian image rasteriser in numpy only, for torch-free decoders.

Same conventions and algorithm as gscodec.render.image2d (see spec/render2d.md): each
Gaussian's 3-sigma ellipse is enumerated row by row and accumulated with bincount, in
bounded chunks.
"""
from __future__ import annotations

import math

import numpy as np

CUTOFF = 9.0          # Mahalanobis distance squared at which a Gaussian stops (3 sigma)
AA_VARIANCE = 0.25    # anti-aliasing variance (output px^2) reached when downscaling far
MIN_VARIANCE = 1e-12  # floor on covariance terms so degenerate Gaussians stay finite
ROW_CHUNK = 1 << 20   # rows per batch: bounds the row arrays
PIXEL_CHUNK = 1 << 22  # Gaussian-pixel pairs per batch: bounds memory


def _sizes(src_size, out_size) -> tuple[int, int, int, int]:
    h, w = int(src_size[0]), int(src_size[1])
    if out_size is None:
        oh, ow = h, w
    else:
        oh, ow = int(out_size[0]), int(out_size[1])
    if min(h, w, oh, ow) <= 0:
        raise ValueError(f"sizes must be positive, got src {src_size} out {out_size}")
    return h, w, oh, ow


def aa_variance(factor: float) -> float:
    """Isotropic variance (output px^2) added along an axis rescaled by `factor`."""
    return AA_VARIANCE * max(0.0, 1.0 - factor * factor)


def check_beta(beta: float) -> float:
    """The kernel exponent as a float; it must be finite and at least 1."""
    b = float(beta)
    if not (math.isfinite(b) and b >= 1.0):
        raise ValueError(f"kernel exponent must be a finite number >= 1, got {beta!r}")
    return b


def _ranges(lo: np.ndarray, hi: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer index range of pixel centres (i + 0.5) inside [lo, hi], clipped to [0, limit)."""
    a = np.clip(np.ceil(lo - 0.5), 0, limit).astype(np.int64)
    b = np.clip(np.floor(hi - 0.5), -1, limit - 1).astype(np.int64)
    return a, b


def _repeat_index(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For counts k_i: the owner index i and the position 0..k_i-1 of every expanded item."""
    owner = np.repeat(np.arange(len(counts), dtype=counts.dtype), counts)
    first = np.cumsum(counts, dtype=counts.dtype) - counts
    return owner, np.arange(len(owner)) - first[owner]


def render_image_np(means: np.ndarray, scales: np.ndarray, angles: np.ndarray,
                    colors: np.ndarray, src_size: tuple[int, int],
                    out_size: tuple[int, int] | None = None, beta: float = 1.0) -> np.ndarray:
    """Render 2D Gaussians (accumulated, opacity 1, kernel exp(-(q/2)^beta)) to an (H', W', C) float32 image."""
    h, w, oh, ow = _sizes(src_size, out_size)
    beta = check_beta(beta)
    fx, fy = ow / w, oh / h
    f = np.float32
    means = np.asarray(means, f).reshape(-1, 2)
    scales = np.asarray(scales, f).reshape(-1, 2)
    angles = np.asarray(angles, f).reshape(-1)
    colors = np.asarray(colors, f)
    if colors.ndim == 1:
        colors = colors[:, None]
    n = len(means)
    if scales.shape[0] != n or angles.shape[0] != n or colors.shape[0] != n or colors.ndim != 2:
        raise ValueError("means, scales, angles and colors must describe the same Gaussians")
    nchan = colors.shape[1]
    acc = np.zeros((nchan, oh * ow), np.float32)
    if len(means) == 0:
        return np.zeros((oh, ow, nchan), f)
    with np.errstate(all="ignore"):
        c, s = np.cos(angles), np.sin(angles)
        v1, v2 = scales[:, 0] * scales[:, 0], scales[:, 1] * scales[:, 1]
        sxx = (c * c * v1 + s * s * v2) * f(fx * fx)
        syy = (s * s * v1 + c * c * v2) * f(fy * fy)
        sxy = (c * s * (v1 - v2)) * f(fx * fy)
        det = v1 * v2 * f(fx * fx * fy * fy)
        ax, ay = f(aa_variance(fx)), f(aa_variance(fy))
        if ax > 0 or ay > 0:
            det_f = det + ax * syy + ay * sxx + ax * ay
            colors = colors * np.sqrt(det / np.maximum(det_f, f(MIN_VARIANCE)))[:, None]
            sxx, syy, det = sxx + ax, syy + ay, det_f
        sxx = np.maximum(sxx, f(MIN_VARIANCE))
        syy = np.maximum(syy, f(MIN_VARIANCE))
        det = np.maximum(det, f(MIN_VARIANCE * MIN_VARIANCE))
        mx, my = means[:, 0] * f(fx), means[:, 1] * f(fy)
        ey = f(CUTOFF ** 0.5) * np.sqrt(syy)
        finite = np.isfinite(mx) & np.isfinite(my) & np.isfinite(ey) & np.isfinite(sxx) \
            & np.isfinite(colors).all(axis=1)
        r0, r1 = _ranges(np.where(finite, my - ey, 0), np.where(finite, my + ey, -1), oh)
    nrows = np.maximum(r1 - r0 + 1, 0)
    gids = np.nonzero(nrows > 0)[0]
    # top-to-bottom order keeps each chunk's accumulation inside a band of the image
    gids = gids[np.argsort(r0[gids], kind="stable")]
    nrows = nrows[gids]
    row_cum = np.cumsum(nrows)
    row_chunk = max(ROW_CHUNK, oh)
    colors64 = colors.astype(np.float64)
    g_start = 0
    while g_start < len(gids):
        base = int(row_cum[g_start - 1]) if g_start > 0 else 0
        g_end = max(int(np.searchsorted(row_cum, base + row_chunk, side="right")), g_start + 1)
        owner, local = _repeat_index(nrows[g_start:g_end])
        row_g = gids[g_start:g_end][owner]
        row = r0[row_g] + local
        syy_r = syy[row_g]
        dy = (row.astype(f) + f(0.5)) - my[row_g]
        x0 = mx[row_g] + (sxy[row_g] / syy_r) * dy
        inv_a = det[row_g] / syy_r
        qrow = dy * dy / syy_r
        half = np.sqrt(np.maximum((f(CUTOFF) - qrow) * inv_a, 0))
        c0, c1 = _ranges(x0 - half, x0 + half, ow)
        npix = np.where(qrow <= f(CUTOFF), np.maximum(c1 - c0 + 1, 0), 0)
        keep = np.nonzero(npix > 0)[0]
        c0 = c0[keep]
        tables = (row[keep] * ow + c0, (c0.astype(f) + f(0.5)) - x0[keep],
                  f(-0.5) / inv_a[keep], f(-0.5) * qrow[keep],
                  colors64[row_g[keep]].T.copy())
        _accumulate(acc, npix[keep], *tables, beta=beta)
        g_start = g_end
    out = np.empty((oh * ow, nchan), f)
    for ch in range(nchan):
        out[:, ch] = acc[ch]
    return out.reshape(oh, ow, nchan)


def _accumulate(acc, npix, pixbase, off, na, nq, col_r, beta: float = 1.0) -> None:
    """Add the pixels of row spans (npix long, starting at pixbase) into acc (C, H'*W')."""
    # per-row values are expanded with np.repeat: rows are contiguous runs of pixels, so a
    # sequential repeat replaces a random gather
    pix_cum = np.cumsum(npix)
    start = 0
    while start < len(npix):
        base = int(pix_cum[start - 1]) if start > 0 else 0
        end = max(int(np.searchsorted(pix_cum, base + PIXEL_CHUNK, side="right")), start + 1)
        cnt = npix[start:end]
        first = np.cumsum(cnt) - cnt
        loc = np.arange(int(pix_cum[end - 1]) - base, dtype=np.int64) - np.repeat(first, cnt)
        pix = np.repeat(pixbase[start:end], cnt) + loc
        u = loc.astype(np.float32) + np.repeat(off[start:end], cnt)
        wgt = kernel_np(np.repeat(na[start:end], cnt) * (u * u) + np.repeat(nq[start:end], cnt), beta)
        # bincount converts weights to float64 anyway; doing it once here is cheaper
        wgt = wgt.astype(np.float64)
        lo = int(pix.min())
        pix -= lo
        span = int(pix.max()) + 1
        for ch in range(acc.shape[0]):
            band = np.bincount(pix, weights=wgt * np.repeat(col_r[ch, start:end], cnt),
                               minlength=span)
            acc[ch, lo:lo + span] += band
        start = end


def kernel_np(arg: np.ndarray, beta: float) -> np.ndarray:
    """Kernel weights from arg = -q/2 <= 0: exp(arg) for beta 1, else exp(-(-arg)^beta) (float32)."""
    if beta == 1.0:
        return np.exp(arg)
    x = np.maximum(-arg, np.float32(0.0))
    return np.exp(-(x * x if beta == 2.0 else x ** np.float32(beta)))
