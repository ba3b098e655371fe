"""Reading input pictures: header sizes before decoding, CMYK JPEGs, and gsenc's metadata policy."""
from __future__ import annotations

import io
import warnings

import imagecodecs
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from gscodec.cli.gsenc import main as gsenc
from gscodec.container import read_container
from gscodec.errors import InputError
from gscodec.imageheader import declared_size
from gscodec.imageio import MAX_IMAGE_PIXELS, decode_image_bytes, sniff_image

ENCODERS = {
    "png": imagecodecs.png_encode,
    "jpeg": imagecodecs.jpeg8_encode,
    "webp": lambda a: imagecodecs.webp_encode(a, level=80),
    "webp-lossless": lambda a: imagecodecs.webp_encode(a, lossless=True),
    "bmp": imagecodecs.bmp_encode,
    "tiff": imagecodecs.tiff_encode,
    "jpegxl": imagecodecs.jpegxl_encode,
}


def _box(kind: bytes, payload: bytes) -> bytes:
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


@pytest.mark.parametrize("name", sorted(ENCODERS))
@pytest.mark.parametrize("h,w", [(1, 1), (8, 8), (13, 200), (40, 17), (96, 128)])
def test_declared_size_matches_the_decoded_size(name, h, w):
    a = (np.random.default_rng(h * w).random((h, w, 3)) * 255).astype(np.uint8)
    data = ENCODERS[name](a)
    assert declared_size(data, sniff_image(data)) == (w, h)


def test_declared_size_of_a_jpeg_xl_container():
    cs = imagecodecs.jpegxl_encode(np.zeros((37, 91, 3), np.uint8))
    head = _box(b"JXL ", b"\r\n\x87\n") + _box(b"ftyp", b"jxl \x00\x00\x00\x00jxl ")
    assert declared_size(head + _box(b"jxlc", cs), "jpegxl") == (91, 37)
    assert declared_size(head + _box(b"jxlp", b"\x80\x00\x00\x00" + cs), "jpegxl") == (91, 37)


@pytest.mark.parametrize("data,fmt", [(b"\xff\xd8\xff", "jpeg"), (b"RIFF\0\0\0\0WEBPVP8 ", "webp"),
                                      (b"II*\0\xff\xff\xff\xff", "tiff"), (b"BM", "bmp")])
def test_unreadable_headers_give_no_size(data, fmt):
    assert declared_size(data, fmt) is None


@pytest.mark.parametrize("fmt", ["jpeg", "bmp"])
def test_absurd_declared_size_rejected_before_decoding(fmt):
    data = bytearray(ENCODERS[fmt](np.zeros((16, 16, 3), np.uint8)))
    big = (60000).to_bytes(2, "big")
    if fmt == "jpeg":
        i = data.find(b"\xff\xc0")
        data[i + 5:i + 9] = big + big
    else:
        data[18:26] = (60000).to_bytes(4, "little") * 2
    with pytest.raises(InputError, match="exceeds the limit"):
        decode_image_bytes(bytes(data))
    assert 60000 * 60000 > MAX_IMAGE_PIXELS


def test_cmyk_jpeg_becomes_rgb_like_pillow():
    image = pytest.importorskip("PIL.Image")
    cmyk = (np.random.default_rng(1).random((24, 40, 4)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    image.frombytes("CMYK", (40, 24), cmyk.tobytes()).save(buf, "JPEG", quality=95)
    ref = np.asarray(image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = decode_image_bytes(buf.getvalue())
    assert out.shape == (24, 40, 3)
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1
    assert any("CMYK" in str(w.message) for w in caught)


def _run_gsenc(tmp_path, size: int, *args: str):
    img = (np.random.default_rng(0).random((size, size, 3)) * 255).astype(np.uint8)
    src = tmp_path / f"p{size}.png"
    src.write_bytes(imagecodecs.png_encode(img))
    out = tmp_path / f"p{size}.gsi"
    r = CliRunner().invoke(gsenc, [str(src), "-o", str(out), "--steps", "2", "-q", *args])
    assert r.exit_code == 0, r.output
    return read_container(out.read_bytes(), "gsi"), r


def test_gsenc_keeps_metadata_where_it_is_cheap(tmp_path):
    c, _ = _run_gsenc(tmp_path, 96, "--ratio", "5")         # 5529-byte budget
    assert c.metadata["ratio"] == 5.0 and "max_bytes" not in c.metadata


def test_gsenc_leaves_metadata_out_of_a_tight_budget(tmp_path):
    c, _ = _run_gsenc(tmp_path, 96, "--ratio", "20")        # 1382-byte budget
    assert not c.metadata
    c, _ = _run_gsenc(tmp_path, 96, "--ratio", "5", "--no-meta", "--force")
    assert not c.metadata


@settings(max_examples=300, deadline=None)
@given(prefix=st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF\0\0\0\0WEBP", b"II*\0", b"MM\0*",
                               b"BM", b"\0\0\0\x0cJXL \r\n\x87\n", b"\xff\x0a"]),
       tail=st.binary(max_size=96))
def test_header_reading_never_raises_or_hangs(prefix, tail):
    size = declared_size(prefix + tail, sniff_image(prefix + tail) or "png")
    assert size is None or (len(size) == 2 and min(size) >= 0)
