"""The container shared by .gsi and .gsz: bytes <-> typed, CRC-checked chunks."""
from .files import check_output, read_file, write_file_atomic
from .format import (END_TYPE, MAJOR, META_TYPE, MINOR, SIGNATURES, Chunk, ChunkInfo, Container,
                     frame_chunk, is_critical, read_container, sniff_kind, write_container)

__all__ = ["Chunk", "ChunkInfo", "Container", "END_TYPE", "MAJOR", "META_TYPE", "MINOR",
           "SIGNATURES", "check_output", "frame_chunk", "is_critical", "read_container",
           "read_file", "sniff_kind", "write_container", "write_file_atomic"]
