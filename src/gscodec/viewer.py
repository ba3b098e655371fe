"""Viewer-facing API: gscodec.open() reads a file's header now and decodes on demand.

Example, a viewer loop that redraws an image at the window's size::

    import gscodec
    f = gscodec.open("photo.gsi")          # header and metadata only
    while running:
        w, h = window.size()
        window.show(f.render(width=w))     # uint8 (H, W, C), aspect kept

and for a scene::

    s = gscodec.open("scene.gsz")
    g = s.gaussians()                      # numpy arrays, documented below
    cam = gscodec.orbit_cameras(g["means"], n=24)[0]   # or gscodec.load_cameras_json(...)
    frame = s.render(cam)                  # uint8 (H, W, 3)
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .container import read_container, read_file, sniff_kind
from .errors import FormatError


def describe_gsi(container) -> dict:
    """Size, channels and Gaussian count from the start of the IGAU chunk (no payload decoding)."""
    from .container.byteio import ByteReader
    from .errors import CorruptError

    r = ByteReader(container.require(b"IGAU"), "IGAU chunk")
    width, height, mode, n = r.varint(1 << 16), r.varint(1 << 16), r.u8(), r.varint(1 << 28)
    if mode not in (0, 1):
        raise CorruptError(f"unknown colour mode {mode}")
    return {"width": width, "height": height, "channels": 1 if mode == 0 else 3, "gaussians": n}


class GsiFile:
    """An opened .gsi image: header now, Gaussians and pixels on demand (no torch needed)."""

    kind = "gsi"

    def __init__(self, data: bytes, name: str) -> None:
        self._data = data
        self.name = name
        self.container = read_container(data, "gsi")
        self.version = self.container.version
        self.metadata = self.container.metadata
        info = describe_gsi(self.container)
        self.width = int(info["width"])
        self.height = int(info["height"])
        self.channels = int(info["channels"])
        self.count = int(info["gaussians"])
        self._params: dict | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) at which the image was encoded."""
        return self.width, self.height

    def gaussians(self) -> dict[str, np.ndarray]:
        """The decoded Gaussians, exactly as the renderer receives them.

        means (N,2) float32: x, y in stored-image pixels, pixel (r, c) centred at (c+.5, r+.5);
        scales (N,2) float32: standard deviations in pixels along the Gaussian's axes (linear);
        angles (N,) float32: radians from +x towards +y; colors (N,C) float32: additive colour
        contributions on a 0..1 scale (opacity is 1; see spec/render2d.md); background (C,)
        float32: the constant colour under every pixel (pixel = background + sum of Gaussians);
        beta (float): the exponent of the kernel exp(-(q/2)^beta) (1.0: Gaussians; the encoder writes 2.0 for sparse pictures, gsi.md 7).
        """
        if self._params is None:
            from .image import decode_gaussians

            self._params = decode_gaussians(self._data)
        out = {k: self._params[k] for k in ("means", "scales", "angles", "colors")}
        out["background"] = self._params["background"].astype(np.float32)
        out["beta"] = float(self._params["beta"])
        return out

    def render(self, width: int | None = None, height: int | None = None,
               scale: float | None = None) -> np.ndarray:
        """Pixels (uint8, H x W x C) at the stored size or any other (aspect kept if one side given)."""
        from .image import decode_image

        return decode_image(self._data, width=width, height=height, scale=scale)


class GszFile:
    """An opened .gsz scene: header now, Gaussians on demand (base layer needs no torch)."""

    kind = "gsz"

    def __init__(self, data: bytes, name: str) -> None:
        from .scene import codec

        self._data = data
        self.name = name
        self.container = read_container(data, "gsz")
        self.version = self.container.version
        self.metadata = self.container.metadata
        info = codec.describe(self.container)
        self.count = int(info["gaussians"])
        self.sh_degree = int(info["sh_degree"])
        self.has_side_info = any(ch.type[:1] in (b"V", b"v") for ch in self.container.chunks)
        self._scene = None

    def scene(self):
        """The decoded base layer as a GaussianScene (PLY conventions)."""
        if self._scene is None:
            from .scene.codec import decode_scene

            self._scene = decode_scene(self._data)
        return self._scene

    def gaussians(self, activated: bool = True) -> dict[str, np.ndarray]:
        """The decoded Gaussians as numpy arrays.

        means (N,3) world units; quats (N,4) in w, x, y, z order (normalised when activated);
        scales (N,3): linear standard deviations when activated, else log scales as in the PLY;
        opacities (N,): in [0, 1] when activated (sigmoid), else logits as in the PLY;
        sh (N,K,3): spherical-harmonic coefficients, DC first, K = (degree+1)^2, in the 3DGS
        basis (colour = 0.5 + SH . coeffs, clamped at 0).
        """
        s = self.scene()
        q = s.rotations.astype(np.float32)
        if not activated:
            return {"means": s.means, "quats": q, "scales": s.scales, "opacities": s.opacity, "sh": s.sh()}
        qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        return {"means": s.means, "quats": qn.astype(np.float32), "scales": np.exp(s.scales).astype(np.float32),
                "opacities": (1 / (1 + np.exp(-s.opacity))).astype(np.float32), "sh": s.sh()}

    def render(self, camera, background=(0.0, 0.0, 0.0), device: str = "auto") -> np.ndarray:
        """Render the base layer at a Camera (uint8, H x W x 3); needs torch."""
        import torch

        from .render.scene3d import render_gaussian_scene

        dev = "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
        with torch.no_grad():
            img = render_gaussian_scene(self.scene(), camera, background=background, device=dev)
        return (img.clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)

    def to_ply(self, path: str | os.PathLike, force: bool = False) -> None:
        """Write the base layer as a standard 3DGS PLY."""
        from .scene import write_ply

        write_ply(self.scene(), path, force=force)


def open(source: str | os.PathLike | bytes) -> GsiFile | GszFile:  # noqa: A001 - mirrors PIL.Image.open
    """Open a .gsi or .gsz file (path or bytes), reading only its header and metadata."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), "<bytes>"
    else:
        data, name = read_file(source), str(Path(source))
    kind = sniff_kind(data)
    try:
        if kind == "gsi":
            return GsiFile(data, name)
        if kind == "gsz":
            return GszFile(data, name)
        raise FormatError("not a .gsi or .gsz file (unknown signature)")
    except Exception as exc:
        if hasattr(exc, "with_path") and name != "<bytes>":
            raise exc.with_path(name)
        raise
