"""Conformance: canonical forms of decoded Gaussians and the manifest runner behind gsconform."""
from __future__ import annotations

import hashlib
import json
import shlex
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import errors


def sha256(data: bytes) -> str:
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def canonical_gsi(params: dict) -> bytes:
    """Canonical form of decoded .gsi Gaussians (see conformance/README.md)."""
    n = int(params["means"].shape[0])
    c = int(params["colors"].shape[1]) if n else int(params["channels"])
    head = b"GSIC" + struct.pack("<IIII", int(params["width"]), int(params["height"]), c, n)
    bg = params.get("background")
    arrays = [params["means"], params["scales"], params["angles"], params["colors"],
              np.zeros(c) if bg is None else bg, np.array([params.get("beta", 1.0)])]
    return head + b"".join(np.ascontiguousarray(a, dtype="<f4").tobytes() for a in arrays)


def canonical_gsz(scene) -> bytes:
    """Canonical form of a decoded .gsz base layer: PLY-order float32 rows (see README)."""
    n = scene.count
    rest = np.transpose(scene.sh_rest, (0, 2, 1)).reshape(n, -1)  # channel-major as in the PLY
    cols = [scene.means, scene.sh_dc, rest, scene.opacity.reshape(n, 1), scene.scales, scene.rotations]
    table = np.concatenate([np.asarray(a, dtype=np.float32).reshape(n, -1) for a in cols], axis=1)
    head = b"GSZC" + struct.pack("<II", n, scene.sh_degree)
    return head + np.ascontiguousarray(table, dtype="<f4").tobytes()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8-range images."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


@dataclass
class Result:
    """Outcome of one case."""

    case: str
    ok: bool
    detail: str


class OwnDecoder:
    """The project's decoder, called in-process, so error classes can be checked too."""

    name = "gscodec (in-process)"

    def decode_gsi_params(self, data: bytes) -> dict:
        """Decoded, dequantised .gsi Gaussians."""
        from .image import decode_gaussians

        return decode_gaussians(data)

    def decode_gsi_pixels(self, data: bytes, width: int, height: int) -> np.ndarray:
        """Pixels at the given size."""
        from .image import decode_image

        return decode_image(data, width=width, height=height)

    def decode_gsz(self, data: bytes):
        """Base-layer GaussianScene."""
        from .scene.codec import decode_scene

        return decode_scene(data)

    def expect_error(self, data: bytes, kind: str) -> str | None:
        """Decode invalid data; return the error class name raised, or None if it decoded."""
        try:
            if kind == "gsi":
                from .image import decode_image

                decode_image(data)
            else:
                from .scene.codec import decode_scene

                decode_scene(data)
        except errors.GscodecError as exc:
            return type(exc).__name__
        return None


class CommandDecoder:
    """Any decoder given as a command template with {in} and {out} (and optionally {width} {height})."""

    def __init__(self, template: str, timeout: float = 120.0) -> None:
        self.template = template
        self.timeout = timeout
        self.name = template

    def _run(self, data: bytes, suffix: str, in_suffix: str, **fields) -> tuple[int, Path, str]:
        tmp = Path(tempfile.mkdtemp(prefix="gsconform-"))
        src = tmp / f"in{in_suffix}"
        src.write_bytes(data)
        out = tmp / f"out{suffix}"
        cmd = self.template.format(**{"in": shlex.quote(str(src)), "out": shlex.quote(str(out)), **fields})
        try:
            r = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=self.timeout)
            lines = (r.stderr or r.stdout).strip().splitlines()
            return r.returncode, out, lines[-1] if lines else ""
        except subprocess.TimeoutExpired:
            return -999, out, f"timed out after {self.timeout:.0f} s"

    def decode_gsi_params(self, data: bytes) -> dict | None:
        """External decoders are not asked for parameters."""
        return None

    def decode_gsi_pixels(self, data: bytes, width: int, height: int) -> np.ndarray | None:
        """Run the command to a PNG; None when it cannot render at this size."""
        from .imageio import read_image

        sized = "{width}" in self.template or "{height}" in self.template
        rc, out, msg = self._run(data, ".png", ".gsi", width=width, height=height)
        if rc != 0 or not out.exists():
            raise RuntimeError(f"decoder failed (exit {rc}): {msg}")
        img = read_image(out)
        if not sized and (img.shape[1], img.shape[0]) != (width, height):
            return None
        return img

    def decode_gsz(self, data: bytes):
        """Run the command to a PLY and read it back."""
        from .scene import read_ply

        rc, out, msg = self._run(data, ".ply", ".gsz")
        if rc != 0 or not out.exists():
            raise RuntimeError(f"decoder failed (exit {rc}): {msg}")
        return read_ply(out)

    def expect_error(self, data: bytes, kind: str) -> str | None:
        """Invalid input must give a clean non-zero exit (not a crash or a hang)."""
        rc, _, msg = self._run(data, ".png" if kind == "gsi" else ".ply", "." + kind, width=16, height=16)
        if rc == 0:
            return None
        if rc < 0:
            return f"crash or hang ({msg})"
        return "nonzero-exit"


def _check_render(img: np.ndarray, ref: np.ndarray, spec: dict) -> tuple[bool, str]:
    if img.shape != ref.shape:
        return False, f"render shape {img.shape} != {ref.shape}"
    p = psnr(img, ref)
    mx = int(np.abs(img.astype(np.int32) - ref.astype(np.int32)).max())
    ok = p >= spec["min_psnr"] and mx <= spec["max_abs"]
    return ok, f"{spec['width']}x{spec['height']} PSNR {p:.1f} dB (min {spec['min_psnr']}), max err {mx} (max {spec['max_abs']})"


def run_case(case: dict, root: Path, dec, render_scene: Callable | None = None) -> Result:
    """Run one manifest case against a decoder."""
    from .imageio import read_image

    data = (root / case["file"]).read_bytes()
    if sha256(data) != case["sha256"]:
        return Result(case["id"], False, "vector file does not match its checksum")
    if not case.get("valid", True):
        got = dec.expect_error(data, case["kind"])
        if got is None:
            return Result(case["id"], False, f"decoded although invalid (expected {case['error']})")
        if isinstance(dec, OwnDecoder) and got != case["error"]:
            return Result(case["id"], False, f"raised {got}, expected {case['error']}")
        if got.startswith("crash"):
            return Result(case["id"], False, got)
        return Result(case["id"], True, f"rejected ({got})")
    notes = []
    if case["kind"] == "gsi":
        params = dec.decode_gsi_params(data)
        if params is not None:
            got = sha256(canonical_gsi(params))
            if got != case["canonical_sha256"]:
                return Result(case["id"], False, "canonical Gaussians differ from the expected ones")
            notes.append("canonical ok")
        for spec in case["renders"]:
            img = dec.decode_gsi_pixels(data, spec["width"], spec["height"])
            if img is None:
                notes.append(f"{spec['width']}x{spec['height']} not tested")
                continue
            ok, msg = _check_render(img, read_image(root / spec["file"]), spec)
            if not ok:
                return Result(case["id"], False, msg)
            notes.append(msg)
    else:
        scene = dec.decode_gsz(data)
        if sha256(canonical_gsz(scene)) != case["canonical_sha256"]:
            return Result(case["id"], False, "canonical Gaussians differ from the expected ones")
        notes.append("canonical ok")
        if render_scene is not None:
            for spec in case["renders"]:
                img = render_scene(scene, spec["camera"])
                ok, msg = _check_render(img, read_image(root / spec["file"]), spec)
                if not ok:
                    return Result(case["id"], False, msg)
                notes.append(msg)
    return Result(case["id"], True, "; ".join(notes))


def render_scene_uint8(scene, cam: dict) -> np.ndarray:
    """Render a scene at a manifest camera with the reference CPU renderer, as uint8."""
    import torch

    from .render.cameras import Camera
    from .render.scene3d import render_gaussian_scene

    camera = Camera(viewmat=np.array(cam["viewmat"], dtype=np.float32), K=np.array(cam["K"], dtype=np.float32),
                    width=int(cam["width"]), height=int(cam["height"]), name=cam.get("name", ""))
    with torch.no_grad():
        img = render_gaussian_scene(scene, camera, backend="torch", device="cpu")
    return (img.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)


def run_manifest(manifest_path: Path, dec, select: str | None = None, log: Callable[[str], None] = print,
                 renders: bool = True) -> list[Result]:
    """Run every case (or those whose id contains `select`)."""
    manifest = json.loads(manifest_path.read_text())
    root = manifest_path.parent
    results = []
    for case in manifest["cases"]:
        if select and select not in case["id"]:
            continue
        t0 = time.perf_counter()
        try:
            res = run_case(case, root, dec, render_scene_uint8 if renders else None)
        except errors.GscodecError as exc:
            res = Result(case["id"], False, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a conformance failure, not a runner crash
            res = Result(case["id"], False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        log(f"{'PASS' if res.ok else 'FAIL'}  {res.case}  ({time.perf_counter() - t0:.2f} s)  {res.detail}")
        results.append(res)
    return results
