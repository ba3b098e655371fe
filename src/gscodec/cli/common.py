"""What every command shares: one-line errors, exit codes, --debug."""
from __future__ import annotations

import functools
import os
import sys
import warnings
from typing import Callable

import click

from ..errors import GscodecError

EXIT_ERROR = 1
EXIT_INTERNAL = 2
EXIT_INTERRUPTED = 130


def friendly_errors(prog: str) -> Callable:
    """Wrap a click command body so failures print one line and exit non-zero."""

    def deco(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            debug = bool(kwargs.get("debug")) or os.environ.get("GSCODEC_DEBUG") == "1"
            if not debug:
                warnings.showwarning = _short_warning(prog)
            try:
                return fn(*args, **kwargs)
            except GscodecError as exc:
                if debug:
                    raise
                click.echo(f"{prog}: error: {exc}", err=True)
                sys.exit(EXIT_ERROR)
            except KeyboardInterrupt:
                click.echo(f"{prog}: interrupted", err=True)
                sys.exit(EXIT_INTERRUPTED)
            except MemoryError:
                if debug:
                    raise
                click.echo(f"{prog}: error: out of memory", err=True)
                sys.exit(EXIT_ERROR)
            except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
                raise
            except Exception as exc:  # a bug: still one line unless --debug
                if debug:
                    raise
                line = str(exc).splitlines()[0] if str(exc) else ""
                click.echo(f"{prog}: internal error: {type(exc).__name__}: {line} "
                           "(rerun with --debug for a traceback and please report it)", err=True)
                sys.exit(EXIT_INTERNAL)

        return wrapper

    return deco


def _short_warning(prog: str):
    def show(message, category, filename, lineno, file=None, line=None):
        click.echo(f"{prog}: warning: {message}", err=True)

    return show


debug_option = click.option("--debug", is_flag=True, help="Show Python tracebacks on errors.")
force_option = click.option("-f", "--force", is_flag=True, help="Overwrite the output if it exists.")
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bars or summary.")
