"""Bounded fuzzing of the decoders in the test suite (conformance/fuzz.py runs longer)."""
from __future__ import annotations

import numpy as np
import pytest

from gscodec.fuzz import fuzz


@pytest.fixture(scope="module")
def gsi_seeds() -> list[bytes]:
    from gscodec.image import encode_image

    rng = np.random.default_rng(0)
    img = (rng.random((16, 20, 3)) * 255).astype(np.uint8)
    grey = (rng.random((12, 10, 1)) * 255).astype(np.uint8)
    return [encode_image(img, ratio=6, steps=10), encode_image(grey, ratio=1.5, steps=10)]


@pytest.fixture(scope="module")
def gsz_seeds() -> list[bytes]:
    from gscodec.scene import encode_scene
    from gscodec.scene.model import GaussianScene

    rng = np.random.default_rng(0)
    out = []
    for deg, n in ((0, 200), (2, 150)):
        k = (deg + 1) ** 2 - 1
        s = GaussianScene(rng.normal(size=(n, 3)).astype(np.float32), rng.normal(size=(n, 3)).astype(np.float32),
                          (0.2 * rng.normal(size=(n, k, 3))).astype(np.float32), rng.normal(size=n).astype(np.float32),
                          (rng.normal(size=(n, 3)) - 3).astype(np.float32), rng.normal(size=(n, 4)).astype(np.float32))
        out.append(encode_scene(s, quality="low"))
    return out


def test_gsi_decoder_fuzz(gsi_seeds):
    from gscodec.image import decode_gaussians, decode_image

    def dec(b: bytes) -> None:
        decode_gaussians(b)
        decode_image(b, width=8)

    rep = fuzz(gsi_seeds, dec, seconds=8)
    assert rep.tried > 50
    assert not rep.failures, rep.failures[:5]


def test_gsz_decoder_fuzz(gsz_seeds):
    from gscodec.scene.codec import decode_scene

    rep = fuzz(gsz_seeds, decode_scene, seconds=8)
    assert rep.tried > 50
    assert not rep.failures, rep.failures[:5]
