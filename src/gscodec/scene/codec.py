"""The .gsz base layer: GaussianScene <-> container bytes (numpy + constriction only).

Chunks: SHDR (scene header: counts, grid, quantiser steps), then one SGRP chunk per group of
up to 2**18 Gaussians consecutive in Morton order (each decodable on its own), then any
extra chunks (the enhancement layer). See spec/gsz.md.
"""
from __future__ import annotations

import numpy as np

from ..container import MAJOR, Chunk, Container, read_container, write_container
from ..container.byteio import ByteReader, ByteWriter
from ..errors import CorruptError, InputError, LimitError, UnsupportedError
from .base.attrs import dequantise, dequantise_fixed, ints_to_rotation
from .base.importance import importance as scene_importance
from .base.group import Header, decode_group, encode_group
from .base.morton import morton_encode
from .base.params import DEFAULT_GROUP, MAX_CLASS, MAX_GAUSSIANS, MAX_GROUP, MAX_POS_BITS
from .base.params import quality as quality_preset
from .model import SH_COEFFS, GaussianScene

HEADER_TYPE = b"SHDR"
GROUP_TYPE = b"SGRP"
KNOWN_CRITICAL = {HEADER_TYPE, GROUP_TYPE}
KNOWN = {HEADER_TYPE, GROUP_TYPE}


def _grid(means: np.ndarray, bits: int) -> tuple[np.ndarray, float, int]:
    """Origin, step and bits per axis of the position grid (step from the robust extent)."""
    m = means.astype(np.float64)
    lo, hi = m.min(0), m.max(0)
    full = float((hi - lo).max())
    if m.shape[0] >= 100:
        robust = float((np.percentile(m, 99.9, axis=0) - np.percentile(m, 0.1, axis=0)).max())
    else:
        robust = full
    robust = robust if robust > 0 else max(full, 1.0)
    step = robust / ((1 << bits) - 1)
    # Outliers widen the grid up to MAX_POS_BITS; beyond that the step grows.
    step = max(step, full / ((1 << MAX_POS_BITS) - 1))
    step = float(np.float32(step)) if step > 0 else 1.0
    nb = max(1, int(np.ceil(np.log2(full / step + 1.0))) if full > 0 else 1)
    nb = min(nb, MAX_POS_BITS)
    while (full / step) > (1 << nb) - 1:  # float rounding can leave the far edge one cell out
        step = float(np.nextafter(np.float32(step), np.float32(np.inf)))
    return lo, step, nb


def encode_scene(scene: GaussianScene, *, quality: str = "medium", progress: bool = False,
                 metadata: dict | None = None, extra_chunks=(), group_size: int = DEFAULT_GROUP,
                 importance: str = "auto", major: int = MAJOR["gsz"]) -> bytes:
    """Encode the base layer of a scene to .gsz bytes (importance: see encode_base_chunks)."""
    chunks, _ = encode_base_chunks(scene, quality=quality, progress=progress, group_size=group_size,
                                   importance=importance, major=major, keep_ints=False)
    return write_container("gsz", chunks + list(extra_chunks), metadata, major=major)


def encode_base_chunks(scene: GaussianScene, *, quality: str = "medium", progress: bool = False,
                       group_size: int = DEFAULT_GROUP, importance: str = "auto",
                       major: int = MAJOR["gsz"], keep_ints: bool = True
                       ) -> tuple[list[Chunk], dict[str, np.ndarray] | None]:
    """The base-layer chunks and the canonical integers the decoder will reproduce (None unless keep_ints).

    importance picks the per-Gaussian precision (an encoder choice; the stream carries the
    resulting classes): 'render' (blending weights in small orbit renders, needs torch),
    'geometric' (opacity x area), or 'auto' (render for scenes of 4096+ Gaussians when torch
    is installed).
    """
    q = quality_preset(quality)
    n = scene.count
    if n == 0:
        raise InputError("the scene has no Gaussians")
    if n > MAX_GAUSSIANS:
        raise LimitError(f"{n} Gaussians exceed the limit of {MAX_GAUSSIANS}")
    if not 1 <= group_size <= MAX_GROUP:
        raise ValueError("group_size out of range")
    arrays = (scene.means, scene.sh_dc, scene.sh_rest, scene.opacity, scene.scales, scene.rotations)
    if not all(np.isfinite(a).all() for a in arrays):
        raise InputError("the scene has NaN/Inf values")
    if importance not in ("auto", "render", "geometric"):
        raise InputError(f"unknown importance {importance!r} (use auto, render or geometric)")
    imp = scene_importance(scene, importance)
    origin, step, nb, gq, codes, order = sort_order(scene, q.pos_bits)
    ngroups = -(-n // group_size)
    h = Header(n, scene.sh_degree, q.code, nb, origin, step, q.dc_step, q.rest_step,
               q.opacity_step, q.scale_step, q.rot_levels, ngroups, q.caps(), major)
    chunks = [Chunk(HEADER_TYPE, _write_header(h))]
    parts: list[dict] = []
    bar = _bar(progress, ngroups, "encode")
    for g in range(ngroups):
        sel = order[g * group_size:(g + 1) * group_size]
        payload, ints = encode_group(codes[sel], gq[sel], scene.sh_dc[sel], scene.sh_rest[sel],
                                     scene.opacity[sel], scene.scales[sel], scene.rotations[sel], h, q, imp[sel])
        chunks.append(Chunk(GROUP_TYPE, payload))
        if keep_ints:
            ints["opacity"] = ints["opacity"][:, 0]
            ints["rot_index"] = ints["rot_index"][:, 0]
            parts.append(ints)
        del ints
        if bar:
            bar.update(1)
    if bar:
        bar.close()
    return chunks, (_merge(parts, h) if keep_ints else None)


def sort_order(scene: GaussianScene, pos_bits: int):
    """Grid (origin, step, bits), grid coordinates, Morton codes and the coding order of the Gaussians."""
    origin, step, nb = _grid(scene.means, pos_bits)
    gq = np.rint((scene.means.astype(np.float64) - origin) / step)
    gq = np.clip(gq, 0, (1 << nb) - 1).astype(np.int64)
    codes = morton_encode(gq)
    return origin, step, nb, gq, codes, np.argsort(codes, kind="stable")


def _bar(progress: bool, total: int, desc: str):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=f"gsz {desc}", unit="group", leave=False)


def _write_header(h: Header) -> bytes:
    w = ByteWriter()
    w.varint(h.count).u8(h.sh_degree).u8(h.quality).u8(h.pos_bits)
    for v in h.origin:
        w.f64(float(v))
    w.f64(h.pos_step)
    for v in (h.dc_step, h.rest_step, h.opacity_step, h.scale_step):
        w.f32(v)
    w.u16(h.rot_levels).varint(h.groups)
    for c in h.caps:
        w.u8(c)
    return w.getvalue()


def _read_header(data: bytes, major: int) -> Header:
    r = ByteReader(data, "SHDR chunk")
    count = r.varint(MAX_GAUSSIANS)
    deg, qual, nb = r.u8(), r.u8(), r.u8()
    origin = np.array([r.f64() for _ in range(3)])
    pos_step = r.f64()
    steps = [r.f32() for _ in range(4)]
    rot_levels = r.u16()
    groups = r.varint(MAX_GAUSSIANS)
    caps = tuple(r.u8() for _ in range(5))
    r.expect_end()
    if max(caps) > MAX_CLASS:
        raise CorruptError("precision class cap out of range")
    if count == 0:
        raise CorruptError("the scene declares zero Gaussians")
    if deg > 3:
        raise CorruptError(f"SH degree {deg} out of range")
    if not 1 <= nb <= MAX_POS_BITS:
        raise CorruptError(f"position bits {nb} out of range")
    if not (np.isfinite(origin).all() and np.isfinite(pos_step) and pos_step > 0):
        raise CorruptError("invalid position grid")
    if not all(np.isfinite(s) and s > 0 for s in steps) or rot_levels == 0:
        raise CorruptError("invalid quantiser step")
    if not -(-count // MAX_GROUP) <= groups <= count:
        raise CorruptError(f"inconsistent group count {groups}")
    return Header(count, deg, qual, nb, origin, pos_step, *steps, rot_levels, groups, caps, major)


def _merge(parts: list[dict], h: Header) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key in parts[0]:
        if key == "codebook":
            out[key] = np.concatenate([p[key] for p in parts], axis=0)
            out["codebook_sizes"] = np.array([p[key].shape[0] for p in parts], np.int64)
        else:
            out[key] = np.concatenate([p[key] for p in parts], axis=0)
    return out


def decode_base_integers(data: bytes | Container) -> dict[str, np.ndarray]:
    """The canonical decoded integers of the base layer (conformance form), plus header fields."""
    c = data if isinstance(data, Container) else read_container(data, "gsz", known=KNOWN_CRITICAL)
    h, ints = _decode_ints(c, progress=False)
    ints["header"] = np.array([h.count, h.sh_degree, h.quality, h.pos_bits, h.rot_levels], np.int64)
    return ints


def _decode_ints(c: Container, progress: bool) -> tuple[Header, dict[str, np.ndarray]]:
    h, groups = _decode_groups(c, progress)
    return h, _merge([ints for _, ints in groups], h)


def _decode_groups(c: Container, progress: bool):
    """The header and a generator of (first Gaussian, canonical integers) per group, decoded lazily.

    One group's integers live at a time, so callers that keep only floats stay within the
    size of their output plus one group.
    """
    # Side-information chunks (V/v) belong to the enhancement layer; the base decoder skips them.
    for ch in c.chunks:
        if ch.type[:1] == b"S" and ch.type not in KNOWN:
            raise UnsupportedError(f"unknown critical base-layer chunk {ch.type.decode()}")
    h = _read_header(c.require(HEADER_TYPE), c.version[0])
    groups = c.all(GROUP_TYPE)
    if len(groups) != h.groups:
        raise CorruptError(f"the header declares {h.groups} groups, the file has {len(groups)}")
    # Every group holds at least one payload byte per 64 Gaussians (spec), so a count the
    # file cannot hold is refused before any array of that size is allocated.
    group_bytes = sum(len(g) for g in groups)
    if h.count > 64 * group_bytes:
        raise LimitError(f"the header declares {h.count} Gaussians in {group_bytes} bytes of groups")

    def gen():
        left = h.count
        bar = _bar(progress, len(groups), "decode")
        for g in groups:
            ints = decode_group(g, h, left)
            yield h.count - left, ints
            left -= ints["position"].shape[0]
            if bar:
                bar.update(1)
        if bar:
            bar.close()
        if left:
            raise CorruptError(f"the groups hold {h.count - left} Gaussians, the header declares {h.count}")

    return h, gen()


def decode_base(container: Container, progress: bool = False) -> GaussianScene:
    """The base-layer scene of a parsed .gsz container."""
    return _decode_floats(container, progress)[0]


def decode_base_cells(container: Container, progress: bool = False
                      ) -> tuple[GaussianScene, dict[str, np.ndarray]]:
    """The base-layer scene and each Gaussian's quantiser step per attribute (float32, broadcastable).

    The original attribute lies within about half a step of the decoded one (further on the
    SH codebook path; with an SH transform, half a step per transform coefficient, so the
    f_rest error vector is at most sqrt(D)/2 steps long), which is what decoder-side
    refinement needs to know how far to move.
    """
    scene, h, cls = _decode_floats(container, progress)
    op, sc, rot, dc, rest = (np.float32(2.0) ** s.astype(np.float32) for s in h.shifts(cls))
    n = h.count
    cells = {"means": np.full((n, 1), h.pos_step, np.float32),
             "opacity": op * np.float32(h.opacity_step),
             "scales": (sc * np.float32(h.scale_step))[:, None],
             "rotations": (rot / np.float32(h.rot_levels))[:, None],
             "sh_dc": (dc * np.float32(h.dc_step))[:, None],
             "sh_rest": (rest * np.float32(h.rest_step))[:, None, None]}
    return scene, cells


def _decode_floats(c: Container, progress: bool) -> tuple[GaussianScene, Header, np.ndarray]:
    """The decoded scene, its header and the precision classes, dequantised group by group."""
    h, groups = _decode_groups(c, progress)
    n = h.count
    k1 = SH_COEFFS[h.sh_degree] - 1
    # Filled group by group, so the int64 integers of only one group are alive at a time.
    out = GaussianScene(np.empty((n, 3), np.float32), np.empty((n, 3), np.float32),
                        np.empty((n, k1, 3), np.float32), np.empty(n, np.float32),
                        np.empty((n, 3), np.float32), np.empty((n, 4), np.float32))
    cls = np.empty(n, np.int64)
    for start, ints in groups:
        part = _dequantise(h, ints)
        sl = slice(start, start + part.count)
        for name in ("means", "sh_dc", "sh_rest", "opacity", "scales", "rotations"):
            getattr(out, name)[sl] = getattr(part, name)
        cls[sl] = ints["class"]
    return out, h, cls


def _dequantise(h: Header, ints: dict[str, np.ndarray]) -> GaussianScene:
    n = ints["position"].shape[0]
    means = (h.origin[None, :] + ints["position"].astype(np.float64) * h.pos_step).astype(np.float32)
    dc = dequantise(ints["dc"], h.dc_step)
    k1 = SH_COEFFS[h.sh_degree] - 1
    rest = dequantise_fixed(ints["sh_rest"], h.rest_step) if k1 else np.zeros((n, 0, 3), np.float32)
    opacity = dequantise(ints["opacity"], h.opacity_step)
    scales = dequantise(ints["scale"], h.scale_step)
    rots = ints_to_rotation(ints["rot_index"], ints["rot"], h.rot_levels)
    return GaussianScene(means, dc, rest, opacity, scales, rots)


def decode_scene(data: bytes, progress: bool = False) -> GaussianScene:
    """Decode the base layer of .gsz bytes to a GaussianScene."""
    return decode_base(read_container(data, "gsz", known=KNOWN_CRITICAL), progress=progress)


def describe(c: Container) -> dict:
    """Header summary for gsinfo and the viewer API."""
    h = _read_header(c.require(HEADER_TYPE), c.version[0])
    names = {0: "low", 1: "medium", 2: "high"}
    return {"gaussians": h.count, "sh_degree": h.sh_degree, "quality": names.get(h.quality, str(h.quality)),
            "groups": h.groups, "position_bits": h.pos_bits}
