#!/usr/bin/env python3
"""Fuzz the decoders with mutations of the conformance vectors for a bounded time.

    python conformance/fuzz.py --seconds 600
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from gscodec.fuzz import fuzz


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=120.0, help="time per format")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    root = Path(__file__).resolve().parent
    cases = json.loads((root / "manifest.json").read_text())["cases"]
    from gscodec.image import decode_gaussians, decode_image
    from gscodec.scene.codec import decode_scene

    def dec_gsi(b: bytes) -> None:
        decode_gaussians(b)
        decode_image(b, width=16)

    total_fail = 0
    for kind, dec in (("gsi", dec_gsi), ("gsz", decode_scene)):
        seeds = [(root / c["file"]).read_bytes() for c in cases if c["kind"] == kind and c.get("valid", True)]
        seeds = [s for s in seeds if len(s) < 200_000]
        rep = fuzz(seeds, dec, seconds=args.seconds, seed=args.seed)
        total_fail += len(rep.failures)
        print(f"{kind}: {rep.tried} inputs tried, {rep.rejected} rejected cleanly, {rep.decoded} decoded, "
              f"{len(rep.failures)} failures")
        for f in rep.failures[:20]:
            print("  ", f)
    raise SystemExit(1 if total_fail else 0)


if __name__ == "__main__":
    main()
