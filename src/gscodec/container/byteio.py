"""Bounds-checked little-endian byte reading and writing, with LEB128 varints."""
from __future__ import annotations

import struct

from ..errors import CorruptError, LimitError, TruncatedError

MAX_VARINT_BYTES = 10


class ByteWriter:
    """Append-only byte buffer with typed little-endian writers."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def u8(self, v: int) -> "ByteWriter":
        """Write one unsigned byte."""
        self._buf += struct.pack("<B", v)
        return self

    def u16(self, v: int) -> "ByteWriter":
        """Write an unsigned 16-bit integer."""
        self._buf += struct.pack("<H", v)
        return self

    def u32(self, v: int) -> "ByteWriter":
        """Write an unsigned 32-bit integer."""
        self._buf += struct.pack("<I", v)
        return self

    def i32(self, v: int) -> "ByteWriter":
        """Write a signed 32-bit integer."""
        self._buf += struct.pack("<i", v)
        return self

    def f32(self, v: float) -> "ByteWriter":
        """Write an IEEE-754 binary32 value."""
        self._buf += struct.pack("<f", v)
        return self

    def f64(self, v: float) -> "ByteWriter":
        """Write an IEEE-754 binary64 value."""
        self._buf += struct.pack("<d", v)
        return self

    def varint(self, v: int) -> "ByteWriter":
        """Write an unsigned LEB128 varint."""
        self._buf += encode_varint(v)
        return self

    def svarint(self, v: int) -> "ByteWriter":
        """Write a signed integer as a zigzag LEB128 varint."""
        self._buf += encode_varint(zigzag(v))
        return self

    def raw(self, b: bytes) -> "ByteWriter":
        """Write raw bytes."""
        self._buf += b
        return self

    def blob(self, b: bytes) -> "ByteWriter":
        """Write a varint length followed by the bytes."""
        self.varint(len(b))
        self._buf += b
        return self

    def getvalue(self) -> bytes:
        """Return everything written so far."""
        return bytes(self._buf)

    def __len__(self) -> int:
        return len(self._buf)


class ByteReader:
    """Cursor over bytes; every read checks the bytes are present first."""

    def __init__(self, data: bytes, what: str = "chunk") -> None:
        self._data = memoryview(data)
        self.pos = 0
        self.what = what

    @property
    def remaining(self) -> int:
        """Bytes left after the cursor."""
        return len(self._data) - self.pos

    def _take(self, n: int) -> memoryview:
        if n < 0 or n > self.remaining:
            raise TruncatedError(
                f"{self.what} is truncated: needs {n} more bytes at offset {self.pos}, "
                f"{self.remaining} left"
            )
        out = self._data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        """Read one unsigned byte."""
        return self._take(1)[0]

    def u16(self) -> int:
        """Read an unsigned 16-bit integer."""
        return struct.unpack("<H", self._take(2))[0]

    def u32(self) -> int:
        """Read an unsigned 32-bit integer."""
        return struct.unpack("<I", self._take(4))[0]

    def i32(self) -> int:
        """Read a signed 32-bit integer."""
        return struct.unpack("<i", self._take(4))[0]

    def f32(self) -> float:
        """Read an IEEE-754 binary32 value."""
        return struct.unpack("<f", self._take(4))[0]

    def f64(self) -> float:
        """Read an IEEE-754 binary64 value."""
        return struct.unpack("<d", self._take(8))[0]

    def varint(self, limit: int = (1 << 63) - 1) -> int:
        """Read an unsigned LEB128 varint no larger than `limit`."""
        value = 0
        for i in range(MAX_VARINT_BYTES):
            b = self.u8()
            value |= (b & 0x7F) << (7 * i)
            if not b & 0x80:
                if i > 0 and b == 0:
                    raise CorruptError(f"{self.what}: non-canonical varint at offset {self.pos - 1}")
                if value > limit:
                    raise LimitError(f"{self.what}: value {value} exceeds the limit {limit}")
                return value
        raise CorruptError(f"{self.what}: varint longer than {MAX_VARINT_BYTES} bytes")

    def svarint(self, limit: int = (1 << 62)) -> int:
        """Read a zigzag-coded signed varint with |value| <= limit."""
        return unzigzag(self.varint(2 * limit))

    def raw(self, n: int) -> bytes:
        """Read exactly n raw bytes."""
        return bytes(self._take(n))

    def blob(self, limit: int = 1 << 30) -> bytes:
        """Read a varint length (checked against the bytes present) and that many bytes."""
        n = self.varint(limit)
        return self.raw(n)

    def rest(self) -> bytes:
        """Read all remaining bytes."""
        return self.raw(self.remaining)

    def expect_end(self) -> None:
        """Fail if bytes are left over."""
        if self.remaining:
            raise CorruptError(f"{self.what}: {self.remaining} unexpected trailing bytes")


def encode_varint(v: int) -> bytes:
    """Encode a non-negative integer as unsigned LEB128."""
    if v < 0:
        raise ValueError("varint must be non-negative")
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def zigzag(v: int) -> int:
    """Map signed to unsigned: 0,-1,1,-2,2 -> 0,1,2,3,4."""
    return 2 * v if v >= 0 else -2 * v - 1


def unzigzag(u: int) -> int:
    """Inverse of zigzag."""
    return u >> 1 if not u & 1 else -((u + 1) >> 1)
