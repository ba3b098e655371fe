"""How compressible a scene's SH rest is: the .gsz quantiser against a rate-distortion bound.

For each precision class of the chosen quality, the SH rest coefficients in the encoder's
KLT basis are quantised with that class's step; the script prints the ideal bits per
Gaussian (sum of the per-coefficient empirical entropies, no contexts), the squared error
per Gaussian, and the error the Gaussian rate-distortion bound allows at the same rate with
the same per-coefficient variances (reverse water-filling). A gap near 0 dB means a scalar
quantiser with an entropy coder already gets what second-order statistics allow. The bound
is that of Gaussian data; heavy-tailed data compress better, so negative gaps occur and
better quantisers (trellis, vector) may still gain a little. Larger gains need
dependencies between Gaussians or within one, which the second part measures: the share
of the variance left after predicting each Gaussian's coefficients from its nearest
neighbours in space (scaled mean of the k nearest, k = 1, 4, 8; 1.0 = no help) and from
its own DC colour (linear fit).

    python bench/gsz_sh_stats.py [--scene playbot_lod2 | --scene path/to/scene.ply] [--quality medium]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "scenes"
MIN_CLASS = 1000      # classes with fewer Gaussians are not reported
WINDOW = 24           # neighbour candidates on each side in Morton order


def entropy_bits(q: np.ndarray) -> float:
    """Empirical entropy of the integers q, in bits per value."""
    _, cnt = np.unique(q, return_counts=True)
    p = cnt / q.size
    return float(-(p * np.log2(p)).sum())


def gaussian_bound(var: np.ndarray, rate: float) -> float:
    """Total squared error of independent Gaussians with these variances at `rate` bits (water-filling)."""
    lo, hi = 1e-15, float(var.max())
    for _ in range(200):
        theta = np.sqrt(lo * hi)
        r = 0.5 * np.log2(np.maximum(var / theta, 1.0)).sum()
        lo, hi = (theta, hi) if r > rate else (lo, theta)
    return float(np.minimum(var, np.sqrt(lo * hi)).sum())


def nearest(means: np.ndarray, k: int) -> np.ndarray:
    """Indices (n, k) of approximately the k nearest Gaussians (best of a Morton-order window)."""
    order = morton_order(means)
    n = means.shape[0]
    pos = means[order].astype(np.float64)
    offs = np.concatenate([np.arange(-WINDOW, 0), np.arange(1, WINDOW + 1)])
    out = np.empty((n, k), np.int64)
    for s in range(0, n, 32768):
        i = np.arange(s, min(s + 32768, n))
        j = np.clip(i[:, None] + offs[None, :], 0, n - 1)
        d = ((pos[j] - pos[i, None]) ** 2).sum(-1)
        d[j == i[:, None]] = np.inf
        best = np.argsort(d, axis=1)[:, :k]
        out[order[i]] = order[np.take_along_axis(j, best, axis=1)]
    return out


def morton_order(means: np.ndarray) -> np.ndarray:
    """Morton order of the Gaussians on a 16-bit grid."""
    from gscodec.scene.base.morton import morton_encode

    lo, hi = means.min(0), means.max(0)
    g = np.rint((means - lo) / np.maximum(hi - lo, 1e-12) * 65535).astype(np.int64)
    return np.argsort(morton_encode(g), kind="stable")


def scene_args(doc: str) -> tuple:
    """Parse --scene and --quality for a stats script: (scene, its name, quality name)."""
    from gscodec.scene import read_ply

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--scene", default="playbot_lod2", help="PLY path, or a name in shared/data/scenes")
    ap.add_argument("--quality", default="medium", choices=("low", "medium", "high"))
    a = ap.parse_args()
    path = Path(a.scene) if a.scene.endswith(".ply") else DATA / f"{a.scene}.ply"
    return read_ply(path, nan_policy="drop"), path.stem, a.quality


def main() -> None:
    from gscodec.scene.base.group import precision_classes
    from gscodec.scene.base.importance import importance
    from gscodec.scene.base.params import quality
    from gscodec.scene.base.transform import forward, klt

    scene, name, qname = scene_args(__doc__)
    if scene.sh_degree == 0:
        print(f"{name} has SH degree 0: no SH rest")
        return
    q = quality(qname)
    n = scene.count
    d = scene.sh_rest.shape[1] * 3
    flat = scene.sh_rest.reshape(n, d).astype(np.float64)
    coef = forward(flat, klt(flat))
    cls = precision_classes(importance(scene), q.class_bias)
    cap = q.caps()[4]
    print(f"{name}, {n} Gaussians, {d} SH rest coefficients, quality {qname}")
    print("| class | Gaussians | step | bits/G | error/G | Gaussian bound | gap dB | zeros |")
    print("|---|---|---|---|---|---|---|---|")
    for c in range(int(cls.max()) + 1):
        sel = cls == c
        if sel.sum() < MIN_CLASS:
            continue
        x = coef[sel]
        step = q.rest_step * 2 ** min(c, cap)
        k = np.rint(x / step)
        rate = sum(entropy_bits(k[:, j]) for j in range(d))
        err = float(((x - k * step) ** 2).sum(1).mean())
        bound = gaussian_bound(x.var(0), rate)
        print(f"| {c} | {int(sel.sum())} | {step:.3f} | {rate:.1f} | {err:.4f} | {bound:.4f} | "
              f"{10 * np.log10(err / bound):+.2f} | {np.mean(k == 0):.2f} |")
    nb = nearest(scene.means, 8)
    total = (coef ** 2).sum()
    print("\nvariance left after prediction (1.0 = no help):")
    for k in (1, 4, 8):
        p = coef[nb[:, :k]].mean(1)
        a_k = (coef * p).sum(0) / np.maximum((p * p).sum(0), 1e-30)
        print(f"  mean of the {k} nearest Gaussians: {((coef - a_k * p) ** 2).sum() / total:.3f}")
    x = np.c_[scene.sh_dc.astype(np.float64), np.ones(n)]
    beta, *_ = np.linalg.lstsq(x, coef, rcond=None)
    print(f"  own DC colour (linear): {((coef - x @ beta) ** 2).sum() / total:.3f}")


if __name__ == "__main__":
    main()
