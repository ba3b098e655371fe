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
                         _sizes, aa_variance, check_beta)

CACHE_PAIRS = 1 << 24   # Gaussian-pixel pairs whose tables the forward keeps for the backward


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
                 out_size: tuple[int, int] | None = None, beta: float = 1.0) -> torch.Tensor:
    """Render 2D Gaussians (accumulated, opacity 1, kernel exp(-(q/2)^beta)) to an (H', W', C) image.

    Differentiable in all four inputs; the backward pass reuses the forward's pair tables up to
    CACHE_PAIRS pairs and enumerates the pairs again beyond, so memory stays bounded at any
    image size.
    """
    h, w, oh, ow = _sizes(src_size, out_size)
    dtype = torch.float64 if colors.dtype == torch.float64 else torch.float32
    nchan = int(colors.shape[1])
    if means.shape[0] == 0:
        return torch.zeros(oh, ow, nchan, dtype=dtype, device=means.device)
    geo, col_t = _prepare(means, scales, angles, colors, (h, w, oh, ow), dtype)
    return _Raster.apply(*geo, col_t, oh, ow, check_beta(beta)).t().reshape(oh, ow, nchan)


def splat_adjoint(means: torch.Tensor, scales: torch.Tensor, angles: torch.Tensor,
                  image: torch.Tensor, src_size: tuple[int, int],
                  out_size: tuple[int, int] | None = None, beta: float = 1.0) -> torch.Tensor:
    """Transpose of render_image in the colours: (N, C) sums of image x each Gaussian's weight.

    render_image is linear in the colours, I = A c; this returns A^T image without autograd
    and in bounded memory (used by the initialiser's colour fit).
    """
    h, w, oh, ow = _sizes(src_size, out_size)
    dtype = torch.float64 if image.dtype == torch.float64 else torch.float32
    nchan = int(image.shape[2])
    flat = image.to(dtype).reshape(oh * ow, nchan).t().contiguous()
    out = torch.zeros(means.shape[0], nchan, dtype=dtype, device=means.device)
    if means.shape[0] == 0:
        return out
    with torch.no_grad():
        ones = torch.ones(means.shape[0], 1, dtype=dtype, device=means.device)
        geo, col_t = _prepare(means, scales, angles, ones, (h, w, oh, ow), dtype)
        _adjoint(out, flat, *geo, col_t, oh, ow, check_beta(beta))
    return out


def _prepare(means, scales, angles, colors, sizes, dtype):
    """Per-Gaussian output-frame geometry (mx, my, sxx, syy, sxy, det) and amplitude-scaled colours (N, C)."""
    h, w, oh, ow = sizes
    means, scales, angles, colors = (t.to(dtype) for t in (means, scales, angles, colors))
    mx, my, sxx, syy, sxy, det, amp = _geometry(means, scales, angles, ow / w, oh / h)
    col = colors * amp[:, None] if amp is not None else colors
    return (mx, my, sxx, syy, sxy, det), col


class _Raster(torch.autograd.Function):
    """Scatter of the Gaussians into a (C, H'*W') image with an analytic backward.

    The exponent of a pair is evaluated row-wise (spec/render2d.md): with dy the row offset,
    k = sxy / syy, u = x - mx - k dy and P = syy / det, arg = -dy^2 / (2 syy) - P u^2 / 2. Its
    partial derivatives need only the per-row sums of g, g u and g u^2 (g = dLoss/darg). The
    forward keeps the pair tables (24 bytes a pair) up to CACHE_PAIRS pairs; beyond that the
    backward enumerates the pairs again, so memory stays bounded at any image size.
    """

    @staticmethod
    def forward(ctx, mx, my, sxx, syy, sxy, det, col_t, oh: int, ow: int, beta: float):
        img = torch.zeros(col_t.shape[1], oh * ow, dtype=col_t.dtype, device=col_t.device)
        cache: list | None = [] if any(ctx.needs_input_grad) else None
        pairs = 0
        for rows, chunks in _batches(mx, my, sxx, syy, sxy, det, col_t, oh, ow, beta, cache is not None):
            kept = []
            for chunk in chunks:
                rid, pix, wgt = chunk[0], chunk[1], chunk[3]
                img.index_add_(1, pix, _gather(rows["col"], rid).mul_(wgt))
                pairs += len(rid)
                if cache is not None and pairs <= CACHE_PAIRS:
                    kept.append(chunk)
                else:
                    cache = kept = None
            if cache is not None:
                cache.append((rows, kept))
        ctx.save_for_backward(mx, my, sxx, syy, sxy, det, col_t)
        ctx.size = (oh, ow, beta)
        ctx.cache = cache
        return img

    @staticmethod
    def backward(ctx, grad):
        mx, my, sxx, syy, sxy, det, col_t = ctx.saved_tensors
        nchan = col_t.shape[1]
        acc = torch.zeros(mx.shape[0], nchan + 5, dtype=col_t.dtype, device=col_t.device)
        grad = grad.contiguous()             # (C, H'*W')
        batches = ctx.cache
        if batches is None:
            batches = _batches(mx, my, sxx, syy, sxy, det, col_t, *ctx.size)
        geo = any(ctx.needs_input_grad[:6])   # colour-only backward: the CGLS adjoint
        for rows, chunks in batches:
            _gather_grads(acc, grad, rows, chunks, nchan, geo)
        ctx.cache = None
        g_mx, g_my, g_syy, g_sxy, g_det = acc[:, nchan:].t()
        return g_mx, g_my, None, g_syy, g_sxy, g_det, acc[:, :nchan], None, None, None



def _gather_grads(acc, grad, rows: dict, chunks, nchan: int, geo: bool = True) -> None:
    """Add one batch's gradients of the colours, mx, my, syy, sxy, det to acc (N, C + 5).

    With geo False only the colour gradients (the first C columns) are computed.
    """
    col = rows["col"]
    if not geo:
        acc[:, :nchan].index_add_(0, rows["g"], _weighted_sums(grad, rows, chunks).t())
        return
    acc_c = torch.zeros(nchan, len(rows["g"]), dtype=acc.dtype, device=acc.device)
    acc_m = torch.zeros(3, len(rows["g"]), dtype=acc.dtype, device=acc.device)
    for rid, pix, u, wgt, dw in chunks:
        # per pair: image gradient x weight (the colour gradient) and g = dLoss/darg with
        # its u and u^2 moments, summed per row (dw = dweight/darg: the weight itself for beta 1)
        if dw is wgt:
            gp = _gather(grad, pix).mul_(wgt)
            acc_c.index_add_(1, rid, gp)
            g = gp.mul_(_gather(col, rid)).sum(0)
        else:
            gp = _gather(grad, pix)
            acc_c.index_add_(1, rid, gp * wgt)
            g = gp.mul_(_gather(col, rid)).sum(0).mul_(dw)
        gu = g * u
        acc_m.index_add_(1, rid, torch.stack([g, gu, gu * u]))
    s0, s1, s2 = acc_m
    t, k, p, det = rows["t"], rows["k"], rows["p"], rows["det"]
    ps1 = p * s1
    d_geo = torch.stack([ps1,                                            # d/d mx
                         t * s0 - k * ps1,                               # d/d my
                         0.5 * t * t * s0 - 0.5 * s2 / det - k * t * ps1,  # d/d syy
                         t * ps1,                                        # d/d sxy
                         0.5 * p * s2 / det], 1)                         # d/d det
    acc.index_add_(0, rows["g"], torch.cat([acc_c.t(), d_geo], 1))


def _adjoint(out, adj, mx, my, sxx, syy, sxy, det, col_t, oh: int, ow: int, beta: float) -> None:
    """Add adj (C, H'*W') times each Gaussian's weights (times its one-channel colour) to out (N, C)."""
    for rows, chunks in _batches(mx, my, sxx, syy, sxy, det, col_t, oh, ow, beta, False):
        out.index_add_(0, rows["g"], _weighted_sums(adj, rows, chunks, rows["col"][0]).t())


def _weighted_sums(img, rows: dict, chunks, scale=None) -> torch.Tensor:
    """Per row, the sum of img (C, H'*W') over its pixels times their weights (and scale[row]): (C, rows)."""
    acc = torch.zeros(img.shape[0], len(rows["g"]), dtype=img.dtype, device=img.device)
    for rid, pix, _, wgt, _ in chunks:
        if scale is not None:
            wgt = wgt * scale.index_select(0, rid)
        acc.index_add_(1, rid, _gather(img, pix).mul_(wgt))
    return acc


def _gather(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Columns idx of a (C, M) tensor as a new (C, len(idx)) tensor (one 1D gather per channel)."""
    return torch.stack([t[c].index_select(0, idx) for c in range(t.shape[0])])


def _batches(mx, my, sxx, syy, sxy, det, col_t, oh: int, ow: int, beta: float = 1.0, slopes: bool = True):
    """Yield (row tables, pair chunks) for batches of Gaussians, top to bottom (no autograd).

    slopes False leaves the pairs' dweight/darg out (None) where it is not the weight itself:
    renders without a backward do not need it.

    Per-pair values are channel-major (C, pairs): one 1D gather per channel and 2D
    scatters along the last dimension are the fastest forms on CPU.
    """
    with torch.no_grad():
        ey = CUTOFF ** 0.5 * torch.sqrt(syy)
        finite = (torch.isfinite(mx) & torch.isfinite(my) & torch.isfinite(ey)
                  & torch.isfinite(sxx) & torch.isfinite(col_t).all(1))
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
        with torch.no_grad():
            rows, pairs = _row_tables(gids[g_start:g_end], nrows[g_start:g_end], r0, mx, my,
                                      syy, sxy, det, col_t, ow)
        yield rows, _pair_chunks(*pairs, beta, slopes)
        g_start = g_end


def _row_tables(gid, nrows, r0, mx, my, syy, sxy, det, col_t, ow: int):
    """Per-row tables of Gaussians `gid` (nrows covered rows each): rows that touch pixels only."""
    dev = mx.device
    dtype = col_t.dtype
    row_g = torch.repeat_interleave(gid, nrows)
    first = torch.cumsum(nrows, 0) - nrows
    local = torch.arange(len(row_g), device=dev) - torch.repeat_interleave(first, nrows)
    row = r0.index_select(0, row_g) + local
    # per row the ellipse is a 1D Gaussian in x centred at x0 with variance det/syy
    syy_r = syy.index_select(0, row_g)
    dy = (row.to(dtype) + 0.5) - my.index_select(0, row_g)
    x0 = mx.index_select(0, row_g) + (sxy.index_select(0, row_g) / syy_r) * dy
    inv_a = det.index_select(0, row_g) / syy_r
    qrow = dy * dy / syy_r
    inside = qrow <= CUTOFF
    half = torch.sqrt(((CUTOFF - qrow) * inv_a).clamp_min(0.0))
    c0, c1 = _ranges(x0 - half, x0 + half, ow)
    npix = torch.where(inside, (c1 - c0 + 1).clamp_min(0), 0)
    keep = torch.nonzero(npix > 0).squeeze(1)
    npix = npix.index_select(0, keep)
    c0 = c0.index_select(0, keep)
    pixbase = row.index_select(0, keep) * ow + c0
    g = row_g.index_select(0, keep)
    syy_k = syy_r.index_select(0, keep)
    det_k = det.index_select(0, g)
    # -0.5 folded into the exponent tables
    off = (c0.to(dtype) + 0.5) - x0.index_select(0, keep)
    na = -0.5 * syy_k / det_k
    nq = -0.5 * qrow.index_select(0, keep)
    rows = {"g": g, "col": col_t.index_select(0, g).t().contiguous(), "t": dy.index_select(0, keep) / syy_k,
            "k": sxy.index_select(0, g) / syy_k, "p": syy_k / det_k, "det": det_k}
    return rows, (npix, pixbase, off, na, nq)


def _pair_chunks(npix, pixbase, off, na, nq, beta: float = 1.0, slopes: bool = True):
    """Yield (row index, pixel index, u, weight, dweight/darg) of the pairs, at most about PIXEL_CHUNK at a time."""
    dev = npix.device
    i32 = torch.int32
    pix_cum = torch.cumsum(npix, 0).cpu()
    start = 0
    while start < len(npix):
        base = int(pix_cum[start - 1]) if start > 0 else 0
        end = max(int(torch.searchsorted(pix_cum, base + PIXEL_CHUNK, right=True)), start + 1)
        with torch.no_grad():
            cnt = npix[start:end].to(i32)
            rid = torch.repeat_interleave(torch.arange(start, end, dtype=i32, device=dev), cnt)
            first = torch.cumsum(cnt, 0, dtype=i32) - cnt
            loc = torch.arange(len(rid), dtype=i32, device=dev) - first.index_select(0, rid - start)
            pix = pixbase.index_select(0, rid) + loc
            u = loc.to(off.dtype) + off.index_select(0, rid)
            arg = torch.addcmul(nq.index_select(0, rid), na.index_select(0, rid), u * u)
            wgt, dw = _kernel(arg, beta, slopes)
        # int64 indices: 2D index_add_/index_select with int32 ones take ~10x slower paths
        yield rid.long(), pix, u, wgt, dw
        start = end


def _kernel(arg: torch.Tensor, beta: float, slope: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Weights from arg = -q/2 <= 0 and their derivative in arg (the same tensor for beta 1; None if not slope)."""
    if beta == 1.0:
        wgt = torch.exp(arg)
        return wgt, wgt
    x = arg.neg().clamp_min_(0.0)
    xb1 = x if beta == 2.0 else x.pow(beta - 1.0)
    wgt = torch.exp(-(x * xb1))
    return wgt, (wgt * (beta * xb1) if slope else None)
