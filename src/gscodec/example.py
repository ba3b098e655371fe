"""Run the codecs on the small built-in examples: python -m gscodec.example [--out DIR]."""
from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import click
import numpy as np

from .cli.common import friendly_errors


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def run_image(out: Path, quick: bool) -> None:
    """Encode the built-in image crop to .gsi, decode it at 1x and 2x."""
    from .image import decode_image, encode_image
    from .imageio import decode_image_bytes, write_image

    src = resources.files("gscodec.data").joinpath("kodim23_crop.png").read_bytes()
    img = decode_image_bytes(src, "kodim23_crop.png")
    h, w, c = img.shape
    t0 = time.perf_counter()
    blob = encode_image(img, ratio=50, steps=100 if quick else None, progress=True,
                        metadata={"encoder": "gscodec example"})
    t1 = time.perf_counter()
    (out / "parrot.gsi").write_bytes(blob)
    dec = decode_image(blob)
    t2 = time.perf_counter()
    write_image(out / "parrot.png", dec, force=True)
    write_image(out / "parrot_original.png", img, force=True)
    write_image(out / "parrot_2x.png", decode_image(blob, width=2 * w), force=True)
    click.echo(f"image: {w}x{h} -> parrot.gsi {len(blob)} bytes (ratio {h * w * c / len(blob):.0f}:1, "
               f"{8 * len(blob) / (h * w):.3f} bpp), PSNR {_psnr(dec, img):.2f} dB, "
               f"encode {t1 - t0:.1f} s, decode {t2 - t1:.2f} s")


def run_scene(out: Path, quick: bool) -> None:
    """Encode the built-in 3DGS scene subset to .gsz and decode it back to PLY."""
    try:
        from .scene import decode_scene, encode_scene, read_ply, write_ply
    except ImportError:
        click.echo("scene: the scene codec is not available in this build")
        return
    res = resources.files("gscodec.data").joinpath("biker_20k.ply")
    if not res.is_file():
        click.echo("scene: no built-in scene in this build")
        return
    with resources.as_file(res) as ply:
        scene = read_ply(ply)
    t0 = time.perf_counter()
    blob = encode_scene(scene, quality="medium")
    t1 = time.perf_counter()
    (out / "biker.gsz").write_bytes(blob)
    dec = decode_scene(blob)
    t2 = time.perf_counter()
    write_ply(dec, out / "biker_decoded.ply", force=True)
    click.echo(f"scene: {scene.count} Gaussians -> biker.gsz {len(blob)} bytes "
               f"({len(blob) / scene.count:.2f} B/Gaussian vs {56:.0f} in the PLY), "
               f"encode {t1 - t0:.2f} s, decode {t2 - t1:.2f} s")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--out", type=click.Path(file_okay=False), default="gscodec-example", show_default=True,
              help="Folder for the encoded and decoded files.")
@click.option("--quick", is_flag=True, help="Fewer optimisation steps (for smoke tests).")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@friendly_errors("gscodec.example")
def main(out: str, quick: bool, debug: bool) -> None:
    """Encode and decode the built-in examples, writing viewable files to OUT.

    Image: a 256x256 crop of Kodak kodim23 (Eastman Kodak, released for unrestricted use).
    Scene: 20,000 Gaussians of the 'biker' capture from the playcanvas/engine examples (MIT)."""
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    run_image(d, quick)
    run_scene(d, quick)
    click.echo(f"wrote {', '.join(sorted(p.name for p in d.iterdir()))} to {d}/")


if __name__ == "__main__":
    main()
