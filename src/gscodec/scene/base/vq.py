"""The compact SH path: a codebook built by deterministic k-means, chosen per Gaussian by rate-distortion."""
from __future__ import annotations

import numpy as np

SEED = 20240611
ITERATIONS = 6
TRAIN = 16384


def _assign(x: np.ndarray, cb: np.ndarray, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Nearest codeword index and squared distance of each row of x."""
    idx = np.empty(x.shape[0], dtype=np.int64)
    dist = np.empty(x.shape[0], dtype=np.float64)
    x = x.astype(np.float32)
    cb = cb.astype(np.float32)
    c2 = (cb * cb).sum(1)
    for s in range(0, x.shape[0], batch):
        xb = x[s:s + batch]
        d = c2[None, :] - np.float32(2.0) * (xb @ cb.T)
        j = np.argmin(d, axis=1)
        idx[s:s + batch] = j
        dist[s:s + batch] = np.maximum(d[np.arange(xb.shape[0]), j] + (xb * xb).sum(1), 0.0)
    return idx, dist


def kmeans(x: np.ndarray, k: int, weights: np.ndarray) -> np.ndarray:
    """Deterministic weighted k-means (integer-seeded sampling, fixed iterations) -> (k, D)."""
    rng = np.random.default_rng(SEED)
    n = x.shape[0]
    sample = rng.choice(n, size=min(n, TRAIN), replace=False) if n > TRAIN else np.arange(n)
    xs = x[sample].astype(np.float32)
    ws = weights[sample].astype(np.float32)
    cb = xs[rng.choice(xs.shape[0], size=k, replace=xs.shape[0] < k)].copy()
    for _ in range(ITERATIONS):
        j, _ = _assign(xs, cb)
        sums = np.zeros_like(cb)
        np.add.at(sums, j, xs * ws[:, None])
        wsum = np.bincount(j, weights=ws, minlength=k).astype(np.float32)
        filled = wsum > 0
        cb[filled] = sums[filled] / wsum[filled, None]
        # Re-seed empty cells with the worst-served samples so no codeword is wasted.
        empty = np.nonzero(~filled)[0]
        if empty.size:
            _, d = _assign(xs, cb)
            cb[empty] = xs[np.argsort(-d, kind="stable")[:empty.size]]
    return cb


def choose_paths(rest: np.ndarray, q_direct: np.ndarray, step: float, importance: np.ndarray,
                 lam: float, k_cap: int, cls: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codebook (K, D) ints, per-Gaussian path (1 = codebook), index; K = 0 disables the path."""
    n, d = rest.shape
    if n < 256:
        return np.zeros((0, d), np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    k = int(min(k_cap, max(16, 1 << int(np.ceil(np.log2(n / 64))))))
    cbf = kmeans((rest / step).astype(np.float32), k, np.ones(n, np.float32))
    cb = np.rint(cbf).astype(np.int64)
    idx, dist_vq = _assign((rest / step).astype(np.float32), cb.astype(np.float32))
    dist_vq = dist_vq * step * step
    dist_direct = ((rest - q_direct * step) ** 2).sum(1)
    # Ideal bits of the direct path from the per-channel histograms; of the codebook path from index use.
    bits_direct = np.zeros(n)
    coarse = q_direct >> cls[:, None]
    for ch in range(d):
        vals, inv, cnt = np.unique(coarse[:, ch], return_inverse=True, return_counts=True)
        bits_direct += -np.log2(cnt[inv] / n)
    use = np.bincount(idx, minlength=k) + 1
    bits_vq = -np.log2(use[idx] / (n + k))
    gain = importance * (dist_vq - dist_direct)
    path = (gain < lam * (bits_direct - bits_vq)).astype(np.int64)
    return cb, path, idx
