"""Container framing: round trip, truncation, bit flips, chunk kinds, versions, fuzzing."""
from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gscodec.container import MAJOR, Chunk, read_container, write_container
from gscodec.container.byteio import ByteReader, ByteWriter
from gscodec.errors import (CorruptError, FormatError, GscodecError, LimitError, TruncatedError,
                            UnsupportedError, VersionError)

KNOWN = {b"IHDR", b"IDAT"}


def sample(meta: bool = True) -> bytes:
    return write_container("gsi", [Chunk(b"IHDR", b"\x01\x02\x03"), Chunk(b"IDAT", bytes(range(40)))],
                           metadata={"encoder": "test"} if meta else None)


def test_round_trip():
    c = read_container(sample(), "gsi", KNOWN)
    assert c.kind == "gsi" and c.version == (MAJOR["gsi"], 0)
    assert c.require(b"IHDR") == b"\x01\x02\x03"
    assert c.get(b"IDAT") == bytes(range(40))
    assert c.metadata == {"encoder": "test"}
    assert [ch.type for ch in c.chunks] == [b"meta", b"IHDR", b"IDAT", b"GEND"]
    assert all(ch.crc_ok for ch in c.chunks)


def test_overhead_is_small():
    data = write_container("gsi", [Chunk(b"IHDR", b"x" * 5), Chunk(b"IDAT", b"y" * 100)])
    assert len(data) - 105 == 37


def test_wrong_kind_and_signature():
    with pytest.raises(FormatError, match="expected a .gsz"):
        read_container(sample(), "gsz")
    with pytest.raises(FormatError):
        read_container(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(FormatError, match="text-mode"):
        read_container(sample().replace(b"\r\n", b"\n", 1))


@pytest.mark.parametrize("meta", [True, False])
def test_every_truncation_is_rejected(meta):
    data = sample(meta)
    for n in range(len(data)):
        with pytest.raises(GscodecError):
            read_container(data[:n], "gsi", KNOWN)


def test_every_single_bit_flip_is_detected():
    data = sample()
    for i in range(len(data)):
        for bit in range(8):
            bad = bytearray(data)
            bad[i] ^= 1 << bit
            with pytest.raises(GscodecError):
                read_container(bytes(bad), "gsi", KNOWN)


def test_unknown_ancillary_is_skipped_unknown_critical_rejected():
    data = write_container("gsi", [Chunk(b"IHDR", b"a"), Chunk(b"zzzz", b"future"), Chunk(b"IDAT", b"b")])
    c = read_container(data, "gsi", KNOWN)
    assert c.require(b"IDAT") == b"b"
    data = write_container("gsi", [Chunk(b"IHDR", b"a"), Chunk(b"Zzzz", b"future")])
    with pytest.raises(UnsupportedError, match="Zzzz"):
        read_container(data, "gsi", KNOWN)


def _with_version(data: bytes, major: int, minor: int) -> bytes:
    """Change the version and fix the first chunk's CRC, which covers the header."""
    hdr = data[:8] + bytes([major, minor])
    c = read_container(data)
    data_end = _chunk_data_end(data, c.chunks[0].offset)
    crc = zlib.crc32(hdr + data[10:data_end]).to_bytes(4, "little")
    return hdr + data[10:data_end] + crc + data[data_end + 4:]


def _chunk_data_end(data: bytes, offset: int) -> int:
    r = ByteReader(data[offset + 4:])
    n = r.varint()
    return offset + 4 + r.pos + n


def test_newer_major_is_rejected_naming_both_versions():
    with pytest.raises(VersionError, match=r"5\.0.*4\.x"):
        read_container(_with_version(sample(), 5, 0))
    gsz = write_container("gsz", [Chunk(b"SHDR", b"")])
    with pytest.raises(VersionError, match=r"3\.0.*2\.x"):
        read_container(_with_version(gsz, 3, 0))


def test_newer_minor_and_older_major_are_accepted():
    for major, minor in ((2, 7), (1, 0), (1, 3)):
        c = read_container(_with_version(sample(), major, minor), "gsi", KNOWN)
        assert c.version == (major, minor)


def test_writer_refuses_unknown_majors():
    assert write_container("gsi", [], major=1)[8:10] == bytes([1, 0])
    assert write_container("gsz", [], major=1)[8:10] == bytes([1, 0])
    for kind, major in (("gsi", MAJOR["gsi"] + 1), ("gsz", MAJOR["gsz"] + 1), ("gsi", 0)):
        with pytest.raises(ValueError):
            write_container(kind, [], major=major)


def test_absurd_length_is_rejected_before_allocation():
    w = ByteWriter().raw(b"\x89GSI\r\n\x1a\n").u8(1).u8(0).raw(b"IDAT").varint(1 << 40)
    with pytest.raises(LimitError):
        read_container(w.getvalue() + b"\0" * 16)
    w = ByteWriter().raw(b"\x89GSI\r\n\x1a\n").u8(1).u8(0).raw(b"IDAT").varint(1 << 31)
    with pytest.raises(TruncatedError):
        read_container(w.getvalue() + b"\0" * 16)


def test_garbage_after_end():
    with pytest.raises(CorruptError):
        read_container(sample() + b"\0")


def test_varint_round_trip_and_canonical():
    w = ByteWriter()
    values = [0, 1, 127, 128, 300, 2**32, 2**62]
    for v in values:
        w.varint(v).svarint(-v)
    r = ByteReader(w.getvalue())
    for v in values:
        assert r.varint() == v and r.svarint() == -v
    with pytest.raises(CorruptError):
        ByteReader(b"\x80\x00").varint()


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_random_mutations_only_raise_gscodec_errors(data):
    blob = bytearray(sample())
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "set", "cut", "insert"]))
        i = data.draw(st.integers(0, max(len(blob) - 1, 0)))
        if op == "flip" and blob:
            blob[i] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "set" and blob:
            blob[i] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del blob[i:]
        else:
            blob[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    try:
        read_container(bytes(blob), "gsi", KNOWN)
    except GscodecError:
        pass
