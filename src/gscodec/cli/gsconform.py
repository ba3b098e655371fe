"""gsconform: run the conformance vectors against gscodec's decoder or any other."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from ..conformance import CommandDecoder, OwnDecoder, run_manifest
from ..errors import InputError
from .common import debug_option, friendly_errors


def default_manifest() -> Path:
    """The manifest of a checkout, or of the current folder."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[3]):
        p = base / "conformance" / "manifest.json"
        if p.is_file():
            return p
    raise InputError("no conformance/manifest.json here; pass --manifest")


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--decoder", help="Command template with {in} and {out} ({width} {height} optional); "
              "default: gscodec's own decoder, in-process (which also checks error classes and "
              "the canonical .gsi parameters). For .gsz vectors {out} is a PLY and must hold the "
              "base layer, e.g. 'gsdec {in} -o {out} -f -q --refine-steps 0'.")
@click.option("--manifest", type=click.Path(dir_okay=False, exists=True), help="Manifest to run.")
@click.option("-k", "select", help="Only cases whose id contains this text.")
@click.option("--no-renders", is_flag=True, help="Skip the scene reference renders (they need torch).")
@debug_option
@friendly_errors("gsconform")
def main(decoder: str | None, manifest: str | None, select: str | None, no_renders: bool, debug: bool) -> None:
    """Run every conformance case; print PASS/FAIL per case and a total. Exit 1 on any failure."""
    path = Path(manifest) if manifest else default_manifest()
    if decoder is not None and "{in}" not in decoder:
        raise InputError("--decoder must contain {in} and {out}")
    dec = CommandDecoder(decoder) if decoder else OwnDecoder()
    click.echo(f"decoder: {dec.name}\nmanifest: {path}")
    results = run_manifest(path, dec, select, log=click.echo, renders=not no_renders)
    failed = sum(not r.ok for r in results)
    click.echo(f"{len(results) - failed} passed, {failed} failed")
    if failed or not results:
        sys.exit(1)


if __name__ == "__main__":
    main()
