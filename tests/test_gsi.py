""".gsi codec: round trips, byte budgets, bit-exact decoding, sizes, bad and corrupt input."""
from __future__ import annotations

import subprocess
import sys
import warnings
from dataclasses import replace

import numpy as np
import pytest

from gscodec.container import Chunk, read_container, write_container
from gscodec.errors import CorruptError, GscodecError, InputError, LimitError
from gscodec.image import budget_bytes, decode_gaussians, decode_image, encode_image
from gscodec.image.codec import CHUNK_TYPE, coding_order, decode_payload, encode_payload
from gscodec.image.encoder import pack
from gscodec.image.quantize import QuantSpec, dequantize, quantize, quantize_colors, refine_levels

STEPS = 12


def _test_image(h: int = 24, w: int = 32, c: int = 3, seed: int = 0) -> np.ndarray:
    """Smooth colour ramps, a disc and an edge: enough structure to fit and to tell apart."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    chans = [x / w, y / h, ((x - w / 2) ** 2 + (y - h / 2) ** 2 < (min(h, w) / 3) ** 2) * 0.8 + 0.1]
    img = np.stack(chans[:c] if c <= 3 else chans + [np.ones_like(x)], 2)
    img = np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1)
    return (img * 255 + 0.5).astype(np.uint8)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


@pytest.fixture(scope="module")
def rgb():
    return _test_image()


@pytest.fixture(scope="module")
def encoded(rgb):
    return encode_image(rgb, ratio=8, steps=STEPS, device="cpu", seed=1)


def test_round_trip_rgb(rgb, encoded):
    out = decode_image(encoded)
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    flat = np.broadcast_to(rgb.reshape(-1, 3).mean(0).round().astype(np.uint8), rgb.shape)
    # the Gaussians must describe the picture far better than its mean colour
    assert _psnr(out, rgb) > _psnr(flat, rgb) + 6


def test_round_trip_grey_and_rgba():
    grey = _test_image(c=1)[:, :, 0]
    data = encode_image(grey, ratio=6, steps=STEPS, device="cpu")
    out = decode_image(data)
    assert out.shape == (24, 32, 1)
    assert len(data) <= budget_bytes(24, 32, 1, ratio=6)
    data3 = encode_image(grey[:, :, None], ratio=6, steps=STEPS, device="cpu")
    assert decode_image(data3).shape == (24, 32, 1)
    rgba = _test_image(c=4)
    with pytest.warns(UserWarning, match="alpha"):
        data4 = encode_image(rgba, ratio=8, steps=STEPS, device="cpu")
    assert decode_image(data4).shape == (24, 32, 3)


@pytest.mark.parametrize("ratio", [3, 12, 40])
def test_actual_size_within_ratio_budget(ratio):
    img = _test_image(48, 64, seed=ratio)
    data = encode_image(img, ratio=ratio, steps=6, device="cpu")
    assert len(data) <= 3 * 48 * 64 // ratio
    assert decode_gaussians(data)["count"] > 0


@pytest.mark.parametrize("kw,limit", [({"max_bytes": 150}, 150), ({"max_bytes": 400}, 400),
                                      ({"bpp": 0.8}, int(0.8 * 48 * 64 / 8)),
                                      ({"ratio": 20, "max_bytes": 200}, 200)])
def test_actual_size_within_byte_budget(kw, limit):
    img = _test_image(48, 64, seed=3)
    data = encode_image(img, steps=6, device="cpu", metadata={"encoder": "test"}, **kw)
    assert len(data) <= limit
    assert read_container(data).metadata == {"encoder": "test"}


def test_budget_pruning_keeps_the_most_gaussians_that_fit():
    from gscodec.image.encoder import _largest_fitting
    from gscodec.image.fit import GaussianFitter

    img = _test_image(48, 64, seed=5).astype(np.float32) / 255
    rng = np.random.default_rng(0)
    n = 60
    init = {"means": rng.uniform(0, 48, (n, 2)), "scales": rng.uniform(1, 4, (n, 2)),
            "angles": rng.uniform(0, 3, n), "colors": rng.uniform(-0.3, 0.3, (n, 3))}
    fitter = GaussianFitter(img, init)
    spec, bg = QuantSpec(pos_shift=1), np.zeros(3, np.int64)
    params, order = fitter.export(), np.argsort(-fitter.importance(), kind="stable")

    def size(k):
        keep = np.sort(order[:k])
        return len(pack({a: v[keep] for a, v in params.items()}, spec, (48, 64), 3, None, bg)[0])

    budget = (size(20) + size(40)) // 2
    k = _largest_fitting(fitter, spec, (48, 64), 3, None, budget, bg)
    assert 20 <= k < 40 and size(k) <= budget < size(k + 1)


def test_extreme_ratio_and_too_small_budget():
    img = _test_image(96, 128, seed=4)
    data = encode_image(img, ratio=500, steps=4, device="cpu")  # 73 bytes for the whole file
    assert len(data) <= 3 * 96 * 128 // 500
    assert decode_image(data).shape == (96, 128, 3)
    with pytest.raises(InputError, match="below"):
        encode_image(img, max_bytes=20, steps=2, device="cpu")


def test_decode_twice_is_bit_exact(encoded):
    a, b = decode_gaussians(encoded), decode_gaussians(encoded)
    for key in ("means", "scales", "angles", "colors", "log2_scales"):
        assert np.array_equal(a[key], b[key])
    assert np.array_equal(decode_image(encoded), decode_image(encoded))


def test_decoder_reproduces_encoder_quantisation():
    rng = np.random.default_rng(5)
    n, h, w = 300, 50, 70
    params = {"means": rng.uniform(0, 1, (n, 2)) * [w, h], "log2_scales": rng.uniform(-2, 4, (n, 2)),
              "angles": rng.uniform(-4, 4, n), "colors": rng.normal(0.3, 0.4, (n, 3))}
    for spec in (QuantSpec(), QuantSpec(pos_shift=-2, scale_bits=1, angle_bits=3, color_shifts=(4, 7, 2)),
                 QuantSpec(pos_shift=5, scale_bits=4, angle_bits=10, color_shifts=(12, 12, 12))):
        data, ints = pack(params, spec, (h, w), 3, None)
        g = decode_gaussians(data)
        assert g["spec"] == spec and g["count"] == n
        for key in ints:
            assert np.array_equal(g["ints"][key], ints[key]), key
        ref = dequantize(ints, spec)
        for key in ("means", "scales", "angles", "colors"):
            assert np.array_equal(g[key], ref[key])
        # quantising the dequantised values again changes nothing (canonical form)
        again = quantize({"means": ref["means"], "log2_scales": ref["log2_scales"], "angles": ref["angles"],
                          "colors": ref["coded_colors"]}, spec, (h, w))
        again = {k: v[coding_order(again)] for k, v in again.items()}
        for key in ints:
            assert np.array_equal(again[key], ints[key]), key


def test_dequantised_values_are_exact():
    ints = {"px": np.array([0, 5]), "py": np.array([1, 7]), "ls": np.array([-3, 17]), "la": np.array([0, 9]),
            "t": np.array([0, 12]), "q": np.array([[64, -3, 2], [0, 0, 0]])}
    spec = QuantSpec(pos_shift=1, scale_bits=3, angle_bits=5, color_shifts=(6, 5, 5))
    d = dequantize(ints, spec)
    assert d["means"].tolist() == [[0.25, 0.75], [2.75, 3.75]]
    assert d["scales"][0, 0] == float.fromhex("0x1.8ace5422aa0dbp-1")  # 2**(-3/8)
    assert d["scales"][1, 0] == float.fromhex("0x1.172b83c7d517bp+2")  # 2**(17/8)
    assert d["scales"][1, 1] == 2.0
    assert d["angles"][1] == 12 * (float.fromhex("0x1.921fb54442d18p+1") / 32)
    y, co, cg = 1.0, -3 / 32, 2 / 32
    assert d["colors"][0].tolist() == [(y + co) - cg, y + cg, (y - co) - cg]


def test_decode_at_other_sizes(encoded):
    assert decode_image(encoded, width=16).shape == (12, 16, 3)
    assert decode_image(encoded, height=48).shape == (48, 64, 3)
    assert decode_image(encoded, scale=0.5).shape == (12, 16, 3)
    assert decode_image(encoded, width=40, height=10).shape == (10, 40, 3)
    big = decode_image(encoded, scale=2).astype(np.float64)
    small = decode_image(encoded).astype(np.float64)
    # the 2x render, averaged back down, stays close to the stored-size render
    down = big.reshape(24, 2, 32, 2, 3).mean((1, 3))
    assert np.abs(down - small).mean() < 6
    for bad in ({"width": 0}, {"scale": -1.0}, {"height": 2.5}, {"scale": float("nan")}):
        with pytest.raises(InputError):
            decode_image(encoded, **bad)
    with pytest.raises(LimitError):
        decode_image(encoded, width=70000)


def test_deterministic_for_a_seed(rgb):
    a = encode_image(rgb, ratio=10, steps=6, device="cpu", seed=7)
    b = encode_image(rgb, ratio=10, steps=6, device="cpu", seed=7)
    c = encode_image(rgb, ratio=10, steps=6, device="cpu", seed=8)
    assert a == b
    assert a != c


@pytest.mark.parametrize("image", [
    np.zeros((0, 0, 3), np.uint8), np.zeros((10, 1, 3), np.uint8), np.zeros((1, 10), np.uint8),
    np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 5), np.uint8), np.zeros((2, 8, 8, 3), np.uint8),
    [[0, 1], [2, 3]]])
def test_bad_images_rejected(image):
    with pytest.raises(InputError):
        encode_image(image, ratio=10, steps=1, device="cpu")


def test_absurd_size_rejected_without_allocating():
    huge = np.broadcast_to(np.uint8(0), (70000, 4, 3))
    with pytest.raises(InputError, match="limits"):
        encode_image(huge, ratio=10)
    many = np.broadcast_to(np.uint8(0), (20000, 20000))
    with pytest.raises(InputError, match="limits"):
        encode_image(many, ratio=10)


@pytest.mark.parametrize("kw", [{"ratio": 0}, {"ratio": -5}, {"ratio": float("nan")}, {"max_bytes": 0},
                                {"bpp": float("inf")}, {"ratio": "10"}, {"steps": 2.5}, {"device": "tpu"}])
def test_bad_options_rejected(rgb, kw):
    with pytest.raises(InputError):
        encode_image(rgb, **{"ratio": 10, "steps": 1, **kw})


def test_truncated_and_bit_flipped_files(encoded):
    for cut in range(len(encoded)):
        with pytest.raises(GscodecError):
            decode_image(encoded[:cut])
    rng = np.random.default_rng(6)
    for pos in rng.choice(len(encoded), 40, replace=False):
        bad = bytearray(encoded)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        with pytest.raises(GscodecError):
            decode_image(bytes(bad))


def test_corrupt_payloads_with_valid_crc(encoded):
    """Mutated IGAU chunks re-framed with correct CRCs: only GscodecError, and quickly."""
    payload = read_container(encoded).require(CHUNK_TYPE)
    rng = np.random.default_rng(7)
    for trial in range(150):
        p = bytearray(payload)
        kind = trial % 3
        if kind == 0:
            for _ in range(int(rng.integers(1, 4))):
                p[int(rng.integers(0, len(p)))] = int(rng.integers(0, 256))
        elif kind == 1:
            p = p[: int(rng.integers(0, len(p)))]
        else:
            i = int(rng.integers(0, len(p)))
            p[i:i] = rng.integers(0, 256, int(rng.integers(1, 8)), dtype=np.uint8).tobytes()
        data = write_container("gsi", [Chunk(CHUNK_TYPE, bytes(p))])
        try:
            out = decode_image(data, width=8)
        except GscodecError:
            continue
        assert out.dtype == np.uint8 and out.shape[1] == 8


def test_declared_counts_checked_before_allocation():
    spec = QuantSpec()
    ints = {"px": np.array([3]), "py": np.array([2]), "ls": np.array([8]), "la": np.array([0]),
            "t": np.array([0]), "q": np.array([[30, 0, 0]])}
    good = encode_payload(ints, spec, 24, 32, 3)
    assert decode_payload(good)[1] == spec
    # same header with N = 2**27 Gaussians: refused from the sizes alone
    from gscodec.container.byteio import ByteWriter
    hdr = ByteWriter().varint(65535).varint(4096).u8(1).varint(1 << 27).getvalue()
    with pytest.raises(GscodecError):
        decode_payload(hdr + good[len(hdr):])
    hdr = ByteWriter().varint(32).varint(24).u8(1).varint(10000).getvalue()  # more than one per pixel
    with pytest.raises(LimitError):
        decode_payload(hdr + good[4:])
    with pytest.raises(GscodecError):
        decode_image(write_container("gsi", [Chunk(b"IXYZ", b"")]))  # unknown critical chunk


def test_empty_file_decodes_to_its_background():
    empty = {"means": np.zeros((0, 2)), "log2_scales": np.zeros((0, 2)), "angles": np.zeros(0),
             "colors": np.zeros((0, 3))}
    data = pack(empty, QuantSpec(), (5, 7), 3, None)[0]
    assert len(data) <= 42
    out = decode_image(data)
    assert out.shape == (5, 7, 3) and not out.any()
    spec = QuantSpec(color_shifts=(6, 6, 6))
    q = quantize_colors(np.array([[0.8, 0.4, 0.2]]), spec)[0]
    out = decode_image(pack(empty, spec, (5, 7), 3, None, q)[0])
    assert np.abs(out.astype(int) - [204, 102, 51]).max() <= 4 and (out == out[0, 0]).all()


def test_tiny_budget_keeps_a_flat_image_colour():
    img = np.empty((30, 40, 3), np.uint8)
    img[...] = (30, 140, 220)
    data = encode_image(img, max_bytes=45, steps=STEPS, device="cpu")
    assert len(data) <= 45 and decode_gaussians(data)["count"] == 0
    assert np.abs(decode_image(data).astype(int) - img).max() <= 8


def test_encoder_background_is_the_quantised_mean(rgb):
    data = encode_image(rgb, ratio=20, steps=STEPS, device="cpu")
    g = decode_gaussians(data)
    assert np.abs(g["background"] - rgb.reshape(-1, 3).mean(0) / 255).max() <= 2.0 ** -g["spec"].color_shifts[0]
    assert g["count"] > 0


def _without_refinement(g: dict) -> tuple[dict, QuantSpec, np.ndarray]:
    """Decoded Gaussians re-quantised without position refinement (versions 1 and 2), and their order."""
    spec = replace(g["spec"], pos_refine=0, pos_rel=0, kernel=4)
    ints = quantize({"means": g["means"], "log2_scales": g["log2_scales"], "angles": g["angles"],
                     "colors": g["coded_colors"]}, spec, (g["height"], g["width"]))
    order = coding_order(ints)
    return {k: v[order] for k, v in ints.items()}, spec, order


def test_refinement_puts_small_gaussians_on_finer_grids(encoded):
    g = decode_gaussians(encoded)
    spec, ints = g["spec"], g["ints"]
    assert spec.pos_refine > 0
    r = refine_levels(ints["ls"], ints["la"], spec)
    assert r.min() < r.max()               # the test image has small and large Gaussians
    minor = g["scales"][:, 1]
    step = np.ldexp(1.0, -(spec.pos_shift + r))
    # refined step: minor sigma / 2**(pos_rel+1) < step <= minor sigma / 2**pos_rel, unless clamped
    free = (r > 0) & (r < spec.pos_refine)
    assert free.any()
    assert (step[free] <= minor[free] / 2.0 ** spec.pos_rel * (1 + 1e-12)).all()
    assert (step[free] > minor[free] / 2.0 ** (spec.pos_rel + 1)).all()
    assert ((ints["sx"] >= 0) & (ints["sx"] < (1 << r)) & (ints["sy"] >= 0) & (ints["sy"] < (1 << r))).all()
    # every mean is the centre of its refined cell
    frac = g["means"] / step[:, None] - 0.5
    np.testing.assert_array_equal(frac, np.round(frac))


@pytest.mark.parametrize("major", [1, 2])
def test_older_versions_still_decode(encoded, major):
    g = decode_gaussians(encoded)
    ints, spec, order = _without_refinement(g)
    bg = g["background_ints"] if major >= 2 else None
    payload = encode_payload(ints, spec, g["height"], g["width"], g["channels"], bg, major=major)
    old = write_container("gsi", [Chunk(CHUNK_TYPE, payload)], major=major)
    g1 = decode_gaussians(old)
    assert read_container(old).version == (major, 0)
    assert g1["background"].any() == (major >= 2)
    for k in ("px", "py", "ls", "la", "t", "q"):
        np.testing.assert_array_equal(g1["ints"][k], ints[k])
    for k in ("scales", "angles", "colors"):
        np.testing.assert_array_equal(g1[k], g[k][order])
    # positions only lose their refinement: within half a grid cell of the refined ones
    cell = 2.0 ** -spec.pos_shift
    assert np.abs(g1["means"] - g["means"][order]).max() <= cell / 2
    with pytest.raises(GscodecError):
        decode_payload(payload, major=3)
    with pytest.raises(ValueError):     # refinement needs version 3
        encode_payload(g["ints"], g["spec"], g["height"], g["width"], g["channels"], major=major)
    if major == 1:
        with pytest.raises(ValueError):
            encode_payload(ints, spec, g["height"], g["width"], g["channels"],
                           background=g["background_ints"] + 1, major=1)


def test_decoding_does_not_import_torch(encoded, tmp_path):
    f = tmp_path / "x.gsi"
    f.write_bytes(encoded)
    code = (
        "import sys, builtins, numpy as np\n"
        "real = builtins.__import__\n"
        "def guard(name, *a, **k):\n"
        "    if name == 'torch' or name.startswith('torch.'):\n"
        "        raise ImportError('torch is blocked')\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = guard\n"
        "from gscodec.image import decode_image\n"
        f"img = decode_image(open({str(f)!r}, 'rb').read())\n"
        "sys.stdout.buffer.write(img.tobytes())\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    with warnings.catch_warnings():
        ref = decode_image(encoded)
    assert res.stdout == ref.tobytes()


def test_refinement_beyond_the_finest_grid_is_corrupt(encoded):
    g = decode_gaussians(encoded)
    spec = replace(g["spec"], pos_refine=7 - g["spec"].pos_shift)     # pos_shift + pos_refine = 7
    payload = encode_payload(g["ints"], spec, g["height"], g["width"], g["channels"], g["background_ints"])
    with pytest.raises(CorruptError, match="refinement"):
        decode_payload(payload)


@pytest.fixture(scope="module")
def sparse():
    """An extreme ratio (over 600 pixels per Gaussian): the encoder's super-Gaussian kernel."""
    return encode_image(_test_image(96, 120, seed=2), max_bytes=110, steps=STEPS, device="cpu")


def test_version_4_stores_the_kernel_and_renders_with_it(encoded, sparse):
    from gscodec.render.image2d_np import render_image_np

    assert decode_gaussians(encoded)["beta"] == 1.0          # dense: the Gaussian
    g = decode_gaussians(sparse)
    assert g["count"] > 0 and g["height"] * g["width"] / g["count"] >= 600
    assert g["spec"].kernel == 8 and g["beta"] == 2.0
    args = [g[k].astype(np.float32) for k in ("means", "scales", "angles", "colors")]
    size = (g["height"], g["width"])
    for beta in (2.0, 1.0):
        ref = render_image_np(*args, size, beta=beta) + g["background"].astype(np.float32)
        same = np.array_equal(decode_image(sparse), np.floor(np.clip(ref, 0, 1) * 255 + 0.5).astype(np.uint8))
        assert same == (beta == 2.0)


def test_version_3_file_keeps_the_gaussian_kernel(sparse):
    encoded = sparse
    g = decode_gaussians(encoded)
    spec = replace(g["spec"], kernel=4)
    payload = encode_payload(g["ints"], spec, g["height"], g["width"], g["channels"], g["background_ints"], major=3)
    old = write_container("gsi", [Chunk(CHUNK_TYPE, payload)], major=3)
    g3 = decode_gaussians(old)
    assert read_container(old).version == (3, 0) and g3["beta"] == 1.0
    for k in ("means", "scales", "angles", "colors", "background"):
        np.testing.assert_array_equal(g3[k], g[k])
    assert not np.array_equal(decode_image(old), decode_image(encoded))
    with pytest.raises(ValueError):     # the kernel field needs version 4
        encode_payload(g["ints"], g["spec"], g["height"], g["width"], g["channels"], major=3)


@pytest.mark.parametrize("kernel", [0, 3, 17, 255])
def test_kernel_out_of_range_is_corrupt(sparse, kernel):
    encoded = sparse
    g = decode_gaussians(encoded)
    payload = bytearray(encode_payload(g["ints"], g["spec"], g["height"], g["width"], g["channels"],
                                       g["background_ints"]))
    assert g["width"] < 128 and g["height"] < 128 and g["count"] < 128   # one-byte varints
    assert payload[7] == 8                                                # width height mode N shift sa pr kr
    payload[7] = kernel
    with pytest.raises(CorruptError):
        decode_payload(bytes(payload))
    with pytest.raises(ValueError):
        encode_payload(g["ints"], replace(g["spec"], kernel=kernel), g["height"], g["width"], g["channels"])
