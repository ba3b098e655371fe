"""Restoration of renders with side information: modes, the NAFNet-style network, weights."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gscodec.errors import InputError  # noqa: E402
from gscodec.scene import restore as rs  # noqa: E402
from gscodec.scene.restore_net import RestoreNet, build, parameter_count  # noqa: E402


def images(h=20, w=27, seed=0):
    rng = np.random.default_rng(seed)
    render = rng.uniform(0, 1, (h, w, 3)).astype(np.float32)
    residual = rng.normal(0, 0.05, (h, w, 3)).astype(np.float32)
    return render, residual


def test_none_and_residual_modes():
    render, residual = images()
    assert np.array_equal(rs.restore(render, residual, "none"), render)
    out = rs.restore(render, residual, "residual")
    np.testing.assert_allclose(out, np.clip(render + residual, 0, 1))
    with pytest.raises(InputError):
        rs.restore(render, residual, "magic")
    with pytest.raises(InputError):
        rs.restore(render, residual[:5], "residual")


def test_network_without_weights_falls_back(monkeypatch, tmp_path):
    monkeypatch.setattr(rs, "DEFAULT_WEIGHTS", tmp_path / "absent.pt")
    render, residual = images()
    with pytest.warns(UserWarning, match="residual"):
        out = rs.restore(render, residual, "network")
    np.testing.assert_allclose(out, np.clip(render + residual, 0, 1))


@pytest.mark.parametrize("shape", [(1, 3, 32, 32), (2, 3, 19, 45)])
def test_network_forward_shape_and_identity_start(shape):
    net = build()
    x, r = torch.rand(shape), torch.randn(shape) * 0.05
    with torch.no_grad():
        y = net(x, r)
    assert y.shape == shape
    # The last layer starts at zero: an untrained F is exactly the residual ablation.
    assert torch.equal(y, r)
    assert 10_000 < parameter_count(net) < 1_250_000      # <= 5 MB of float32


def _random_weights(path, seed=0):
    torch.manual_seed(seed)
    net = RestoreNet(width=8, enc_blocks=(1, 1), middle_blocks=1, dec_blocks=(1, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    torch.save({"config": net.config, "state_dict": net.state_dict()}, path)
    return net


def test_network_weights_and_tiling(tmp_path, monkeypatch):
    path = tmp_path / "w.pt"
    net = _random_weights(path).eval()
    render, residual = images(40, 37)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = rs.restore(render, residual, "network", weights=path)
    with torch.no_grad():
        x = torch.from_numpy(render).permute(2, 0, 1)[None]
        r = torch.from_numpy(residual).permute(2, 0, 1)[None]
        ref = (x + net(x, r)).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-5)
    assert not np.allclose(out, np.clip(render + residual, 0, 1), atol=1e-3)
    # Tiled inference with a halo covering the receptive field matches whole-image inference.
    monkeypatch.setattr(rs, "TILE", 16)
    monkeypatch.setattr(rs, "HALO", 24)
    tiled = rs.apply_network(net, render, residual)
    np.testing.assert_allclose(tiled, ref, atol=1e-4)


def test_bad_weights_file(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    render, residual = images()
    with pytest.raises(InputError):
        rs.restore(render, residual, "network", weights=bad)


def test_packaged_weights_load_if_present():
    path = rs.default_weights()
    if path is None:
        pytest.skip("no packaged restoration weights")
    assert path.stat().st_size <= 5 * 1024 * 1024
    render, residual = images(32, 32)
    out = rs.restore(render, residual, "network")
    assert out.shape == render.shape and np.isfinite(out).all()
