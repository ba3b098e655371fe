"""SmartSplat feature-smart initialisation of 2D image Gaussians.

Positions come from gradient/colour-variance variational sampling in adaptive tiles (70%)
plus exclusion-based uniform sampling (30%); scales from an exponential decay of the
sampling weight around the base scale (variational points) and from the mean distance to
the 3 nearest neighbours (uniform points); colours from a scale-adaptive Gaussian-weighted
median. Because Gaussians add up with opacity 1, the median colours are then rescaled by
the local Gaussian coverage (and optionally refined by a few least-squares steps) so the
first render already has the image's brightness. Conventions: spec/render2d.md.
"""
from __future__ import annotations

import math

import numpy as np

from .lsq import cgls

TILE = 1024             # tile size of the adaptive tiling
GRAD_WEIGHT = 0.9       # weight of the normalised gradient vs colour variance
VAR_FRACTION = 0.7      # share of variational samples; the rest is uniform
KNN_K = 3               # neighbours for the scales of uniform points
KNN_FACTOR = 1.0        # scale = KNN_FACTOR * mean distance to the KNN_K nearest points
NEIGHBOURHOOD = 3       # side of the square window of the colour variance
MEDIAN_GRID = 9         # samples per axis of the colour-median window (circle inside)
EPS = 1e-8


def base_scale(h: int, w: int, n: int) -> float:
    """Base scale: one third of the radius of n equal discs covering the image."""
    return math.sqrt(h * w / (max(n, 1) * math.pi)) / 3.0


def tile_layout(size: int, tile: int = TILE) -> list[tuple[int, int]]:
    """(offset, length) of the tiles along one axis: ceil(size/tile) tiles, adaptive stride."""
    if size <= tile:
        return [(0, size)]
    count = math.ceil(size / tile)
    stride = (size - tile) / (count - 1)
    return [(int(round(i * stride)), tile) for i in range(count)]


def _box_mean(a: np.ndarray, k: int) -> np.ndarray:
    """Mean over a k x k window (edge-replicated) of an (H, W, C) array, via summed areas."""
    p = k // 2
    pad = np.pad(a.astype(np.float64), ((p + 1, p), (p + 1, p), (0, 0)), mode="edge")
    pad[0] = 0
    pad[:, 0] = 0
    s = pad.cumsum(0).cumsum(1)
    h, w = a.shape[:2]
    out = s[k:k + h, k:k + w] - s[:h, k:k + w] - s[k:k + h, :w] + s[:h, :w]
    return out / (k * k)


def feature_maps(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Channel-mean gradient magnitude and local colour variance, both (H, W)."""
    img = image.astype(np.float32)
    gy = np.zeros_like(img)
    gx = np.zeros_like(img)
    if img.shape[0] > 1:
        gy = np.gradient(img, axis=0)
    if img.shape[1] > 1:
        gx = np.gradient(img, axis=1)
    grad = np.sqrt(gx * gx + gy * gy).mean(axis=2)
    mean = _box_mean(img, NEIGHBOURHOOD)
    var = np.maximum(_box_mean(img * img, NEIGHBOURHOOD) - mean * mean, 0.0).mean(axis=2)
    return grad, var


def _normalise(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo + EPS)


def _weighted_choice(weights: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k distinct indices drawn without replacement with probability proportional to weights."""
    # Efraimidis-Spirakis keys: top-k of u^(1/w) is sequential weighted sampling w/o replacement
    u = rng.random(weights.shape[0])
    keys = np.log(np.maximum(u, 1e-300)) / np.maximum(weights, 1e-12)
    if k >= len(keys):
        return np.argsort(-keys, kind="stable")
    idx = np.argpartition(-keys, k - 1)[:k]
    return idx[np.argsort(-keys[idx], kind="stable")]


def tile_weights(image: np.ndarray, y0: int, th: int, x0: int, tw: int) -> np.ndarray:
    """Sampling weight 0.9 grad + 0.1 colour variance (each normalised in the tile), (th, tw)."""
    h, w = image.shape[:2]
    # a one-pixel halo makes the tile's maps identical to those of the whole image
    ya, yb = max(y0 - 1, 0), min(y0 + th + 1, h)
    xa, xb = max(x0 - 1, 0), min(x0 + tw + 1, w)
    grad, var = feature_maps(image[ya:yb, xa:xb])
    grad = grad[y0 - ya:y0 - ya + th, x0 - xa:x0 - xa + tw]
    var = var[y0 - ya:y0 - ya + th, x0 - xa:x0 - xa + tw]
    return GRAD_WEIGHT * _normalise(grad) + (1.0 - GRAD_WEIGHT) * _normalise(var)


def variational_sample(image: np.ndarray, n_var: int, base: float,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Tiled gradient/colour-variance sampling: pixel-centre points (n,2) and scales (n,)."""
    h, w = image.shape[:2]
    tiles = [(y0, th, x0, tw) for (y0, th) in tile_layout(h) for (x0, tw) in tile_layout(w)]
    share = [n_var // len(tiles) + (i < n_var % len(tiles)) for i in range(len(tiles))]
    pts, scl = [], []
    for (y0, th, x0, tw), k in zip(tiles, share):
        if k == 0:
            continue
        wt = tile_weights(image, y0, th, x0, tw).ravel()
        # a tiny floor keeps flat tiles sampleable (uniformly) instead of all-zero
        idx = _weighted_choice(wt + 1e-6, min(k, wt.size), rng)
        r, c = np.divmod(idx, tw)
        pts.append(np.stack([x0 + c + 0.5, y0 + r + 0.5], axis=1))
        # exponential decay: strong features get small Gaussians, flat areas the base scale
        scl.append(base * np.exp(-wt[idx]))
    if not pts:
        return np.zeros((0, 2)), np.zeros(0)
    pts = np.concatenate(pts)
    scl = np.concatenate(scl)
    # overlapping tiles can pick the same pixel twice; keep one
    ij = np.round(pts - 0.5).astype(np.int64)
    key = ij[:, 1] * w + ij[:, 0]
    _, first = np.unique(key, return_index=True)
    first.sort()
    return pts[first], scl[first]


def knn_distances(queries: np.ndarray, refs: np.ndarray, k: int, cell: float,
                  max_cell: float = math.inf, skip_self: bool = False) -> np.ndarray:
    """Sorted distances (nq, k) from each query to its k nearest refs (grid search, exact).

    Entries stay inf where fewer than k refs exist or, with max_cell, none lies within it.
    With skip_self the zero-distance match of a query that is itself a ref is dropped.
    """
    kk = k + 1 if skip_self else k
    out = np.full((len(queries), kk), np.inf)
    todo = np.arange(len(queries))
    if len(refs) == 0 or len(queries) == 0:
        return out[:, kk - k:]
    lo = np.minimum(queries.min(0), refs.min(0))
    hi = np.maximum(queries.max(0), refs.max(0))
    cell = max(float(cell), 1e-6)
    while len(todo):
        nx, ny = (np.floor((hi - lo) / cell).astype(np.int64) + 1)
        rc = np.floor((refs - lo) / cell).astype(np.int64)
        rid = rc[:, 1] * nx + rc[:, 0]
        order = np.argsort(rid, kind="stable")
        sorted_id = rid[order]
        # a dense cell-start table when the grid is small, binary search otherwise
        dense = nx * ny < 4 * len(refs) + 1024
        starts = np.searchsorted(sorted_id, np.arange(nx * ny + 1)) if dense else None
        offs = np.array([(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)])

        def cells(sel):
            qc = np.floor((queries[sel] - lo) / cell).astype(np.int64)
            cx = qc[:, None, 0] + offs[None, :, 0]
            cy = qc[:, None, 1] + offs[None, :, 1]
            valid = (cx >= 0) & (cx < nx) & (cy >= 0) & (cy < ny)
            cid = np.where(valid, cy * nx + cx, 0)
            if starts is not None:
                a, b = starts[cid], starts[cid + 1]
            else:
                a = np.searchsorted(sorted_id, cid, side="left")
                b = np.searchsorted(sorted_id, cid, side="right")
            return a, np.where(valid, b - a, 0)

        # split the queries so that each batch has a bounded number of candidate pairs
        per_q = cells(todo)[1].sum(1)
        limit = 4_000_000
        bounds = np.searchsorted(np.cumsum(per_q), np.arange(1, 1 + per_q.sum() // limit) * limit)
        for chunk in np.split(todo, np.unique(bounds)):
            if len(chunk) == 0:
                continue
            a, cnt = cells(chunk)
            cnt = cnt.ravel()
            owner = np.repeat(np.arange(cnt.size), cnt)
            pos = np.arange(owner.size) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            cand = order[a.ravel()[owner] + pos]
            q = owner // 9
            d = np.sqrt(((queries[chunk][q] - refs[cand]) ** 2).sum(1))
            srt = np.lexsort((d, q))
            q, d = q[srt], d[srt]
            seg_start = np.searchsorted(q, np.arange(len(chunk)))
            rank = np.arange(len(q)) - seg_start[q]
            keep = rank < kk
            res = np.full((len(chunk), kk), np.inf)
            res[q[keep], rank[keep]] = d[keep]
            out[chunk] = res
        # exact once the k-th distance is within one cell (the 3x3 block covers that disc)
        done = out[todo, kk - 1] <= cell
        if cell >= max_cell or cell > float(np.max(hi - lo)) + 1.0:
            break
        todo = todo[~done]
        cell *= 2.0
    return out[:, kk - k:]


def uniform_sample(var_pts: np.ndarray, n_u: int, radius: float, h: int, w: int,
                   rng: np.random.Generator) -> np.ndarray:
    """n_u points, uniform over the image, each at least `radius` from every variational point."""
    got = np.zeros((0, 2))
    for attempt in range(6):
        need = n_u - len(got)
        if need <= 0:
            break
        # jittered-grid candidates cover the image more evenly than i.i.d. draws
        m = max(4 * need * 2 ** attempt, 16)
        gx = max(1, int(round(math.sqrt(m * w / h))))
        gy = max(1, int(math.ceil(m / gx)))
        jj, ii = np.meshgrid(np.arange(gx), np.arange(gy))
        cand = np.stack([(jj.ravel() + rng.random(jj.size)) * (w / gx),
                         (ii.ravel() + rng.random(ii.size)) * (h / gy)], axis=1)
        cand = cand[rng.permutation(len(cand))]
        if len(var_pts) and radius > 0:
            d = knn_distances(cand, var_pts, 1, radius, max_cell=radius)[:, 0]
            cand = cand[d >= radius]
        got = np.concatenate([got, cand[:need]])
    if len(got) < n_u:
        # the variational points exclude (nearly) everything: fill without exclusion
        extra = rng.random((n_u - len(got), 2)) * [w, h]
        got = np.concatenate([got, extra])
    return got


def weighted_median_colors(image: np.ndarray, pts: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Per-channel Gaussian-weighted median of the pixels within 3 sigma of each point."""
    h, w, c = image.shape
    t = np.linspace(-1.0, 1.0, MEDIAN_GRID)
    ox, oy = np.meshgrid(t, t)
    inside = ox * ox + oy * oy <= 1.0 + 1e-9
    ox, oy = ox[inside], oy[inside]
    # radius 3 sigma: the Gaussian weight of an offset o (in radii) is exp(-4.5 |o|^2)
    base_w = np.exp(-4.5 * (ox * ox + oy * oy))
    out = np.empty((len(pts), c), np.float64)
    for s in range(0, len(pts), 50_000):
        p, r = pts[s:s + 50_000], 3.0 * scales[s:s + 50_000, None]
        x = p[:, 0:1] + r * ox[None]
        y = p[:, 1:2] + r * oy[None]
        col = np.floor(x).astype(np.int64)
        row = np.floor(y).astype(np.int64)
        valid = (col >= 0) & (col < w) & (row >= 0) & (row < h)
        wt = np.where(valid, base_w[None], 0.0)
        # the centre sample is always inside (points lie in the image), so weights never vanish
        vals = image[np.clip(row, 0, h - 1), np.clip(col, 0, w - 1)]
        for ch in range(c):
            v = vals[..., ch]
            order = np.argsort(v, axis=1, kind="stable")
            ws = np.take_along_axis(wt, order, axis=1).cumsum(1)
            pick = (ws < 0.5 * ws[:, -1:]).sum(1)
            out[s:s + len(p), ch] = np.take_along_axis(v, order, axis=1)[np.arange(len(p)), pick]
    return out


def _fit_colors(image: np.ndarray, means, scales, angles, colors, steps: int,
                device: str = "cpu", beta: float = 1.0) -> np.ndarray:
    """Divide colours by their footprint-weighted coverage, then refine by CGLS steps."""
    import torch

    from ..render.image2d import render_image, splat_adjoint

    h, w, c = image.shape
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=device)  # noqa: E731
    m, s, a = t(means), t(scales), t(angles)
    target = t(image)

    def fwd(col):
        with torch.no_grad():
            return render_image(m, s, a, col, (h, w), beta=beta)

    def adj(img):
        return splat_adjoint(m, s, a, img, (h, w), beta=beta)

    n = len(m)
    cover = fwd(torch.ones(n, 1, device=device))
    g = adj(torch.cat([cover, torch.ones_like(cover)], dim=2))
    # mean coverage seen by each Gaussian: with it, flat regions come out at the right level
    # a Gaussian that hits no pixel centre has no footprint; leave its colour alone
    hit = g[:, 1] > 1e-6
    ratio = torch.where(hit, g[:, 0] / g[:, 1].clamp_min(1e-6), torch.ones_like(g[:, 0]))
    x = t(colors) / ratio.clamp_min(1e-3)[:, None]
    if steps > 0:
        # CGLS on min ||A x - b||^2 (A: colours -> image is linear for fixed geometry)
        x = cgls(fwd, adj, x, target, steps)
    return x.cpu().numpy().astype(np.float64)


def smartsplat_init(image: np.ndarray, n: int, seed: int = 0, *, scale_mode: str = "paper",
                    color_steps: int = 4, knn_factor: float = KNN_FACTOR,
                    device: str = "cpu", beta: float = 1.0) -> dict[str, np.ndarray]:
    """SmartSplat initialisation: n Gaussians (means, scales, angles, colors) approximating image.

    scale_mode "paper": variational points get the decayed base scale, uniform points their
    3-NN mean distance (as in SmartSplat); "knn": every point gets its 3-NN mean distance
    (overlapping Gaussians, a smoother first render). After the coverage normalisation,
    color_steps CGLS steps (two renders each) fit the colours to the image by least squares,
    on `device` (a torch device name: the renders dominate the time on large images), with
    the rendering kernel of exponent `beta`.
    """
    if scale_mode not in ("paper", "knn"):
        raise ValueError(f"scale_mode must be 'paper' or 'knn', got {scale_mode!r}")
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or min(img.shape) < 1:
        raise ValueError(f"image must be (H, W, C), got shape {image.shape}")
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    h, w, _ = img.shape
    rng = np.random.default_rng(seed)
    base = base_scale(h, w, n)
    n_var = min(int(round(VAR_FRACTION * n)), h * w)
    var_pts, var_s = variational_sample(img, n_var, base, rng)
    radius = max(base, float(np.median(var_s))) if len(var_s) else base
    uni_pts = uniform_sample(var_pts, n - len(var_pts), radius, h, w, rng)
    pts = np.concatenate([var_pts, uni_pts])
    scl = np.concatenate([var_s, np.zeros(len(uni_pts))])
    first = len(var_pts) if scale_mode == "paper" else 0
    if len(pts) > first:
        d = knn_distances(pts[first:], pts, KNN_K, cell=2.0 * math.sqrt(h * w / len(pts)),
                          skip_self=True)
        finite = np.isfinite(d)
        cnt = finite.sum(1)
        # a lone point (n == 1) has no neighbours: give it the equal-area disc radius
        scl[first:] = knn_factor * np.where(
            cnt > 0, np.where(finite, d, 0).sum(1) / np.maximum(cnt, 1), 3.0 * base)
    scl = np.maximum(scl, 1e-3)
    colors = weighted_median_colors(img, pts, scl)
    scales = np.repeat(scl[:, None], 2, axis=1)
    angles = rng.random(len(pts)) * math.pi
    colors = _fit_colors(img, pts, scales, angles, colors, color_steps, device, beta)
    f = np.float32
    return {"means": pts.astype(f), "scales": scales.astype(f), "angles": angles.astype(f),
            "colors": colors.astype(f)}
