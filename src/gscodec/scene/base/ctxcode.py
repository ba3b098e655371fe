"""Context-modelled coding of integer attribute channels in coarse-to-fine Morton levels.

Items (Gaussians in Morton order, or codebook entries) form levels: level 0 holds every
item whose index is a multiple of T = 2**ANCHOR_LOG2; level k (1..ANCHOR_LOG2) holds the
odd multiples of s = T >> k. An item at level k >= 1 has the already-decoded neighbours
a = v[i - s] and b = v[i + s] (b = a past the end); a level-0 item has a = b = 0. Per channel and level a flag selects the prediction
p = floor((a + b) / 2) or p = 0, and the coded residual is v - p.

The model of a symbol is picked by its context: the inter-Gaussian activity bucket
min(5, bitlength(|a - b|)) times 5 plus the intra-Gaussian bucket clip(r', -2, 2) + 2 of
the residual r' of the previous channel of the same item (2 for the first channel).

Items may carry a shift sh (precision class): their values are multiples of 2**sh, the coded
residual is v / 2**sh minus the prediction rounded to that unit, and the activity is
|a - b| >> sh. See spec/gsz.md section 3.2.
"""
from __future__ import annotations

import numpy as np

from ...container.byteio import ByteReader, ByteWriter
from ...entropy import Decoder, Encoder, Model
from .models import fast_model
from ...errors import CorruptError
from .params import ANCHOR_LOG2

NB_ACT = 6
NB_INTRA = 5
N_CTX = NB_ACT * NB_INTRA
N_LEVELS = ANCHOR_LOG2 + 1
MAX_ALPHABET = 1 << 16


def levels(n: int) -> list[tuple[np.ndarray, int]]:
    """[(indices, stride)] of each level, coarse to fine."""
    t = 1 << ANCHOR_LOG2
    out = [(np.arange(0, n, t, dtype=np.int64), t)]
    for k in range(1, N_LEVELS):
        s = t >> k
        out.append((np.arange(s, n, 2 * s, dtype=np.int64), s))
    return out


def _neighbours(v: np.ndarray, idx: np.ndarray, stride: int, level: int) -> tuple[np.ndarray, np.ndarray]:
    n = v.shape[0]
    if level == 0:
        a = np.zeros(idx.size, dtype=np.int64)
        return a, a
    a = v[idx - stride]
    j = idx + stride
    b = np.where(j < n, v[np.minimum(j, n - 1)], a)
    return a, b


def _scaled_pred(a: np.ndarray, b: np.ndarray, sh: np.ndarray) -> np.ndarray:
    """floor((a + b) / 2) in units of 2**sh, rounded half up."""
    p = (a + b) >> 1
    return (p + ((1 << sh) >> 1)) >> sh


def _act(a: np.ndarray, b: np.ndarray, sh: np.ndarray | int = 0) -> np.ndarray:
    d = np.abs(a - b) >> sh
    out = np.zeros(d.shape, dtype=np.int64)
    for t in (1, 2, 4, 8, 16):
        out += d >= t
    return out


def _intra(prev_res: np.ndarray | None, size: int) -> np.ndarray:
    if prev_res is None:
        return np.full(size, 2, dtype=np.int64)
    return np.clip(prev_res, -2, 2) + 2


def _entropy_bits(x: np.ndarray) -> float:
    if x.size == 0:
        return 0.0
    _, c = np.unique(x, return_counts=True)
    p = c / x.size
    return float(-(c * np.log2(p)).sum())


MAX_FLAG_ALPHABET = 1 << 12   # larger residual alphabets keep the per-level rule (memory)


def _coded_bits(hist: np.ndarray) -> float:
    """Ideal bits of symbols coded with one adaptive-free model per context row of hist (nctx, size)."""
    tot = hist.sum(1).astype(np.float64)
    h = hist[hist > 0].astype(np.float64)
    return float((tot[tot > 0] * np.log2(tot[tot > 0])).sum() - (h * np.log2(h)).sum())


def _choose_flags(raw: list[np.ndarray], pred: list[np.ndarray], ctx: list[np.ndarray], nctx: int) -> np.ndarray:
    """Per-level prediction flags of one channel that minimise its context-coded size.

    The levels share one model per context, so a level's choice changes the statistics every
    other level is coded with: deciding each level by its own entropy mixed raw values and
    predicted residuals in the same models (on a real scene the precision classes cost 50%
    more than their marginal entropy). Start from the per-level rule, then flip levels while the joint size drops.
    """
    flags = np.array([x.size > 0 and _entropy_bits(p) < _entropy_bits(x) for x, p in zip(raw, pred)])
    sizes = [x.size for x in raw]
    if sum(sizes) == 0:
        return flags
    lo = min(int(min(x.min(), p.min())) for x, p in zip(raw, pred) if x.size)
    hi = max(int(max(x.max(), p.max())) for x, p in zip(raw, pred) if x.size)
    size = hi - lo + 1
    if size > MAX_FLAG_ALPHABET:
        return flags
    hists = [[np.bincount(c * size + (arr - lo), minlength=nctx * size).reshape(nctx, size)
              if arr.size else np.zeros((nctx, size), np.int64) for arr in (x, p)]
             for x, p, c in zip(raw, pred, ctx)]
    total = sum(hists[k][int(f)] for k, f in enumerate(flags))
    best = _coded_bits(total)
    order = np.argsort(sizes, kind="stable")[::-1]
    for _ in range(2):
        changed = False
        for k in order:
            if sizes[k] == 0:
                continue
            alt = total - hists[k][int(flags[k])] + hists[k][1 - int(flags[k])]
            bits = _coded_bits(alt)
            if bits < best - 1e-9:
                total, best, flags[k], changed = alt, bits, not flags[k], True
        if not changed:
            break
    return flags


class ChannelSetEncoder:
    """Plans and writes one set of channels (values v (n, C), coded where mask is set)."""

    def __init__(self, v: np.ndarray, mask: np.ndarray | None = None, predict: bool = True,
                 contexts: bool = True, shift: np.ndarray | None = None) -> None:
        v = np.asarray(v, dtype=np.int64)
        self.n, self.c = v.shape
        self.contexts = contexts
        self.nctx = N_CTX if contexts else 1
        lv = []
        for idx, stride in levels(self.n):
            if mask is not None:
                idx = idx[mask[idx]]
            lv.append((idx, stride, shift[idx] if shift is not None else np.zeros(idx.size, np.int64)))
        self.flags = np.zeros((self.c, N_LEVELS), dtype=bool)
        per_level: list[list] = [[] for _ in range(N_LEVELS)]  # per level, per channel: (residual, ctx)
        prev: list[np.ndarray | None] = [None] * N_LEVELS
        for ch in range(self.c):
            col = v[:, ch]
            raw, pred, ctx = [], [], []
            for k, (idx, stride, sh) in enumerate(lv):
                a, b = _neighbours(col, idx, stride, k)
                x = col[idx] >> sh
                raw.append(x)
                if predict:
                    pred.append(x - _scaled_pred(a, b, sh))
                ctx.append((_act(a, b, sh) * NB_INTRA + _intra(prev[k], idx.size)) if contexts
                           else np.zeros(idx.size, np.int64))
            if predict:
                self.flags[ch] = _choose_flags(raw, pred, ctx, self.nctx)
            for k in range(N_LEVELS):
                r = pred[k] if self.flags[ch, k] else raw[k]
                per_level[k].append((r, ctx[k]))
                prev[k] = r
        self.plan = per_level
        self.mins, self.sizes, self.models = [], [], []
        for ch in range(self.c):
            r = np.concatenate([self.plan[k][ch][0] for k in range(N_LEVELS)])
            lo = int(r.min()) if r.size else 0
            size = int(r.max()) - lo + 1 if r.size else 1
            if size > MAX_ALPHABET:
                raise ValueError(f"residual alphabet {size} too large")
            self.mins.append(lo)
            self.sizes.append(size)
            sym_all = r - lo
            ctx_all = np.concatenate([self.plan[k][ch][1] for k in range(N_LEVELS)])
            models = []
            for j in range(self.nctx):
                s = sym_all[ctx_all == j]
                models.append(fast_model(s, size) if s.size else Model.uniform(size))
            self.models.append(models)
        self.present = bool(sum(len(self.plan[k][0][0]) for k in range(N_LEVELS)) if self.c else 0)

    def write_header(self, w: ByteWriter) -> None:
        """Presence, then per channel: level flags, residual minimum, alphabet size, models."""
        w.u8(1 if self.present else 0)
        if not self.present:
            return
        for ch in range(self.c):
            w.varint(int(sum(int(f) << k for k, f in enumerate(self.flags[ch]))))
            w.svarint(self.mins[ch])
            w.varint(self.sizes[ch] - 1)
            for m in self.models[ch]:
                m.write(w)

    def encode(self, enc: Encoder) -> None:
        """Symbols, level-major, channel order within a level."""
        if not self.present:
            return
        for k in range(N_LEVELS):
            for ch in range(self.c):
                r, ctx = self.plan[k][ch]
                enc.encode_with_contexts(r - self.mins[ch], ctx, self.models[ch])


class ChannelSetDecoder:
    """Reads the header of a channel set, then decodes its symbols into v in place."""

    def __init__(self, r: ByteReader, c: int, contexts: bool = True) -> None:
        self.c = c
        self.contexts = contexts
        self.present = bool(r.u8())
        self.flags, self.mins, self.models = [], [], []
        if not self.present:
            return
        nctx = N_CTX if contexts else 1
        for _ in range(c):
            f = r.varint((1 << N_LEVELS) - 1)
            self.flags.append([(f >> k) & 1 for k in range(N_LEVELS)])
            self.mins.append(r.svarint(1 << 20))
            size = r.varint(MAX_ALPHABET - 1) + 1
            self.models.append([Model.read(r, size) for _ in range(nctx)])

    def decode(self, dec: Decoder, v: np.ndarray, mask: np.ndarray | None = None,
               shift: np.ndarray | None = None) -> None:
        """Fill v (n, C) int64 at the masked items, coarse to fine."""
        n = v.shape[0]
        lv = levels(n)
        any_coded = any((idx.size if mask is None else int(mask[idx].sum())) for idx, _ in lv)
        if not self.present:
            if any_coded:
                raise CorruptError("a channel set with symbols to decode is marked absent")
            return
        for k, (idx, stride) in enumerate(lv):
            if mask is not None:
                idx = idx[mask[idx]]
            if idx.size == 0:
                continue
            prev = None
            sh = shift[idx] if shift is not None else np.zeros(idx.size, np.int64)
            for ch in range(self.c):
                col = v[:, ch]
                a, b = _neighbours(col, idx, stride, k)
                if self.contexts:
                    ctx = _act(a, b, sh) * NB_INTRA + _intra(prev, idx.size)
                else:
                    ctx = np.zeros(idx.size, np.int64)
                res = dec.decode_with_contexts(ctx, self.models[ch]) + self.mins[ch]
                pred = _scaled_pred(a, b, sh) if self.flags[ch][k] else 0
                v[idx, ch] = (res + pred) << sh
                prev = res
