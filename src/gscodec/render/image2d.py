"""Differentiable 2D Gaussian image rasteriser (torch; CPU and CUDA alike).

Conventions are specified in spec/render2d.md; gscodec.render.image2d_np is the numpy twin.
The renderer enumerates, row by row, exactly the pixel centres inside each Gaussian's
3-sigma ellipse and scatter-adds their contributions, in bounded chunks.
"""
from __future__ import annotations

import math

import torch

# Constants and size rules are shared with the numpy twin, so both render the same picture.
from .image2d_np import (AA_VARIANCE, CUTOFF, MIN_VARIANCE, PIXEL_CHUNK, ROW_CHUNK,  # noqa: F401
                         _sizes, aa_variance)


def _geometry(means, scales, angles, fx: float, fy: float):
    """Output-frame means, covariance (xx, yy, xy), determinant and amplitude per Gaussian."""
    c = torch.cos(angles)
    s = torch.sin(angles)
    v1 = scales[:, 0] * scales[:, 0]
    v2 = scales[:, 1] * scales[:, 1]
    sxx = (c * c * v1 + s * s * v2) * (fx * fx)
    syy = (s * s * v1 + c * c * v2) * (fy * fy)
    sxy = (c * s * (v1 - v2)) * (fx * fy)
    # determinant from the factored form: sxx*syy - sxy^2 cancels badly for thin Gaussians
    det = v1 * v2 * (fx * fx * fy * fy)
    ax, ay = aa_variance(fx), aa_variance(fy)
    amp = None
    if ax > 0.0 or ay > 0.0:
        det_f = det + ax * syy + ay * sxx + ax * ay
        # the low-pass filter spreads each Gaussian; keep its integral (Mip-Splatting style)
        amp = torch.sqrt(det / det_f.clamp_min(MIN_VARIANCE))
        sxx = sxx + ax
        syy = syy + ay
        det = det_f
    return (means[:, 0] * fx, means[:, 1] * fy, sxx.clamp_min(MIN_VARIANCE),
            syy.clamp_min(MIN_VARIANCE), sxy, det.clamp_min(MIN_VARIANCE * MIN_VARIANCE), amp)


def _ranges(lo, hi, limit: int):
    """Integer index range of pixel centres (i + 0.5) inside [lo, hi], clipped to [0, limit)."""
    a = torch.ceil(lo - 0.5).clamp(0, limit)
    b = torch.floor(hi - 0.5).clamp(-1, limit - 1)
    return a.long(), b.long()


def render_image(means: torch.Tensor, scales: torch.Tensor, angles: torch.Tensor,
                 colors: torch.Tensor, src_size: tuple[int, int],
                 out_size: tuple[int, int] | None = None) -> torch.Tensor:
    """Render 2D Gaussians (accumulated, opacity 1, 3-sigma cut) to an (H', W', C) image."""
    h, w, oh, ow = _sizes(src_size, out_size)
    dtype = torch.float64 if colors.dtype == torch.float64 else torch.float32
    nchan = int(colors.shape[1])
    img = torch.zeros(nchan, oh * ow, dtype=dtype, device=means.device)
    _splat(img, None, means, scales, angles, colors, (h, w, oh, ow))
    return img.t().reshape(oh, ow, nchan)


def splat_adjoint(means: torch.Tensor, scales: torch.Tensor, angles: torch.Tensor,
                  image: torch.Tensor, src_size: tuple[int, int],
                  out_size: tuple[int, int] | None = None) -> torch.Tensor:
    """Transpose of render_image in the colours: (N, C) sums of image x each Gaussian's weight.

    render_image is linear in the colours, I = A c; this returns A^T image without autograd
    and in bounded memory (used by the initialiser's colour fit).
    """
    h, w, oh, ow = _sizes(src_size, out_size)
    dtype = torch.float64 if image.dtype == torch.float64 else torch.float32
    nchan = int(image.shape[2])
    # channel-major layouts: index_add/index_select along the last dim are the fast paths
    flat = image.to(dtype).reshape(oh * ow, nchan).t().contiguous()
    out = torch.zeros(nchan, means.shape[0], dtype=dtype, device=means.device)
    with torch.no_grad():
        ones = torch.ones(means.shape[0], 1, dtype=dtype, device=means.device)
        _splat(out, flat, means, scales, angles, ones, (h, w, oh, ow))
    return out.t()


def _splat(img, adj, means, scales, angles, colors, sizes) -> None:
    """Scatter colours into img (C, H'*W'), or with adj (C, H'*W') gather into img (C, N)."""
    h, w, oh, ow = sizes
    fx, fy = ow / w, oh / h
    dtype = img.dtype
    if means.shape[0] > 0:
        means, scales, angles, colors = (t.to(dtype) for t in (means, scales, angles, colors))
        mx, my, sxx, syy, sxy, det, amp = _geometry(means, scales, angles, fx, fy)
        col_t = (colors * amp[:, None]).t() if amp is not None else colors.t()
        with torch.no_grad():
            ey = CUTOFF ** 0.5 * torch.sqrt(syy)
            finite = (torch.isfinite(mx) & torch.isfinite(my) & torch.isfinite(ey)
                      & torch.isfinite(sxx) & torch.isfinite(col_t).all(0))
            r0, r1 = _ranges(torch.where(finite, my - ey, my.new_tensor(0.0)),
                             torch.where(finite, my + ey, my.new_tensor(-1.0)), oh)
            nrows = (r1 - r0 + 1).clamp_min(0)
            gids = torch.nonzero(nrows > 0).squeeze(1)
            # top-to-bottom order keeps each chunk's scatter inside a band of the image
            gids = gids[torch.argsort(r0[gids], stable=True)]
            nrows = nrows[gids]
            row_cum = torch.cumsum(nrows, 0).cpu()
        # batches of Gaussians whose rows fit in ROW_CHUNK (one Gaussian has at most oh rows)
        row_chunk = max(ROW_CHUNK, oh)
        g_start = 0
        while g_start < len(gids):
            base = int(row_cum[g_start - 1]) if g_start > 0 else 0
            g_end = max(int(torch.searchsorted(row_cum, base + row_chunk, right=True)), g_start + 1)
            _render_rows(img, adj, gids[g_start:g_end], nrows[g_start:g_end], r0, mx, my, sxx,
                         syy, sxy, det, col_t, ow)
            g_start = g_end


def _render_rows(img, adj, gid, nrows, r0, mx, my, sxx, syy, sxy, det, col_t, ow: int) -> None:
    """Scatter-add Gaussians `gid` (nrows covered rows each) into img, or gather adj for them."""
    dev = img.device
    i32 = torch.int32
    with torch.no_grad():
        row_g = torch.repeat_interleave(gid, nrows)
        first = torch.cumsum(nrows, 0) - nrows
        local = torch.arange(len(row_g), device=dev) - torch.repeat_interleave(first, nrows)
        row = r0.index_select(0, row_g) + local
    # per row the ellipse is a 1D Gaussian in x centred at x0 with variance det/syy
    syy_r = syy.index_select(0, row_g)
    dy = (row.to(img.dtype) + 0.5) - my.index_select(0, row_g)
    x0 = mx.index_select(0, row_g) + (sxy.index_select(0, row_g) / syy_r) * dy
    inv_a = det.index_select(0, row_g) / syy_r
    qrow = dy * dy / syy_r
    with torch.no_grad():
        inside = qrow <= CUTOFF
        half = torch.sqrt(((CUTOFF - qrow) * inv_a).clamp_min(0.0))
        c0, c1 = _ranges(x0 - half, x0 + half, ow)
        npix = torch.where(inside, (c1 - c0 + 1).clamp_min(0), 0)
        keep = torch.nonzero(npix > 0).squeeze(1)
        npix = npix.index_select(0, keep)
        pix_cum = torch.cumsum(npix, 0).cpu()
        c0 = c0.index_select(0, keep)
        pixbase = row.index_select(0, keep) * ow + c0
    # pixel-level tables, restricted to rows that touch pixels; -0.5 folded in
    off = (c0.to(img.dtype) + 0.5) - x0.index_select(0, keep)
    na = -0.5 * syy_r.index_select(0, keep) / det.index_select(0, row_g.index_select(0, keep))
    nq = -0.5 * qrow.index_select(0, keep)
    col_r = col_t.index_select(1, row_g.index_select(0, keep))
    n_keep = len(keep)
    if adj is not None:
        acc_r = torch.zeros(adj.shape[0], n_keep, dtype=img.dtype, device=dev)
    start = 0
    while start < n_keep:
        base = int(pix_cum[start - 1]) if start > 0 else 0
        end = max(int(torch.searchsorted(pix_cum, base + PIXEL_CHUNK, right=True)), start + 1)
        with torch.no_grad():
            cnt = npix[start:end].to(i32)
            rid = torch.repeat_interleave(torch.arange(start, end, dtype=i32, device=dev), cnt)
            first = torch.cumsum(cnt, 0, dtype=i32) - cnt
            loc = torch.arange(len(rid), dtype=i32, device=dev) - first.index_select(0, rid - start)
            pix = pixbase.index_select(0, rid) + loc
        u = loc.to(img.dtype) + off.index_select(0, rid)
        arg = torch.addcmul(nq.index_select(0, rid), na.index_select(0, rid), u * u)
        if adj is None:
            # int64 index: autograd turns this gather into a 2D index_add_, ~30x slower with int32
            img.index_add_(1, pix, col_r.index_select(1, rid.long()) * torch.exp(arg))
        else:
            wgt = torch.exp(arg) * col_r[0].index_select(0, rid)
            # int64 index: 2D index_add_ with an int32 index takes a ~10x slower path
            acc_r.index_add_(1, rid.long(), adj.index_select(1, pix) * wgt)
        start = end
    if adj is not None:
        img.index_add_(1, row_g.index_select(0, keep), acc_r)
