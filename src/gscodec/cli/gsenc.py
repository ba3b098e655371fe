"""gsenc: encode an image to .gsi or a 3DGS PLY scene to .gsz."""
from __future__ import annotations

import time
from pathlib import Path

import click

from .. import __version__
from ..container import check_output, read_file, write_container, write_file_atomic
from ..errors import InputError
from ..imageio import decode_image_bytes, sniff_image
from .common import debug_option, force_option, friendly_errors, quiet_option

META_SHARE = 0.02    # images keep the metadata chunk only where it costs at most this share of the budget

HELP = """Encode INPUT: an image (PNG, JPEG, WebP, ...) becomes a .gsi file of 2D Gaussians;
a 3DGS scene (.ply) becomes a .gsz file.

\b
Examples:
  gsenc photo.png -o photo.gsi --ratio 100     # 100:1 against 24-bit RGB
  gsenc photo.png -o photo.gsi --max-bytes 2000
  gsenc scene.ply -o scene.gsz --quality high
  gsenc scene.ply -o scene.gsz --cameras cameras.json --side-views 0.4

The output is written to a temporary file and renamed, so a failed encode leaves nothing
behind; an existing output is kept unless --force is given."""


@click.command(help=HELP, context_settings={"help_option_names": ["-h", "--help"],
                                            "max_content_width": 100})
@click.argument("input", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Output file [default: INPUT with .gsi/.gsz suffix].")
@force_option
@quiet_option
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (output is deterministic for a seed).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where to optimise: CUDA when available with 'auto'.")
@click.option("--no-meta", is_flag=True, help="Omit the metadata chunk (saves tens of bytes). Images leave it "
              "out on their own where it would take more than 2% of the byte budget.")
@click.option("--ratio", type=float, help="Images: compression ratio against 8-bit samples (e.g. 100). Default 100 if no byte budget is given.")
@click.option("--max-bytes", type=int, help="Images: hard cap on the output file size in bytes.")
@click.option("--bpp", type=float, help="Images: hard cap in bits per pixel.")
@click.option("--steps", type=int, help="Images: optimisation steps [default: 600 on CPU, 3000 on CUDA].")
@click.option("--quality", type=click.Choice(["low", "medium", "high"]), default="medium", show_default=True,
              help="Scenes: base-layer quality level.")
@click.option("--nan", "nan_policy", type=click.Choice(["reject", "drop"]), default="reject", show_default=True,
              help="Scenes: what to do with Gaussians holding NaN values, or Inf outside the opacity (reject: error; drop: remove them). Infinite opacity logits are saturated to a finite logit, with a warning.")
@click.option("--cameras", type=click.Path(dir_okay=False),
              help="Scenes: cameras.json (reference 3DGS trainer format) for side information [default: orbit views].")
@click.option("--side-views", type=float, default=0.4, show_default=True,
              help="Scenes: fraction of views (0-1) that carry side information.")
@click.option("--residual-quality", type=click.Choice(["low", "medium", "high"]), default="medium", show_default=True,
              help="Scenes: JPEG XL quality of the coded rendering residuals.")
@click.option("--no-side-info", is_flag=True, help="Scenes: write the base layer alone.")
@debug_option
@friendly_errors("gsenc")
def main(input: str, output: str | None, force: bool, quiet: bool, seed: int, device: str,
         no_meta: bool, ratio: float | None, max_bytes: int | None, bpp: float | None,
         steps: int | None, quality: str, nan_policy: str, cameras: str | None,
         side_views: float, residual_quality: str, no_side_info: bool, debug: bool) -> None:
    head = read_file(input, head=16)      # a scene is read by read_ply: do not hold it twice
    kind = "gsi" if sniff_image(head) else "gsz" if head[:4] == b"ply\n" or head[:5] == b"ply\r\n" else None
    if kind is None:
        raise InputError("not an image (PNG, JPEG, WebP, JPEG XL, TIFF, BMP) nor a PLY scene", input)
    out = output or str(Path(input).with_suffix("." + kind))
    if Path(out).resolve() == Path(input).resolve():
        raise InputError("output would overwrite the input", out)
    check_output(out, force)
    t0 = time.perf_counter()
    if kind == "gsi":
        blob, summary = _encode_image(read_file(input), input, ratio, max_bytes, bpp, steps, device, seed, quiet, no_meta)
    else:
        blob, summary = _encode_scene(input, quality, nan_policy, cameras, side_views, residual_quality,
                                      no_side_info, device, seed, quiet, no_meta)
    write_file_atomic(out, blob, force=force)
    if not quiet:
        click.echo(f"{input} -> {out}: {summary}, {len(blob)} bytes, {time.perf_counter() - t0:.1f} s", err=True)


def _encode_image(data: bytes, name: str, ratio, max_bytes, bpp, steps, device, seed, quiet, no_meta):
    from ..image import budget_bytes, encode_image

    image = decode_image_bytes(data, name)
    h, w, c = image.shape
    coded = min(c, 3)        # decode_image_bytes gives 1, 3 or 4 channels; alpha is not coded
    if ratio is None and max_bytes is None and bpp is None:
        ratio = 100.0
    if ratio is not None and ratio <= 0 or bpp is not None and bpp <= 0 or max_bytes is not None and max_bytes <= 0:
        raise InputError("--ratio, --bpp and --max-bytes must be positive")
    meta = None if no_meta else _image_metadata(w, h, c, ratio, max_bytes, bpp, seed)
    dropped = ""
    if meta is not None:
        budget = budget_bytes(h, w, coded, ratio, max_bytes, bpp)
        cost = len(write_container("gsi", [], meta)) - len(write_container("gsi", []))
        if cost > META_SHARE * budget:
            # The budget buys Gaussians; a tight one should not go to an informative chunk.
            meta = None
            share = f", {100 * cost / budget:.1f}% of the budget" if budget > 0 else ""
            dropped = f", metadata left out ({cost} bytes{share})"
    try:
        blob = encode_image(image, ratio=ratio, max_bytes=max_bytes, bpp=bpp, steps=steps, device=device,
                            seed=seed, progress=not quiet, metadata=meta)
    except Exception as exc:
        if hasattr(exc, "with_path"):
            raise exc.with_path(name)
        raise
    raw = h * w * coded
    return blob, (f"{w}x{h}x{coded}, ratio {raw / len(blob):.1f}:1, "
                  f"{8 * len(blob) / (h * w):.4f} bpp{dropped}")


def _image_metadata(w: int, h: int, c: int, ratio, max_bytes, bpp, seed: int) -> dict:
    """The informative metadata of an image encode: encoder, source size and the options given."""
    meta = {"encoder": f"gscodec {__version__}", "source": [w, h, c]}
    meta.update({k: v for k, v in (("ratio", ratio), ("max_bytes", max_bytes), ("bpp", bpp)) if v is not None})
    meta["seed"] = seed
    return meta


def _encode_scene(path, quality, nan_policy, cameras, side_views, residual_quality, no_side_info, device,
                  seed, quiet, no_meta):
    from ..scene import encode_scene, read_ply

    scene = read_ply(path, nan_policy=nan_policy)
    meta = None if no_meta else {"encoder": f"gscodec {__version__}", "gaussians": scene.count,
                                 "sh_degree": scene.sh_degree, "quality": quality}
    extra = {}
    if not no_side_info:
        try:
            from ..scene import sideinfo  # noqa: F401  (enhancement layer, when installed)
            extra = {"cameras": cameras, "side_views": side_views, "residual_quality": residual_quality,
                     "device": device, "seed": seed}
        except ImportError:
            extra = {}
    try:
        blob = encode_scene(scene, quality=quality, progress=not quiet, metadata=meta, **extra)
    except Exception as exc:
        if hasattr(exc, "with_path"):
            raise exc.with_path(path)
        raise
    return blob, f"{scene.count} Gaussians, SH degree {scene.sh_degree}, {len(blob) / scene.count:.2f} B/Gaussian"


if __name__ == "__main__":
    main()
