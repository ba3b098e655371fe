"""The .gsi bitstream: canonical integer Gaussians <-> the payload of one `IGAU` chunk.

Layout, coding order and models are specified in spec/gsi.md. Numpy and constriction only.
"""
from __future__ import annotations

import numpy as np

from ..container.byteio import ByteReader, ByteWriter
from ..entropy import Decoder, Encoder, Model, choose_model
from ..errors import CorruptError, LimitError
from .quantize import (GAUSSIAN_KERNEL, LOG2_SCALE_MAX, LOG2_SCALE_MIN, QuantSpec, angle_bits_for,
                       refine_levels)

CHUNK_TYPE = b"IGAU"
MAX_SIDE = 65535
MAX_PIXELS = 1 << 28
MAX_POS_SHIFT = 6
MIN_POS_SHIFT = -4
MAX_ANGLE_BITS = 10
MIN_KERNEL, MAX_KERNEL = GAUSSIAN_KERNEL, 16   # kernel exponent beta = kernel / 4 in [1, 4]
MAX_COLOR_SHIFT = 12
DIRECT_TOKENS = 4          # hybrid integers below this are coded as themselves
RAW_PIECE = 16             # raw bits are coded in pieces of at most 16 bits


# -- helpers shared by both directions ----------------------------------------------------------
def morton_encode(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Interleave bits: x in the even bit positions, y in the odd ones (x, y < 2**24)."""
    return _spread(np.asarray(x, np.uint64)) | (_spread(np.asarray(y, np.uint64)) << np.uint64(1))


def morton_decode(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of morton_encode."""
    m = np.asarray(m, np.uint64)
    return _compact(m).astype(np.int64), _compact(m >> np.uint64(1)).astype(np.int64)


_SPREAD_STEPS = ((16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF), (4, 0x0F0F0F0F0F0F0F0F),
                 (2, 0x3333333333333333), (1, 0x5555555555555555))


def _spread(v: np.ndarray) -> np.ndarray:
    v = v & np.uint64(0xFFFFFFFF)
    for shift, mask in _SPREAD_STEPS:
        v = (v | (v << np.uint64(shift))) & np.uint64(mask)
    return v


def _compact(v: np.ndarray) -> np.ndarray:
    v = v & np.uint64(0x5555555555555555)
    for shift, mask in _COMPACT_STEPS:
        v = (v | (v >> np.uint64(shift))) & np.uint64(mask)
    return v


_COMPACT_STEPS = ((1, 0x3333333333333333), (2, 0x0F0F0F0F0F0F0F0F), (4, 0x00FF00FF00FF00FF),
                  (8, 0x0000FFFF0000FFFF), (16, 0x00000000FFFFFFFF))


def coding_order(ints: dict) -> np.ndarray:
    """Permutation putting Gaussians in coding order: Morton code, ties by the other integers."""
    zero = np.zeros_like(ints["px"])
    keys = [ints.get("sy", zero), ints.get("sx", zero)]
    keys += [ints["q"][:, c] for c in range(ints["q"].shape[1] - 1, -1, -1)]
    keys += [ints["t"], ints["la"], ints["ls"], morton_encode(ints["px"], ints["py"]).astype(np.int64)]
    return np.lexsort(keys)


def hybrid_split(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-negative integers -> (token, raw bit count, raw bits): exponent, one mantissa bit, rest raw."""
    v = np.asarray(v, np.int64)
    e = np.zeros(v.shape, np.int64)
    big = v >= DIRECT_TOKENS
    if big.any():
        e[big] = _bitlen(v[big]) - 1
    nraw = np.where(big, e - 1, 0)
    top = (v >> nraw) & 1
    tok = np.where(big, DIRECT_TOKENS + 2 * (e - 2) + top, v)
    raw = v & ((np.int64(1) << nraw) - 1)
    return tok, nraw, raw


def hybrid_join(tok: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Inverse of hybrid_split given the tokens and their raw bits."""
    tok = np.asarray(tok, np.int64)
    big = tok >= DIRECT_TOKENS
    e = (tok - DIRECT_TOKENS) // 2 + 2
    top = (tok - DIRECT_TOKENS) & 1
    nraw = np.where(big, e - 1, 0)
    val = ((2 + top) << nraw) | raw
    return np.where(big, val, tok)


def token_raw_bits(tok: int) -> int:
    """Raw bit count carried by a hybrid token."""
    return 0 if tok < DIRECT_TOKENS else (tok - DIRECT_TOKENS) // 2 + 1


def hybrid_alphabet(max_bits: int) -> int:
    """Token alphabet size for values below 2**max_bits."""
    return max(DIRECT_TOKENS, 2 * max_bits)


def _bitlen(v: np.ndarray) -> np.ndarray:
    """Bit length of positive int64 values, exactly (no floating point)."""
    v = v.copy()
    n = np.zeros(v.shape, np.int64)
    for s in (32, 16, 8, 4, 2, 1):
        m = v >= (np.int64(1) << s)
        n += m * s
        v = np.where(m, v >> s, v)
    return n + (v > 0)


def _encode_raw(enc: Encoder, tok: np.ndarray, nraw: np.ndarray, raw: np.ndarray) -> None:
    for t in np.unique(tok[nraw > 0]):
        vals = raw[tok == t]
        _code_raw_group(enc, vals, token_raw_bits(int(t)))


def _code_raw_group(enc: Encoder, vals: np.ndarray, bits: int) -> None:
    while bits > 0:
        piece = min(bits, RAW_PIECE)
        bits -= piece
        enc.encode((vals >> bits) & ((1 << piece) - 1), _uniform(1 << piece))


def _decode_raw(dec: Decoder, tok: np.ndarray) -> np.ndarray:
    raw = np.zeros(tok.shape, np.int64)
    for t in np.unique(tok):
        bits = token_raw_bits(int(t))
        if bits == 0:
            continue
        idx = np.nonzero(tok == t)[0]
        val = np.zeros(idx.size, np.int64)
        while bits > 0:
            piece = min(bits, RAW_PIECE)
            bits -= piece
            val = (val << piece) | dec.decode(_uniform(1 << piece), idx.size)
        raw[idx] = val
    return raw


_UNIFORM: dict[int, Model] = {}


def _uniform(n: int) -> Model:
    m = _UNIFORM.get(n)
    if m is None:
        m = _UNIFORM[n] = Model.uniform(n)
    return m


# -- header ------------------------------------------------------------------------------------
def _grid_bits(spec: QuantSpec, height: int, width: int) -> int:
    gx, gy = spec.grid(height, width)
    return 2 * max(int(gx - 1).bit_length(), int(gy - 1).bit_length(), 1)


def _scale_bounds(spec: QuantSpec) -> tuple[int, int]:
    return int(LOG2_SCALE_MIN * spec.K), int(LOG2_SCALE_MAX * spec.K)


# -- encoding ----------------------------------------------------------------------------------
def encode_payload(ints: dict, spec: QuantSpec, height: int, width: int, channels: int,
                   background: np.ndarray | None = None, major: int = 4) -> bytes:
    """Canonical integers (already in coding order) -> IGAU chunk data.

    background: the colour integers (C,) of the background (major >= 2; zeros when None).
    major 1 writes the version-1 syntax, which has no background; majors below 3 have no
    position refinement, below 4 no kernel field (their kernel is the Gaussian, kernel 4).
    """
    if major < 3 and spec.pos_refine:
        raise ValueError(f"version {major} has no position refinement")
    n = int(len(ints["px"]))
    w = ByteWriter()
    w.varint(width).varint(height)
    w.u8(0 if channels == 1 else 1)
    w.varint(n)
    w.u8(spec.pos_shift - MIN_POS_SHIFT)
    w.u8((spec.scale_bits << 4) | spec.angle_bits)
    if major >= 3:
        w.u8((spec.pos_refine << 4) | spec.pos_rel)
    if not MIN_KERNEL <= spec.kernel <= MAX_KERNEL:
        raise ValueError(f"kernel {spec.kernel} outside {MIN_KERNEL}..{MAX_KERNEL}")
    if major >= 4:
        w.u8(spec.kernel)
    elif spec.kernel != GAUSSIAN_KERNEL:
        raise ValueError(f"version {major} has only the Gaussian kernel (kernel 4)")
    for s in spec.color_shifts[:channels]:
        w.u8(s)
    if major >= 2:
        bg = np.zeros(channels, np.int64) if background is None else np.asarray(background, np.int64)
        for c, (lo, hi) in enumerate(spec.color_bounds(channels)):
            if not lo <= int(bg[c]) <= hi:
                raise ValueError("background colour outside the colour limits")
            w.svarint(int(bg[c]))
    elif background is not None and np.any(background):
        raise ValueError("version 1 has no background")
    if n == 0:
        return w.getvalue()
    # Ranges of the attribute alphabets, then one model per coded group, then the stream.
    ls, la, t, q = ints["ls"], ints["la"], ints["t"], ints["q"]
    ls_lo = int(ls.min())
    w.svarint(ls_lo).varint(int(ls.max()) - ls_lo)
    w.varint(int(la.max()))
    q_lo = q.min(0)
    for c in range(channels):
        w.svarint(int(q_lo[c])).varint(int(q[:, c].max() - q_lo[c]))

    mort = morton_encode(ints["px"], ints["py"]).astype(np.int64)
    gaps = np.diff(mort, prepend=np.int64(0))
    tok, nraw, raw = hybrid_split(gaps)
    pos_model = choose_model(tok, hybrid_alphabet(_grid_bits(spec, height, width)))
    ls_model = choose_model(ls - ls_lo, int(ls.max()) - ls_lo + 1)
    la_model = choose_model(la, int(la.max()) + 1)
    bits = angle_bits_for(la, spec)
    has_angle = la > 0
    angle_models = []
    for b in range(1, spec.angle_bits + 1):
        sel = has_angle & (bits == b)
        angle_models.append(choose_model(t[sel] >> (spec.angle_bits - b), 1 << b))
    color_models = [choose_model(q[:, c] - q_lo[c], int(q[:, c].max() - q_lo[c]) + 1)
                    for c in range(channels)]
    for m in [pos_model, ls_model, la_model, *angle_models, *color_models]:
        m.write(w)

    enc = Encoder()
    enc.encode(tok, pos_model)
    _encode_raw(enc, tok, nraw, raw)
    enc.encode(ls - ls_lo, ls_model)
    enc.encode(la, la_model)
    for b, m in zip(range(1, spec.angle_bits + 1), angle_models):
        sel = has_angle & (bits == b)
        enc.encode(t[sel] >> (spec.angle_bits - b), m)
    for c in range(channels):
        enc.encode(q[:, c] - q_lo[c], color_models[c])
    _encode_refinement(enc, ints, spec)
    stream = enc.finish()
    # The decoder refuses more than 8 Gaussians per stream byte (allocation guard); pad if needed.
    short = -(-n // 8) - len(stream)
    if short > 0:
        stream += bytes(4 * -(-short // 4))
    w.raw(stream)
    return w.getvalue()


def _encode_refinement(enc: Encoder, ints: dict, spec: QuantSpec) -> None:
    """Sub-cell offsets, level by level: x then y of the Gaussians refined that many times."""
    r = refine_levels(ints["ls"], ints["la"], spec)
    for level in range(1, spec.pos_refine + 1):
        sel = r == level
        if sel.any():
            enc.encode(ints["sx"][sel], _uniform(1 << level))
            enc.encode(ints["sy"][sel], _uniform(1 << level))


def _decode_refinement(dec: Decoder, ls: np.ndarray, la: np.ndarray, spec: QuantSpec):
    """Inverse of _encode_refinement: (sx, sy)."""
    r = refine_levels(ls, la, spec)
    sx, sy = np.zeros(r.shape, np.int64), np.zeros(r.shape, np.int64)
    for level in range(1, spec.pos_refine + 1):
        idx = np.nonzero(r == level)[0]
        if idx.size:
            sx[idx] = dec.decode(_uniform(1 << level), idx.size)
            sy[idx] = dec.decode(_uniform(1 << level), idx.size)
    return sx, sy


# -- decoding ----------------------------------------------------------------------------------
def decode_payload(data: bytes, major: int = 4) -> tuple[dict, QuantSpec, int, int, int, np.ndarray]:
    """IGAU chunk data -> (canonical integers, spec, height, width, channels, background integers).

    Validates everything. major is the file's major version (1 has no background: zeros;
    below 3 no position refinement; below 4 the Gaussian kernel).
    """
    r = ByteReader(data, "IGAU chunk")
    width = r.varint(MAX_SIDE)
    height = r.varint(MAX_SIDE)
    if width < 2 or height < 2:
        raise CorruptError(f"image size {width}x{height} is below the 2x2 minimum")
    if width * height > MAX_PIXELS:
        raise LimitError(f"image size {width}x{height} exceeds {MAX_PIXELS} pixels")
    mode = r.u8()
    if mode not in (0, 1):
        raise CorruptError(f"unknown colour mode {mode}")
    channels = 1 if mode == 0 else 3
    n = r.varint(MAX_PIXELS)
    pos_shift = r.u8() + MIN_POS_SHIFT
    if pos_shift > MAX_POS_SHIFT:
        raise CorruptError(f"position shift {pos_shift} out of range")
    sa = r.u8()
    scale_bits, angle_bits = sa >> 4, sa & 15
    if scale_bits > 4 or not 1 <= angle_bits <= MAX_ANGLE_BITS:
        raise CorruptError(f"scale/angle precision {scale_bits}/{angle_bits} out of range")
    pos_refine = pos_rel = 0
    if major >= 3:
        pr = r.u8()
        pos_refine, pos_rel = pr >> 4, pr & 15
        if pos_shift + pos_refine > MAX_POS_SHIFT:
            raise CorruptError(f"position refinement {pos_refine} out of range")
    kernel = GAUSSIAN_KERNEL
    if major >= 4:
        kernel = r.u8()
        if not MIN_KERNEL <= kernel <= MAX_KERNEL:
            raise CorruptError(f"kernel exponent code {kernel} out of range ({MIN_KERNEL}..{MAX_KERNEL})")
    shifts = tuple(r.u8() for _ in range(channels))
    if any(not 1 <= s <= MAX_COLOR_SHIFT for s in shifts):
        raise CorruptError(f"colour precision {shifts} out of range")
    spec = QuantSpec(pos_shift=pos_shift, scale_bits=scale_bits, angle_bits=angle_bits,
                     color_shifts=shifts, pos_refine=pos_refine, pos_rel=pos_rel, kernel=kernel)
    bg = np.zeros(channels, np.int64)
    if major >= 2:
        for c, (lo, hi) in enumerate(spec.color_bounds(channels)):
            bg[c] = r.svarint(1 << 20)
            if not lo <= bg[c] <= hi:
                raise CorruptError(f"background colour of channel {c} outside the limits of the spec")
    empty = {"px": np.zeros(0, np.int64), "py": np.zeros(0, np.int64), "sx": np.zeros(0, np.int64),
             "sy": np.zeros(0, np.int64), "ls": np.zeros(0, np.int64),
             "la": np.zeros(0, np.int64), "t": np.zeros(0, np.int64),
             "q": np.zeros((0, channels), np.int64)}
    if n == 0:
        r.expect_end()
        return empty, spec, height, width, channels, bg
    if n > width * height:
        raise LimitError(f"{n} Gaussians for {width}x{height} pixels exceeds one per pixel")
    s_lo, s_hi = _scale_bounds(spec)
    ls_lo = r.svarint(1 << 20)
    ls_n = r.varint(1 << 20) + 1
    if ls_lo < s_lo or ls_lo + ls_n - 1 > s_hi:
        raise CorruptError("scale range outside the limits of the spec")
    la_n = r.varint(s_hi - s_lo) + 1
    bounds = spec.color_bounds(channels)
    q_lo, q_n = [], []
    for c in range(channels):
        lo = r.svarint(1 << 20)
        cnt = r.varint(1 << 20) + 1
        if lo < bounds[c][0] or lo + cnt - 1 > bounds[c][1]:
            raise CorruptError(f"colour range of channel {c} outside the limits of the spec")
        q_lo.append(lo)
        q_n.append(cnt)
    pos_model = Model.read(r, hybrid_alphabet(_grid_bits(spec, height, width)))
    ls_model = Model.read(r, ls_n)
    la_model = Model.read(r, la_n)
    angle_models = [Model.read(r, 1 << b) for b in range(1, angle_bits + 1)]
    color_models = [Model.read(r, q_n[c]) for c in range(channels)]
    stream = r.rest()
    if n > 8 * len(stream):
        raise CorruptError(f"{n} Gaussians cannot fit in a {len(stream)}-byte stream")
    dec = Decoder(stream)
    tok = dec.decode(pos_model, n)
    raw = _decode_raw(dec, tok)
    gaps = hybrid_join(tok, raw)
    gbits = _grid_bits(spec, height, width)
    if float(gaps.astype(np.float64).sum()) >= float(1 << gbits):
        raise CorruptError("position codes run past the grid")
    mort = np.cumsum(gaps)
    px, py = morton_decode(mort.astype(np.uint64))
    gx, gy = spec.grid(height, width)
    if (px >= gx).any() or (py >= gy).any():
        raise CorruptError("a Gaussian lies outside the position grid")
    ls = dec.decode(ls_model, n) + ls_lo
    la = dec.decode(la_model, n)
    if (ls - la < s_lo).any():
        raise CorruptError("a minor-axis scale is below the limit of the spec")
    bits = angle_bits_for(la, spec)
    has_angle = la > 0
    t = np.zeros(n, np.int64)
    for b, m in zip(range(1, angle_bits + 1), angle_models):
        idx = np.nonzero(has_angle & (bits == b))[0]
        t[idx] = dec.decode(m, idx.size) << (angle_bits - b)
    q = np.empty((n, channels), np.int64)
    for c in range(channels):
        q[:, c] = dec.decode(color_models[c], n) + q_lo[c]
    sx, sy = _decode_refinement(dec, ls, la, spec)
    ints = {"px": px, "py": py, "sx": sx, "sy": sy, "ls": ls, "la": la, "t": t, "q": q}
    return ints, spec, height, width, channels, bg
