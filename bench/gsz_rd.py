"""Rate-distortion of the .gsz base layer against SPZ and the PLY itself.

For each scene and quality: bytes per Gaussian, encode and decode time, attribute errors,
and PSNR of renders of the decoded scene against renders of the original over orbit views,
over the whole image and over the foreground only. Foreground: pixels whose accumulated
alpha in the original render is above 0.05 (alpha = 1 - (white-background render -
black-background render)), so the empty background of an object scene does not inflate the
figure. The scene's .spz file (read by gscodec.scene.spz) is rendered the same way.

    python bench/gsz_rd.py [--views 24] [--width 800] [--max-gaussians N] [--out rd.json]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "scenes"
ATTRS = ("means", "sh_dc", "sh_rest", "opacity", "scales", "rotations")


def load(name: str, max_gaussians: int | None):
    """Original scene (finite rows), its SPZ decoded in the matching frame, file sizes."""
    import plyfile

    from gscodec.scene import read_ply
    from gscodec.scene.spz import match_frame, read_spz

    ply = DATA / f"{name}.ply"
    v = plyfile.PlyData.read(str(ply))["vertex"].data
    cols = [v[c] for c in v.dtype.names]
    # The rows read_ply keeps: no NaN, and Inf only in the opacity logit (saturated there).
    finite = np.all([~np.isnan(c) if n == "opacity" else np.isfinite(c)
                     for n, c in zip(v.dtype.names, cols)], axis=0)
    scene = read_ply(ply, nan_policy="drop")
    assert scene.count == int(finite.sum())
    spz_path = DATA / f"{name}.spz"
    spz = None
    if spz_path.exists():
        raw = read_spz(spz_path)
        if raw.count == finite.size:
            spz = match_frame(raw.subset(finite), scene.means)
    keep = None
    if max_gaussians and scene.count > max_gaussians:
        keep = np.sort(np.random.default_rng(0).choice(scene.count, max_gaussians, replace=False))
        scene = scene.subset(keep)
        spz = spz.subset(keep) if spz is not None else None
    sizes = {"ply": ply.stat().st_size / finite.size,
             "spz": spz_path.stat().st_size / finite.size if spz_path.exists() else float("nan")}
    return scene, spz, sizes


def render_all(scene, cams, background=(0.0, 0.0, 0.0)) -> list[np.ndarray]:
    """Renders (H, W, 3) float in [0, 1]."""
    import torch

    from gscodec.render.scene3d import render_gaussian_scene

    with torch.no_grad():
        return [np.clip(render_gaussian_scene(scene, c, background=background).cpu().numpy(), 0, 1)
                for c in cams]


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB for images in [0, 1], optionally over masked pixels."""
    d = (a - b) ** 2
    if mask is not None:
        d = d[mask]
    mse = float(d.mean()) if d.size else 0.0
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def attribute_errors(orig, dec) -> dict[str, float]:
    """RMS error per attribute (rotation: mean angle in degrees) between aligned scenes.

    The decoded axes are relabelled to match the original's first (same covariance): the .gsz
    encoder codes each Gaussian in its canonical pose, so raw scale channels would not compare.
    """
    from dataclasses import replace

    from gscodec.scene.base.pose import nearest_pose

    dec = replace(dec, **dict(zip(("rotations", "scales"), nearest_pose(orig.rotations, dec.rotations, dec.scales))))
    out = {}
    for a in ATTRS[:-1]:
        x, y = getattr(orig, a), getattr(dec, a)
        out[a] = float(np.sqrt(np.mean((x.astype(np.float64) - y) ** 2))) if x.size else 0.0
    q1 = orig.rotations / np.linalg.norm(orig.rotations, axis=1, keepdims=True)
    q2 = dec.rotations / np.linalg.norm(dec.rotations, axis=1, keepdims=True)
    dot = np.clip(np.abs((q1 * q2).sum(1)), 0, 1)
    out["rotation_deg"] = float(np.degrees(2 * np.arccos(dot)).mean())
    return out


def run(name: str, args) -> list[dict]:
    from gscodec.render.cameras import orbit_cameras
    from gscodec.scene import decode_scene, encode_scene
    from gscodec.scene.base.params import quality
    from gscodec.scene.codec import sort_order

    scene, spz, sizes = load(name, args.max_gaussians)
    cams = orbit_cameras(scene.means, n=24, width=args.width, height=args.width)
    cams = [cams[i] for i in np.linspace(0, 23, args.views).round().astype(int)]
    t = time.perf_counter()
    ref = render_all(scene, cams)
    white = render_all(scene, cams, (1.0, 1.0, 1.0))
    t_render = (time.perf_counter() - t) / (2 * len(cams))
    masks = [(1.0 - (w - b).mean(-1)) > 0.05 for w, b in zip(white, ref)]
    fg = float(np.mean([m.mean() for m in masks]))
    rows = []

    def score(label, dec, bpg, t_enc, t_dec, errs):
        out = render_all(dec, cams)
        rows.append({"scene": name, "codec": label, "gaussians": scene.count, "bytes_per_gaussian": bpg,
                     "encode_s": t_enc, "decode_s": t_dec,
                     "psnr": float(np.mean([psnr(a, b) for a, b in zip(out, ref)])),
                     "psnr_fg": float(np.mean([psnr(a, b, m) for a, b, m in zip(out, ref, masks)])),
                     "errors": errs, "views": len(cams), "width": args.width, "fg_fraction": fg,
                     "render_s_per_view": t_render})
        print(json.dumps(rows[-1]), flush=True)

    rows.append({"scene": name, "codec": "ply", "gaussians": scene.count, "bytes_per_gaussian": sizes["ply"],
                 "psnr": float("inf"), "psnr_fg": float("inf"), "views": len(cams), "fg_fraction": fg})
    if spz is not None:
        score("spz", spz, sizes["spz"], None, None, attribute_errors(scene, spz))
    for q in args.qualities:
        t = time.perf_counter()
        data = encode_scene(scene, quality=q)
        t_enc = time.perf_counter() - t
        t = time.perf_counter()
        dec = decode_scene(data)
        t_dec = time.perf_counter() - t
        order = sort_order(scene, quality(q).pos_bits)[-1]
        score(f"gsz-{q}", dec, len(data) / scene.count, t_enc, t_dec,
              attribute_errors(scene.subset(order), dec))
    return rows


def table(rows: list[dict]) -> str:
    """Markdown table of the results."""
    head = ("| scene | codec | B/Gaussian | encode s | decode s | PSNR dB | fg PSNR dB | "
            "pos RMSE | dc RMSE | rest RMSE | opacity RMSE | log-scale RMSE | rot deg |")
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        e = r.get("errors") or {}

        def f(x, fmt="%.2f"):
            return "-" if x is None else fmt % x

        lines.append(f"| {r['scene']} | {r['codec']} | {r['bytes_per_gaussian']:.2f} | {f(r.get('encode_s'))} | "
                     f"{f(r.get('decode_s'))} | {r['psnr']:.2f} | {r['psnr_fg']:.2f} | "
                     f"{f(e.get('means'), '%.2e')} | {f(e.get('sh_dc'), '%.4f')} | {f(e.get('sh_rest'), '%.4f')} | "
                     f"{f(e.get('opacity'), '%.3f')} | {f(e.get('scales'), '%.3f')} | {f(e.get('rotation_deg'))} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", nargs="+", default=["biker", "playbot_lod2"])
    ap.add_argument("--qualities", nargs="+", default=["low", "medium", "high"])
    ap.add_argument("--views", type=int, default=24)
    ap.add_argument("--width", type=int, default=800)
    ap.add_argument("--max-gaussians", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=str, default=None)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    for name in args.scenes:
        if not (DATA / f"{name}.ply").exists():
            print(f"skipping {name}: {DATA / (name + '.ply')} not found")
            continue
        rows += run(name, args)
    print(table(rows))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
