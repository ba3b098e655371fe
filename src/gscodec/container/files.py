"""Safe file I/O: bounded reads and atomic writes that never leave half-written output."""
from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path

from ..errors import InputError, LimitError, OutputError

MAX_FILE_BYTES = 1 << 34


def read_file(path: str | os.PathLike, limit: int = MAX_FILE_BYTES, head: int | None = None) -> bytes:
    """Read a whole input file (or its first `head` bytes) with a clear error when it is missing or too large."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > limit:
            raise LimitError(f"file is {size} bytes, above the limit of {limit}", str(p))
        if head is not None:
            with p.open("rb") as f:
                return f.read(head)
        return p.read_bytes()
    except FileNotFoundError:
        raise InputError("no such file", str(p)) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a file", str(p)) from None
    except PermissionError:
        raise InputError("permission denied", str(p)) from None
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", str(p)) from None


def write_file_atomic(path: str | os.PathLike, data: bytes | Iterable[bytes], force: bool = False) -> None:
    """Write bytes (or parts of bytes, in order) via a temporary file and rename; refuse to overwrite unless forced."""
    p = Path(path)
    if p.exists() and not force:
        raise OutputError("output exists (use --force to overwrite)", str(p))
    if p.is_dir():
        raise OutputError("output is a directory", str(p))
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError("output folder does not exist", str(p))
    old_mode = stat.S_IMODE(p.stat().st_mode) if p.exists() else None
    fd, tmp = _create_temp(folder, p.name)
    try:
        with os.fdopen(fd, "wb") as f:
            if old_mode is not None and hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), old_mode)   # a replaced file keeps its permissions
            if isinstance(data, (bytes, bytearray, memoryview)):
                f.write(data)
            else:
                for part in data:
                    f.write(part)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write ({exc.strerror})", str(p)) from None
        raise


def _create_temp(folder: Path, name: str) -> tuple[int, Path]:
    """Create a new hidden temporary file next to the output; return (descriptor, path).

    Created with mode 0666 so the operating system applies the umask, as for a plain open()
    (mkstemp would make it private, 0600, and reading the umask needs setting it).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = folder / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(f"cannot write ({exc.strerror})", str(folder / name)) from None
    raise OutputError("cannot create a temporary file", str(folder / name))


def check_output(path: str | os.PathLike, force: bool = False) -> None:
    """Fail early, before long work, if the output cannot be written."""
    p = Path(path)
    if p.exists() and not force:
        raise OutputError("output exists (use --force to overwrite)", str(p))
    if p.is_dir():
        raise OutputError("output is a directory", str(p))
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError("output folder does not exist", str(p))
