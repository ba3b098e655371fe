"""Mutation fuzzing of the decoders: only GscodecError may escape, no hang, bounded memory."""
from __future__ import annotations

import time
import tracemalloc
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .errors import GscodecError

MEMORY_SLACK = 64 << 20
MEMORY_PER_BYTE = 4096


@dataclass
class FuzzReport:
    """What a fuzzing run tried and found."""

    tried: int = 0
    rejected: int = 0
    decoded: int = 0
    failures: list[str] = field(default_factory=list)


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """Apply 1-4 random flips, byte sets, cuts, insertions or chunk-length edits."""
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        op = int(rng.integers(0, 6))
        i = int(rng.integers(0, max(len(b), 1)))
        if op == 0 and b:
            b[i] ^= 1 << int(rng.integers(0, 8))
        elif op == 1 and b:
            b[i] = int(rng.integers(0, 256))
        elif op == 2:
            del b[i:]
        elif op == 3:
            b[i:i] = rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes()
        elif op == 4 and len(b) > 4:
            j = int(rng.integers(i, min(len(b), i + 64) + 1))
            del b[i:j]
        elif b:
            b[i] = [0x00, 0x7F, 0x80, 0xFF][int(rng.integers(0, 4))]
    return bytes(b)


def fix_crcs(data: bytes) -> bytes:
    """Recompute every chunk CRC so mutations reach the payload parsers, not just the CRC check."""
    import zlib

    from .container.byteio import ByteReader

    out = bytearray(data)
    pos = 10
    first = True
    try:
        while pos + 4 <= len(out):
            r = ByteReader(bytes(out[pos + 4:]))
            n = r.varint(1 << 32)
            end = pos + 4 + r.pos + n
            if end + 4 > len(out):
                break
            init = zlib.crc32(bytes(out[:pos])) if first else 0
            crc = zlib.crc32(bytes(out[pos:end]), init)
            out[end:end + 4] = crc.to_bytes(4, "little")
            first = False
            if out[pos:pos + 4] == b"GEND":
                break
            pos = end + 4
    except GscodecError:
        pass
    return bytes(out)


def fuzz(seeds: list[bytes], decode: Callable[[bytes], object], seconds: float = 5.0, max_inputs: int = 10**9,
         seed: int = 0, fix_crc_share: float = 0.7) -> FuzzReport:
    """Feed mutated seeds to `decode` until time or count runs out; collect any non-GscodecError."""
    rng = np.random.default_rng(seed)
    rep = FuzzReport()
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end and rep.tried < max_inputs:
        base = seeds[int(rng.integers(0, len(seeds)))]
        data = mutate(base, rng)
        if rng.random() < fix_crc_share:
            data = fix_crcs(data)
        rep.tried += 1
        tracemalloc.start()
        t0 = time.monotonic()
        try:
            decode(data)
            rep.decoded += 1
        except GscodecError:
            rep.rejected += 1
        except Exception as exc:  # the bug class this fuzzer hunts
            rep.failures.append(f"{type(exc).__name__}: {str(exc)[:200]} (input {data[:64].hex()}...)")
        finally:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        dt = time.monotonic() - t0
        if peak > MEMORY_SLACK + MEMORY_PER_BYTE * len(data):
            rep.failures.append(f"allocated {peak >> 20} MiB for a {len(data)}-byte input")
        if dt > 10.0:
            rep.failures.append(f"took {dt:.1f} s on a {len(data)}-byte input")
    return rep
