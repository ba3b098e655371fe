"""gscodec.entropy: integer tables, model serialisation, range coding round trips, corrupt input."""
from __future__ import annotations

import numpy as np
import pytest

from gscodec.container.byteio import ByteReader, ByteWriter
from gscodec.entropy import TOTAL, Decoder, Encoder, Model, choose_model, geometric_table, quantize_counts
from gscodec.errors import CorruptError, GscodecError, LimitError, TruncatedError


@pytest.mark.parametrize("counts", [[0], [5], [0, 0, 0], [1, 2, 3], [10**9, 1, 0, 7], list(range(300))])
def test_quantize_counts_sum_and_floor(counts):
    f = quantize_counts(np.array(counts))
    assert f.sum() == TOTAL
    assert (f >= 1).all()
    assert len(f) == len(counts)


def test_quantize_counts_is_monotone_in_counts():
    c = np.array([1, 10, 100, 1000, 0])
    f = quantize_counts(c)
    assert f[0] < f[1] < f[2] < f[3]
    assert f[4] == 1


def test_quantize_counts_rejects_bad_sizes():
    with pytest.raises(LimitError):
        quantize_counts(np.zeros(0, np.int64))
    with pytest.raises(LimitError):
        quantize_counts(np.ones((1 << 16) + 1, np.int64))


@pytest.mark.parametrize("n,mu,k", [(1, 0, 0), (9, 4, 32768), (100, 0, 60000), (100, 99, 1000), (5000, 2500, 65535)])
def test_geometric_table(n, mu, k):
    f = geometric_table(n, mu, k)
    assert f.sum() == TOTAL and (f >= 1).all()
    assert f[mu] == f.max()
    # non-increasing away from the peak on both sides
    assert (np.diff(f[mu:]) <= 0).all() and (np.diff(f[: mu + 1]) >= 0).all()


def test_geometric_table_rejects_bad_parameters():
    with pytest.raises(CorruptError):
        geometric_table(10, 10, 100)
    with pytest.raises(CorruptError):
        geometric_table(10, 0, 1 << 16)


def _models(n):
    rng = np.random.default_rng(0)
    return [Model.uniform(n), Model.geometric(n, n // 3, 50000),
            Model.explicit(n, rng.integers(0, 50, n), shift=2)]


@pytest.mark.parametrize("n", [1, 2, 17, 256])
def test_model_serialisation_round_trip(n):
    for m in _models(n):
        w = ByteWriter()
        m.write(w)
        assert len(w) == m.header_bytes()
        r = ByteReader(w.getvalue())
        m2 = Model.read(r, n)
        r.expect_end()
        assert m2.kind == m.kind and m2.params == m.params
        assert np.array_equal(m2.freqs, m.freqs)


@pytest.mark.parametrize("n", [1, 2, 3, 64, 1000, 65536])
def test_round_trip_every_model_kind(n):
    rng = np.random.default_rng(n)
    groups = []
    enc = Encoder()
    for m in _models(n) if n <= 4096 else [Model.uniform(n), Model.geometric(n, 7, 65000)]:
        sym = rng.integers(0, n, 500)
        enc.encode(sym, m)
        groups.append((m, sym))
    data = enc.finish()
    assert len(data) % 4 == 0
    dec = Decoder(data)
    for m, sym in groups:
        assert np.array_equal(dec.decode(m, len(sym)), sym)


def test_round_trip_with_contexts():
    rng = np.random.default_rng(1)
    ctx = rng.integers(0, 3, 2000)
    sym = np.where(ctx == 0, rng.integers(0, 4, 2000), rng.geometric(0.3, 2000) % 50)
    models = [choose_model(sym[ctx == c], 50) for c in range(3)]
    enc = Encoder()
    enc.encode_with_contexts(sym, ctx, models)
    out = Decoder(enc.finish()).decode_with_contexts(ctx, models)
    assert np.array_equal(out, sym)


def test_one_symbol_alphabet_costs_nothing():
    enc = Encoder()
    enc.encode(np.zeros(1000, np.int64), Model.uniform(1))
    data = enc.finish()
    assert len(data) == 0
    assert np.array_equal(Decoder(data).decode(Model.uniform(1), 1000), np.zeros(1000))


def test_choose_model_picks_cheap_models():
    rng = np.random.default_rng(2)
    n = 200
    uni = rng.integers(0, n, 5000)
    assert choose_model(uni, n).kind == Model.uniform(n).kind
    lap = np.clip(100 + rng.laplace(0, 3, 5000).round().astype(np.int64), 0, n - 1)
    m = choose_model(lap, n)
    assert m.kind == Model.geometric(n, 0, 0).kind
    hist = np.bincount(lap, minlength=n)
    nz = hist[hist > 0]
    empirical = float(-(nz * np.log2(nz / nz.sum())).sum())
    assert m.bits(hist) < 1.05 * empirical
    odd = rng.choice([3, 50, 150], 5000, p=[0.5, 0.3, 0.2])
    m = choose_model(odd, n)
    assert m.kind == Model.explicit(n, np.ones(n)).kind
    # the coded size follows the ideal size closely
    enc = Encoder()
    enc.encode(odd, m)
    ideal = m.bits(np.bincount(odd, minlength=n)) / 8
    assert len(enc.finish()) <= ideal + 8


def test_encode_rejects_symbols_outside_alphabet():
    with pytest.raises(ValueError):
        Encoder().encode(np.array([5]), Model.uniform(5))
    with pytest.raises(ValueError):
        Encoder().encode(np.array([-1]), Model.uniform(5))


def test_corrupt_model_headers():
    with pytest.raises(CorruptError):
        Model.read(ByteReader(b"\x07"), 10)            # unknown kind
    with pytest.raises(TruncatedError):
        Model.read(ByteReader(b"\x01\x03"), 10)        # geometric without its ratio
    with pytest.raises(LimitError):
        Model.read(ByteReader(b"\x01\x0a\x00\x00"), 10)  # peak outside the alphabet
    with pytest.raises(CorruptError):
        Model.read(ByteReader(b"\x02\x00\x01"), 10)    # explicit counts missing
    with pytest.raises(LimitError):
        Model.read(ByteReader(b"\x00"), 0)


def test_corrupt_streams_raise_only_gscodec_errors():
    with pytest.raises(CorruptError):
        Decoder(b"\x00\x01\x02")
    rng = np.random.default_rng(3)
    m = Model.geometric(100, 10, 60000)
    for _ in range(50):
        junk = rng.integers(0, 256, 4 * int(rng.integers(0, 6)), dtype=np.uint8).tobytes()
        try:
            out = Decoder(junk).decode(m, 64)
        except GscodecError:
            continue
        assert out.shape == (64,) and out.min() >= 0 and out.max() < 100


@pytest.mark.parametrize("n,seed", [(2, 0), (7, 1), (40, 2), (300, 3)])
def test_coder_uses_exactly_the_integer_table(n, seed):
    """The range coder's cumulative table equals the integer table bit for bit.

    The first decoded symbol is the one whose interval [cum, cum + f) holds
    quantile = point // ((2**64 - 1) >> 24), where point is the first two 32-bit words.
    """
    import struct

    rng = np.random.default_rng(seed)
    m = Model.explicit(n, rng.integers(0, 1000, n) ** 2)
    cum = np.concatenate([[0], np.cumsum(m.freqs)])
    scale = ((1 << 64) - 1) >> 24
    for s in range(n):
        for q, want in ((int(cum[s]), s), (int(cum[s + 1]) - 1, s)):
            point = q * scale
            data = struct.pack("<II", point >> 32, point & 0xFFFFFFFF)
            assert int(Decoder(data).decode(m, 1)[0]) == want
