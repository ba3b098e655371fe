"""gsinfo: show what a .gsi or .gsz file holds without decoding its payload."""
from __future__ import annotations

import json
import sys

import click

from ..container import read_container, read_file
from ..errors import CorruptError
from .common import debug_option, friendly_errors

FORMAT_NAMES = {"gsi": "gsi (image as 2D Gaussians)", "gsz": "gsz (3D Gaussian-splatting scene)"}


def describe(path: str) -> dict:
    """Collect container facts and, where the codec offers it, a payload summary."""
    data = read_file(path)
    try:
        c = read_container(data, verify_crc=False)
    except Exception as exc:
        if hasattr(exc, "with_path"):
            raise exc.with_path(path)
        raise
    info = {
        "file": path,
        "format": c.kind,
        "version": f"{c.version[0]}.{c.version[1]}",
        "size": c.size,
        "chunks": [{"type": ch.type.decode("ascii"), "offset": ch.offset, "length": ch.length,
                    "critical": ch.critical, "crc": f"{ch.crc:08x}",
                    "crc_ok": ch.crc_ok} for ch in c.chunks],
        "metadata": c.metadata,
    }
    summary = _payload_summary(c)
    if summary:
        info["summary"] = summary
    return info


def _payload_summary(c) -> dict | None:
    try:
        if c.kind == "gsi":
            from ..viewer import describe_gsi

            return describe_gsi(c)
        from ..scene.codec import describe

        return describe(c)
    except Exception:  # the summary is a courtesy; gsinfo must still show the chunk table
        return None


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the information as JSON.")
@debug_option
@friendly_errors("gsinfo")
def main(file: str, as_json: bool, debug: bool) -> None:
    """Print the format, version, chunk table and metadata of a .gsi or .gsz FILE.

    Exit status is 1 if the file is damaged (a CRC mismatch is listed in the table)."""
    info = describe(file)
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        click.echo(f"{info['file']}: {FORMAT_NAMES[info['format']]}, version {info['version']}, "
                   f"{info['size']} bytes")
        for k, v in (info.get("summary") or {}).items():
            click.echo(f"  {k}: {v}")
        click.echo(f"  {'type':<6}{'offset':>10}{'length':>10}  {'kind':<10}{'crc':<10}status")
        for ch in info["chunks"]:
            kind = "critical" if ch["critical"] else "ancillary"
            status = "ok" if ch["crc_ok"] else "CRC MISMATCH"
            click.echo(f"  {ch['type']:<6}{ch['offset']:>10}{ch['length']:>10}  {kind:<10}"
                       f"{ch['crc']:<10}{status}")
        if info["metadata"]:
            click.echo("  metadata:")
            for k, v in info["metadata"].items():
                click.echo(f"    {k}: {json.dumps(v) if not isinstance(v, str) else v}")
    bad = [ch for ch in info["chunks"] if not ch["crc_ok"]]
    if bad:
        raise CorruptError(f"{len(bad)} chunk(s) fail their CRC", file)


if __name__ == "__main__":
    main()
