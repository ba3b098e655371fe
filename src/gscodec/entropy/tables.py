"""Integer frequency tables: every probability the coder uses is an integer from here.

A table is an int64 array `f` of length n with f[i] >= 1 and sum(f) == 2**PRECISION.
Tables are built from integers only (counts, or the parameters of a parametric model),
so encoder and decoder derive identical tables on every platform.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..container.byteio import ByteReader, ByteWriter
from ..errors import CorruptError, LimitError

PRECISION = 24
TOTAL = 1 << PRECISION
MAX_ALPHABET = 1 << 16
GEOM_ONE = 1 << 16

KIND_UNIFORM = 0
KIND_GEOMETRIC = 1
KIND_EXPLICIT = 2


def quantize_counts(counts: np.ndarray) -> np.ndarray:
    """Turn non-negative integer counts into a table summing to TOTAL, each entry >= 1."""
    c = np.asarray(counts, dtype=np.int64)
    n = c.size
    if n < 1 or n > MAX_ALPHABET:
        raise LimitError(f"alphabet size {n} outside 1..{MAX_ALPHABET}")
    if (c < 0).any():
        raise ValueError("counts must be non-negative")
    budget = TOTAL - n
    csum = int(c.sum())
    f = np.ones(n, dtype=np.int64)
    if csum == 0:
        c = np.ones(n, dtype=np.int64)
        csum = n
    if csum >= (1 << 38):
        raise LimitError("counts too large")
    prod = c * budget  # < 2**62 because csum < 2**38 and budget < 2**24
    f += prod // csum
    rem = prod % csum
    left = budget - int((prod // csum).sum())
    if left:
        # Largest remainder first; ties go to the lower symbol (stable sort on -rem).
        order = np.argsort(-rem, kind="stable")[:left]
        f[order] += 1
    return f


@lru_cache(maxsize=4096)
def _geometric_weights(k: int, length: int) -> np.ndarray:
    w = np.zeros(length, dtype=np.int64)
    v = GEOM_ONE
    for d in range(length):
        if v == 0:
            break
        w[d] = v
        v = (v * k) >> 16
    w.setflags(write=False)
    return w


def geometric_table(n: int, mu: int, k: int) -> np.ndarray:
    """Two-sided geometric table over 0..n-1 peaked at mu with ratio k/65536 per step."""
    if not (0 <= mu < n) or not (0 <= k < GEOM_ONE):
        raise CorruptError(f"geometric model parameters out of range (mu={mu}, k={k}, n={n})")
    w = _geometric_weights(k, n)
    dist = np.abs(np.arange(n, dtype=np.int64) - mu)
    return quantize_counts(w[dist])


def uniform_table(n: int) -> np.ndarray:
    """Uniform table over 0..n-1."""
    return quantize_counts(np.ones(n, dtype=np.int64))


class Model:
    """A serialisable entropy model over the alphabet 0..n-1."""

    __slots__ = ("kind", "n", "params", "freqs")

    def __init__(self, kind: int, n: int, params: tuple, freqs: np.ndarray) -> None:
        self.kind = kind
        self.n = n
        self.params = params
        self.freqs = freqs

    @staticmethod
    def uniform(n: int) -> "Model":
        """Uniform model."""
        return Model(KIND_UNIFORM, n, (), uniform_table(n))

    @staticmethod
    def geometric(n: int, mu: int, k: int) -> "Model":
        """Two-sided geometric (discrete Laplace) model."""
        return Model(KIND_GEOMETRIC, n, (mu, k), geometric_table(n, mu, k))

    @staticmethod
    def explicit(n: int, counts: np.ndarray, shift: int = 0) -> "Model":
        """Model from stored counts (already right-shifted by `shift` by the encoder)."""
        c = np.asarray(counts, dtype=np.int64)
        return Model(KIND_EXPLICIT, n, (shift, tuple(int(x) for x in c)), quantize_counts(c))

    def bits(self, hist: np.ndarray) -> float:
        """Ideal code length in bits of symbols with histogram `hist` under this model."""
        nz = hist > 0
        return float((hist[nz] * (PRECISION - np.log2(self.freqs[nz]))).sum())

    def write(self, w: ByteWriter) -> None:
        """Serialise the model (its alphabet size is known to the reader)."""
        w.u8(self.kind)
        if self.kind == KIND_GEOMETRIC:
            w.varint(self.params[0]).u16(self.params[1])
        elif self.kind == KIND_EXPLICIT:
            w.u8(self.params[0])
            for x in self.params[1]:
                w.varint(x)

    def header_bytes(self) -> int:
        """Bytes `write` produces."""
        bw = ByteWriter()
        self.write(bw)
        return len(bw)

    @staticmethod
    def read(r: ByteReader, n: int) -> "Model":
        """Parse a model over an alphabet of n symbols."""
        if n < 1 or n > MAX_ALPHABET:
            raise LimitError(f"alphabet size {n} outside 1..{MAX_ALPHABET}")
        kind = r.u8()
        if kind == KIND_UNIFORM:
            return Model.uniform(n)
        if kind == KIND_GEOMETRIC:
            mu = r.varint(n - 1)
            k = r.u16()
            return Model.geometric(n, mu, k)
        if kind == KIND_EXPLICIT:
            shift = r.u8()
            if shift > 40:
                raise CorruptError(f"explicit model shift {shift} out of range")
            if r.remaining < n:
                raise CorruptError(f"explicit model of {n} symbols does not fit in the chunk")
            counts = np.array([r.varint(1 << 32) for _ in range(n)], dtype=np.int64)
            return Model.explicit(n, counts, shift)
        raise CorruptError(f"unknown entropy model kind {kind}")


_GEOM_KS = tuple(int(round(GEOM_ONE * x)) for x in
                 (0.02, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.78, 0.84, 0.88, 0.91, 0.935,
                  0.95, 0.962, 0.972, 0.98, 0.986, 0.99, 0.993, 0.995, 0.9965, 0.9975, 0.9983))


def choose_model(symbols: np.ndarray, n: int, allow_explicit: bool = True) -> Model:
    """Pick the model minimising header bytes plus ideal code length for these symbols."""
    s = np.asarray(symbols, dtype=np.int64).ravel()
    if s.size and (s.min() < 0 or s.max() >= n):
        raise ValueError(f"symbols outside alphabet 0..{n - 1}")
    hist = np.bincount(s, minlength=n)
    best = Model.uniform(n)
    best_cost = best.bits(hist) + 8 * best.header_bytes()
    if s.size == 0:
        return best
    mode = int(np.argmax(hist))
    med = int(np.median(s))
    for mu in {mode, med}:
        for k in _GEOM_KS:
            m = Model.geometric(n, mu, k)
            cost = m.bits(hist) + 8 * m.header_bytes()
            if cost < best_cost:
                best, best_cost = m, cost
    if allow_explicit and n <= 4096:
        for shift in range(0, 24):
            c = (hist + (1 << shift) - 1) >> shift
            m = Model.explicit(n, c, shift)
            cost = m.bits(hist) + 8 * m.header_bytes()
            if cost < best_cost:
                best, best_cost = m, cost
            if c.max() <= 1:
                break
    return best
