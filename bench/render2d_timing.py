"""Time the 2D Gaussian renderers (torch and numpy) and report their peak memory.

Each case runs in its own subprocess so that the peak resident memory belongs to that
case alone. Gaussians are synthetic: uniform positions, isotropic-ish scales around the
SmartSplat base scale sqrt(HW/(N pi))/3 (log-normal, sigma 0.4, per axis), random angles.

    python bench/render2d_timing.py [--threads 2] [--repeat 3] [--quick] [--beta 2]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CASES = [(100_000, 1080, 1920), (150_000, 4320, 7680)]

CHILD = r"""
import json, math, resource, sys, time
import numpy as np
impl, n, h, w, threads, repeat, grad, beta = sys.argv[1:9]
n, h, w, threads, repeat, grad, beta = int(n), int(h), int(w), int(threads), int(repeat), grad == "1", float(beta)
rng = np.random.default_rng(0)
base = math.sqrt(h * w / (n * math.pi)) / 3
means = (rng.random((n, 2)) * [w, h]).astype(np.float32)
scales = (base * np.exp(rng.normal(0, 0.4, (n, 2)))).astype(np.float32)
angles = rng.uniform(0, math.pi, n).astype(np.float32)
colors = (rng.random((n, 3)) * 0.3).astype(np.float32)
if impl == "numpy":
    from gscodec.render.image2d_np import render_image_np
    run = lambda: render_image_np(means, scales, angles, colors, (h, w), beta=beta)
else:
    import torch
    torch.set_num_threads(threads)
    from gscodec.render.image2d import render_image
    dev = "cuda" if impl == "cuda" else "cpu"
    args = [torch.from_numpy(a).to(dev) for a in (means, scales, angles, colors)]
    if grad:
        args = [a.requires_grad_() for a in args]
        def run():
            render_image(*args, (h, w), beta=beta).square().mean().backward()
            if dev == "cuda":
                torch.cuda.synchronize()
    else:
        def run():
            with torch.no_grad():
                out = render_image(*args, (h, w), beta=beta)
            if dev == "cuda":
                torch.cuda.synchronize()
            return out
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
walls, cpus = [], []
for _ in range(repeat):
    t0, c0 = time.perf_counter(), time.process_time()
    run()
    walls.append(time.perf_counter() - t0)
    cpus.append(time.process_time() - c0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
res = {"wall": min(walls), "cpu": min(cpus), "peak_rss_mib": peak / 1024,
       "extra_rss_mib": (peak - rss0) / 1024}
if impl == "cuda":
    res["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
print(json.dumps(res))
"""


def run_case(impl: str, n: int, h: int, w: int, threads: int, repeat: int, grad: bool,
             beta: float = 2.0) -> dict:
    """Run one timing case in a fresh interpreter and return its measurements."""
    out = subprocess.run([sys.executable, "-c", CHILD, impl, str(n), str(h), str(w), str(threads),
                          str(repeat), "1" if grad else "0", str(beta)], capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Print 2D render timings and peak memory for the standard cases."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--repeat", type=int, default=3, help="runs per case (best is reported)")
    ap.add_argument("--quick", action="store_true", help="only the 1080p case")
    ap.add_argument("--beta", type=float, default=2.0,
                    help="kernel exponent (2: the .gsi 4.0 encoder's at extreme ratios, 1: the Gaussian)")
    args = ap.parse_args()
    impls = ["torch", "numpy"]
    try:
        import torch
        if torch.cuda.is_available():
            impls.append("cuda")
    except ImportError:
        impls = ["numpy"]
    cases = CASES[:1] if args.quick else CASES
    print(f"{'impl':6s} {'mode':8s} {'N':>8s} {'size':>10s} {'wall s':>8s} {'cpu s':>8s} "
          f"{'peak RSS MiB':>13s} {'+RSS MiB':>9s}")
    for n, h, w in cases:
        for impl in impls:
            for grad in ([False, True] if impl != "numpy" and (h * w < 4e6) else [False]):
                r = run_case(impl, n, h, w, args.threads, args.repeat, grad, args.beta)
                mode = "fwd+bwd" if grad else "forward"
                if "error" in r:
                    print(f"{impl:6s} {mode:8s} {n:8d} {w:>5d}x{h:<5d} error: {r['error']}")
                    continue
                extra = f" gpu peak {r['gpu_peak_mib']:.0f} MiB" if "gpu_peak_mib" in r else ""
                print(f"{impl:6s} {mode:8s} {n:8d} {w:>5d}x{h:<5d}{r['wall']:8.3f} {r['cpu']:8.3f} "
                      f"{r['peak_rss_mib']:13.0f} {r['extra_rss_mib']:9.0f}{extra}")


if __name__ == "__main__":
    main()
