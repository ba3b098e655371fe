"""Context-coded channel sets: the encoder's prediction flags and a round trip of one set."""
from __future__ import annotations

import numpy as np

from gscodec.container.byteio import ByteReader, ByteWriter
from gscodec.entropy import Decoder, Encoder
from gscodec.scene.base.ctxcode import (N_CTX, N_LEVELS, ChannelSetDecoder, ChannelSetEncoder,
                                        _choose_flags, _coded_bits, _entropy_bits, _neighbours,
                                        _scaled_pred, levels)


def _joint_bits(raw, pred, ctx, flags) -> float:
    syms = np.concatenate([p if f else x for x, p, f in zip(raw, pred, flags)])
    cs = np.concatenate(ctx)
    lo = syms.min()
    size = int(syms.max() - lo + 1)
    return _coded_bits(np.bincount(cs * size + syms - lo, minlength=N_CTX * size).reshape(N_CTX, size))


def _levels_of(values: np.ndarray):
    """Raw values and contexts per level, as the encoder sees them without prediction."""
    enc = ChannelSetEncoder(values[:, None], predict=False)
    raw = [enc.plan[k][0][0] for k in range(N_LEVELS)]
    ctx = [enc.plan[k][0][1] for k in range(N_LEVELS)]
    return raw, ctx


def test_flags_never_cost_more_than_simple_rules():
    rng = np.random.default_rng(0)
    # Precision-class-like data: values 0..7 peaked at 4, weakly smooth along the order.
    base = np.repeat(rng.integers(3, 6, size=300), 20)
    vals = np.clip(base + rng.choice([-1, 0, 0, 0, 1], size=base.size), 0, 7)
    raw, ctx = _levels_of(vals)
    pred = []
    for k, (idx, stride) in enumerate(levels(vals.size)):
        a, b = _neighbours(vals, idx, stride, k)
        pred.append(vals[idx] - _scaled_pred(a, b, np.zeros(idx.size, np.int64)))
    flags = _choose_flags(raw, pred, ctx, N_CTX)
    chosen = _joint_bits(raw, pred, ctx, flags)
    per_level = [x.size > 0 and _entropy_bits(p) < _entropy_bits(x) for x, p in zip(raw, pred)]
    for alt in (per_level, [False] * N_LEVELS, [True] * N_LEVELS):
        assert chosen <= _joint_bits(raw, pred, ctx, alt) + 1e-6
    # Here the per-level rule mixes raw values and residuals in shared models: clearly worse.
    assert chosen < 0.95 * _joint_bits(raw, pred, ctx, per_level)


def test_channel_set_round_trip_with_shifts_and_mask():
    rng = np.random.default_rng(1)
    n = 5000
    shift = rng.integers(0, 4, size=n)
    v = ((np.cumsum(rng.integers(-2, 3, size=(n, 3)), 0) >> shift[:, None]) << shift[:, None])
    mask = rng.random(n) < 0.7
    enc = ChannelSetEncoder(v, mask=mask, shift=shift)
    w = ByteWriter()
    enc.write_header(w)
    e = Encoder()
    enc.encode(e)
    stream = e.finish()
    dec = ChannelSetDecoder(ByteReader(w.getvalue(), "test"), 3)
    # Items outside the mask already hold their values (they serve as neighbours), as in 3.3.
    out = np.where(mask[:, None], 0, v)
    dec.decode(Decoder(stream), out, mask=mask, shift=shift)
    np.testing.assert_array_equal(out, v)
