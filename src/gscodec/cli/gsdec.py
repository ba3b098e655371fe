"""gsdec: decode a .gsi file to an image or a .gsz file to a 3DGS PLY."""
from __future__ import annotations

import time
from pathlib import Path

import click

from ..container import check_output, read_file, sniff_kind
from ..errors import FormatError, InputError
from .common import debug_option, force_option, friendly_errors, quiet_option

HELP = """Decode INPUT: a .gsi file becomes an image (PNG by default, or any format named by
the output's extension: .jpg .webp .jxl .tif .bmp); a .gsz file becomes a standard 3DGS
PLY that existing viewers open.

\b
Examples:
  gsdec photo.gsi -o photo.png                 # at the stored size
  gsdec photo.gsi -o thumb.png --width 256     # any size, aspect kept
  gsdec scene.gsz -o scene.ply
  gsdec scene.gsz -o scene.ply --refine-steps 0   # base layer only"""


@click.command(help=HELP, context_settings={"help_option_names": ["-h", "--help"],
                                            "max_content_width": 100})
@click.argument("input", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Output file [default: INPUT with .png/.ply suffix].")
@force_option
@quiet_option
@click.option("--width", type=int, help="Images: output width (height follows the aspect ratio).")
@click.option("--height", type=int, help="Images: output height (width follows the aspect ratio).")
@click.option("--scale", type=float, help="Images: output size as a factor of the stored size.")
@click.option("--refine-steps", type=int, help="Scenes: refinement iterations with side information [default: 5000 on CUDA; 100 on CPU, each on a 192x192 crop]. 0 = base layer only (fast).")
@click.option("--restore", type=click.Choice(["none", "residual", "network"]), default="network", show_default=True,
              help="Scenes: how renders are restored from side information.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Scenes: where refinement runs.")
@debug_option
@friendly_errors("gsdec")
def main(input: str, output: str | None, force: bool, quiet: bool, width: int | None, height: int | None,
         scale: float | None, refine_steps: int | None, restore: str, device: str, debug: bool) -> None:
    data = read_file(input)
    kind = sniff_kind(data)
    if kind is None:
        raise FormatError("not a .gsi or .gsz file (unknown signature)", input)
    out = output or str(Path(input).with_suffix(".png" if kind == "gsi" else ".ply"))
    if Path(out).resolve() == Path(input).resolve():
        raise InputError("output would overwrite the input", out)
    check_output(out, force)
    t0 = time.perf_counter()
    try:
        if kind == "gsi":
            summary = _decode_image(data, out, width, height, scale, force)
        else:
            if width or height or scale:
                raise InputError("--width/--height/--scale apply to images only")
            summary = _decode_scene(data, out, refine_steps, restore, device, quiet, force)
    except Exception as exc:
        if hasattr(exc, "with_path") and getattr(exc, "path", None) is None:
            raise exc.with_path(input)
        raise
    if not quiet:
        click.echo(f"{input} -> {out}: {summary}, {time.perf_counter() - t0:.2f} s", err=True)


def _decode_image(data, out, width, height, scale, force):
    from ..image import decode_image
    from ..imageio import write_image

    if sum(x is not None for x in (width, height, scale)) > 1:
        raise InputError("give at most one of --width, --height, --scale")
    if width is not None and width <= 0 or height is not None and height <= 0 or scale is not None and scale <= 0:
        raise InputError("--width, --height and --scale must be positive")
    img = decode_image(data, width=width, height=height, scale=scale)
    write_image(out, img, force=force)
    return f"{img.shape[1]}x{img.shape[0]}x{img.shape[2]}"


def _decode_scene(data, out, refine_steps, restore, device, quiet, force):
    from ..scene import decode_scene, write_ply

    kwargs = {}
    try:
        from ..scene import sideinfo  # noqa: F401  (enhancement layer, when installed)
        kwargs = {"refine_steps": refine_steps, "restore": restore, "device": device, "progress": not quiet}
    except ImportError:
        pass
    scene = decode_scene(data, **kwargs)
    write_ply(scene, out, force=force)
    return f"{scene.count} Gaussians, SH degree {scene.sh_degree}"


if __name__ == "__main__":
    main()
