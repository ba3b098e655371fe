"""Container framing shared by .gsi and .gsz: signature, version, CRC'd chunks, end marker."""
from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field

from ..errors import (CorruptError, FormatError, LimitError, TruncatedError,
                      UnsupportedError, VersionError)
from .byteio import ByteReader, encode_varint

SIGNATURES = {
    "gsi": b"\x89GSI\r\n\x1a\n",
    "gsz": b"\x89GSZ\r\n\x1a\n",
}
# Major version per file kind: the framing is shared, the payload syntax is not
# (.gsi 2.0 added the background colour to its header, 3.0 the position refinement,
# 4.0 the rendering kernel's exponent).
MAJOR = {"gsi": 4, "gsz": 2}
MINOR = 0
META_TYPE = b"meta"
END_TYPE = b"GEND"
MAX_CHUNK_LENGTH = 1 << 32
MAX_CHUNKS = 65536
MAX_META_LENGTH = 1 << 16


@dataclass
class Chunk:
    """A typed payload before framing."""

    type: bytes
    data: bytes


@dataclass
class ChunkInfo:
    """A chunk as found in a file."""

    type: bytes
    data: bytes
    offset: int
    length: int
    crc: int
    crc_ok: bool

    @property
    def critical(self) -> bool:
        """Whether a decoder must understand this chunk (first letter uppercase)."""
        return is_critical(self.type)


@dataclass
class Container:
    """A parsed container."""

    kind: str
    version: tuple[int, int]
    chunks: list[ChunkInfo] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    size: int = 0

    def get(self, ctype: bytes) -> bytes | None:
        """Data of the first chunk of this type, or None."""
        for c in self.chunks:
            if c.type == ctype:
                return c.data
        return None

    def require(self, ctype: bytes) -> bytes:
        """Data of the first chunk of this type; CorruptError if absent."""
        data = self.get(ctype)
        if data is None:
            raise CorruptError(f"required chunk {ctype.decode('ascii')} is missing")
        return data

    def all(self, ctype: bytes) -> list[bytes]:
        """Data of every chunk of this type, in file order."""
        return [c.data for c in self.chunks if c.type == ctype]


def is_critical(ctype: bytes) -> bool:
    """Critical chunk types start with an uppercase ASCII letter."""
    return 0x41 <= ctype[0] <= 0x5A


def _check_type(ctype: bytes) -> None:
    if len(ctype) != 4 or not all(0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A for b in ctype):
        raise ValueError(f"chunk type must be 4 ASCII letters, got {ctype!r}")


def frame_chunk(ctype: bytes, data: bytes, crc_init: int = 0) -> bytes:
    """Frame one chunk: type, LEB128 length, data, CRC-32 of all three (continuing crc_init)."""
    _check_type(ctype)
    head = ctype + encode_varint(len(data))
    crc = zlib.crc32(data, zlib.crc32(head, crc_init))
    return head + data + crc.to_bytes(4, "little")


def write_container(kind: str, chunks: list[Chunk], metadata: dict | None = None,
                    minor: int = MINOR, major: int | None = None) -> bytes:
    """Serialise chunks into a complete file of the given kind."""
    if kind not in SIGNATURES:
        raise ValueError(f"unknown container kind {kind!r}")
    major = MAJOR[kind] if major is None else major
    if not 1 <= major <= MAJOR[kind]:
        raise ValueError(f"cannot write a .{kind} file of major version {major}")
    header = SIGNATURES[kind] + bytes([major, minor])
    framed: list[tuple[bytes, bytes]] = []
    if metadata:
        meta = json.dumps(metadata, separators=(",", ":"), sort_keys=True).encode("utf-8")
        if len(meta) > MAX_META_LENGTH:
            raise ValueError("metadata too large")
        framed.append((META_TYPE, meta))
    for c in chunks:
        if c.type in (META_TYPE, END_TYPE):
            raise ValueError(f"chunk type {c.type!r} is reserved")
        framed.append((bytes(c.type), bytes(c.data)))
    framed.append((END_TYPE, b""))
    # The first chunk's CRC also covers the signature and version, so no header bit can flip unseen.
    parts = [header]
    for i, (ctype, data) in enumerate(framed):
        parts.append(frame_chunk(ctype, data, zlib.crc32(header) if i == 0 else 0))
    return b"".join(parts)


def sniff_kind(data: bytes) -> str | None:
    """Return 'gsi' or 'gsz' if the bytes start with a container signature."""
    for kind, sig in SIGNATURES.items():
        if data[: len(sig)] == sig:
            return kind
    return None


def _check_signature(data: bytes) -> str:
    kind = sniff_kind(data)
    if kind is not None:
        return kind
    head = bytes(data[:8])
    if len(head) < 8 and any(sig.startswith(head) for sig in SIGNATURES.values()) and head:
        raise TruncatedError(f"file is truncated inside the signature ({len(head)} bytes)")
    # Recognise the typical damage of a text-mode transfer before giving up.
    for sig in SIGNATURES.values():
        if head[:4] == sig[:4] and head[4:] != sig[4:]:
            raise FormatError("signature damaged (line endings changed by a text-mode transfer?)")
        if head[1:4] == sig[1:4] and head[0] != sig[0]:
            raise FormatError("signature damaged (high bit stripped by a 7-bit transfer?)")
    raise FormatError("not a gscodec file (unknown signature)")


def read_container(data: bytes, kind: str | None = None, known: set[bytes] | None = None,
                   verify_crc: bool = True) -> Container:
    """Parse and validate a container; `known` lists the critical chunk types understood."""
    data = bytes(data)
    found = _check_signature(data)
    if kind is not None and found != kind:
        raise FormatError(f"expected a .{kind} file, found a .{found} file")
    r = ByteReader(data, "file")
    r.raw(len(SIGNATURES[found]))
    if r.remaining < 2:
        raise TruncatedError("file is truncated inside the version field")
    major, minor = r.u8(), r.u8()
    if major > MAJOR[found]:
        raise VersionError(f"file version {major}.{minor} needs a newer decoder "
                           f"(this decoder reads .{found} versions up to {MAJOR[found]}.x)")
    if major < 1:
        raise CorruptError(f"invalid version {major}.{minor}")
    out = Container(kind=found, version=(major, minor), size=len(data))
    while True:
        if len(out.chunks) >= MAX_CHUNKS:
            raise LimitError(f"more than {MAX_CHUNKS} chunks")
        offset = r.pos
        if r.remaining < 4:
            raise TruncatedError(f"file is truncated: no end chunk (stopped at offset {offset})")
        ctype = r.raw(4)
        if not all(0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A for b in ctype):
            raise CorruptError(f"invalid chunk type {ctype!r} at offset {offset}")
        try:
            length = r.varint(MAX_CHUNK_LENGTH)
        except LimitError:
            raise LimitError(f"chunk {ctype.decode()} at offset {offset} declares an absurd length")
        if length + 4 > r.remaining:
            raise TruncatedError(f"file is truncated: chunk {ctype.decode()} at offset {offset} "
                                 f"declares {length} bytes, {max(r.remaining - 4, 0)} present")
        head_end = r.pos
        payload = r.raw(length)
        crc = r.u32()
        init = zlib.crc32(data[:offset]) if not out.chunks else 0
        calc = zlib.crc32(payload, zlib.crc32(data[offset:head_end], init))
        ok = crc == calc
        if verify_crc and not ok:
            raise CorruptError(f"CRC mismatch in chunk {ctype.decode()} at offset {offset}")
        if ctype == END_TYPE:
            if length:
                raise CorruptError("end chunk must be empty")
            out.chunks.append(ChunkInfo(ctype, payload, offset, length, crc, ok))
            break
        if ctype == META_TYPE:
            out.metadata = _parse_meta(payload)
        elif is_critical(ctype) and known is not None and ctype not in known:
            raise UnsupportedError(f"unknown critical chunk {ctype.decode()} at offset {offset}"
                                   " (file needs a newer decoder)")
        out.chunks.append(ChunkInfo(ctype, payload, offset, length, crc, ok))
    if r.remaining:
        raise CorruptError(f"{r.remaining} bytes of garbage after the end chunk")
    return out


def _parse_meta(payload: bytes) -> dict:
    try:
        meta = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {"_invalid": True}
    return meta if isinstance(meta, dict) else {"_invalid": True}
