"""Lossless coding of sorted Morton codes: first code, then gaps as (bit length, mantissa).

A gap of 0 is a duplicate grid cell (kept: multiplicity is coded by repeated zero gaps).
Gap g > 0 has bit length e = floor(log2 g) + 1; e is entropy-coded with one model, the
e - 1 bits below the leading one follow as uniform pieces of at most 16 bits, high first.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ...container.byteio import ByteReader, ByteWriter
from ...entropy import Decoder, Encoder, Model, choose_model
from ...errors import CorruptError
from .morton import bit_length

EXP_ALPHABET = 64


@lru_cache(maxsize=32)
def uniform_bits(w: int) -> Model:
    """Uniform model over w-bit pieces."""
    return Model.uniform(1 << w)


def _pieces(bits: int) -> list[tuple[int, int]]:
    """(shift, width) of the pieces of a `bits`-bit mantissa, most significant first."""
    out = []
    top = bits % 16
    if top:
        out.append((bits - top, top))
    for s in range(bits - top - 16, -1, -16):
        out.append((s, 16))
    return out


class PositionCoder:
    """Encoder side of the position sub-stream of one group."""

    def __init__(self, codes: np.ndarray) -> None:
        self.codes = codes.astype(np.uint64)
        self.gaps = np.diff(self.codes)
        self.exps = bit_length(self.gaps)
        self.model = choose_model(self.exps, EXP_ALPHABET)

    def write_header(self, w: ByteWriter) -> None:
        """First code and the bit-length model."""
        w.varint(int(self.codes[0]))
        self.model.write(w)

    def encode(self, enc: Encoder) -> None:
        """Bit lengths, then mantissas grouped by bit length (ascending)."""
        enc.encode(self.exps, self.model)
        for e in range(2, EXP_ALPHABET):
            sel = self.gaps[self.exps == e]
            if sel.size == 0:
                continue
            for shift, width in _pieces(e - 1):
                piece = (sel >> np.uint64(shift)) & np.uint64((1 << width) - 1)
                enc.encode(piece.astype(np.int64), uniform_bits(width))


class PositionReader:
    """Decoder side of the position sub-stream of one group."""

    def __init__(self, r: ByteReader, limit_bits: int) -> None:
        self.limit = (1 << limit_bits) - 1
        self.first = r.varint(self.limit)
        self.model = Model.read(r, EXP_ALPHABET)

    def decode(self, dec: Decoder, n: int) -> np.ndarray:
        """Sorted Morton codes (n,) uint64."""
        exps = dec.decode(self.model, n - 1)
        gaps = np.zeros(n - 1, dtype=np.uint64)
        one = np.uint64(1)
        for e in range(1, EXP_ALPHABET):
            idx = np.nonzero(exps == e)[0]
            if idx.size == 0:
                continue
            if e > self.limit.bit_length():
                raise CorruptError("position gap exceeds the grid")
            val = np.full(idx.size, one << np.uint64(e - 1), dtype=np.uint64)
            for shift, width in _pieces(e - 1):
                val |= dec.decode(uniform_bits(width), idx.size).astype(np.uint64) << np.uint64(shift)
            gaps[idx] = val
        codes = np.empty(n, dtype=np.uint64)
        codes[0] = self.first
        # Each gap is below the grid size (checked above), so partial sums cannot wrap before the check.
        total = np.cumsum(gaps.astype(np.float64))
        if n > 1 and self.first + total[-1] > self.limit:
            raise CorruptError("decoded positions run past the grid")
        codes[1:] = np.uint64(self.first) + np.cumsum(gaps)
        if n > 1 and int(codes[-1]) > self.limit:
            raise CorruptError("decoded positions run past the grid")
        return codes
