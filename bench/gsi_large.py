"""Large-image .gsi benchmark: encode time and peak memory of an 8K-class picture at CR 100.

The issue's target is an 8K-class image at CR 100 encoded in at most 60 s on CUDA. This
builds a 7680x4320 test picture from ../shared/data/images/hires/artificial.png (bicubic
upscale and centre crop; or pass --image), encodes it with the device's default step count
(or --steps), decodes it, and prints, side by side with JPEG and JPEG XL at the largest
setting whose file is not above the .gsi file: bytes, PSNR, encode and decode time; for .gsi
also the peak host memory (and the peak CUDA memory on a GPU).

    python bench/gsi_large.py --device cuda                 # the target run (GPU)
    python bench/gsi_large.py --device cpu --steps 3        # memory and plumbing check on CPU
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "images" / "hires" / "artificial.png"
SIZE_8K = (4320, 7680)
TARGET_S = 60.0


def test_picture(path: Path, size: tuple[int, int]) -> np.ndarray:
    """The source picture scaled (bicubic) to cover `size`, then centre-cropped to it."""
    import imagecodecs

    from gsi_rd import resize

    img = np.asarray(imagecodecs.imread(str(path)))
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = img[:, :, :3]
    h, w = size
    s = max(h / img.shape[0], w / img.shape[1])
    if abs(s - 1.0) > 1e-9:
        img = resize(img, max(h, round(img.shape[0] * s)), max(w, round(img.shape[1] * s)))
    y0, x0 = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
    return np.ascontiguousarray(img[y0:y0 + h, x0:x0 + w])


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20   # kB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", type=Path, default=DEFAULT_SOURCE, help="source picture [hires/artificial.png]")
    ap.add_argument("--size", default="7680x4320", help="WxH of the test picture [7680x4320]")
    ap.add_argument("--ratio", type=float, default=100.0)
    ap.add_argument("--steps", type=int, default=None, help="optimisation steps [device default]")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--peers", default="jpeg,jxl", help="reference codecs ('' for none)")
    args = ap.parse_args()
    if not args.image.exists():
        sys.exit(f"source picture not found: {args.image}")
    w, h = (int(v) for v in args.size.lower().split("x"))

    import torch

    from gscodec.image import decode_image, encode_image
    from gscodec.image.fit import resolve_device
    from gsi_rd import _codec, best_fit, psnr

    img = test_picture(args.image, (h, w))
    dev = resolve_device(args.device)
    print(f"test picture {w}x{h} from {args.image.name}; CR {args.ratio:g} "
          f"(budget {3 * h * w // int(args.ratio)} B); device {dev}; "
          f"{torch.get_num_threads()} CPU threads", flush=True)
    if dev == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss0 = _peak_rss_gb()
    t0 = time.perf_counter()
    data = encode_image(img, ratio=args.ratio, steps=args.steps, device=dev, seed=0, progress=True)
    t_enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = decode_image(data)
    t_dec = time.perf_counter() - t0
    cuda_gb = torch.cuda.max_memory_allocated() / 2 ** 30 if dev == "cuda" else None
    rows = [("gsi", len(data), psnr(out, img), t_enc, t_dec)]
    for name in [p for p in args.peers.split(",") if p]:
        t0 = time.perf_counter()
        fit = best_fit(name, img, len(data))
        t_search = time.perf_counter() - t0
        if fit is None:
            rows.append((name, None, None, None, None))
            continue
        dec = _codec(name)[1]
        t0 = time.perf_counter()
        dec(fit[0])
        rows.append((name, len(fit[0]), psnr(fit[1], img), t_search, time.perf_counter() - t0))

    print("\n| codec | bytes | bpp | PSNR dB | encode s | decode s |")
    print("|---|---|---|---|---|---|")
    for name, nbytes, p, te, td in rows:
        if nbytes is None:
            print(f"| {name} | cannot get this small | | | | |")
            continue
        note = " (quality search)" if name != "gsi" else ""
        print(f"| {name} | {nbytes} | {8 * nbytes / (h * w):.4f} | {p:.2f} | {te:.1f}{note} | {td:.2f} |")
    print(f"\n.gsi peak host memory {max(_peak_rss_gb(), rss0):.2f} GB"
          + (f", peak CUDA memory {cuda_gb:.2f} GB" if cuda_gb is not None else ""))
    steps = args.steps if args.steps is not None else "default"
    verdict = "met" if dev == "cuda" and args.steps is None and t_enc <= TARGET_S else "not met"
    if dev != "cuda" or args.steps is not None:
        verdict = "not applicable (the target is CUDA with the default steps)"
    print(f"target: 8K-class at CR 100 encoded in <= {TARGET_S:.0f} s on CUDA: {verdict} "
          f"({t_enc:.1f} s on {dev}, steps {steps})")


if __name__ == "__main__":
    main()
