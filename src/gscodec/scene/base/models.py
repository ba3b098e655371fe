"""A fast encoder-side choice among the entropy models of gscodec.entropy.

Same candidates as entropy.choose_model (uniform, two-sided geometric, explicit counts), but
the geometric ratio is estimated from the data and only its neighbours are tried, and the
explicit shifts are limited to a few, so thousands of contexts can be planned quickly.
"""
from __future__ import annotations

import numpy as np

from ...entropy import Model
from ...entropy.tables import GEOM_ONE

# Candidate ratios (any k in 0..65535 is valid in a stream; this grid is an encoder choice).
_KS = np.concatenate([np.linspace(0.02, 0.9, 23), 1.0 - np.geomspace(0.1, 0.0015, 24)])
_GEOM_KS = tuple(int(round(GEOM_ONE * x)) for x in _KS)
MAX_EXPLICIT = 4096


def _varint_len(v: np.ndarray) -> np.ndarray:
    out = np.ones(v.shape, dtype=np.int64)
    x = v >> 7
    while (x > 0).any():
        out += x > 0
        x = x >> 7
    return out


def fast_model(symbols: np.ndarray, n: int) -> Model:
    """The cheapest model found for these symbols (ideal bits plus header bits)."""
    s = np.asarray(symbols, dtype=np.int64)
    hist = np.bincount(s, minlength=n)
    best = Model.uniform(n)
    best_cost = best.bits(hist) + 8
    if s.size == 0:
        return best
    mu = int(np.median(s))
    mad = float(np.abs(s - mu).mean())
    # E|d| = 2t / (1 - t^2) for a two-sided geometric with ratio t.
    t = (np.sqrt(1.0 + mad * mad) - 1.0) / mad if mad > 0 else 0.0
    j = int(np.argmin(np.abs(_KS - t)))
    for jj in {max(j - 1, 0), j, min(j + 1, len(_KS) - 1)}:
        m = Model.geometric(n, mu, _GEOM_KS[jj])
        cost = m.bits(hist) + 8 * (3 + int(_varint_len(np.array([mu]))[0]))
        if cost < best_cost:
            best, best_cost = m, cost
    if n <= MAX_EXPLICIT and s.size > 2 * n:
        top = int(hist.max()).bit_length()
        for shift in range(max(0, top - 12), max(1, top - 3), 2):
            c = (hist + (1 << shift) - 1) >> shift
            head = 2 + int(_varint_len(c).sum())
            if 8 * head >= best_cost:
                continue
            m = Model.explicit(n, c, shift)
            cost = m.bits(hist) + 8 * head
            if cost < best_cost:
                best, best_cost = m, cost
    return best
