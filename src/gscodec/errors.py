"""Error classes: every user-facing failure is a GscodecError with a one-line message."""
from __future__ import annotations


class GscodecError(Exception):
    """Base class of every error the library reports to users."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def with_path(self, path: str) -> "GscodecError":
        """Return this error annotated with the file it concerns."""
        if self.path is None:
            self.path = path
        return self

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class FormatError(GscodecError):
    """The bytes are not a gscodec file at all (wrong signature or kind)."""


class TruncatedError(GscodecError):
    """The file ends before a declared structure is complete."""


class CorruptError(GscodecError):
    """A checksum or an internal consistency check failed."""


class VersionError(GscodecError):
    """The file needs a newer decoder (higher major version)."""


class UnsupportedError(GscodecError):
    """The file uses a critical feature this decoder does not know."""


class LimitError(GscodecError):
    """A declared size or count exceeds the limits of the spec."""


class InputError(GscodecError):
    """The user's input (image, PLY, cameras, options) cannot be encoded."""


class OutputError(GscodecError):
    """The output cannot be written (exists, no permission, ...)."""
