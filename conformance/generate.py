#!/usr/bin/env python3
"""Regenerate the conformance vectors, expected outputs and manifest.json.

    python conformance/generate.py

Deterministic: the same code produces the same bytes. Run it whenever the bitstream changes
(see spec/container.md, section 1.2) and commit the result with the change.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import zlib
from importlib import resources
from pathlib import Path

import numpy as np

from gscodec.conformance import OwnDecoder, canonical_gsi, canonical_gsz, render_scene_uint8, sha256
from gscodec.container import MAJOR, Chunk, read_container, write_container
from gscodec.container.byteio import ByteReader, ByteWriter
from gscodec.imageio import decode_image_bytes, encode_image_bytes

ROOT = Path(__file__).resolve().parent
GSI_TOL = {"min_psnr": 40.0, "max_abs": 3}
GSZ_TOL = {"min_psnr": 40.0, "max_abs": 12}


def _write(rel: str, data: bytes) -> str:
    p = ROOT / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return rel


# -- images -------------------------------------------------------------------------------------
def synthetic_image(h: int, w: int, c: int, seed: int) -> np.ndarray:
    """Smooth gradients, a disc and an edge: content with both flat and busy parts."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    chans = []
    for k in range(c):
        a, b = rng.uniform(-1, 1, 2)
        base = 128 + 90 * np.sin(a * x / max(w, 1) * 6 + b * y / max(h, 1) * 6 + k)
        disc = ((x - w * 0.6) ** 2 + (y - h * 0.4) ** 2) < (min(h, w) * 0.25) ** 2
        base = np.where(disc, 255 - base * 0.5, base)
        base = np.where(x > w * 0.8, base * 0.4, base)
        chans.append(base)
    return np.clip(np.stack(chans, -1), 0, 255).astype(np.uint8)


def parrot(h: int, w: int) -> np.ndarray:
    """The built-in Kodak crop, box-downscaled (deterministic)."""
    img = decode_image_bytes(resources.files("gscodec.data").joinpath("kodim23_crop.png").read_bytes())
    fy, fx = img.shape[0] // h, img.shape[1] // w
    return img[: h * fy, : w * fx].reshape(h, fy, w, fx, 3).mean((1, 3)).round().astype(np.uint8)


GSI_CASES = [
    # id, image factory, encode options, what it tests
    ("gsi-rgb-32x24-cr4", lambda: synthetic_image(24, 32, 3, 1), {"ratio": 4}, "RGB, low ratio, many Gaussians"),
    ("gsi-rgb-32x24-cr20", lambda: synthetic_image(24, 32, 3, 1), {"ratio": 20}, "RGB, medium ratio"),
    ("gsi-rgb-64x48-cr50", lambda: parrot(48, 64), {"ratio": 50}, "RGB photo content, high ratio"),
    ("gsi-rgb-64x48-bytes120", lambda: parrot(48, 64), {"max_bytes": 120},
     "hard byte cap, extreme ratio: super-Gaussian kernel (kernel 8, beta 2)"),
    ("gsi-grey-40x30-cr8", lambda: synthetic_image(30, 40, 1, 2), {"ratio": 8}, "greyscale"),
    ("gsi-grey-17x5-bytes120", lambda: synthetic_image(5, 17, 1, 3), {"max_bytes": 120}, "tiny, odd, very wide"),
    ("gsi-rgb-2x2-bytes110", lambda: synthetic_image(2, 2, 3, 4), {"max_bytes": 110}, "smallest legal image"),
    ("gsi-rgb-9x33-cr6", lambda: synthetic_image(33, 9, 3, 5), {"ratio": 6}, "odd, tall"),
    ("gsi-rgb-96x64-cr8", lambda: parrot(64, 96), {"ratio": 8}, "larger photo content, explicit-count tables"),
]


def gsi_vectors(cases: list) -> list[bytes]:
    from gscodec.image import decode_gaussians, decode_image, encode_image

    blobs = []
    for cid, make, opts, what in GSI_CASES:
        img = make()
        blob = encode_image(img, steps=40, seed=0, **opts)
        blobs.append(blob)
        h, w = img.shape[:2]
        params = decode_gaussians(blob)
        renders = []
        for rw, rh in ((w, h), (2 * w, 2 * h), (max(1, w // 2), max(1, h // 2))):
            px = decode_image(blob, width=rw, height=rh)
            rel = _write(f"refs/{cid}_{rw}x{rh}.png", encode_image_bytes(px, "png"))
            renders.append({"file": rel, "width": rw, "height": rh, **GSI_TOL})
        cases.append({"id": cid, "kind": "gsi", "valid": True, "file": _write(f"vectors/{cid}.gsi", blob),
                      "sha256": sha256(blob), "tests": what, "gaussians": int(params["count"]),
                      "canonical_sha256": sha256(canonical_gsi(params)), "renders": renders})
    blobs.append(_gsi_legacy_case(cases, blobs[1], GSI_CASES[1], 1,
                                  "no background, no position refinement, Gaussian kernel"))
    blobs.append(_gsi_legacy_case(cases, blobs[2], GSI_CASES[2], 2, "no position refinement, Gaussian kernel"))
    blobs.append(_gsi_legacy_case(cases, blobs[3], GSI_CASES[3], 3,
                                  "no kernel field: the Gaussians of a sparse vector drawn with the Gaussian kernel"))
    return blobs


def _gsi_legacy_case(cases: list, blob: bytes, case, major: int, what: str) -> bytes:
    """The Gaussians of a vector in an older syntax: Gaussian kernel; below 3 re-quantised without refinement."""
    from dataclasses import replace

    from gscodec.image import decode_gaussians, decode_image
    from gscodec.image.codec import CHUNK_TYPE, coding_order, encode_payload
    from gscodec.image.quantize import GAUSSIAN_KERNEL, quantize

    g = decode_gaussians(blob)
    spec = replace(g["spec"], kernel=GAUSSIAN_KERNEL)
    ints = g["ints"]
    if major < 3:
        spec = replace(spec, pos_refine=0, pos_rel=0)
        ints = quantize({"means": g["means"], "log2_scales": g["log2_scales"], "angles": g["angles"],
                         "colors": g["coded_colors"]}, spec, (g["height"], g["width"]))
        ints = {k: v[coding_order(ints)] for k, v in ints.items()}
    bg = g["background_ints"] if major >= 2 else None
    payload = encode_payload(ints, spec, g["height"], g["width"], g["channels"], bg, major=major)
    old = write_container("gsi", [Chunk(CHUNK_TYPE, payload)], major=major)
    cid = case[0].replace("gsi-", f"gsi-v{major}-")
    params = decode_gaussians(old)
    w, h = params["width"], params["height"]
    px = decode_image(old)
    rel = _write(f"refs/{cid}_{w}x{h}.png", encode_image_bytes(px, "png"))
    cases.append({"id": cid, "kind": "gsi", "valid": True, "file": _write(f"vectors/{cid}.gsi", old),
                  "sha256": sha256(old), "tests": f"version {major}.0 file ({what}): still decoded",
                  "gaussians": int(params["count"]), "canonical_sha256": sha256(canonical_gsi(params)),
                  "renders": [{"file": rel, "width": w, "height": h, **GSI_TOL}]})
    return old


# -- scenes -------------------------------------------------------------------------------------
def synthetic_scene(n: int, degree: int, seed: int):
    """A blob of Gaussians with smooth colours and some duplicated positions."""
    from gscodec.scene.model import GaussianScene

    rng = np.random.default_rng(seed)
    means = rng.normal(size=(n, 3)).astype(np.float32) * np.float32(0.6)
    means[: n // 20] = means[n // 20: 2 * (n // 20)]  # duplicates
    k = (degree + 1) ** 2 - 1
    base = np.tanh(means)
    return GaussianScene(
        means=means,
        sh_dc=(base * 1.5 + 0.1 * rng.normal(size=(n, 3))).astype(np.float32),
        sh_rest=(0.15 * rng.normal(size=(n, k, 3)) * np.repeat(base[:, :1, None], k, 1)).astype(np.float32),
        opacity=(rng.normal(size=n) * 2).astype(np.float32),
        scales=(rng.normal(size=(n, 3)) * 0.4 - 3.0).astype(np.float32),
        rotations=rng.normal(size=(n, 4)).astype(np.float32),
    )


def test_cameras() -> list[dict]:
    from gscodec.render.cameras import orbit_cameras

    cams = orbit_cameras(np.random.default_rng(0).normal(size=(500, 3)) * 0.6, n=2, width=48, height=40)
    return [{"viewmat": c.viewmat.tolist(), "K": c.K.tolist(), "width": c.width, "height": c.height,
             "name": f"view{i}"} for i, c in enumerate(cams)]


GSZ_CASES = [
    ("gsz-deg0-low", 0, "low", 400, {}, "SH degree 0, low quality"),
    ("gsz-deg1-medium", 1, "medium", 400, {}, "SH degree 1, medium quality"),
    ("gsz-deg2-high", 2, "high", 400, {}, "SH degree 2, high quality"),
    ("gsz-deg3-medium", 3, "medium", 600, {}, "SH degree 3, SH codebook and direct paths"),
    ("gsz-deg3-low", 3, "low", 300, {}, "SH degree 3, low quality"),
    ("gsz-deg0-multigroup", 0, "medium", 700, {"group_size": 256}, "several SGRP groups"),
    ("gsz-deg1-transform", 1, "medium", 700, {}, "SH transform (a group of at least 8 D^2 = 648 Gaussians)"),
    ("gsz-v1-deg3-medium", 3, "medium", 600, {"major": 1}, "version 1.0 file (no SH transform field): still decoded"),
]


def gsz_vectors(cases: list) -> list[bytes]:
    from gscodec.scene import codec
    from gscodec.scene.enhanced import encode_scene_full

    cams = test_cameras()
    blobs = []
    for cid, deg, q, n, opts, what in GSZ_CASES:
        scene = synthetic_scene(n, deg, seed=deg * 10 + n)
        blob = codec.encode_scene(scene, quality=q, **opts)
        blobs.append(blob)
        cases.append(_gsz_case(cid, blob, what, cams))
    # with side information: orbit views at a small size
    from gscodec.render.cameras import Camera

    scene = synthetic_scene(300, 1, seed=99)
    views = [Camera(viewmat=np.array(c["viewmat"], np.float32), K=np.array(c["K"], np.float32),
                    width=c["width"], height=c["height"], name=c["name"]) for c in cams]
    blob = encode_scene_full(scene, quality="medium", cameras=views, side_views=1.0,
                             residual_quality="medium", device="cpu", seed=0)
    blobs.append(blob)
    cases.append(_gsz_case("gsz-deg1-sideinfo", blob, "side information chunks (vhdr, vres), skipped by base decoders",
                           cams))
    return blobs


def _gsz_case(cid: str, blob: bytes, what: str, cams: list[dict]) -> dict:
    scene = OwnDecoder().decode_gsz(blob)
    renders = []
    for cam in cams:
        img = render_scene_uint8(scene, cam)
        rel = _write(f"refs/{cid}_{cam['name']}.png", encode_image_bytes(img, "png"))
        renders.append({"file": rel, "camera": cam, "width": cam["width"], "height": cam["height"], **GSZ_TOL})
    return {"id": cid, "kind": "gsz", "valid": True, "file": _write(f"vectors/{cid}.gsz", blob),
            "sha256": sha256(blob), "tests": what, "gaussians": scene.count,
            "canonical_sha256": sha256(canonical_gsz(scene)), "renders": renders}


# -- invalid vectors ----------------------------------------------------------------------------
def reframe(blob: bytes, edit, major: int | None = None) -> bytes:
    """Rebuild a file with `edit(list[Chunk]) -> list[Chunk]` applied, CRCs valid."""
    c = read_container(blob)
    chunks = [Chunk(ch.type, ch.data) for ch in c.chunks if ch.type not in (b"GEND", b"meta")]
    out = write_container(c.kind, edit(chunks), metadata=c.metadata or None)
    if major is not None:
        hdr = out[:8] + bytes([major, 0])
        first = read_container(out).chunks[0]
        r = ByteReader(out[first.offset + 4:])
        n = r.varint()
        end = first.offset + 4 + r.pos + n
        crc = zlib.crc32(hdr + out[10:end]).to_bytes(4, "little")
        out = hdr + out[10:end] + crc + out[end + 4:]
    return out


def replace_chunk(ctype: bytes, fn):
    """An edit that rewrites the data of every chunk of one type."""
    return lambda chunks: [Chunk(c.type, fn(c.data)) if c.type == ctype else c for c in chunks]


def gsi_header(width: int, height: int, tail: bytes) -> bytes:
    """An IGAU payload starting with the given size, followed by `tail`."""
    return ByteWriter().varint(width).varint(height).raw(tail).getvalue()


def split_gsi_size(data: bytes) -> tuple[int, int, bytes]:
    r = ByteReader(data)
    w, h = r.varint(), r.varint()
    return w, h, r.rest()


def gsz_count_edit(data: bytes, count: int) -> bytes:
    r = ByteReader(data)
    r.varint()
    return ByteWriter().varint(count).raw(r.rest()).getvalue()


def invalid_vectors(cases: list, gsi: bytes, gsz: bytes) -> None:
    dec = OwnDecoder()
    made = []
    for kind, blob in (("gsi", gsi), ("gsz", gsz)):
        c = read_container(blob)
        payload = c.chunks[-2]
        made += [
            (f"{kind}-trunc-signature", kind, blob[:5], {"TruncatedError"}, "truncated inside the signature"),
            (f"{kind}-trunc-version", kind, blob[:9], {"TruncatedError"}, "truncated inside the version"),
            (f"{kind}-trunc-chunk-header", kind, blob[:c.chunks[1].offset + 2], {"TruncatedError"},
             "truncated inside a chunk header"),
            (f"{kind}-trunc-payload", kind, blob[:payload.offset + payload.length // 2 + 3], {"TruncatedError"},
             "truncated inside the payload"),
            (f"{kind}-trunc-no-end", kind, blob[:-9], {"TruncatedError"}, "end chunk missing"),
            (f"{kind}-bad-crc", kind, _flip(blob, payload.offset + 6), {"CorruptError"}, "CRC mismatch"),
            (f"{kind}-bad-signature", kind, b"\x89GSX" + blob[4:], {"FormatError"}, "unknown signature"),
            (f"{kind}-text-mode", kind, blob[:4] + b"\n" + blob[6:], {"FormatError"},
             "signature damaged by a text-mode transfer"),
            (f"{kind}-major-{MAJOR[kind] + 1}", kind, reframe(blob, lambda ch: ch, major=MAJOR[kind] + 1),
             {"VersionError"}, "newer major version"),
            (f"{kind}-unknown-critical", kind, reframe(blob, lambda ch: ch[:1] + [Chunk(b"Xfut", b"?")] + ch[1:]),
             {"UnsupportedError"}, "unknown critical chunk"),
            (f"{kind}-garbage-after-end", kind, blob + b"\0\0", {"CorruptError"}, "bytes after the end chunk"),
        ]
    made += [
        ("gsi-absurd-size", "gsi", reframe(gsi, replace_chunk(b"IGAU", lambda d: gsi_header(65535, 65535,
                                                                                          split_gsi_size(d)[2]))),
         {"LimitError"}, "absurd dimensions"),
        ("gsi-size-over-cap", "gsi", reframe(gsi, replace_chunk(b"IGAU", lambda d: gsi_header(70000, 4,
                                                                                             split_gsi_size(d)[2]))),
         {"LimitError"}, "width above the per-side cap"),
        ("gsi-size-1px", "gsi", reframe(gsi, replace_chunk(b"IGAU", lambda d: gsi_header(1, 24, split_gsi_size(d)[2]))),
         {"CorruptError"}, "1-pixel-wide image"),
        ("gsi-payload-cut", "gsi", reframe(gsi, replace_chunk(b"IGAU", lambda d: d[: len(d) * 2 // 3])),
         {"CorruptError", "TruncatedError"}, "payload shorter than its declared content (inconsistent lengths)"),
        ("gsi-payload-extra", "gsi", reframe(gsi, replace_chunk(b"IGAU", lambda d: d + b"\0\0\0")),
         {"CorruptError"}, "payload longer than its declared content (inconsistent lengths)"),
        ("gsi-no-payload", "gsi", reframe(gsi, lambda ch: [c for c in ch if c.type != b"IGAU"]),
         {"CorruptError"}, "required chunk missing"),
        ("gsz-zero-gaussians", "gsz", reframe(gsz, replace_chunk(b"SHDR", lambda d: gsz_count_edit(d, 0))),
         {"CorruptError"}, "zero Gaussians"),
        ("gsz-absurd-count", "gsz", reframe(gsz, replace_chunk(b"SHDR", lambda d: gsz_count_edit(d, 1 << 40))),
         {"LimitError", "CorruptError"}, "absurd Gaussian count"),
        ("gsz-count-mismatch", "gsz", reframe(gsz, replace_chunk(b"SHDR", lambda d: gsz_count_edit(d, 5))),
         {"CorruptError"}, "header count inconsistent with the groups"),
        ("gsz-group-cut", "gsz", reframe(gsz, replace_chunk(b"SGRP", lambda d: d[: len(d) // 2])),
         {"CorruptError", "TruncatedError", "LimitError"}, "group payload cut (inconsistent lengths)"),
        ("gsz-no-groups", "gsz", reframe(gsz, lambda ch: [c for c in ch if c.type != b"SGRP"]),
         {"CorruptError"}, "groups missing"),
    ]
    for cid, kind, data, allowed, what in made:
        got = dec.expect_error(data, kind)
        if got not in allowed:
            raise SystemExit(f"{cid}: decoder raised {got}, expected one of {sorted(allowed)}")
        cases.append({"id": cid, "kind": kind, "valid": False, "file": _write(f"invalid/{cid}.{kind}", data),
                      "sha256": sha256(data), "error": got, "tests": what})


def _flip(b: bytes, i: int) -> bytes:
    x = bytearray(b)
    x[i] ^= 0x10
    return bytes(x)


def main() -> None:
    for sub in ("vectors", "refs", "invalid"):
        shutil.rmtree(ROOT / sub, ignore_errors=True)
    cases: list[dict] = []
    gsi = gsi_vectors(cases)
    gsz = gsz_vectors(cases)
    invalid_vectors(cases, gsi[1], gsz[1])
    manifest = {"format": 1, "spec_version": {k: f"{v}.0" for k, v in MAJOR.items()}, "cases": cases}
    (ROOT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum((ROOT / c["file"]).stat().st_size for c in cases)
    print(f"{len(cases)} cases, {total} bytes of vectors; manifest sha256 "
          f"{hashlib.sha256((ROOT / 'manifest.json').read_bytes()).hexdigest()[:16]}")


if __name__ == "__main__":
    main()
