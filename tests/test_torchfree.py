"""Decoding needs no torch: run the decoders in a subprocess where importing torch fails."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

BLOCK_TORCH = textwrap.dedent("""
    import sys
    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in this test")
            return None
    sys.meta_path.insert(0, _Block())
""")


def run_blocked(code: str, tmp_path) -> None:
    script = tmp_path / "run.py"
    script.write_text(BLOCK_TORCH + textwrap.dedent(code))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "torch" not in r.stdout


def test_torch_is_really_blocked(tmp_path):
    script = tmp_path / "t.py"
    script.write_text(BLOCK_TORCH + "import torch\n")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert r.returncode != 0 and "blocked" in r.stderr


def test_gsi_decodes_without_torch(tmp_path):
    from gscodec.image import decode_gaussians, decode_image, encode_image

    rng = np.random.default_rng(1)
    img = (rng.random((20, 28, 3)) * 60 + np.linspace(0, 180, 28)[None, :, None]).astype(np.uint8)
    blob = encode_image(img, ratio=10, steps=20)
    (tmp_path / "a.gsi").write_bytes(blob)
    ref = decode_image(blob)
    ref_big = decode_image(blob, width=56)
    params = decode_gaussians(blob)
    np.savez(tmp_path / "ref.npz", ref=ref, big=ref_big, **{k: params[k] for k in ("means", "scales", "angles", "colors")})
    run_blocked(f"""
        import numpy as np, sys
        from gscodec.image import decode_gaussians, decode_image
        blob = open({str(tmp_path / 'a.gsi')!r}, 'rb').read()
        ref = np.load({str(tmp_path / 'ref.npz')!r})
        p = decode_gaussians(blob)
        for k in ("means", "scales", "angles", "colors"):
            assert np.array_equal(p[k], ref[k]), k
        out = decode_image(blob)
        assert out.shape == ref["ref"].shape
        assert np.abs(out.astype(int) - ref["ref"].astype(int)).max() <= 1
        big = decode_image(blob, width=56)
        assert np.abs(big.astype(int) - ref["big"].astype(int)).max() <= 1
        assert "torch" not in sys.modules
    """, tmp_path)


def test_gsz_base_decodes_without_torch(tmp_path):
    from gscodec.scene import decode_scene, encode_scene
    from gscodec.scene.model import GaussianScene

    rng = np.random.default_rng(2)
    n = 500
    scene = GaussianScene(
        means=rng.normal(size=(n, 3)).astype(np.float32),
        sh_dc=rng.normal(size=(n, 3)).astype(np.float32),
        sh_rest=(0.1 * rng.normal(size=(n, 8, 3))).astype(np.float32),
        opacity=rng.normal(size=n).astype(np.float32),
        scales=(rng.normal(size=(n, 3)) - 4).astype(np.float32),
        rotations=rng.normal(size=(n, 4)).astype(np.float32),
    )
    blob = encode_scene(scene, quality="medium")
    (tmp_path / "a.gsz").write_bytes(blob)
    dec = decode_scene(blob)
    np.savez(tmp_path / "ref.npz", means=dec.means, sh=dec.sh(), opacity=dec.opacity, scales=dec.scales,
             rotations=dec.rotations)
    run_blocked(f"""
        import numpy as np, sys
        from gscodec.scene.codec import decode_scene
        d = decode_scene(open({str(tmp_path / 'a.gsz')!r}, 'rb').read())
        ref = np.load({str(tmp_path / 'ref.npz')!r})
        assert np.array_equal(d.means, ref["means"]) and np.array_equal(d.sh(), ref["sh"])
        assert np.array_equal(d.opacity, ref["opacity"]) and np.array_equal(d.scales, ref["scales"])
        assert np.array_equal(d.rotations, ref["rotations"])
        assert "torch" not in sys.modules
    """, tmp_path)
