"""Rate-distortion benchmark of .gsi against JPEG, WebP, JPEG XL and AVIF (imagecodecs).

For each image and compression ratio CR the .gsi file is encoded with a budget of 3HW/CR
bytes (no metadata chunk); every other codec then gets the largest quality setting whose
file is not larger than the .gsi file, both at full size and on a downscaled picture that is
upscaled back bicubically (best factor per image). Prints per-ratio tables of mean bpp,
PSNR and MS-SSIM (and how many images each codec could fit), writes per-image JSON lines and
an RD plot (PSNR against bpp) as PNG.

    python bench/gsi_rd.py --images 3                       # first 3 Kodak images, all ratios
    python bench/gsi_rd.py --ratios 500,1000 --names kodim05,kodim23 --steps 200
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "images" / "kodak"
RATIOS = (20, 50, 100, 200, 500, 1000)
FACTORS = (1.5, 2, 3, 4, 6, 8, 12, 16)
CODECS = ("jpeg", "webp", "jxl", "avif")


# -- metrics ------------------------------------------------------------------------------------
def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0 ** 2 / mse)


def _gauss_filter(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """'Valid' separable filtering of (H, W) with a 1D kernel."""
    k = len(g)
    h, w = x.shape
    y = sum(g[i] * x[i:h - k + 1 + i, :] for i in range(k))
    return sum(g[i] * y[:, i:w - k + 1 + i] for i in range(k))


def _ssim_parts(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    t = np.arange(11) - 5.0
    g = np.exp(-t * t / (2 * 1.5 ** 2))
    g /= g.sum()
    mx, my = _gauss_filter(x, g), _gauss_filter(y, g)
    sxx = _gauss_filter(x * x, g) - mx * mx
    syy = _gauss_filter(y * y, g) - my * my
    sxy = _gauss_filter(x * y, g) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    return float(np.mean(lum * cs)), float(np.mean(cs))


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM (Wang, Simoncelli, Bovik 2003; 5 scales, standard weights), mean over channels."""
    weights = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
    scores = []
    for ch in range(a.shape[2]):
        x = a[:, :, ch].astype(np.float64)
        y = b[:, :, ch].astype(np.float64)
        levels = len(weights)
        while min(x.shape) >> (levels - 1) < 11 and levels > 1:
            levels -= 1
        w = weights[:levels] / weights[:levels].sum()
        val = 1.0
        for j in range(levels):
            s, cs = _ssim_parts(x, y)
            val *= max(s if j == levels - 1 else cs, 0.0) ** w[j]
            h2, w2 = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
            x = x[:h2, :w2].reshape(h2 // 2, 2, w2 // 2, 2).mean((1, 3))
            y = y[:h2, :w2].reshape(h2 // 2, 2, w2 // 2, 2).mean((1, 3))
        scores.append(val)
    return float(np.mean(scores))


# -- resampling (for the downscale-then-upscale route) ------------------------------------------
def _cubic(t: np.ndarray, a: float = -0.5) -> np.ndarray:
    t = np.abs(t)
    return np.where(t <= 1, (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1,
                    np.where(t < 2, a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a, 0.0))


def _weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) bicubic resampling matrix, widened when shrinking (antialiasing)."""
    s = n_out / n_in
    support = max(1.0, 1.0 / s)
    centre = (np.arange(n_out) + 0.5) / s - 0.5
    src = np.arange(n_in)
    wt = _cubic((src[None, :] - centre[:, None]) / support)
    wt /= wt.sum(1, keepdims=True)
    return wt


def resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bicubic resize of a uint8 (H, W, C) image (edge handling by weight renormalisation)."""
    wy, wx = _weights(img.shape[0], h), _weights(img.shape[1], w)
    out = np.einsum("ij,jkc->ikc", wy, img.astype(np.float64))
    out = np.einsum("ij,kjc->kic", wx, out)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


# -- reference codecs ---------------------------------------------------------------------------
def _codec(name: str):
    """(encode(img, q), decode(bytes), settings from largest to smallest file) for a codec."""
    import imagecodecs as ic

    if name == "jpeg":
        return (lambda im, q: ic.jpeg8_encode(im, level=int(q), optimize=True), ic.jpeg8_decode,
                list(range(100, 0, -1)))
    if name == "webp":
        return (lambda im, q: ic.webp_encode(im, level=int(q), lossless=False, method=6), ic.webp_decode,
                list(range(100, -1, -1)))
    if name == "jxl":
        dists = [0.5, 1, 1.5, 2, 3, 4, 5, 6, 8, 10, 12, 15, 18, 21, 25]
        return (lambda im, d: ic.jpegxl_encode(im, distance=float(d), effort=7), ic.jpegxl_decode, dists)
    if name == "avif":
        return (lambda im, q: ic.avif_encode(im, level=int(q), speed=6), ic.avif_decode,
                list(range(100, -1, -2)))
    raise ValueError(name)


def best_fit(name: str, img: np.ndarray, budget: int):
    """Largest-quality file of codec `name` within `budget` bytes: (bytes, decoded) or None."""
    enc, dec, settings = _codec(name)
    cache: dict[int, bytes] = {}

    def size(i: int) -> int:
        if i not in cache:
            cache[i] = enc(img, settings[i])
        return len(cache[i])

    lo, hi = 0, len(settings) - 1       # settings ordered by decreasing size (monotone enough)
    if size(hi) > budget:
        return None
    if size(lo) <= budget:
        hi = lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if size(mid) <= budget:
            hi = mid
        else:
            lo = mid
    data = cache[hi]
    out = np.asarray(dec(data))
    if out.ndim == 2:
        out = out[:, :, None]
    return data, out


def reference_results(img: np.ndarray, budget: int, codecs, factors) -> dict:
    """Full-size and best downscaled result of each codec at a byte budget."""
    h, w = img.shape[:2]
    res = {}
    for name in codecs:
        fit = best_fit(name, img, budget)
        res[name] = None if fit is None else {"bytes": len(fit[0]), "psnr": psnr(fit[1], img),
                                              "msssim": ms_ssim(fit[1], img)}
        best = None
        for f in factors:
            sh, sw = max(8, round(h / f)), max(8, round(w / f))
            small = resize(img, sh, sw)
            fit = best_fit(name, small, budget)
            if fit is None:
                continue
            up = resize(fit[1], h, w)
            p = psnr(up, img)
            if best is None or p > best["psnr"]:
                best = {"bytes": len(fit[0]), "psnr": p, "msssim": ms_ssim(up, img), "factor": f}
        res[name + "-down"] = best
    return res


# -- driver -------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of PNG images [Kodak]")
    ap.add_argument("--images", type=int, default=0, help="use the first N images (0: all)")
    ap.add_argument("--names", default="", help="comma-separated image stems instead of --images")
    ap.add_argument("--ratios", default=",".join(map(str, RATIOS)))
    ap.add_argument("--codecs", default=",".join(CODECS))
    ap.add_argument("--factors", default=",".join(map(str, FACTORS)), help="downscale factors tried")
    ap.add_argument("--steps", type=int, default=None, help=".gsi optimisation steps [device default]")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out", help="folder for JSONL and plot")
    args = ap.parse_args()

    import imagecodecs

    from gscodec.image import decode_image, encode_image

    files = sorted(args.data.glob("*.png"))
    if args.names:
        want = set(args.names.split(","))
        files = [f for f in files if f.stem in want]
    elif args.images:
        files = files[: args.images]
    if not files:
        sys.exit(f"no images found in {args.data}")
    ratios = [float(r) for r in args.ratios.split(",")]
    codecs = [c for c in args.codecs.split(",") if c]
    factors = [float(f) for f in args.factors.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    log = open(args.out / "gsi_rd.jsonl", "w")
    rows = []
    for path in files:
        img = np.asarray(imagecodecs.png_decode(path.read_bytes()))
        if img.ndim == 2:
            img = img[:, :, None]
        img = img[:, :, :3]
        h, w, c = img.shape
        for cr in ratios:
            t0, c0 = time.perf_counter(), time.process_time()
            data = encode_image(img, ratio=cr, steps=args.steps, device=args.device, seed=0)
            t_enc, cpu_enc = time.perf_counter() - t0, time.process_time() - c0
            t0 = time.perf_counter()
            out = decode_image(data)
            t_dec = time.perf_counter() - t0
            row = {"image": path.stem, "ratio": cr, "budget": int(c * h * w // cr), "bytes": len(data),
                   "bpp": 8 * len(data) / (h * w), "gsi": {"bytes": len(data), "psnr": psnr(out, img),
                                                           "msssim": ms_ssim(out, img)},
                   "enc_s": t_enc, "enc_cpu_s": cpu_enc, "dec_s": t_dec}
            row.update(reference_results(img, len(data), codecs, factors))
            rows.append(row)
            log.write(json.dumps(row) + "\n")
            log.flush()
            print(f"{path.stem} CR {cr:g}: {len(data)} B ({row['bpp']:.3f} bpp), "
                  f"PSNR {row['gsi']['psnr']:.2f} dB, MS-SSIM {row['gsi']['msssim']:.4f}, "
                  f"enc {t_enc:.1f} s (cpu {cpu_enc:.1f} s), dec {t_dec:.2f} s", flush=True)
    log.close()
    print_tables(rows, ratios, codecs)
    plot_rd(rows, ratios, codecs, args.out / "gsi_rd.png")
    print(f"\nper-image results: {args.out / 'gsi_rd.jsonl'}; plot: {args.out / 'gsi_rd.png'}")


def print_tables(rows, ratios, codecs) -> None:
    """Per-ratio table: mean over the images a codec could fit (count shown)."""
    print()
    for cr in ratios:
        sel = [r for r in rows if r["ratio"] == cr]
        if not sel:
            continue
        n = len(sel)
        bpp = np.mean([r["bpp"] for r in sel])
        enc = np.mean([r["enc_s"] for r in sel])
        dec = np.mean([r["dec_s"] for r in sel])
        print(f"CR {cr:g}  ({n} images, .gsi mean {bpp:.4f} bpp, enc {enc:.1f} s, dec {dec:.2f} s)")
        print(f"  {'codec':<12}{'fits':>6}{'bpp':>9}{'PSNR':>8}{'MS-SSIM':>9}{'gsi PSNR':>10}  note")
        for key in ["gsi"] + [k for c in codecs for k in (c, c + "-down")]:
            got = [(r, r[key]) for r in sel if r.get(key)]
            if not got:
                print(f"  {key:<12}{0:>4}/{n}{'-':>9}{'-':>8}{'-':>9}{'-':>10}  cannot reach this size")
                continue
            hw = [r["bytes"] * 8 / r["bpp"] for r, _ in got]
            m_bpp = np.mean([8 * g["bytes"] / p for (_, g), p in zip(got, hw)])
            m_psnr = np.mean([g["psnr"] for _, g in got])
            m_ms = np.mean([g["msssim"] for _, g in got])
            gsi_same = np.mean([r["gsi"]["psnr"] for r, _ in got])
            note = ""
            if key.endswith("-down"):
                note = "factors " + ",".join(f"{g['factor']:g}" for _, g in got)
            print(f"  {key:<12}{len(got):>4}/{n}{m_bpp:>9.4f}{m_psnr:>8.2f}{m_ms:>9.4f}{gsi_same:>10.2f}  {note}")
        print()


def plot_rd(rows, ratios, codecs, path: Path) -> None:
    """Mean PSNR against mean bpp per codec (only ratios where the codec fitted every image)."""
    import imagecodecs

    plot = Plot(width=900, height=600, title="PSNR (dB) vs bpp, log scale")
    series = {}
    for key in ["gsi"] + [k for c in codecs for k in (c, c + "-down")]:
        pts = []
        for cr in ratios:
            sel = [r for r in rows if r["ratio"] == cr]
            if sel and all(r.get(key) for r in sel):
                bpp = np.mean([8 * r[key]["bytes"] / (r["bytes"] * 8 / r["bpp"]) for r in sel])
                pts.append((float(np.log10(bpp)), float(np.mean([r[key]["psnr"] for r in sel]))))
        if pts:
            series[key] = sorted(pts)
    for i, (key, pts) in enumerate(series.items()):
        plot.line(pts, i, key)
    path.write_bytes(imagecodecs.png_encode(plot.render()))


# -- a tiny plotter: matplotlib is not a dependency, so lines and a 3x5 pixel font in numpy ------
_FONT = {  # 5 rows of 3 bits per glyph, top row first
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111", "3": "111001111001111",
    "4": "101101111001001", "5": "111100111001111", "6": "111100111101111", "7": "111001010010010",
    "8": "111101111101111", "9": "111101111001111", ".": "000000000000010", "-": "000000111000000",
    " ": "000000000000000", "(": "010100100100010", ")": "010001001001010", ",": "000000000010100",
    "/": "001001010100100", "A": "010101111101101", "B": "110101110101110", "C": "011100100100011",
    "D": "110101101101110", "E": "111100110100111", "F": "111100110100100", "G": "011100101101011",
    "H": "101101111101101", "I": "111010010010111", "J": "001001001101010", "K": "101101110101101",
    "L": "100100100100111", "M": "101111111101101", "N": "110101101101101", "O": "010101101101010",
    "P": "110101110100100", "Q": "010101101111011", "R": "110101110101101", "S": "011100010001110",
    "T": "111010010010010", "U": "101101101101111", "V": "101101101101010", "W": "101101111111101",
    "X": "101101010101101", "Y": "101101010010010", "Z": "111001010100111", ":": "000010000010000",
}
_COLOURS = [(0, 0, 0), (220, 30, 30), (240, 150, 150), (30, 120, 220), (150, 190, 240), (20, 160, 60),
            (150, 220, 160), (200, 120, 0), (240, 200, 120), (130, 0, 160), (200, 150, 220)]


class Plot:
    """Line plot rasterised with numpy: axes, grid, polylines with markers, legend, 3x5 font."""

    def __init__(self, width: int, height: int, title: str) -> None:
        self.w, self.h, self.title = width, height, title
        self.series: list[tuple[list, int, str]] = []

    def line(self, pts: list, colour: int, label: str) -> None:
        """Add a polyline of (x, y) data points."""
        self.series.append((pts, colour, label))

    def render(self) -> np.ndarray:
        """The plot as a uint8 (H, W, 3) image."""
        img = np.full((self.h, self.w, 3), 255, np.uint8)
        pts = [p for s in self.series for p in s[0]]
        if not pts:
            return img
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        x0, x1 = np.floor(min(xs) * 4) / 4, np.ceil(max(xs) * 4) / 4 + 1e-9
        y0, y1 = np.floor(min(ys)) - 1, np.ceil(max(ys)) + 1
        left, right, top, bottom = 70, self.w - 200, 40, self.h - 50

        def px(x, y):
            return (left + (x - x0) / (x1 - x0) * (right - left), bottom - (y - y0) / (y1 - y0) * (bottom - top))

        for gx in np.arange(x0, x1, 0.25):
            a, _ = px(gx, y0)
            self._seg(img, (a, top), (a, bottom), (225, 225, 225))
            self._text(img, f"{10 ** gx:.3g}", int(a) - 8, bottom + 8, (0, 0, 0))
        for gy in np.arange(y0, y1 + 0.5, 2):
            _, b = px(x0, gy)
            self._seg(img, (left, b), (right, b), (225, 225, 225))
            self._text(img, f"{gy:.0f}", left - 28, int(b) - 5, (0, 0, 0))
        self._seg(img, (left, bottom), (right, bottom), (0, 0, 0))
        self._seg(img, (left, top), (left, bottom), (0, 0, 0))
        self._text(img, self.title.upper(), left, 12, (0, 0, 0))
        self._text(img, "BPP", (left + right) // 2, bottom + 30, (0, 0, 0))
        for k, (series, colour, label) in enumerate(self.series):
            col = _COLOURS[colour % len(_COLOURS)]
            p = [px(x, y) for x, y in series]
            for a, b in zip(p, p[1:]):
                self._seg(img, a, b, col, width=2)
            for a in p:
                self._box(img, a, 3, col)
            ly = top + 20 * k
            self._seg(img, (right + 20, ly + 5), (right + 50, ly + 5), col, width=2)
            self._text(img, label.upper(), right + 58, ly, col)
        return img

    @staticmethod
    def _seg(img, a, b, col, width: int = 1) -> None:
        n = int(max(abs(b[0] - a[0]), abs(b[1] - a[1]))) + 1
        t = np.linspace(0, 1, n)
        x = np.round(a[0] + (b[0] - a[0]) * t).astype(int)
        y = np.round(a[1] + (b[1] - a[1]) * t).astype(int)
        for d in range(width):
            ok = (x + d >= 0) & (x + d < img.shape[1]) & (y >= 0) & (y < img.shape[0])
            img[y[ok], x[ok] + d] = col
            ok = (x >= 0) & (x < img.shape[1]) & (y + d >= 0) & (y + d < img.shape[0])
            img[y[ok] + d, x[ok]] = col

    @staticmethod
    def _box(img, a, r: int, col) -> None:
        x, y = int(round(a[0])), int(round(a[1]))
        img[max(y - r, 0):y + r + 1, max(x - r, 0):x + r + 1] = col

    @staticmethod
    def _text(img, text: str, x: int, y: int, col, scale: int = 2) -> None:
        for ch in text:
            glyph = _FONT.get(ch.upper(), _FONT[" "])
            bits = np.array([int(b) for b in glyph], bool).reshape(5, 3)
            big = np.kron(bits, np.ones((scale, scale), bool))
            h, w = big.shape
            if 0 <= y and y + h <= img.shape[0] and 0 <= x and x + w <= img.shape[1]:
                img[y:y + h, x:x + w][big] = col
            x += 4 * scale


if __name__ == "__main__":
    main()
