"""Safe file I/O: bounded reads and atomic writes that never leave half-written output."""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from ..errors import InputError, LimitError, OutputError

MAX_FILE_BYTES = 1 << 34


def read_file(path: str | os.PathLike, limit: int = MAX_FILE_BYTES) -> bytes:
    """Read a whole input file with a clear error when it is missing or too large."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > limit:
            raise LimitError(f"file is {size} bytes, above the limit of {limit}", str(p))
        return p.read_bytes()
    except FileNotFoundError:
        raise InputError("no such file", str(p)) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a file", str(p)) from None
    except PermissionError:
        raise InputError("permission denied", str(p)) from None
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", str(p)) from None


def write_file_atomic(path: str | os.PathLike, data: bytes, force: bool = False) -> None:
    """Write via a temporary file in the same folder and rename; refuse to overwrite unless forced."""
    p = Path(path)
    if p.exists() and not force:
        raise OutputError("output exists (use --force to overwrite)", str(p))
    if p.is_dir():
        raise OutputError("output is a directory", str(p))
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError("output folder does not exist", str(p))
    # mkstemp makes the file private (0600); give it the mode a plain open() would have (or
    # the mode of the file it replaces), so outputs are as readable as the user expects.
    mode = stat.S_IMODE(p.stat().st_mode) if p.exists() else 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=folder)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
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


def _umask() -> int:
    """The process umask (read by setting and restoring it: there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
