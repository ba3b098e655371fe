"""The paper's side-information ablation on real scenes, as one table.

Rows per scene: base layer only; + side information restored with `residual`; + `network`
(packaged weights, when shipped); each without and with decoder refinement; plus base
layers alone at the next quality level and at (about) the same total size as the full
.gsz (quantiser steps interpolated to match). Columns: bytes, decode seconds (base decode,
renders, restoration, refinement), PSNR / foreground PSNR / SSIM against renders of the
original scene at held-out orbit views that carry no side information, and PSNR of the
restored images at the side-information views (what refinement is fitted to).

    python bench/gsz_restore.py                       # both shared scenes, CPU defaults
    python bench/gsz_restore.py --max-gaussians 30000 --res 320 --refine-steps 60
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "scenes"


def psnr(a, b, mask=None) -> float:
    """PSNR (dB) of images in [0, 1], optionally over a pixel mask."""
    d = (np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2
    mse = float(d[mask].mean()) if mask is not None else float(d.mean())
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def ssim(a, b) -> float:
    """SSIM (Gaussian 11x11 window, sigma 1.5, valid windows) of (H, W, 3) images."""
    import torch

    from gscodec.image.ssim import ssim as ssim_t

    return float(ssim_t(torch.from_numpy(np.asarray(a, np.float32)),
                        torch.from_numpy(np.asarray(b, np.float32))))


def render_all(scene, cams):
    from gscodec.render.scene3d import render_gaussian_scene

    return [render_gaussian_scene(scene, c, device="cpu").clamp(0, 1).numpy() for c in cams]


def metrics(scene, cams, refs) -> dict:
    """Mean PSNR, foreground PSNR and SSIM of `scene` against reference renders."""
    imgs = render_all(scene, cams)
    p, pf, s = [], [], []
    for img, ref in zip(imgs, refs):
        fg = ref.max(-1) > 1.0 / 255.0
        p.append(psnr(img, ref))
        pf.append(psnr(img, ref, fg) if fg.any() else float("nan"))
        s.append(ssim(img, ref))
    return {"psnr": float(np.mean(p)), "psnr_fg": float(np.mean(pf)), "ssim": float(np.mean(s))}


def strip_side_info(blob: bytes) -> bytes:
    """The base layer alone: the file without its v*/V* chunks."""
    from gscodec.container import END_TYPE, META_TYPE, Chunk, read_container, write_container

    c = read_container(blob, "gsz")
    keep = [Chunk(x.type, x.data) for x in c.chunks
            if x.type not in (META_TYPE, END_TYPE) and x.type[:1] not in (b"v", b"V")]
    return write_container("gsz", keep, c.metadata or None, minor=c.version[1])


def equal_size_base(scene, target: int, quality: str, log) -> tuple[bytes, str]:
    """A base layer of about `target` bytes: quantiser steps interpolated geometrically from
    `quality` towards the next finer level (extrapolated beyond it if needed)."""
    from gscodec.scene.base import params
    from gscodec.scene.codec import encode_scene

    order = ["low", "medium", "high"]
    lo = params.QUALITIES[quality]
    hi = params.QUALITIES[order[min(order.index(quality) + 1, 2)]]
    if hi is lo:
        hi = params.QUALITIES["medium"]

    def level(t: float):
        # Every numeric field moves from `lo` (t=0) towards `hi` (t=1): positive floats
        # geometrically, integers and signed floats linearly; other fields stay `lo`'s.
        kw = {}
        for f in fields(lo):
            a, b = getattr(lo, f.name), getattr(hi, f.name)
            if f.name == "code" or a == b or not isinstance(a, (int, float)):
                continue
            if isinstance(a, int):
                kw[f.name] = int(round(a + t * (b - a)))
            elif a > 0 and b > 0:
                kw[f.name] = float(a * (b / a) ** t)
            else:
                kw[f.name] = float(a + t * (b - a))
        return replace(lo, **kw)

    best = None
    a, b = 0.0, 2.5
    for _ in range(7):
        t = 0.5 * (a + b)
        params.QUALITIES["_bench_equal"] = level(t)
        try:
            blob = encode_scene(scene, quality="_bench_equal")
        finally:
            params.QUALITIES.pop("_bench_equal", None)
        if best is None or abs(len(blob) - target) < abs(len(best[0]) - target):
            best = (blob, f"t={t:.2f}")
        log(f"    equal-size search t={t:.3f}: {len(blob)} bytes (target {target})")
        if abs(len(blob) - target) < 0.01 * target:
            break
        a, b = (t, b) if len(blob) < target else (a, t)
    return best


def run_scene(path: Path, args, log) -> list[dict]:
    from gscodec.render.cameras import orbit_cameras
    from gscodec.scene.codec import decode_scene, encode_scene
    from gscodec.scene.enhanced import decode_scene_full, encode_scene_full
    from gscodec.scene.ply import read_ply
    from gscodec.scene.restore import default_weights
    from gscodec.scene.sideinfo import decode_side_info, sample_views
    from gscodec.container import read_container

    scene = read_ply(path, nan_policy="drop")
    if args.max_gaussians and scene.count > args.max_gaussians:
        idx = np.sort(np.random.default_rng(0).choice(scene.count, args.max_gaussians, replace=False))
        scene = scene.subset(idx)
    cams = orbit_cameras(scene.means, n=args.views, width=args.res, height=args.res)
    side_idx = set(sample_views(len(cams), args.side_views).tolist())
    held = [c for i, c in enumerate(cams) if i not in side_idx]
    held = [held[i] for i in np.unique(np.linspace(0, len(held) - 1, args.eval_views).round().astype(int))]
    log(f"{path.name}: {scene.count} Gaussians, {len(side_idx)} side views, {len(held)} held-out "
        f"views at {args.res}px")
    refs = render_all(scene, held)

    t = time.perf_counter()
    full = encode_scene_full(scene, quality=args.quality, cameras=cams, side_views=args.side_views,
                             residual_quality=args.residual_quality, device="cpu")
    t_enc = time.perf_counter() - t
    base_blob = strip_side_info(full)
    side = decode_side_info(read_container(full, "gsz"))
    side_bytes = len(full) - len(base_blob)
    log(f"  encode {t_enc:.1f} s: base {len(base_blob)} B, side info {side_bytes} B "
        f"({len(side.cameras)} views, {sum(side.coded_bytes)} B of JPEG XL)")
    side_refs = render_all(scene, side.cameras)

    rows = []

    def side_psnr(restore_mode: str, base) -> float:
        from gscodec.scene.enhanced import restored_targets

        if restore_mode == "none":
            tg = render_all(base, side.cameras)
        else:
            tg = restored_targets(base, side, restore_mode, "cpu", weights=args.weights)
        return float(np.mean([psnr(a, b) for a, b in zip(tg, side_refs)]))

    t = time.perf_counter()
    base = decode_scene(base_blob)
    t_base = time.perf_counter() - t
    m = metrics(base, held, refs)
    rows.append(dict(scene=path.name, method="base only", refine=0, bytes=len(base_blob),
                     decode_s=t_base, side_psnr=side_psnr("none", base), **m))
    log(f"  base only: {m}")
    modes = ["residual"] + (["network"] if default_weights() is not None or args.weights else [])
    if args.skip_refine:
        modes = []
    for mode in modes:
        sp = side_psnr(mode, base)
        rows.append(dict(scene=path.name, method=f"+side info, {mode}", refine=0, bytes=len(full),
                         decode_s=t_base, side_psnr=sp, **m))
        t = time.perf_counter()
        out = decode_scene_full(full, refine_steps=args.refine_steps, restore=mode, device="cpu",
                                refine_scale=args.refine_scale, weights=args.weights)
        dt = time.perf_counter() - t
        mm = metrics(out, held, refs)
        rows.append(dict(scene=path.name, method=f"+side info, {mode}", refine=args.refine_steps,
                         bytes=len(full), decode_s=dt, side_psnr=float("nan"), **mm))
        log(f"  {mode} + refine {args.refine_steps}: {mm} ({dt:.1f} s)")
    order = ["low", "medium", "high"]
    if args.quality != "high":
        nxt = order[order.index(args.quality) + 1]
        blob = encode_scene(scene, quality=nxt)
        t = time.perf_counter()
        b2 = decode_scene(blob)
        dt = time.perf_counter() - t
        rows.append(dict(scene=path.name, method=f"base only, {nxt}", refine=0, bytes=len(blob),
                         decode_s=dt, side_psnr=float("nan"), **metrics(b2, held, refs)))
    blob, how = equal_size_base(scene, len(full), args.quality, log)
    t = time.perf_counter()
    b3 = decode_scene(blob)
    dt = time.perf_counter() - t
    rows.append(dict(scene=path.name, method=f"base only, equal size ({how})", refine=0,
                     bytes=len(blob), decode_s=dt, side_psnr=float("nan"), **metrics(b3, held, refs)))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenes", nargs="*", help="PLY scenes [default: playbot_lod2.ply, biker.ply]")
    p.add_argument("--max-gaussians", type=int, default=None, help="random subset per scene")
    p.add_argument("--views", type=int, default=24, help="orbit views (side info on a uniform sample)")
    p.add_argument("--side-views", type=float, default=0.4)
    p.add_argument("--eval-views", type=int, default=6, help="held-out views evaluated")
    p.add_argument("--res", type=int, default=400, help="view size in pixels (square)")
    p.add_argument("--quality", default="medium", choices=["low", "medium", "high"])
    p.add_argument("--residual-quality", default="medium")
    p.add_argument("--refine-steps", type=int, default=100)
    p.add_argument("--refine-scale", type=float, default=None, help="render scale while refining [1]")
    p.add_argument("--weights", default=None, help="restoration weights [packaged]")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--skip-refine", action="store_true", help="only the base-layer rows")
    args = p.parse_args(argv)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    scenes = [Path(s) for s in args.scenes] or [DATA / "playbot_lod2.ply", DATA / "biker.ply"]
    missing = [s for s in scenes if not s.is_file()]
    if missing:
        print(f"missing scene(s): {', '.join(map(str, missing))}", file=sys.stderr)
        return 1
    log = lambda s: print(s, file=sys.stderr, flush=True)
    rows = []
    for s in scenes:
        rows += run_scene(s, args, log)
    print(f"\nviews {args.res}px, {args.views} orbit views, side info on {args.side_views:.0%}, "
          f"{args.eval_views} held-out views; base quality {args.quality}, residual quality "
          f"{args.residual_quality}; refinement {args.refine_steps} steps, max Gaussians "
          f"{args.max_gaussians or 'all'}\n")
    head = ("| scene | method | refine steps | bytes | decode s | PSNR | fg PSNR | SSIM | "
            "side-view PSNR of targets |")
    print(head)
    print("|" + "---|" * 9)
    for r in rows:
        sp = "" if math.isnan(r["side_psnr"]) else f"{r['side_psnr']:.2f}"
        print(f"| {r['scene']} | {r['method']} | {r['refine']} | {r['bytes']} | {r['decode_s']:.1f} | "
              f"{r['psnr']:.2f} | {r['psnr_fg']:.2f} | {r['ssim']:.4f} | {sp} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
