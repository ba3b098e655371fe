"""Decoder-side refinement: re-optimise every Gaussian attribute (count fixed) against
restored images with (1 - lambda) L1 + lambda D-SSIM, lambda = 0.2, Adam and one random
view per step (paper Sec. 4.4). When the base layer's quantiser cells are known (the .gsz
decoder passes them), each attribute moves in units of its own cell and stays within
CELL_BOUND cells of the decoded value; otherwise 3DGS-like absolute learning rates apply.

Defaults: 5000 steps on whole views on CUDA (the paper's setting); on CPU `CPU_STEPS` steps
on `CPU_PATCH` x `CPU_PATCH` crops centred on random content pixels of the views at full
resolution (uniform crops of an object scene land mostly on empty background), so a scene of
~100k Gaussians refines in minutes on 2 cores. Crops, not downscaled views: the renderer's
0.3-pixel dilation is in pixels, so fitting at a lower resolution teaches small Gaussians the
wrong size and opacity (measured on playbot: 2.5 to 6 dB lost at full-resolution held-out views).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..errors import InputError
from ..render.cameras import Camera
from .model import GaussianScene

GPU_STEPS = 5000
CPU_STEPS = 100
CPU_PATCH = 192
LAMBDA_DSSIM = 0.2
# With the base layer's quantiser cells known, every attribute moves in units of its own
# cell: at most CELL_TRAVEL cells over the whole run at Adam's full rate (rate = CELL_TRAVEL /
# steps), never more than CELL_BOUND cells from the decoded value. The original lies within
# half a cell of the decoded value, so larger moves only fit the noise of a few restored views
# (measured on biker, 100 CPU steps: rate 0.05 cell/step -2.1 dB, 0.005 +2.2 dB).
CELL_TRAVEL = 0.5
CELL_BOUND = 1.0
# Adam learning rates per attribute, in the PLY parameterisation (3DGS's values; the
# position rate is relative to the scene extent and decays x0.1 over the run; the 3DGS
# trainer's 1.6e-4 initial rate is for training from scratch, refinement starts 10x lower).
LR = {"means": 1.6e-5, "means_final": 1.6e-6, "sh_dc": 2.5e-3, "sh_rest": 2.5e-3 / 20,
      "opacity": 0.025, "scales": 5e-3, "rotations": 1e-3}


def default_steps(device: str) -> int:
    """Refinement steps when none are given: the paper's 5000 on CUDA, CPU_STEPS on CPU."""
    return GPU_STEPS if device == "cuda" else CPU_STEPS


def default_patch(device: str) -> int | None:
    """Crop side per step: whole views (None) on CUDA, CPU_PATCH on CPU."""
    return None if device == "cuda" else CPU_PATCH


def crop_camera(cam: Camera, x0: int, y0: int, w: int, h: int) -> Camera:
    """The pinhole camera of the pixel window [x0, x0+w) x [y0, y0+h) of `cam`."""
    k = np.array(cam.K, dtype=np.float64, copy=True)
    k[0, 2] -= x0
    k[1, 2] -= y0
    return Camera(cam.viewmat, k, int(w), int(h), cam.name)


def content_pixels(target: np.ndarray, background=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Flat indices of the pixels that differ from the background (all pixels when none do)."""
    t = np.asarray(target, dtype=np.float32)
    diff = np.abs(t - np.asarray(background, np.float32)).max(axis=-1)
    idx = np.flatnonzero(diff > 1.0 / 255.0)
    return idx if idx.size else np.arange(diff.size)


def crop_origin(content: np.ndarray, width: int, height: int, pw: int, ph: int,
                rng: np.random.Generator) -> tuple[int, int]:
    """Top-left corner of a pw x ph crop centred on a random content pixel, kept inside the view."""
    # Uniform crops of an object scene land mostly on empty background, where the loss is
    # already zero; centring on content spends every step where the Gaussians are.
    j = int(content[rng.integers(content.size)])
    cy, cx = divmod(j, width)
    x0 = int(np.clip(cx - pw // 2, 0, width - pw))
    y0 = int(np.clip(cy - ph // 2, 0, height - ph))
    return x0, y0


def _gauss_window(size: int, sigma: float, device, dtype):
    import torch

    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def ssim_map(a, b, window: int = 11, sigma: float = 1.5):
    """Per-pixel SSIM of (N, C, H, W) tensors in [0, 1] (Gaussian window, zero 'same' padding)."""
    import torch.nn.functional as F

    c = a.shape[1]
    g = _gauss_window(window, sigma, a.device, a.dtype)
    pad = window // 2

    def blur(x):
        x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, window), padding=(0, pad), groups=c)
        return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, window, 1), padding=(pad, 0), groups=c)

    mu_a, mu_b = blur(a), blur(b)
    saa = blur(a * a) - mu_a * mu_a
    sbb = blur(b * b) - mu_b * mu_b
    sab = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    return ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a * mu_a + mu_b * mu_b + c1) * (saa + sbb + c2))


def refine_loss(render, target, lam: float = LAMBDA_DSSIM):
    """(1 - lam) L1 + lam (1 - SSIM) of (H, W, 3) tensors."""
    x = render.permute(2, 0, 1)[None]
    y = target.permute(2, 0, 1)[None]
    return (1.0 - lam) * (x - y).abs().mean() + lam * (1.0 - ssim_map(x, y).mean())


def scene_extent(cameras: Sequence[Camera]) -> float:
    """3DGS's camera extent: 1.1 x the largest camera distance from their mean centre."""
    centres = np.stack([c.position for c in cameras])
    d = np.linalg.norm(centres - centres.mean(0), axis=1).max()
    return float(1.1 * d) if d > 0 else 1.0


def _downsample(img: np.ndarray, h: int, w: int):
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).permute(2, 0, 1)[None]
    if t.shape[-2:] != (h, w):
        t = F.interpolate(t, size=(h, w), mode="area")
    return t[0].permute(1, 2, 0).contiguous()


def refine_scene(base: GaussianScene, cameras: Sequence[Camera], targets: Sequence[np.ndarray],
                 steps: int | None = None, *, device: str = "auto", scale: float = 1.0,
                 patch: int | None | str = "auto",
                 background=(0.0, 0.0, 0.0), seed: int = 0, progress: bool = False,
                 lr: dict | None = None, cells: dict | None = None,
                 callback: Callable[[int, float], None] | None = None) -> GaussianScene:
    """Refined copy of `base` fitted to `targets` (restored images at `cameras`).

    cells: per-Gaussian quantiser steps of the base layer (codec.decode_base_cells). With them,
    each attribute moves in units of its own step and at most CELL_BOUND steps from the
    decoded value: the original lies within the quantiser cell, so a few restored views
    cannot pull a Gaussian far from it. Without them, 3DGS-like absolute rates (LR) apply.
    """
    if len(cameras) != len(targets) or not cameras:
        raise InputError("refinement needs one target image per camera (at least one)")
    from .sideinfo import resolve_device

    dev = resolve_device(device)
    n_steps = default_steps(dev) if steps is None else int(steps)
    if n_steps < 0:
        raise InputError(f"refine steps must be >= 0, got {n_steps}")
    if n_steps == 0 or base.count == 0:
        return base
    import torch

    from ..render.scene3d import render_scene

    s = 1.0 if scale is None else float(scale)
    cams = [c if s == 1.0 else c.scaled(s) for c in cameras]
    tgts = [_downsample(t, c.height, c.width).to(dev) for t, c in zip(targets, cams)]
    side = default_patch(dev) if patch == "auto" else patch
    rates = dict(LR, **(lr or {}))
    extent = scene_extent(cameras)
    t = lambda a: torch.tensor(np.ascontiguousarray(a), dtype=torch.float32, device=dev,
                               requires_grad=True)
    start = {"means": base.means, "sh_dc": base.sh_dc, "sh_rest": base.sh_rest,
             "opacity": base.opacity, "scales": base.scales, "rotations": base.rotations}
    if cells is None:
        p = {k: t(v) for k, v in start.items()}
        groups = [{"params": [v], "lr": rates[k] * (extent if k == "means" else 1.0), "name": k}
                  for k, v in p.items() if v.numel()]
        attrs = lambda: p  # noqa: E731
    else:
        as_t = lambda a: torch.as_tensor(np.ascontiguousarray(a, dtype=np.float32), device=dev)  # noqa: E731
        step_t = {k: as_t(cells[k]) for k in start}
        start_t = {k: as_t(v) for k, v in start.items()}
        p = {k: torch.zeros_like(v, requires_grad=True) for k, v in start_t.items()}
        groups = [{"params": [v], "lr": CELL_TRAVEL / n_steps, "name": k} for k, v in p.items() if v.numel()]
        attrs = lambda: {k: start_t[k] + step_t[k] * p[k] for k in p}  # noqa: E731
    opt = torch.optim.Adam(groups, eps=1e-15)
    decay = (rates["means_final"] / rates["means"]) ** (1.0 / max(1, n_steps))
    bg = torch.tensor(background, dtype=torch.float32, device=dev)
    rng = np.random.default_rng(seed)
    it = range(n_steps)
    bar = None
    if progress:
        from tqdm import tqdm
        it = bar = tqdm(it, desc="refine", unit="step", leave=False)
    content = [content_pixels(x.cpu().numpy(), background) for x in tgts] if side is not None else None
    for step in it:
        i = int(rng.integers(len(cams)))
        cam, tgt = cams[i], tgts[i]
        if side is not None and (cam.width > side or cam.height > side):
            pw, ph = min(side, cam.width), min(side, cam.height)
            x0, y0 = crop_origin(content[i], cam.width, cam.height, pw, ph, rng)
            cam, tgt = crop_camera(cam, x0, y0, pw, ph), tgt[y0:y0 + ph, x0:x0 + pw]
        a = attrs()
        sh = torch.cat([a["sh_dc"][:, None, :], a["sh_rest"]], dim=1)
        quats = a["rotations"] / a["rotations"].norm(dim=-1, keepdim=True).clamp_min(1e-12)
        img = render_scene(a["means"], quats, torch.exp(a["scales"]), torch.sigmoid(a["opacity"]),
                           sh, cam, background=bg)
        loss = refine_loss(img, tgt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if cells is not None:
            with torch.no_grad():
                for v in p.values():
                    v.clamp_(-CELL_BOUND, CELL_BOUND)
        for g in opt.param_groups:
            if g["name"] == "means" and cells is None:
                g["lr"] *= decay
        value = float(loss.detach())
        if bar is not None:
            bar.set_postfix(loss=f"{value:.4f}", refresh=False)
        if callback is not None:
            callback(step, value)
    with torch.no_grad():
        out = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in attrs().items()}
    return GaussianScene(out["means"], out["sh_dc"], out["sh_rest"], out["opacity"],
                         out["scales"], out["rotations"])
