"""Standard 3DGS PLY files <-> GaussianScene, with clear errors for anything else.

Reading guards against hostile headers: the declared vertex count is checked against the
bytes present before plyfile allocates anything.
"""
from __future__ import annotations

import io
import os
import re
import warnings
from collections.abc import Iterator

import numpy as np

from ..container.files import read_file, write_file_atomic
from ..errors import InputError
from .model import GaussianScene

MAX_HEADER_BYTES = 1 << 16
MAX_GAUSSIANS = 1 << 28
OPACITY_SATURATION = 12.0        # smallest logit that replaces an infinite one (sigmoid 1 - 6e-6)
REST_COUNTS = {0: 0, 9: 1, 24: 2, 45: 3}
BASE_PROPS = ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
              "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")
_NUMPY_TYPES = {"char": "i1", "uchar": "u1", "int8": "i1", "uint8": "u1", "short": "i2",
                "ushort": "u2", "int16": "i2", "uint16": "u2", "int": "i4", "uint": "u4",
                "int32": "i4", "uint32": "u4", "float": "f4", "float32": "f4", "double": "f8",
                "float64": "f8"}
_SIZES = {t: np.dtype(c).itemsize for t, c in _NUMPY_TYPES.items()}


def read_ply(path: str | os.PathLike, nan_policy: str = "reject") -> GaussianScene:
    """Read a standard 3DGS PLY (binary or ASCII); nan_policy 'reject' or 'drop'.

    Gaussians with a NaN anywhere, or +-Inf outside the opacity logit, are rejected (an
    InputError naming the count) or dropped. An infinite opacity logit is saturated to a
    finite one under either policy, with a warning (see _saturate_opacity).
    """
    data = read_file(path)
    try:
        return read_ply_bytes(data, nan_policy)
    except InputError as exc:
        raise exc.with_path(str(path)) from None


def read_ply_bytes(data: bytes, nan_policy: str = "reject") -> GaussianScene:
    """Parse PLY bytes into a GaussianScene."""
    if nan_policy not in ("reject", "drop"):
        raise InputError(f"unknown NaN policy {nan_policy!r} (use 'reject' or 'drop')")
    fmt, elements, header_len = _parse_header(data)
    _check_sizes(fmt, elements, len(data) - header_len)
    fast = _read_vertex_binary(data, fmt, elements, header_len)
    if fast is not None:
        return _to_scene(fast, nan_policy)
    import plyfile

    try:
        ply = plyfile.PlyData.read(io.BytesIO(data))
    except Exception as exc:  # plyfile raises assorted errors on malformed bodies
        raise InputError(f"malformed PLY body ({type(exc).__name__}: {str(exc)[:120]})") from None
    try:
        vert = ply["vertex"]
    except KeyError:
        raise InputError("PLY has no 'vertex' element") from None
    return _to_scene(vert.data, nan_policy)


def _read_vertex_binary(data: bytes, fmt: str, elements: list, header_len: int) -> np.ndarray | None:
    """The vertex records of a binary PLY as one structured view, or None where this cannot apply.

    plyfile reads binary elements from an in-memory stream one value at a time (seconds per
    100k Gaussians); fixed-size records need a single frombuffer.
    """
    if fmt == "ascii":
        return None
    order = "<" if fmt == "binary_little_endian" else ">"
    offset = header_len
    for name, count, props in elements:
        if any(t == "list" for _, t in props):
            return None
        if name == "vertex":
            try:
                dtype = np.dtype([(p, order + _NUMPY_TYPES[t]) for p, t in props])
            except ValueError:      # duplicate property names: leave the diagnosis to plyfile
                return None
            return np.frombuffer(data, dtype=dtype, count=count, offset=offset)
        offset += count * sum(_SIZES[t] for _, t in props)
    return None


def _parse_header(data: bytes) -> tuple[str, list[tuple[str, int, list[tuple[str, str]]]], int]:
    """Return (format, [(element, count, [(prop, type or 'list')])], header length)."""
    if not (data.startswith(b"ply\n") or data.startswith(b"ply\r\n")):
        raise InputError("not a PLY file (no 'ply' magic line)")
    end = data.find(b"end_header", 0, MAX_HEADER_BYTES)
    if end < 0:
        raise InputError("PLY header has no end_header within 64 KiB (truncated or not a PLY)")
    nl = data.find(b"\n", end)
    if nl < 0:
        raise InputError("PLY is truncated after end_header")
    try:
        lines = data[:end].decode("ascii").replace("\r", "").split("\n")
    except UnicodeDecodeError:
        raise InputError("PLY header is not ASCII") from None
    fmt = None
    elements: list = []
    for line in lines[1:]:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format" and len(words) >= 2:
            fmt = words[1]
        elif words[0] == "element" and len(words) == 3:
            if not re.fullmatch(r"\d{1,19}", words[2]):
                raise InputError(f"PLY element {words[1]!r} has an invalid count {words[2]!r}")
            elements.append((words[1], int(words[2]), []))
        elif words[0] == "property" and elements:
            if len(words) >= 2 and words[1] == "list":
                elements[-1][2].append((words[-1], "list"))
            elif len(words) == 3:
                if words[1] not in _SIZES:
                    raise InputError(f"PLY property {words[2]!r} has an unknown type {words[1]!r}")
                elements[-1][2].append((words[2], words[1]))
            else:
                raise InputError(f"malformed PLY property line {line!r}")
        else:
            raise InputError(f"malformed PLY header line {line[:60]!r}")
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise InputError(f"unsupported PLY format {fmt!r}")
    return fmt, elements, nl + 1


def _check_sizes(fmt: str, elements: list, body: int) -> None:
    """Reject counts the file cannot hold, before anything is allocated for them."""
    names = [e[0] for e in elements]
    if "vertex" not in names:
        raise InputError("PLY has no 'vertex' element")
    need = 0
    for name, count, props in elements:
        if any(t == "list" for _, t in props):
            if fmt != "ascii" and name == "vertex":
                raise InputError("PLY vertex element has list properties (not a 3DGS PLY)")
            break  # later sizes cannot be known without parsing; plyfile checks the rest
        if fmt == "ascii":
            need += count * max(len(props), 1) * 2 - (1 if count else 0)
        else:
            need += count * sum(_SIZES[t] for _, t in props)
        if name == "vertex":
            break
    if need > body:
        raise InputError(f"PLY is truncated or declares too many elements: the header needs at "
                         f"least {need} body bytes, {body} present")
    vcount = elements[names.index("vertex")][1]
    if vcount == 0:
        raise InputError("PLY has zero vertices")
    if vcount > MAX_GAUSSIANS:
        raise InputError(f"PLY declares {vcount} vertices, above the limit of {MAX_GAUSSIANS}")


def _to_scene(v: np.ndarray, nan_policy: str) -> GaussianScene:
    names = set(v.dtype.names or ())
    missing = [p for p in BASE_PROPS if p not in names]
    if missing:
        raise InputError(f"PLY vertex element lacks 3DGS properties: {', '.join(missing)}")
    rest = sorted((n for n in names if n.startswith("f_rest_")), key=lambda n: (len(n), n))
    expected = [f"f_rest_{i}" for i in range(len(rest))]
    if rest != expected:
        raise InputError("PLY f_rest_* properties are not numbered 0..M-1")
    if len(rest) not in REST_COUNTS:
        raise InputError(f"PLY has {len(rest)} f_rest properties; expected 0, 9, 24 or 45 "
                         "(SH degree 0 to 3)")
    n = v.shape[0]
    if n == 0:
        raise InputError("PLY has zero vertices")

    def cols(props: list[str]) -> np.ndarray:
        out = np.empty((n, len(props)), dtype=np.float32)
        for i, p in enumerate(props):
            out[:, i] = v[p]
        return out

    means = cols(["x", "y", "z"])
    dc = cols(["f_dc_0", "f_dc_1", "f_dc_2"])
    k1 = len(rest) // 3
    # PLY f_rest is channel-major (all R coefficients, then G, then B).
    sh_rest = cols(rest).reshape(n, 3, k1).transpose(0, 2, 1).copy() if k1 else np.zeros((n, 0, 3), np.float32)
    opacity = cols(["opacity"])[:, 0]
    scales = cols(["scale_0", "scale_1", "scale_2"])
    rots = cols(["rot_0", "rot_1", "rot_2", "rot_3"])
    opacity = _saturate_opacity(opacity)
    scene = GaussianScene(means, dc, sh_rest, opacity, scales, rots)
    bad = ~(np.isfinite(means).all(1) & np.isfinite(dc).all(1) & np.isfinite(sh_rest).all((1, 2))
            & ~np.isnan(opacity) & np.isfinite(scales).all(1) & np.isfinite(rots).all(1))
    nbad = int(bad.sum())
    if nbad:
        if nan_policy == "reject":
            raise InputError(f"PLY has {nbad} of {n} Gaussians with NaN values, or Inf outside the "
                             "opacity (use the 'drop' NaN policy to remove them)")
        if nbad == n:
            raise InputError(f"all {n} Gaussians have NaN values or Inf outside the opacity")
        scene = scene.subset(~bad)
    return scene


def _saturate_opacity(opacity: np.ndarray) -> np.ndarray:
    """Replace +-Inf opacity logits by +-L, L = max(largest finite |logit|, OPACITY_SATURATION).

    An infinite logit is a fully opaque (or fully transparent) Gaussian, as some format
    converters write; it is meaningful data, so it is kept at a finite logit whose sigmoid
    is 1 (or 0) to within 6e-6, with a warning. NaN logits are left for the NaN policy.
    """
    inf = np.isinf(opacity)
    ninf = int(inf.sum())
    if not ninf:
        return opacity
    finite = opacity[np.isfinite(opacity)]
    lim = max(float(np.abs(finite).max()) if finite.size else 0.0, OPACITY_SATURATION)
    warnings.warn(f"PLY has {ninf} Gaussians with an infinite opacity logit; saturated to "
                  f"+-{lim:.6g}", stacklevel=4)
    out = opacity.copy()
    out[inf] = np.copysign(np.float32(lim), opacity[inf])
    return out


PLY_ROWS = 1 << 16   # Gaussians serialised at a time when writing


def ply_bytes(scene: GaussianScene) -> bytes:
    """Serialise a scene as the reference trainer's float32 binary PLY layout."""
    return b"".join(ply_parts(scene))


def ply_parts(scene: GaussianScene) -> Iterator[bytes]:
    """The PLY of ply_bytes as a header and bodies of PLY_ROWS Gaussians (bounded memory)."""
    n = scene.count
    k1 = scene.sh_rest.shape[1]
    names = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
             + [f"f_rest_{i}" for i in range(3 * k1)]
             + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])
    header = "ply\nformat binary_little_endian 1.0\n" f"element vertex {n}\n"
    header += "".join(f"property float {p}\n" for p in names) + "end_header\n"
    yield header.encode("ascii")
    c = 9 + 3 * k1
    for s in range(0, n, PLY_ROWS):
        j = slice(s, min(s + PLY_ROWS, n))
        body = np.empty((j.stop - s, len(names)), dtype="<f4")
        body[:, 0:3] = scene.means[j]
        body[:, 3:6] = 0.0
        body[:, 6:9] = scene.sh_dc[j]
        body[:, 9:c] = np.asarray(scene.sh_rest[j], dtype=np.float32).transpose(0, 2, 1).reshape(len(body), 3 * k1)
        body[:, c] = scene.opacity[j]
        body[:, c + 1:c + 4] = scene.scales[j]
        body[:, c + 4:c + 8] = scene.rotations[j]
        yield body.tobytes()


def write_ply(scene: GaussianScene, path: str | os.PathLike, force: bool = True) -> None:
    """Write a scene as a standard float32 binary 3DGS PLY (atomically: temp file + rename)."""
    write_file_atomic(path, ply_parts(scene), force=force)
