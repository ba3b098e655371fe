"""Differentiable 3D Gaussian-splatting renderer: pure torch on CPU, gsplat on CUDA.

The torch path follows gsplat's `rasterization` (classic mode) rule for rule; see
spec/render3d.md. Pipeline: project every Gaussian (EWA, 0.3 px dilation), cull, assign to
8x8 tiles, sort (tile, depth), then composite tiles front to back in vectorised batches of
tiles x pixels x Gaussians with an analytic backward pass (memory stays bounded by the batch
size, never by the image or the scene). On CPU the torch ops run single-threaded and the
tile batches are spread over torch.get_num_threads() Python threads.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from gscodec.errors import InputError, UnsupportedError
from gscodec.render.cameras import Camera
from gscodec.render.sh import sh_degree_of, sh_to_rgb

TILE = 8                    # tile side in pixels (results do not depend on it; 8 is fastest on CPU)
EPS2D = 0.3                 # low-pass dilation added to the 2D covariance diagonal (px^2)
ALPHA_MIN = 1.0 / 255.0     # a Gaussian with alpha below this is skipped at that pixel
ALPHA_MAX = 0.999           # alpha clamp (gsplat's; the reference 3DGS uses 0.99)
T_MIN = 1e-4                # a pixel stops when the next transmittance would be <= this
EXTEND_MAX = 3.33           # bounding-box half-size cap in standard deviations
FRUSTUM_MARGIN = 0.3        # Jacobian clamp margin, fraction of the half field of view

BLOCK = 64                  # Gaussians per tile processed in one step (front to back)
STEP_BUDGET = 1 << 20       # tiles x pixels x Gaussians per step (cache-sized: faster than larger)
PAIR_BUDGET = 1 << 23       # (tile, Gaussian) pairs held at once; more -> bands of tile rows
CULL_CHUNK = 1 << 18         # Gaussians projected at once when culling (bounds its temporaries)


# ----------------------------------------------------------------------------- projection


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (N,3,3) from quaternions (N,4) w,x,y,z (normalised here)."""
    q = quats / quats.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(q.shape[:-1] + (3, 3))


@dataclass
class _Cam:
    """Camera as tensors on the render device."""

    rot: torch.Tensor       # (3,3) world-to-camera rotation
    trans: torch.Tensor     # (3,)
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    campos: torch.Tensor    # (3,) camera centre in world


def _cam_tensors(camera: Camera, device: torch.device, dtype: torch.dtype) -> _Cam:
    view = np.asarray(camera.viewmat, dtype=np.float64)
    k = np.asarray(camera.K, dtype=np.float64)
    if view.shape != (4, 4) or k.shape != (3, 3) or not (np.isfinite(view).all() and np.isfinite(k).all()):
        raise InputError("camera needs a finite (4,4) viewmat and (3,3) K")
    if not (k[0, 0] > 0 and k[1, 1] > 0 and camera.width > 0 and camera.height > 0):
        raise InputError("camera needs positive focal lengths and image size")
    rot = torch.as_tensor(view[:3, :3], device=device, dtype=dtype)
    trans = torch.as_tensor(view[:3, 3], device=device, dtype=dtype)
    campos = torch.as_tensor(-view[:3, :3].T @ view[:3, 3], device=device, dtype=dtype)
    return _Cam(rot, trans, float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]),
                int(camera.width), int(camera.height), campos)


def _project(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, cam: _Cam):
    """Pixel means (N,2), dilated 2D covariances (N,3) as (xx, xy, yy), camera depths (N,)."""
    mc = means @ cam.rot.T + cam.trans
    x, y, z = mc.unbind(-1)
    # Jacobian of the pinhole projection, evaluated with x/z, y/z clamped to 1.3x the frustum
    # so Gaussians far outside the view do not get huge footprints (gsplat / 3DGS rule).
    tanx, tany = 0.5 * cam.width / cam.fx, 0.5 * cam.height / cam.fy
    lim_xp = (cam.width - cam.cx) / cam.fx + FRUSTUM_MARGIN * tanx
    lim_xn = cam.cx / cam.fx + FRUSTUM_MARGIN * tanx
    lim_yp = (cam.height - cam.cy) / cam.fy + FRUSTUM_MARGIN * tany
    lim_yn = cam.cy / cam.fy + FRUSTUM_MARGIN * tany
    rz = 1.0 / z
    tx = z * (x * rz).clamp(-lim_xn, lim_xp)
    ty = z * (y * rz).clamp(-lim_yn, lim_yp)
    zero = torch.zeros_like(z)
    jac = torch.stack([cam.fx * rz, zero, -cam.fx * tx * rz * rz,
                       zero, cam.fy * rz, -cam.fy * ty * rz * rz], dim=-1).reshape(-1, 2, 3)
    # cov2d = (J Rc R S)(J Rc R S)^T: exactly symmetric by construction.
    m = quat_to_rotmat(quats) * scales[:, None, :]
    tm = (jac @ cam.rot) @ m
    a = (tm[:, 0] * tm[:, 0]).sum(-1) + EPS2D
    b = (tm[:, 0] * tm[:, 1]).sum(-1)
    c = (tm[:, 1] * tm[:, 1]).sum(-1) + EPS2D
    mean2d = torch.stack([cam.fx * x * rz + cam.cx, cam.fy * y * rz + cam.cy], dim=-1)
    return mean2d, torch.stack([a, b, c], dim=-1), z


@dataclass
class Projection:
    """Visible Gaussians after culling (differentiable where noted)."""

    ids: torch.Tensor       # (M,) indices into the input Gaussians
    means2d: torch.Tensor   # (M,2) pixel coordinates, differentiable
    conics: torch.Tensor    # (M,3) inverse 2D covariance (xx, xy, yy), differentiable
    depths: torch.Tensor    # (M,) camera z
    radii: torch.Tensor     # (M,2) int64 bounding-box half sizes in pixels


def _cull(means, quats, scales, opacities, cam: _Cam, near: float, far: float, sh=None):
    """Indices, box radii (M,2), depths, pixel means and conics (detached) of the Gaussians kept.

    Besides gsplat's rules, Gaussians with any non-finite parameter are dropped. Large
    scenes are projected CULL_CHUNK Gaussians at a time (the same values, row by row), so
    the projection's temporaries do not grow with the scene.
    """
    n = means.shape[0]
    if n > CULL_CHUNK:
        parts = []
        for i in range(0, n, CULL_CHUNK):
            j = slice(i, i + CULL_CHUNK)
            ids, *rest = _cull_chunk(means[j], quats[j], scales[j], opacities[j], cam, near, far,
                                     None if sh is None else sh[j])
            parts.append((ids + i, *rest))
        return tuple(torch.cat(p) for p in zip(*parts))
    return _cull_chunk(means, quats, scales, opacities, cam, near, far, sh)


def _cull_chunk(means, quats, scales, opacities, cam: _Cam, near: float, far: float, sh=None):
    with torch.no_grad():
        m2, cov, z = _project(means, quats, scales, cam)
        a, b, c = cov.unbind(-1)
        det = a * c - b * b
        op = opacities
        ok = (z >= near) & (z <= far) & (det > 0) & (op >= ALPHA_MIN)
        ok &= torch.isfinite(m2).all(-1) & torch.isfinite(cov).all(-1) & torch.isfinite(op)
        if sh is not None:
            ok &= torch.isfinite(sh).flatten(1).all(-1)
        # Opacity-aware box: beyond this the Gaussian's alpha is below ALPHA_MIN anyway.
        extend = torch.sqrt(2.0 * torch.log(op.clamp_min(ALPHA_MIN) / ALPHA_MIN)).clamp(max=EXTEND_MAX)
        rx = torch.ceil(extend * a.clamp_min(0).sqrt())
        ry = torch.ceil(extend * c.clamp_min(0).sqrt())
        ok &= (rx > 0) & (ry > 0)
        ok &= ~((m2[:, 0] + rx <= 0) | (m2[:, 0] - rx >= cam.width)
                | (m2[:, 1] + ry <= 0) | (m2[:, 1] - ry >= cam.height))
        ids = torch.nonzero(ok).squeeze(1)
        return ids, torch.stack([rx[ids], ry[ids]], -1).long(), z[ids], m2[ids], _conics(cov[ids])


def _conics(cov: torch.Tensor) -> torch.Tensor:
    """Inverse 2D covariances (xx, xy, yy) of (a, b, c) covariances with positive determinant."""
    a, b, c = cov.unbind(-1)
    det = a * c - b * b
    return torch.stack([c / det, -b / det, a / det], dim=-1)


def _plans(ids, radii, depths, m2, conics, cam: _Cam, workers: int) -> list["_BandPlan"]:
    """Band plans of the culled Gaussians, each compositing with `workers` threads."""
    plans = _make_bands(Projection(ids, m2, conics, depths, radii), cam.width, cam.height)
    for plan in plans:
        plan.workers = workers
    return plans


def _visible_geometry(means, quats, scales, cam: _Cam):
    """Differentiable pixel means and conics of already-culled Gaussians.

    Recomputed on the survivors only, so culled (possibly degenerate) Gaussians cannot put
    NaNs into the gradients.
    """
    m2, cov, _ = _project(means, quats, scales, cam)
    return m2, _conics(cov)


def project_gaussians(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor,
                      opacities: torch.Tensor, cam: _Cam, near: float = 0.01,
                      far: float = 1e10) -> Projection:
    """Project and cull Gaussians as gsplat does (near/far, det, opacity, off-image)."""
    ids, radii, depths, _, _ = _cull(means, quats, scales, opacities, cam, near, far)
    m2, conics = _visible_geometry(means[ids], quats[ids], scales[ids], cam)
    return Projection(ids, m2, conics, depths, radii)


class _SingleThreaded(torch.autograd.Function):
    """Runs fn(*tensors) and its backward with one torch thread (see _render_torch)."""

    @staticmethod
    def forward(ctx, fn, *tensors):
        inputs = [t.detach().requires_grad_(t.requires_grad) for t in tensors]
        with torch.enable_grad():
            outs = fn(*inputs)
        ctx.inputs, ctx.outs = inputs, outs
        return tuple(o.detach() for o in outs)

    @staticmethod
    def backward(ctx, *grads):
        inputs, outs = ctx.inputs, ctx.outs
        pairs = [(o, g) for o, g in zip(outs, grads) if g is not None and o.requires_grad]
        wanted = [i for i in inputs if i.requires_grad]
        got = [None] * len(wanted)
        if pairs and wanted:
            with _torch_threads(1):
                # retain: the caller may backpropagate through the render more than once
                got = torch.autograd.grad([o for o, _ in pairs], wanted, [g for _, g in pairs],
                                          allow_unused=True, retain_graph=True)
        it = iter(got)
        return (None,) + tuple(next(it) if i.requires_grad else None for i in inputs)


# ----------------------------------------------------------------------------- tiling


@dataclass
class _Band:
    """Tile rows [row0, row1) of the image and their depth-sorted (tile, Gaussian) pairs."""

    row0: int
    row1: int
    tiles_x: int
    tiles: torch.Tensor     # (T,) band-local tile ids with >= 1 pair, by pair count descending
    starts: torch.Tensor    # (T,) first pair of each of those tiles
    counts: torch.Tensor    # (T,) number of pairs
    gids: torch.Tensor      # (P,) visible-Gaussian index of each pair, sorted by (tile, depth)
    workers: int = 1        # Python threads compositing this band

    @property
    def n_tiles(self) -> int:
        """Tiles in the band (with or without pairs)."""
        return (self.row1 - self.row0) * self.tiles_x


def _tile_ranges(proj: Projection, tiles_x: int, tiles_y: int):
    m = proj.means2d.detach()
    r = proj.radii.to(m.dtype)
    x0 = torch.floor((m[:, 0] - r[:, 0]) / TILE).clamp(0, tiles_x).long()
    x1 = torch.ceil((m[:, 0] + r[:, 0]) / TILE).clamp(0, tiles_x).long()
    y0 = torch.floor((m[:, 1] - r[:, 1]) / TILE).clamp(0, tiles_y).long()
    y1 = torch.ceil((m[:, 1] + r[:, 1]) / TILE).clamp(0, tiles_y).long()
    return x0, x1, y0, y1


def _make_bands(proj: Projection, width: int, height: int) -> list["_BandPlan"]:
    tiles_x, tiles_y = -(-width // TILE), -(-height // TILE)
    x0, x1, y0, y1 = _tile_ranges(proj, tiles_x, tiles_y)
    wx = x1 - x0
    # Pairs per tile row (difference array), to cut the image into bands of bounded pairs.
    diff = torch.zeros(tiles_y + 1, dtype=torch.long)
    diff.index_add_(0, y0.cpu(), wx.cpu())
    diff.index_add_(0, y1.cpu(), -wx.cpu())
    per_row = torch.cumsum(diff[:-1], 0).tolist()
    bounds, acc, start = [], 0, 0
    for row, n in enumerate(per_row):
        if acc and acc + n > PAIR_BUDGET:
            bounds.append((start, row))
            start, acc = row, 0
        acc += n
    bounds.append((start, tiles_y))
    # Depth rank with index tie-break, as gsplat's stable radix sort of (tile, depth) keys.
    order = torch.argsort(proj.depths, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=order.device)
    return [_BandPlan(r0, r1, tiles_x, x0, wx, y0, y1, rank) for r0, r1 in bounds]


@dataclass
class _BandPlan:
    """Inputs to (re)build one band's pairs; rebuilt in backward so one band's pairs live at once."""

    row0: int
    row1: int
    tiles_x: int
    x0: torch.Tensor
    wx: torch.Tensor
    y0: torch.Tensor
    y1: torch.Tensor
    rank: torch.Tensor
    workers: int = 1

    def build(self) -> _Band:
        """The band's depth-sorted (tile, Gaussian) pairs."""
        r0, r1 = self.row0, self.row1
        return _band_pairs(r0, r1, self.tiles_x, self.x0, self.wx, self.y0.clamp(r0, r1),
                           self.y1.clamp(r0, r1), self.rank, self.workers)


def _band_pairs(r0: int, r1: int, tiles_x: int, x0, wx, y0, y1, rank, workers: int) -> _Band:
    dev = x0.device
    hy = y1 - y0
    n = wx * hy
    sel = torch.nonzero(n > 0).squeeze(1)
    n_sel = n[sel]
    total = int(n_sel.sum())
    band_tiles = (r1 - r0) * tiles_x
    if total == 0:
        empty = torch.zeros(0, dtype=torch.long, device=dev)
        return _Band(r0, r1, tiles_x, empty, empty, empty, empty, workers)
    g = torch.repeat_interleave(sel, n_sel)
    first = torch.cumsum(n_sel, 0) - n_sel
    local = torch.arange(total, device=dev) - torch.repeat_interleave(first, n_sel)
    w = wx[g]
    tile = (y0[g] - r0 + local // w) * tiles_x + x0[g] + local % w
    key = tile * rank.numel() + rank[g]
    order = torch.argsort(key)
    gids, tile = g[order], tile[order]
    counts_all = torch.bincount(tile, minlength=band_tiles)
    starts_all = torch.cumsum(counts_all, 0) - counts_all
    tiles = torch.nonzero(counts_all).squeeze(1)
    tiles = tiles[torch.argsort(counts_all[tiles], descending=True, stable=True)]
    return _Band(r0, r1, tiles_x, tiles, starts_all[tiles], counts_all[tiles], gids, workers)


# ----------------------------------------------------------------------------- compositing


def _pixel_features(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(TILE*TILE, 6) features [x^2, xy, y^2, x, y, 1] of pixel centres relative to the tile centre."""
    j = torch.arange(TILE, dtype=dtype, device=device) + 0.5 - TILE / 2
    py, px = torch.meshgrid(j, j, indexing="ij")
    px, py = px.reshape(-1), py.reshape(-1)
    return torch.stack([px * px, px * py, py * py, px, py, torch.ones_like(px)], dim=-1)


def _batches(band: _Band) -> list[slice]:
    per_tile = TILE * TILE * BLOCK
    step = max(1, STEP_BUDGET // per_tile)
    return [slice(i, min(i + step, band.tiles.numel())) for i in range(0, band.tiles.numel(), step)]


class _Step:
    """One front-to-back step for a set of tiles: Gaussians [l0, l0+L) of each tile's list."""

    def __init__(self, band, tiles, starts, counts, l0, L, means2d, conics, log_op, feat):
        dev = means2d.device
        ar = torch.arange(L, device=dev)
        pos = starts[:, None] + l0 + ar
        valid = (l0 + ar)[None, :] < counts[:, None]
        npad = means2d.shape[0] - 1
        self.gi = torch.where(valid, band.gids[pos.clamp(max=band.gids.numel() - 1)], npad)
        # Tile-centre-relative means keep the expanded quadratic well conditioned.
        tx = (tiles % band.tiles_x).to(means2d.dtype)
        ty = (tiles // band.tiles_x + band.row0).to(means2d.dtype)
        m = means2d[self.gi]
        mx = m[..., 0] - (tx[:, None] * TILE + TILE / 2)
        my = m[..., 1] - (ty[:, None] * TILE + TILE / 2)
        con = conics[self.gi]
        ca, cb, cc = con[..., 0], con[..., 1], con[..., 2]
        lx, ly = ca * mx + cb * my, cc * my + cb * mx
        # power = ln(opacity) - sigma as a (pixel features) x (per-Gaussian coefficients) product
        coef = torch.stack([-0.5 * ca, -cb, -0.5 * cc, lx, ly,
                            log_op[self.gi] - 0.5 * (mx * lx + my * ly)], dim=1)
        self.mx, self.my, self.ca, self.cb, self.cc = mx, my, ca, cb, cc
        self.raw = torch.matmul(feat, coef).exp_()             # (B, pixels, L) = op * exp(-sigma)
        self.alpha = self.raw.clamp(max=ALPHA_MAX)
        self.valid = self.alpha >= ALPHA_MIN
        self.alpha.mul_(self.valid)

    def transmit(self, t_run: torch.Tensor):
        """Inclusive transmittance, kept mask and weights given the running transmittance."""
        one_m = torch.rsub(self.alpha, 1.0)
        incl = torch.cumprod(one_m, dim=2).mul_(t_run[:, :, None])
        keep = incl > T_MIN
        excl = torch.cat([t_run[:, :, None], incl[:, :, :-1]], dim=2)
        w = (excl * self.alpha).mul_(keep)
        return one_m, incl, keep, excl, w


def _advance(incl, keep, t_run, t_fin):
    """Running transmittance after a step (0 once a pixel is done) and the final one so far."""
    nkeep = keep.sum(dim=2)
    last = incl.gather(2, (nkeep - 1).clamp_min(0)[:, :, None])[:, :, 0]
    t_now = torch.where(nkeep > 0, last, t_run)
    done_now = incl[:, :, -1] <= T_MIN
    running = t_run > 0
    t_fin = torch.where(running, t_now, t_fin)
    return torch.where(done_now, torch.zeros_like(t_now), t_now), t_fin


@dataclass
class _Padded:
    """Per-Gaussian inputs with one extra, invisible Gaussian that pads short tile lists."""

    means2d: torch.Tensor
    conics: torch.Tensor
    log_op: torch.Tensor
    colors: torch.Tensor
    feat: torch.Tensor

    @staticmethod
    def build(means2d, conics, opacities, colors) -> "_Padded":
        dev, dt = means2d.device, means2d.dtype
        pad = lambda t, v: torch.cat([t, torch.full((1,) + t.shape[1:], v, dtype=dt, device=dev)])
        log_op = torch.log(pad(opacities, 1.0))
        log_op[-1] = -math.inf                      # padding Gaussian: alpha exactly 0
        return _Padded(pad(means2d, 0.0), pad(conics, 0.0), log_op, pad(colors, 0.0),
                       _pixel_features(dt, dev))


def _steps(band: _Band, bs: slice, pp: _Padded, state: dict):
    """Walk a batch of tiles front to back; yields (active tile rows, step, transmit outputs).

    `state` holds t_run (running transmittance, 0 once a pixel stopped) and t_fin (the
    pixel's transmittance so far, frozen when it stops), both (tiles, pixels).
    """
    tiles, starts, counts = band.tiles[bs], band.starts[bs], band.counts[bs]
    dev, dt = pp.means2d.device, pp.means2d.dtype
    state["t_run"] = torch.ones(tiles.numel(), TILE * TILE, dtype=dt, device=dev)
    state["t_fin"] = state["t_run"].clone()
    act = torch.arange(tiles.numel(), device=dev)
    l0 = 0
    while act.numel():
        L = min(BLOCK, int(counts[act].max()) - l0)
        st = _Step(band, tiles[act], starts[act], counts[act], l0, L, pp.means2d, pp.conics,
                   pp.log_op, pp.feat)
        t_run = state["t_run"][act]
        tr = st.transmit(t_run)
        yield act, st, tr
        t_new, tf_new = _advance(tr[1], tr[2], t_run, state["t_fin"][act])
        state["t_run"][act], state["t_fin"][act] = t_new, tf_new
        l0 += L
        act = act[(counts[act] > l0) & (t_new > 0).any(dim=1)]


def _forward_group(band: _Band, batches: list[slice], pp: _Padded):
    """Colour sums and final transmittance for the tiles of some batches."""
    res = []
    for bs in batches:
        state: dict = {}
        out = None
        for act, st, (_, _, _, _, w) in _steps(band, bs, pp, state):
            if out is None:
                out = torch.zeros(state["t_run"].shape + (3,), dtype=w.dtype, device=w.device)
            out[act] += torch.bmm(w, pp.colors[st.gi])
        res.append((band.tiles[bs], out, state["t_fin"]))
    return res


def _backward_group(band: _Band, batches: list[slice], pp: _Padded, grad, g_dot_c):
    """Gradients (padded rows) w.r.t. means2d, conics, log-opacity and colours from some batches."""
    npad, dev, dt = pp.means2d.shape[0], pp.means2d.device, pp.means2d.dtype
    g_m2 = torch.zeros(npad, 2, dtype=dt, device=dev)
    g_con = torch.zeros(npad, 3, dtype=dt, device=dev)
    g_lop = torch.zeros(npad, dtype=dt, device=dev)
    g_col = torch.zeros(npad, 3, dtype=dt, device=dev)
    for bs in batches:
        tiles = band.tiles[bs]
        g_t, gc_t = grad[tiles], g_dot_c[tiles]
        prefix = torch.zeros(tiles.numel(), TILE * TILE, dtype=dt, device=dev)  # sum w_i g.c_i
        for act, st, (one_m, incl, keep, excl, w) in _steps(band, bs, pp, {}):
            g_a = g_t[act]
            gcol = torch.bmm(g_a, pp.colors[st.gi].transpose(1, 2))     # (B,pixels,L) g . c_l
            pre = torch.cumsum(w * gcol, dim=2).add_(prefix[act][:, :, None])
            prefix[act] = pre[:, :, -1]
            # dC/dalpha_k = T_k c_k - (C - sum_{i<=k} w_i c_i) / (1 - alpha_k)
            rest = pre.neg_().add_(gc_t[act][:, :, None]).div_(one_m)
            d_alpha = excl.mul_(gcol).sub_(rest).mul_(keep)
            # alpha = min(raw, ALPHA_MAX), raw = exp(power): zero where clamped or skipped
            d_pow = d_alpha.mul_(st.raw).mul_(st.valid & (st.raw < ALPHA_MAX))
            gk = torch.matmul(pp.feat.T, d_pow)                         # (B,6,L)
            g0, g1, g2, g3, g4, g5 = gk.unbind(1)
            mx, my, ca, cb, cc = st.mx, st.my, st.ca, st.cb, st.cc
            lx, ly = ca * mx + cb * my, cc * my + cb * mx
            d_ca = -0.5 * g0 + g3 * mx - 0.5 * mx * mx * g5
            d_cb = -g1 + g3 * my + g4 * mx - mx * my * g5
            d_cc = -0.5 * g2 + g4 * my - 0.5 * my * my * g5
            d_mx = g3 * ca + g4 * cb - g5 * lx
            d_my = g3 * cb + g4 * cc - g5 * ly
            gi = st.gi.reshape(-1)
            g_m2.index_add_(0, gi, torch.stack([d_mx, d_my], -1).reshape(-1, 2))
            g_con.index_add_(0, gi, torch.stack([d_ca, d_cb, d_cc], -1).reshape(-1, 3))
            g_lop.index_add_(0, gi, g5.reshape(-1))
            g_col.index_add_(0, gi, torch.bmm(w.transpose(1, 2), g_a).reshape(-1, 3))
    return g_m2, g_con, g_lop, g_col


@contextmanager
def _torch_threads(n: int):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _run_groups(batches: list[slice], fn, workers: int) -> list:
    """fn(group of batches) for `workers` interleaved groups, one Python thread each.

    On CPU, coarse parallelism over tile batches (torch ops single-threaded inside) beats
    torch's per-op threading, which stalls at every op when the cores are shared.
    """
    workers = min(workers, len(batches))
    if workers <= 1:
        return [fn(batches)]
    groups = [batches[k::workers] for k in range(workers)]

    def single_threaded(group):
        torch.set_num_threads(1)        # OpenMP thread count is per calling thread
        return fn(group)

    with _torch_threads(1), ThreadPoolExecutor(workers) as ex:
        return list(ex.map(single_threaded, groups))


class _Composite(torch.autograd.Function):
    """Front-to-back alpha compositing of one band's tiles, with an analytic backward."""

    @staticmethod
    def forward(ctx, means2d, conics, opacities, colors, background, plan):
        dev, dt = means2d.device, means2d.dtype
        band = plan.build()
        pp = _Padded.build(means2d, conics, opacities, colors)
        acc = torch.zeros(band.n_tiles, TILE * TILE, 3, dtype=dt, device=dev)
        t_fin = torch.ones(band.n_tiles, TILE * TILE, dtype=dt, device=dev)
        for group in _run_groups(_batches(band), lambda b: _forward_group(band, b, pp), band.workers):
            for tiles, out, tf in group:
                acc[tiles], t_fin[tiles] = out, tf
        result = acc + t_fin[:, :, None] * background
        ctx.plan = plan
        ctx.save_for_backward(means2d, conics, opacities, colors, background, result, t_fin)
        return result

    @staticmethod
    def backward(ctx, grad):
        means2d, conics, opacities, colors, background, result, t_fin = ctx.saved_tensors
        plan = ctx.plan
        with _torch_threads(1) if plan.workers > 1 else nullcontext():
            band = plan.build()
            grad = grad.contiguous()
            pp = _Padded.build(means2d, conics, opacities, colors)
            g_dot_c = (grad * result).sum(-1)       # g . C, C = final colour incl. background
            parts = _run_groups(_batches(band),
                                lambda b: _backward_group(band, b, pp, grad, g_dot_c), plan.workers)
            g_m2, g_con, g_lop, g_col = (sum(p[i] for p in parts) for i in range(4))
            g_bg = (grad * t_fin[:, :, None]).sum(dim=(0, 1))
            g_op = g_lop[:-1] / opacities
        return g_m2[:-1], g_con[:-1], g_op, g_col[:-1], g_bg, None


# ----------------------------------------------------------------------------- public API


def _check_inputs(means, quats, scales, opacities, sh) -> None:
    n = means.shape[0] if means.dim() == 2 else -1
    if means.shape != (n, 3) or quats.shape != (n, 4) or scales.shape != (n, 3) \
            or opacities.shape != (n,) or sh.dim() != 3 or sh.shape[0] != n or sh.shape[2] != 3:
        raise InputError("render_scene needs means (N,3), quats (N,4), scales (N,3), "
                         "opacities (N,), sh (N,K,3)")
    if sh.shape[1] not in (1, 4, 9, 16):
        raise InputError(f"sh must have 1, 4, 9 or 16 coefficients, got {sh.shape[1]}")


def _background(background, device, dtype) -> torch.Tensor:
    bg = torch.as_tensor(background, dtype=dtype, device=device) if not torch.is_tensor(background) \
        else background.to(device=device, dtype=dtype)
    if bg.shape != (3,):
        raise InputError("background must be 3 values (r, g, b)")
    return bg


def gsplat_available(device: torch.device | str) -> bool:
    """True when gsplat imports and `device` is a CUDA device."""
    if torch.device(device).type != "cuda" or not torch.cuda.is_available():
        return False
    try:
        import gsplat  # noqa: F401
    except Exception:
        return False
    return True


def render_scene(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor,
                 opacities: torch.Tensor, sh: torch.Tensor, camera: Camera,
                 background=(0.0, 0.0, 0.0), backend: str = "auto", near: float = 0.01,
                 far: float = 1e10) -> torch.Tensor:
    """Render activated Gaussians (wxyz quats, positive scales, opacities in [0,1]) to (H,W,3)."""
    _check_inputs(means, quats, scales, opacities, sh)
    if backend not in ("auto", "torch", "gsplat"):
        raise InputError(f"unknown render backend {backend!r}")
    use_gsplat = backend == "gsplat" or (backend == "auto" and gsplat_available(means.device))
    if use_gsplat:
        if not gsplat_available(means.device):
            raise UnsupportedError("the gsplat backend needs CUDA tensors and the gsplat package")
        return _render_gsplat(means, quats, scales, opacities, sh, camera, background, near, far)
    return _render_torch(means, quats, scales, opacities, sh, camera, background, near, far)


def _render_torch(means, quats, scales, opacities, sh, camera, background, near, far):
    if means.device.type != "cpu":
        return _render_torch_on(means, quats, scales, opacities, sh, camera, background, near, far, 1)
    # Per-op threading of many small ops stalls badly when the cores are shared; run the ops
    # single-threaded and parallelise the compositing over tile batches instead.
    workers = torch.get_num_threads()
    with _torch_threads(1):
        return _render_torch_on(means, quats, scales, opacities, sh, camera, background, near, far,
                                workers)


def _render_torch_on(means, quats, scales, opacities, sh, camera, background, near, far, workers):
    dev, dt = means.device, means.dtype
    cam = _cam_tensors(camera, dev, dt)
    bg = _background(background, dev, dt)
    ids, radii, depths, m2_fixed, conics_fixed = _cull(means, quats, scales, opacities, cam, near, far, sh)

    def geometry(means, quats, scales, opacities, sh):
        mv = means[ids]
        m2, conics = _visible_geometry(mv, quats[ids], scales[ids], cam)
        return m2, conics, opacities[ids], sh_to_rgb(sh[ids], mv - cam.campos)

    params = (means, quats, scales, opacities, sh)
    if dev.type == "cpu" and torch.is_grad_enabled() and any(p.requires_grad for p in params):
        m2, conics, op, colors = _SingleThreaded.apply(geometry, *params)
    else:
        m2, conics, op, colors = geometry(*params)
    tiles_x, tiles_y = -(-cam.width // TILE), -(-cam.height // TILE)
    plans = _plans(ids, radii, depths, m2_fixed, conics_fixed, cam, workers)
    parts = [_Composite.apply(m2, conics, op, colors, bg, plan) for plan in plans]
    tiles = torch.cat(parts, dim=0) if len(parts) > 1 else parts[0]
    img = tiles.reshape(tiles_y, tiles_x, TILE, TILE, 3).permute(0, 2, 1, 3, 4)
    img = img.reshape(tiles_y * TILE, tiles_x * TILE, 3)
    return img[:cam.height, :cam.width]


def _render_gsplat(means, quats, scales, opacities, sh, camera, background, near, far):
    import gsplat
    dev, dt = means.device, means.dtype
    view = torch.as_tensor(np.asarray(camera.viewmat), dtype=dt, device=dev)[None]
    k = torch.as_tensor(np.asarray(camera.K), dtype=dt, device=dev)[None]
    bg = _background(background, dev, dt)
    img, _, _ = gsplat.rasterization(
        means, quats, scales, opacities, sh, view, k, int(camera.width), int(camera.height),
        near_plane=near, far_plane=far, sh_degree=sh_degree_of(sh.shape[1]),
        backgrounds=bg[None], eps2d=EPS2D, rasterize_mode="classic", render_mode="RGB")
    return img[0]


def blend_weights(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor,
                  opacities: torch.Tensor, camera: Camera, near: float = 0.01,
                  far: float = 1e10) -> torch.Tensor:
    """Each Gaussian's blending weight (alpha times transmittance) summed over the image's pixels.

    The same quantity as the gradient of the summed render with respect to a colour, but in
    one forward pass of the torch compositor (no backward), so about half the work.
    """
    dev, dt = means.device, means.dtype
    workers = torch.get_num_threads() if dev.type == "cpu" else 1
    out = torch.zeros(means.shape[0], dtype=dt, device=dev)
    with torch.no_grad(), _torch_threads(1) if workers > 1 else nullcontext():
        cam = _cam_tensors(camera, dev, dt)
        # The cull's projection is the one the render path differentiates (same arithmetic).
        ids, radii, depths, m2, conics = _cull(means, quats, scales, opacities, cam, near, far)
        pp = _Padded.build(m2, conics, opacities[ids], torch.zeros(ids.numel(), 3, dtype=dt, device=dev))
        total = torch.zeros(ids.numel() + 1, dtype=dt, device=dev)
        for plan in _plans(ids, radii, depths, m2, conics, cam, workers):
            band = plan.build()
            for part in _run_groups(_batches(band), lambda b: _weight_group(band, b, pp, cam), workers):
                total += part
        out[ids] = total[:-1]
    return out


def _weight_group(band: _Band, batches: list[slice], pp: _Padded, cam: _Cam) -> torch.Tensor:
    """Summed blending weights (padded rows) over the in-image pixels of some batches' tiles."""
    dev, dt = pp.means2d.device, pp.means2d.dtype
    total = torch.zeros(pp.means2d.shape[0], dtype=dt, device=dev)
    pix = torch.arange(TILE * TILE, device=dev)
    for bs in batches:
        tiles = band.tiles[bs]
        # Tiles overhang the image's right and bottom edges; those pixels are cropped away.
        px = (tiles % band.tiles_x)[:, None] * TILE + pix % TILE
        py = (tiles // band.tiles_x + band.row0)[:, None] * TILE + pix // TILE
        inside = ((px < cam.width) & (py < cam.height)).to(dt)
        for act, st, (_, _, _, _, w) in _steps(band, bs, pp, {}):
            total.index_add_(0, st.gi.reshape(-1), (w * inside[act][:, :, None]).sum(1).reshape(-1))
    return total


def activate_scene(scene, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                   with_sh: bool = True):
    """(means, quats, scales, opacities, sh) tensors from PLY-convention GaussianScene arrays (sh None unless with_sh)."""
    t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)
    quats = t(scene.rotations)
    quats = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return (t(scene.means), quats, torch.exp(t(scene.scales)), torch.sigmoid(t(scene.opacity)),
            t(scene.sh()) if with_sh else None)


def render_gaussian_scene(scene, camera: Camera, background=(0.0, 0.0, 0.0),
                          backend: str = "auto", device: torch.device | str | None = None) -> torch.Tensor:
    """Render a PLY-convention GaussianScene (exp scales, sigmoid opacity) without gradients."""
    if device is None:
        device = "cuda" if backend != "torch" and gsplat_available("cuda") else "cpu"
    with torch.no_grad():
        return render_scene(*activate_scene(scene, device), camera, background, backend)
