"""Image sizes read from file headers, so that absurd sizes are refused before any decoder allocates."""
from __future__ import annotations


def declared_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """(width, height) as the file's header declares it, or None where it cannot be read cheaply."""
    try:
        return _SIZE_READERS[fmt](data) if fmt in _SIZE_READERS else None
    except (IndexError, ValueError):
        return None


def _png_size(d: bytes):
    if len(d) >= 24 and d[12:16] == b"IHDR":
        return int.from_bytes(d[16:20], "big"), int.from_bytes(d[20:24], "big")
    return None


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_segments(d: bytes):
    """(marker, segment payload) of a JPEG's header segments, up to the first scan."""
    i = 2
    while i + 4 <= len(d):
        if d[i] != 0xFF:
            return
        m = d[i + 1]
        if m == 0xFF:               # fill byte
            i += 1
            continue
        if m in (0x01,) or 0xD0 <= m <= 0xD7:
            i += 2
            continue
        n = int.from_bytes(d[i + 2:i + 4], "big")
        yield m, d[i + 4:i + 2 + n]
        if m == 0xDA:               # start of scan: the header is over
            return
        i += 2 + n


def _jpeg_size(d: bytes):
    for m, seg in _jpeg_segments(d):
        if m in _JPEG_SOF and len(seg) >= 5:
            return int.from_bytes(seg[3:5], "big"), int.from_bytes(seg[1:3], "big")
    return None


def jpeg_cmyk(d: bytes) -> tuple[bool, bool]:
    """(four components, Adobe APP14 marker present) of a JPEG."""
    four = adobe = False
    for m, seg in _jpeg_segments(d):
        if m in _JPEG_SOF and len(seg) >= 6:
            four = seg[5] == 4
        elif m == 0xEE and seg[:5] == b"Adobe":
            adobe = True
    return four, adobe


def _webp_size(d: bytes):
    kind = d[12:16]
    if kind == b"VP8X":
        return 1 + int.from_bytes(d[24:27], "little"), 1 + int.from_bytes(d[27:30], "little")
    if kind == b"VP8 " and d[23:26] == b"\x9d\x01\x2a":
        return int.from_bytes(d[26:28], "little") & 0x3FFF, int.from_bytes(d[28:30], "little") & 0x3FFF
    if kind == b"VP8L" and d[20] == 0x2F:
        v = int.from_bytes(d[21:25], "little")
        return 1 + (v & 0x3FFF), 1 + ((v >> 14) & 0x3FFF)
    return None


def _bmp_size(d: bytes):
    if len(d) >= 26 and int.from_bytes(d[14:18], "little") >= 40:
        return (abs(int.from_bytes(d[18:22], "little", signed=True)),
                abs(int.from_bytes(d[22:26], "little", signed=True)))
    return None


def _tiff_size(d: bytes):
    """Width and height of the first image of a classic (not Big) TIFF."""
    end = "little" if d[:2] == b"II" else "big"
    if int.from_bytes(d[2:4], end) != 42:
        return None
    off = int.from_bytes(d[4:8], end)
    count = int.from_bytes(d[off:off + 2], end)
    found = {}
    for k in range(count):
        e = d[off + 2 + 12 * k:off + 14 + 12 * k]
        tag, typ = int.from_bytes(e[0:2], end), int.from_bytes(e[2:4], end)
        if tag in (256, 257):
            found[tag] = int.from_bytes(e[8:10] if typ == 3 else e[8:12], end)
    return (found[256], found[257]) if len(found) == 2 else None


def _jxl_codestream(d: bytes) -> bytes | None:
    """The start of the JPEG XL codestream: the file itself, or the first jxlc/jxlp box of a container."""
    if d[:2] == b"\xff\x0a":
        return d
    i = 0
    while i + 8 <= len(d):
        size = int.from_bytes(d[i:i + 4], "big")
        kind = d[i + 4:i + 8]
        head = 8
        if size == 1:
            size, head = int.from_bytes(d[i + 8:i + 16], "big"), 16
        if kind == b"jxlc":
            return d[i + head:]
        if kind == b"jxlp":
            return d[i + head + 4:]     # a 4-byte part index precedes the data
        if size < head:             # 0 (to the end of the file) or malformed
            return None
        i += size
    return None


def _jxl_size(d: bytes):
    """Image size from the JPEG XL SizeHeader (bits read least significant first)."""
    cs = _jxl_codestream(d)
    if cs is None or cs[:2] != b"\xff\x0a":
        return None
    bits = int.from_bytes(cs[2:14], "little")
    pos = 0

    def take(n: int) -> int:
        nonlocal pos
        v = (bits >> pos) & ((1 << n) - 1)
        pos += n
        return v

    def u32() -> int:
        return 1 + take((9, 13, 18, 30)[take(2)])

    small = take(1)
    h = 8 * (take(5) + 1) if small else u32()
    ratio = take(3)
    if ratio:
        num, den = ((1, 1), (12, 10), (4, 3), (3, 2), (16, 9), (5, 4), (2, 1))[ratio - 1]
        return h * num // den, h
    return (8 * (take(5) + 1) if small else u32()), h


_SIZE_READERS = {"png": _png_size, "jpeg": _jpeg_size, "webp": _webp_size, "bmp": _bmp_size,
                 "tiff": _tiff_size, "jpegxl": _jxl_size}
