"""Embedding API: gscodec.open() and the Pillow plugin."""
from __future__ import annotations

import io

import numpy as np
import pytest

import gscodec


@pytest.fixture(scope="module")
def gsi_blob() -> bytes:
    from gscodec.image import encode_image

    y, x = np.mgrid[0:24, 0:32]
    img = np.stack([x * 7, y * 9, (x + y) * 4], -1).astype(np.uint8)
    return encode_image(img, ratio=8, steps=20)


def test_open_gsi_reads_header_then_decodes(gsi_blob, tmp_path):
    f = gscodec.open(gsi_blob)
    assert f.kind == "gsi" and f.size == (32, 24) and f.channels == 3 and f.count > 0
    g = f.gaussians()
    assert set(g) == {"means", "scales", "angles", "colors", "background", "beta"}
    assert g["beta"] == 1.0            # a dense picture: the Gaussian kernel
    assert g["means"].shape == (f.count, 2) and g["colors"].shape == (f.count, 3)
    assert g["background"].shape == (3,)
    assert f.render().shape == (24, 32, 3)
    assert f.render(width=64).shape == (48, 64, 3)
    p = tmp_path / "x.gsi"
    p.write_bytes(gsi_blob)
    assert gscodec.open(p).size == (32, 24)


def test_open_rejects_non_gscodec(tmp_path):
    p = tmp_path / "x.gsi"
    p.write_bytes(b"hello world")
    with pytest.raises(gscodec.GscodecError, match="x.gsi"):
        gscodec.open(p)


def test_open_gsz(tmp_path):
    from gscodec.scene import encode_scene
    from gscodec.scene.model import GaussianScene

    rng = np.random.default_rng(0)
    n = 300
    scene = GaussianScene(rng.normal(size=(n, 3)).astype(np.float32), rng.normal(size=(n, 3)).astype(np.float32),
                          np.zeros((n, 3, 3), np.float32), rng.normal(size=n).astype(np.float32),
                          (rng.normal(size=(n, 3)) - 3).astype(np.float32), rng.normal(size=(n, 4)).astype(np.float32))
    f = gscodec.open(encode_scene(scene, quality="high"))
    assert f.kind == "gsz" and f.count == n and f.sh_degree == 1
    g = f.gaussians()
    assert g["sh"].shape == (n, 4, 3) and np.all((g["opacities"] >= 0) & (g["opacities"] <= 1))
    assert np.allclose(np.linalg.norm(g["quats"], axis=1), 1, atol=1e-5)
    f.to_ply(tmp_path / "d.ply")
    assert gscodec.read_ply(tmp_path / "d.ply").count == n


def test_pillow_open_draft_save(gsi_blob, tmp_path):
    Image = pytest.importorskip("PIL.Image")
    import gscodec.pillow  # noqa: F401

    im = Image.open(io.BytesIO(gsi_blob))
    assert im.format == "GSI" and im.size == (32, 24) and im.mode == "RGB"
    full = np.asarray(im.convert("RGB"))
    assert np.array_equal(full, gscodec.decode_image(gsi_blob))
    im = Image.open(io.BytesIO(gsi_blob))
    im.draft("RGB", (16, 12))
    assert im.size == (16, 12)
    assert np.asarray(im).shape == (12, 16, 3)
    out = tmp_path / "re.gsi"
    Image.fromarray(full).save(out, format="GSI", max_bytes=300, steps=10)
    assert out.stat().st_size <= 300
    assert Image.open(out).size == (32, 24)
