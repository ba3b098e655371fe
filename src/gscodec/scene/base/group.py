"""One group (SGRP chunk): up to MAX_GROUP Gaussians consecutive in Morton order."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...container import MAJOR
from ...container.byteio import ByteReader, ByteWriter
from ...entropy import Decoder, Encoder
from ...errors import CorruptError, LimitError
from .attrs import quantise_classes, rotation_to_ints
from .ctxcode import ChannelSetDecoder, ChannelSetEncoder
from .importance import geometric_importance
from .morton import morton_decode
from .params import MAX_CLASS, MAX_CODEBOOK, MAX_GROUP, QMAX, Quality
from .pose import canonical_pose
from .positions import PositionCoder, PositionReader
from .transform import ONE, forward, identity, inverse_fixed, klt
from .vq import choose_paths

TRANSFORM_MIN_PER_ENTRY = 8   # groups of at least 8 D^2 Gaussians get an SH transform (it costs ~2 D^2 bytes)


@dataclass
class Header:
    """Scene-wide fields of the SHDR chunk that groups need."""

    count: int
    sh_degree: int
    quality: int
    pos_bits: int
    origin: np.ndarray   # (3,) float64
    pos_step: float      # float64
    dc_step: float
    rest_step: float
    opacity_step: float
    scale_step: float
    rot_levels: int
    groups: int
    caps: tuple = (0, 0, 0, 0, 0)   # largest shift of opacity, scale, rotation, dc, SH rest
    major: int = MAJOR["gsz"]       # container major version (1: no SH transform field)

    def shifts(self, cls: np.ndarray) -> list[np.ndarray]:
        """Per-attribute shifts min(class, cap), in the order of `caps`."""
        return [np.minimum(cls, c) for c in self.caps]


def to_gdiff(v: np.ndarray) -> np.ndarray:
    """RGB triples (..., 3k) -> (G, R - G, B - G) triples: colour channels are strongly correlated."""
    t = v.reshape(v.shape[0], -1, 3)
    g = t[:, :, 1]
    return np.stack([g, t[:, :, 0] - g, t[:, :, 2] - g], axis=2).reshape(v.shape)


def from_gdiff(v: np.ndarray) -> np.ndarray:
    """Inverse of to_gdiff."""
    t = v.reshape(v.shape[0], -1, 3)
    g = t[:, :, 0]
    return np.stack([t[:, :, 1] + g, g, t[:, :, 2] + g], axis=2).reshape(v.shape)


def sh_coded_form(transformed: bool):
    """(to coded, from coded) integer maps of SH vectors: identity in a transform's basis, else (G, R-G, B-G)."""
    if transformed:
        return (lambda a: a), (lambda a: a)
    return to_gdiff, from_gdiff


def precision_classes(imp: np.ndarray, bias: float) -> np.ndarray:
    """Per-Gaussian precision class 0..MAX_CLASS: step multiplier 2**class, coarser for low importance."""
    c = np.floor(0.5 * np.log2(1.0 / np.maximum(imp, 1e-30)) + bias)
    return np.clip(c, 0, MAX_CLASS).astype(np.int64)


def encode_group(codes: np.ndarray, means_q: np.ndarray, dc, rest, opacity, scales, rots,
                 h: Header, q: Quality, imp: np.ndarray | None = None) -> tuple[bytes, dict[str, np.ndarray]]:
    """Payload of one group and its canonical integers (Gaussians already in Morton order).

    imp: per-Gaussian importance (median about 1); geometric importance when None.
    """
    n = codes.shape[0]
    if imp is None:
        imp = geometric_importance(opacity, scales)
    cls = precision_classes(imp, q.class_bias)
    rots, scales = canonical_pose(rots, scales)
    sh_op, sh_sc, sh_rot, sh_dc, sh_rest = h.shifts(cls)
    ints: dict[str, np.ndarray] = {"position": means_q, "class": cls}
    ints["opacity"] = quantise_classes(opacity, h.opacity_step, sh_op)[:, None]
    ints["scale"] = quantise_classes(scales, h.scale_step, sh_sc)
    big, ratios = rotation_to_ints(rots, h.rot_levels, sh_rot)
    ints["rot_index"], ints["rot"] = big[:, None], ratios
    ints["dc"] = quantise_classes(dc, h.dc_step, sh_dc)
    sets: list[ChannelSetEncoder] = [
        ChannelSetEncoder(cls[:, None]),
        ChannelSetEncoder(ints["opacity"], shift=sh_op), ChannelSetEncoder(ints["scale"], shift=sh_sc),
        ChannelSetEncoder(ints["rot_index"]), ChannelSetEncoder(ints["rot"], shift=sh_rot),
        ChannelSetEncoder(to_gdiff(ints["dc"]), shift=sh_dc)]
    w = ByteWriter()
    w.varint(n)
    pos = PositionCoder(codes)
    pos.write_header(w)
    for s in sets:
        s.write_header(w)
    if h.sh_degree > 0:
        d = rest.shape[1] * 3
        flat = rest.reshape(n, d).astype(np.float64)
        use_t = h.major >= 2 and n >= TRANSFORM_MIN_PER_ENTRY * d * d
        t = klt(flat) if use_t else identity(d)
        coef = forward(flat, t) if use_t else flat
        conv, _ = sh_coded_form(use_t)
        qd = quantise_classes(coef, h.rest_step, sh_rest)
        cb, path, idx = choose_paths(coef, qd, h.rest_step, imp,
                                     q.vq_lambda, min(q.codebook, MAX_CODEBOOK), sh_rest)
        cb = np.clip(cb, -QMAX, QMAX)
        if h.major >= 2:
            w.u8(1 if use_t else 0)
            if use_t:
                for v in t.ravel():
                    w.svarint(int(v))
        k = cb.shape[0]
        w.varint(k)
        if k:
            qd = np.where(path[:, None] == 1, cb[idx], qd)
            extra = [ChannelSetEncoder(conv(cb), predict=False),
                     ChannelSetEncoder(path[:, None]),
                     ChannelSetEncoder(idx[:, None], mask=path == 1, predict=False, contexts=False)]
        else:
            path = np.zeros(n, np.int64)
            idx = np.zeros(n, np.int64)
            extra = []
        extra.append(ChannelSetEncoder(conv(qd), mask=path == 0, shift=sh_rest))
        for s in extra:
            s.write_header(w)
        sets += extra
        ints["sh_path"], ints["sh_index"] = path, np.where(path == 1, idx, 0)
        ints["codebook"] = cb
        ints["sh_transform"] = t
        ints["sh_rest"] = inverse_fixed(qd, t).reshape(n, -1, 3)
    enc = Encoder()
    pos.encode(enc)
    for s in sets:
        s.encode(enc)
    stream = enc.finish()
    w.blob(stream)
    # Spec rule: at least one payload byte per 64 Gaussians, so counts are bounded by file size.
    pad = max(0, -(-n // 64) - len(w) - 1)
    w.blob(bytes(pad))
    return w.getvalue(), ints


def decode_group(data: bytes, h: Header, n_max: int) -> dict[str, np.ndarray]:
    """Canonical integers of one group (Morton-sorted codes, attributes)."""
    r = ByteReader(data, "SGRP chunk")
    n = r.varint(MAX_GROUP)
    if n == 0 or n > n_max:
        raise CorruptError(f"group declares {n} Gaussians ({n_max} remain)")
    if n > 64 * len(data):
        raise LimitError(f"group declares {n} Gaussians in {len(data)} bytes")
    pos = PositionReader(r, 3 * h.pos_bits)
    sets = [ChannelSetDecoder(r, 1), ChannelSetDecoder(r, 1), ChannelSetDecoder(r, 3),
            ChannelSetDecoder(r, 1), ChannelSetDecoder(r, 3), ChannelSetDecoder(r, 3)]
    k = 0
    d = 3 * ((h.sh_degree + 1) ** 2 - 1)
    t = identity(d)
    use_t = False
    if h.sh_degree > 0:
        if h.major >= 2:
            use_t = bool(r.u8())
            if use_t:
                t = np.array([r.svarint(ONE) for _ in range(d * d)], np.int64).reshape(d, d)
        k = r.varint(MAX_CODEBOOK)
        if k:
            sets += [ChannelSetDecoder(r, d), ChannelSetDecoder(r, 1),
                     ChannelSetDecoder(r, 1, contexts=False)]
        sets.append(ChannelSetDecoder(r, d))
    stream = r.blob(len(data))
    r.blob(len(data))
    r.expect_end()
    dec = Decoder(stream)
    out: dict[str, np.ndarray] = {}
    codes = pos.decode(dec, n)
    out["position"] = morton_decode(codes)
    cls = np.zeros((n, 1), np.int64)
    sets[0].decode(dec, cls)
    _check(cls, 0, MAX_CLASS, "precision class")
    cls = cls[:, 0]
    out["class"] = cls
    sh_op, sh_sc, sh_rot, sh_dc, sh_rest = h.shifts(cls)
    names = [("opacity", 1, sh_op), ("scale", 3, sh_sc), ("rot_index", 1, None), ("rot", 3, sh_rot),
             ("dc", 3, sh_dc)]
    for (name, c, shift), s in zip(names, sets[1:6]):
        v = np.zeros((n, c), np.int64)
        s.decode(dec, v, shift=shift)
        out[name] = from_gdiff(v) if name == "dc" else v
    if h.sh_degree > 0:
        conv, unconv = sh_coded_form(use_t)
        if k:
            cb = np.zeros((k, d), np.int64)
            sets[6].decode(dec, cb)
            cb = unconv(cb)
            _check(cb, -QMAX, QMAX, "codebook")
            path = np.zeros((n, 1), np.int64)
            sets[7].decode(dec, path)
            _check(path, 0, 1, "SH path")
            path = path[:, 0]
            idx = np.zeros((n, 1), np.int64)
            sets[8].decode(dec, idx, mask=path == 1)
            _check(idx, 0, k - 1, "codebook index")
            idx = idx[:, 0]
            rest = np.where(path[:, None] == 1, conv(cb)[idx], 0)
        else:
            cb = np.zeros((0, d), np.int64)
            path = np.zeros(n, np.int64)
            idx = np.zeros(n, np.int64)
            rest = np.zeros((n, d), np.int64)
        sets[-1].decode(dec, rest, mask=path == 0, shift=sh_rest)
        rest = unconv(rest)
        _check(rest, -QMAX, QMAX, "SH coefficient")
        out["sh_path"], out["sh_index"], out["codebook"] = path, idx, cb
        out["sh_transform"] = t
        out["sh_rest"] = inverse_fixed(rest, t).reshape(n, -1, 3)
    _check(out["opacity"], -QMAX, QMAX, "opacity")
    _check(out["scale"], -QMAX, QMAX, "scale")
    _check(out["dc"], -QMAX, QMAX, "colour")
    _check(out["rot_index"], 0, 3, "rotation index")
    _check(out["rot"], -h.rot_levels, h.rot_levels, "rotation")
    out["opacity"] = out["opacity"][:, 0]
    out["rot_index"] = out["rot_index"][:, 0]
    return out


def _check(v: np.ndarray, lo: int, hi: int, what: str) -> None:
    if v.size and (v.min() < lo or v.max() > hi):
        raise CorruptError(f"decoded {what} value out of range")
