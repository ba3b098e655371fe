"""Pillow plugin: `import gscodec.pillow` lets Image.open() read .gsi and Image.save() write it.

    from PIL import Image
    import gscodec.pillow  # registers the GSI format
    im = Image.open("photo.gsi")
    im.draft("RGB", (200, 200))   # decode directly at a smaller size (cheap)
    im.save("copy.gsi", ratio=200)  # needs the 'encode' extra (torch)
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageFile

from .container import SIGNATURES

FORMAT = "GSI"


def _accept(prefix: bytes) -> bool:
    return prefix[:8] == SIGNATURES["gsi"]


class GsiImageFile(ImageFile.ImageFile):
    """A .gsi file as a Pillow image; pixels are rendered on load() at the current size."""

    format = FORMAT
    format_description = "gscodec image (2D Gaussians)"

    def _open(self) -> None:
        from .viewer import GsiFile

        data = self.fp.read()
        self._gsi = GsiFile(data, getattr(self.fp, "name", "<stream>"))
        self._mode = "L" if self._gsi.channels == 1 else "RGB"
        self._size = self._gsi.size
        self.info["gaussians"] = self._gsi.count
        if self._gsi.metadata:
            self.info["metadata"] = self._gsi.metadata
        self.tile = []
        self._loaded_size: tuple[int, int] | None = None

    def draft(self, mode, size):
        """Decode at the smallest size not below `size` (aspect kept), instead of the full size."""
        if size is None:
            return None
        w, h = self._gsi.size
        scale = min(1.0, max(size[0] / w, size[1] / h))
        new = (max(1, round(w * scale)), max(1, round(h * scale)))
        if new == self._size:
            return None
        self._size = new
        return self.mode, (0, 0, w, h)

    def load(self):
        """Render the Gaussians at the current size (once)."""
        if self._loaded_size != self._size:
            arr = self._gsi.render(width=self._size[0], height=self._size[1])
            img = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr, self._mode)
            self.im = img.im
            self._loaded_size = self._size
        return Image.Image.load(self)


def _save(im: Image.Image, fp, filename) -> None:
    from .image import encode_image

    info = im.encoderinfo
    img = im if im.mode in ("RGB", "L") else im.convert("RGB" if "A" not in im.mode or im.mode != "LA" else "L")
    arr = np.asarray(img)
    kwargs = {k: info[k] for k in ("ratio", "max_bytes", "bpp", "steps", "seed", "device") if k in info}
    if not any(k in kwargs for k in ("ratio", "max_bytes", "bpp")):
        kwargs["ratio"] = 100.0
    fp.write(encode_image(arr, **kwargs))


Image.register_open(FORMAT, GsiImageFile, _accept)
Image.register_save(FORMAT, _save)
Image.register_extension(FORMAT, ".gsi")
Image.register_mime(FORMAT, "image/x-gsi")
