"""Renderer benchmark: CPU (and CUDA when present) times and peak memory, side by side.

    python bench/render.py            # every case, one subprocess per case
    python bench/render.py --case X   # one case, prints one JSON line (used internally)

Rows: 2D image rendering (gscodec.render.image2d torch / image2d_np numpy) of 100,000
Gaussians at 1920x1080 and 150,000 at 7680x4320; 3D rendering of
../shared/data/scenes/playbot_lod2.ply at 800x800 (forward, and forward+backward as used by
refinement). Peak memory is the resident-set high-water mark of the case's process above its
resident size just before the timed calls (Linux /proc, reset with clear_refs), or
torch.cuda.max_memory_allocated on the GPU. Times are the best of the timed runs after one
warm-up run. The machine is shared: the load average is printed next to the table.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCENE = REPO.parent / "shared" / "data" / "scenes" / "playbot_lod2.ply"
CASES = [
    # name, kind, device, detail
    ("2d-torch-1080p", "2d", "cpu", {"impl": "torch", "n": 100_000, "size": (1080, 1920)}),
    ("2d-numpy-1080p", "2d", "cpu", {"impl": "numpy", "n": 100_000, "size": (1080, 1920)}),
    ("2d-torch-8k", "2d", "cpu", {"impl": "torch", "n": 150_000, "size": (4320, 7680)}),
    ("2d-numpy-8k", "2d", "cpu", {"impl": "numpy", "n": 150_000, "size": (4320, 7680)}),
    ("3d-torch-800", "3d", "cpu", {"backend": "torch", "grad": False}),
    ("3d-torch-800-fwd+bwd", "3d", "cpu", {"backend": "torch", "grad": True}),
    ("2d-torch-1080p-cuda", "2d", "cuda", {"impl": "torch", "n": 100_000, "size": (1080, 1920)}),
    ("2d-torch-8k-cuda", "2d", "cuda", {"impl": "torch", "n": 150_000, "size": (4320, 7680)}),
    ("3d-gsplat-800-cuda", "3d", "cuda", {"backend": "gsplat", "grad": False}),
    ("3d-gsplat-800-fwd+bwd-cuda", "3d", "cuda", {"backend": "gsplat", "grad": True}),
    ("3d-torch-800-cuda", "3d", "cuda", {"backend": "torch", "grad": False}),
]


class Skip(Exception):
    """The case cannot run here (module, data or device missing)."""


# ----------------------------------------------------------------------------- memory


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


class PeakMemory:
    """Peak memory of the timed section: RSS high-water mark on CPU, allocator peak on CUDA."""

    def __init__(self, device: str):
        self.device = device

    def __enter__(self):
        if self.device == "cuda":
            import torch
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return self
        try:    # reset VmHWM so setup allocations do not count
            Path("/proc/self/clear_refs").write_text("5")
            self.resettable = True
        except OSError:
            self.resettable = False
        self.base = _status_kib("VmRSS") or 0
        self.base_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return self

    def __exit__(self, *exc):
        if self.device == "cuda":
            import torch
            torch.cuda.synchronize()
            self.peak_mib = (torch.cuda.max_memory_allocated() - self.base) / 2 ** 20
            return
        hwm = _status_kib("VmHWM") if self.resettable else None
        if hwm is None:     # no /proc reset: maxrss delta (0 if setup peaked higher)
            hwm = self.base + resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self.base_maxrss
        self.peak_mib = max(0, hwm - self.base) / 1024


# ----------------------------------------------------------------------------- cases


def _sync(device: str) -> None:
    if device == "cuda":
        import torch
        torch.cuda.synchronize()


def _timed(fn, device: str, runs: int) -> tuple[float, float]:
    fn()                                        # warm-up (allocations, lazy imports, kernels)
    _sync(device)
    times = []
    with PeakMemory(device) as mem:
        for _ in range(runs):
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times.append(time.perf_counter() - t0)
    return min(times), mem.peak_mib


def case_2d(device: str, impl: str, n: int, size: tuple[int, int]) -> dict:
    import numpy as np
    import torch
    h, w = size
    rng = np.random.default_rng(0)
    # Scales sized so the Gaussians tile the frame (as a fitted image's do): sigma around
    # half the side of the area per Gaussian, log-normally spread.
    base = 0.5 * math.sqrt(h * w / n)
    means = (rng.random((n, 2)) * [w, h]).astype(np.float32)
    scales = (base * np.exp(rng.normal(0.0, 0.5, (n, 2)))).astype(np.float32)
    angles = (rng.random(n) * math.pi).astype(np.float32)
    colors = rng.random((n, 3)).astype(np.float32)
    if impl == "numpy":
        try:
            from gscodec.render.image2d_np import render_image_np
        except ImportError as e:
            raise Skip(f"gscodec.render.image2d_np missing ({e})") from None
        fn = lambda: render_image_np(means, scales, angles, colors, (h, w))
    else:
        try:
            from gscodec.render.image2d import render_image
        except ImportError as e:
            raise Skip(f"gscodec.render.image2d missing ({e})") from None
        t = [torch.from_numpy(a).to(device) for a in (means, scales, angles, colors)]
        fn = lambda: render_image(*t, (h, w))
    runs = 2 if h * w > 10_000_000 else 3
    with torch.no_grad():
        sec, mib = _timed(fn, device, runs)
    return {"seconds": sec, "peak_mib": mib, "note": f"sigma~{base:.1f}px lognormal"}


def _load_scene():
    if not SCENE.is_file():
        raise Skip(f"{SCENE} not present")
    try:
        from gscodec.scene.ply import read_ply
        return read_ply(SCENE)
    except ImportError:
        import numpy as np
        import plyfile
        from gscodec.scene.model import GaussianScene
        v = plyfile.PlyData.read(str(SCENE))["vertex"]
        col = lambda names: np.stack([np.asarray(v[c], np.float32) for c in names], 1)
        rest = sorted((p.name for p in v.properties if p.name.startswith("f_rest_")),
                      key=lambda s: int(s.split("_")[-1]))
        k = len(rest) // 3
        return GaussianScene(col(["x", "y", "z"]), col(["f_dc_0", "f_dc_1", "f_dc_2"]),
                             col(rest).reshape(-1, 3, k).transpose(0, 2, 1).copy(),
                             col(["opacity"])[:, 0], col(["scale_0", "scale_1", "scale_2"]),
                             col(["rot_0", "rot_1", "rot_2", "rot_3"]))


def case_3d(device: str, backend: str, grad: bool) -> dict:
    import torch
    from gscodec.render.cameras import orbit_cameras
    from gscodec.render.scene3d import activate_scene, gsplat_available, render_scene
    if backend == "gsplat" and not gsplat_available(device):
        raise Skip("gsplat not importable")
    scene = _load_scene()
    cams = orbit_cameras(scene.means, n=8, width=800, height=800)
    views = [cams[0], cams[3], cams[6]]
    params = activate_scene(scene, device)
    if grad:
        params = [p.clone().requires_grad_(True) for p in params]
    state = {"i": 0}

    def fn():
        cam = views[state["i"] % len(views)]
        state["i"] += 1
        if grad:
            for p in params:
                p.grad = None
            render_scene(*params, cam, backend=backend).sum().backward()
        else:
            with torch.no_grad():
                render_scene(*params, cam, backend=backend)

    sec, mib = _timed(fn, device, runs=3)
    return {"seconds": sec, "peak_mib": mib,
            "note": f"{scene.count} Gaussians, SH {scene.sh_degree}, best of 3 orbit views"}


def run_case(name: str) -> dict:
    """Run one case in this process."""
    _, kind, device, detail = next(c for c in CASES if c[0] == name)
    if device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise Skip("no CUDA device")
    return case_2d(device, **detail) if kind == "2d" else case_3d(device, **detail)


# ----------------------------------------------------------------------------- driver


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", help="run one case and print its JSON result")
    ap.add_argument("--only", default="", help="comma-separated name prefixes to run")
    args = ap.parse_args()
    if args.case:
        try:
            out = run_case(args.case)
        except Skip as e:
            out = {"skip": str(e)}
        print(json.dumps(out))
        return
    import torch
    print(f"# {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"CUDA {'yes: ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no'}")
    print(f"# load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'case':30s} {'device':6s} {'time (s)':>9s} {'peak (MiB)':>11s}  note")
    only = [p for p in args.only.split(",") if p]
    for name, _, device, _ in CASES:
        if only and not any(name.startswith(p) for p in only):
            continue
        proc = subprocess.run([sys.executable, __file__, "--case", name], capture_output=True,
                              text=True, cwd=REPO)
        lines = proc.stdout.strip().splitlines()
        try:
            res = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"{name:30s} {device:6s} {'FAILED':>9s} {'':>11s}  {err[:100]}")
            continue
        if "skip" in res:
            print(f"{name:30s} {device:6s} {'skipped':>9s} {'':>11s}  {res['skip']}")
        else:
            print(f"{name:30s} {device:6s} {res['seconds']:9.3f} {res['peak_mib']:11.1f}  {res['note']}")
    print(f"# load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
