"""Train the restoration network F on pairs of original / base-layer renders.

    python -m gscodec.train_restore --scene a.ply --scene b.ply --out restore_v1.pt \
        --views 48 --res 256 --steps 3000 [--eval-scene c.ply] [--device cuda]

For every training scene: encode and decode its base layer (at each --qualities level),
render the original (I) and the decoded scene (I~) at orbit views over several elevations,
and code each residual R = I - I~ exactly as the encoder does (per-view scale, 8-bit
mapping, JPEG XL) at several random distances (augmentation; the paper used JPEG). F is
trained on random patches (flips / 90-degree turns) with the L1 loss between F(I~, R~) and
R (the paper adds LPIPS, which needs pretrained VGG/AlexNet weights; not used here).
With --eval-scene, PSNR of `residual` and `network` restoration is reported on held-out
views of that scene (those sample_views() does not pick), coded at --eval-distance.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Pair:
    """One training view: degraded render, target residual, and coded residuals R~."""

    degraded: np.ndarray          # (H, W, 3) float32
    residual: np.ndarray          # (H, W, 3) float32, R = I - I~
    coded: list[np.ndarray]       # R~ at several JPEG XL distances
    hot: np.ndarray               # flat indices of the 10% largest residuals


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def load_scene(path: str, max_gaussians: int | None, seed: int):
    """A PLY scene, optionally a random subset of at most max_gaussians Gaussians."""
    from .scene.ply import read_ply

    scene = read_ply(path, nan_policy="drop")
    if max_gaussians and scene.count > max_gaussians:
        idx = np.sort(np.random.default_rng(seed).choice(scene.count, max_gaussians, replace=False))
        scene = scene.subset(idx)
    return scene


def base_layer(scene, quality: str):
    """The decoded base layer of `scene` at `quality` (what the decoder reconstructs)."""
    from .scene.codec import decode_scene, encode_scene

    return decode_scene(encode_scene(scene, quality=quality))


def training_cameras(scene, views: int, res: int, elevations=(-10.0, 20.0, 50.0)):
    """`views` orbit cameras spread over several elevations."""
    from .render.cameras import orbit_cameras

    per = max(1, math.ceil(views / len(elevations)))
    cams = []
    for e in elevations:
        cams += orbit_cameras(scene.means, n=per, width=res, height=res, elevation_deg=e)
    return cams[:views]


def code_residual(residual: np.ndarray, distance: float) -> np.ndarray:
    """R~ as the decoder sees it: per-view scale, 8-bit mapping, JPEG XL at `distance`."""
    from .scene.sideinfo import jxl_decode, jxl_encode, pixels_to_residual, residual_scale, \
        residual_to_pixels

    s = residual_scale(residual)
    h, w = residual.shape[:2]
    return pixels_to_residual(jxl_decode(jxl_encode(residual_to_pixels(residual, s), distance), h, w), s)


def render_pairs(scene, base, cams, device: str, rng, distances: tuple[float, float],
                 n_coded: int, progress: bool = True) -> list[Pair]:
    """Render original and base at `cams` and code each residual n_coded times."""
    import torch

    from .render.scene3d import render_gaussian_scene

    pairs = []
    for i, cam in enumerate(cams):
        with torch.no_grad():
            orig = render_gaussian_scene(scene, cam, device=device).clamp(0, 1).cpu().numpy()
            deg = render_gaussian_scene(base, cam, device=device).clamp(0, 1).cpu().numpy()
        res = (orig - deg).astype(np.float32)
        ds = np.exp(rng.uniform(np.log(distances[0]), np.log(distances[1]), n_coded))
        mag = np.abs(res).sum(-1).ravel()
        hot = np.flatnonzero(mag > np.quantile(mag, 0.9))
        pairs.append(Pair(deg.astype(np.float32), res, [code_residual(res, float(d)) for d in ds], hot))
        if progress and (i + 1) % 8 == 0:
            _log(f"  rendered {i + 1}/{len(cams)} views")
    return pairs


def sample_batch(pairs: list[Pair], batch: int, patch: int, rng):
    """Random patches (biased to where the residual is non-zero) with flips and turns."""
    import torch

    xs, rs, ts = [], [], []
    for _ in range(batch):
        p = pairs[int(rng.integers(len(pairs)))]
        h, w = p.degraded.shape[:2]
        ph, pw = min(patch, h), min(patch, w)
        # Half the patches centre on a pixel with a large residual: black background
        # patches teach nothing.
        if rng.random() < 0.5:
            flat = p.hot
            c = int(flat[rng.integers(len(flat))]) if len(flat) else int(rng.integers(h * w))
            y0 = int(np.clip(c // w - ph // 2, 0, h - ph))
            x0 = int(np.clip(c % w - pw // 2, 0, w - pw))
        else:
            y0, x0 = int(rng.integers(h - ph + 1)), int(rng.integers(w - pw + 1))
        sl = (slice(y0, y0 + ph), slice(x0, x0 + pw))
        coded = p.coded[int(rng.integers(len(p.coded)))]
        stack = np.concatenate([p.degraded[sl], coded[sl], p.residual[sl]], axis=-1)
        k = int(rng.integers(4))
        stack = np.rot90(stack, k)
        if rng.random() < 0.5:
            stack = stack[:, ::-1]
        t = torch.from_numpy(np.ascontiguousarray(stack)).permute(2, 0, 1)
        xs.append(t[:3]), rs.append(t[3:6]), ts.append(t[6:9])
    return torch.stack(xs), torch.stack(rs), torch.stack(ts)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of images in [0, 1]."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def evaluate(net, pairs: list[Pair], device: str) -> dict:
    """Mean PSNR of none / residual / network restoration over `pairs` (first coded R~)."""
    from .scene.restore import apply_network

    out = {"none": [], "residual": [], "network": []}
    for p in pairs:
        target = p.degraded + p.residual
        out["none"].append(psnr(p.degraded, target))
        out["residual"].append(psnr(np.clip(p.degraded + p.coded[0], 0, 1), target))
        out["network"].append(psnr(apply_network(net, p.degraded, p.coded[0], device), target))
    return {k: float(np.mean(v)) for k, v in out.items()}


def train(args) -> dict:
    """Build the dataset, train F, save it; returns the training record."""
    import torch

    from .scene.restore_net import build, parameter_count
    from .scene.sideinfo import resolve_device, sample_views

    dev = resolve_device(args.device)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    pairs: list[Pair] = []
    for path in args.scene:
        scene = load_scene(path, args.max_gaussians, args.seed)
        cams = training_cameras(scene, args.views, args.res)
        for q in args.qualities.split(","):
            _log(f"{path}: {scene.count} Gaussians, base layer '{q}', {len(cams)} views")
            base = base_layer(scene, q)
            pairs += render_pairs(scene, base, cams, dev, rng, (args.min_distance, args.max_distance),
                                  args.codings)
    t_data = time.perf_counter() - t0
    eval_pairs: list[Pair] = []
    if args.eval_scene:
        from .render.cameras import orbit_cameras

        scene = load_scene(args.eval_scene, args.eval_max_gaussians, args.seed)
        cams = orbit_cameras(scene.means, n=24, width=args.eval_res, height=args.eval_res)
        side = set(sample_views(len(cams), 0.4).tolist())
        held = [c for i, c in enumerate(cams) if i not in side][::max(1, args.eval_stride)]
        base = base_layer(scene, args.eval_quality)
        eval_pairs = render_pairs(scene, base, held, dev, rng,
                                  (args.eval_distance, args.eval_distance), 1, progress=False)
    net = build(json.loads(args.config) if args.config else None).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, betas=(0.9, 0.9))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps, eta_min=args.lr * 0.01)
    _log(f"dataset: {len(pairs)} views in {t_data:.0f} s; F has {parameter_count(net)} parameters")
    t1 = time.perf_counter()
    before = evaluate(net.eval(), eval_pairs, dev) if eval_pairs else None
    net.train()
    running = None
    for step in range(args.steps):
        if args.time_limit and time.perf_counter() - t1 > args.time_limit:
            _log(f"time limit reached after {step} steps")
            break
        x, r, target = (t.to(dev) for t in sample_batch(pairs, args.batch, args.patch, rng))
        loss = (net(x, r) - target).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 0.1)
        opt.step()
        sched.step()
        value = float(loss.detach())
        running = value if running is None else 0.98 * running + 0.02 * value
        if (step + 1) % args.log_every == 0:
            _log(f"step {step + 1}: L1 {running:.5f} ({time.perf_counter() - t1:.0f} s)")
    steps_done = step + 1 if args.steps else 0
    net.eval()
    record = {"scenes": [Path(s).name for s in args.scene], "views": args.views, "res": args.res,
              "qualities": args.qualities, "max_gaussians": args.max_gaussians,
              "distances": [args.min_distance, args.max_distance], "codings": args.codings,
              "steps": steps_done, "batch": args.batch, "patch": args.patch, "lr": args.lr,
              "device": dev, "data_seconds": round(t_data, 1),
              "train_seconds": round(time.perf_counter() - t1, 1), "config": net.config,
              "parameters": parameter_count(net), "seed": args.seed}
    if eval_pairs:
        record["eval"] = {"scene": Path(args.eval_scene).name, "views": len(eval_pairs),
                          "res": args.eval_res, "quality": args.eval_quality,
                          "distance": args.eval_distance, "psnr_before_training": before,
                          "psnr": evaluate(net, eval_pairs, dev)}
    state = {k: v.detach().cpu().half() if args.half else v.detach().cpu()
             for k, v in net.state_dict().items()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": net.config, "state_dict": state, "record": record}, out)
    record["bytes"] = out.stat().st_size
    return record


def parse_args(argv=None):
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m gscodec.train_restore", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scene", action="append", required=True, help="training scene PLY (repeatable)")
    p.add_argument("--out", required=True, help="output weights file (.pt)")
    p.add_argument("--views", type=int, default=48, help="orbit views per scene")
    p.add_argument("--res", type=int, default=256, help="training render size (square)")
    p.add_argument("--max-gaussians", type=int, default=None, help="random subset per scene")
    p.add_argument("--qualities", default="low,medium", help="base-layer levels to train on")
    p.add_argument("--min-distance", type=float, default=0.7, help="JPEG XL distance range ...")
    p.add_argument("--max-distance", type=float, default=5.0, help="... of the augmentation")
    p.add_argument("--codings", type=int, default=3, help="coded residuals per view")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--config", default=None, help="network config as JSON (default: DEFAULT_CONFIG)")
    p.add_argument("--time-limit", type=float, default=None, help="stop training after this many seconds")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--half", action="store_true", help="store weights as float16 (half the bytes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--eval-scene", default=None, help="held-out scene for the report")
    p.add_argument("--eval-max-gaussians", type=int, default=None)
    p.add_argument("--eval-res", type=int, default=400)
    p.add_argument("--eval-quality", default="medium")
    p.add_argument("--eval-distance", type=float, default=4.0, help="JPEG XL distance (medium preset)")
    p.add_argument("--eval-stride", type=int, default=2, help="use every k-th held-out view")
    return p.parse_args(argv)


def main(argv=None) -> int:
    """Entry point."""
    args = parse_args(argv)
    record = train(args)
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
