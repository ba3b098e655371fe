"""How much structure the .gsz coder could still use in a scene's non-SH attributes.

The scene is encoded at the chosen quality. For each quantised channel (opacity, the three
log-scales, the three rotation ratios, the DC colour as G, R-G, B-G), in the units its
precision class codes (value >> shift), the script prints, in bits per value:

- `coded`: what the encoder spent (symbols, plus a share of its channel set's models);
- `marginal`: the empirical entropy of the values (no prediction, no context);
- `8-NN`: the entropy left after predicting each value by the median of its 8 nearest
  Gaussians in space. All neighbours count, decoded or not, so this is an optimistic
  bound on what any neighbour context could give;
- `intra`: the largest mutual information with another channel of the same Gaussian
  (plug-in estimate, slightly high), the most an intra-Gaussian context could save.

When `coded` is close to `marginal` and neither `8-NN` nor `intra` is much lower, the
attributes behave as independent per Gaussian, and only a coarser quantiser (fewer bytes,
more error) changes their size.

    python bench/gsz_attr_stats.py [--scene playbot_lod2 | --scene path/to/scene.ply] [--quality medium]
"""
from __future__ import annotations

import numpy as np

from gsz_sh_stats import entropy_bits, nearest, scene_args

CHANNELS = (("opacity", 0, 1), ("scale", 1, 3), ("rot", 2, 3), ("dc", 3, 3))  # name, shift index, channels


def joint_bits(x: np.ndarray, y: np.ndarray) -> float:
    """Empirical joint entropy of two integer columns, in bits per pair."""
    _, cnt = np.unique(np.stack([x, y], 1), axis=0, return_counts=True)
    p = cnt / x.size
    return float(-(p * np.log2(p)).sum())


def coded_bits(ints: dict, shifts: list) -> dict[str, list[float]]:
    """Bits per value of each channel as the encoder codes it (its set's header shared evenly)."""
    from gscodec.container.byteio import ByteWriter
    from gscodec.scene.base.ctxcode import N_LEVELS, ChannelSetEncoder
    from gscodec.scene.base.group import to_gdiff

    out = {}
    for name, si, c in CHANNELS:
        v = ints[name].reshape(-1, c)
        s = ChannelSetEncoder(to_gdiff(v) if name == "dc" else v, shift=shifts[si])
        w = ByteWriter()
        s.write_header(w)
        head = 8.0 * len(w.getvalue()) / c
        out[name] = []
        for ch in range(s.c):
            bits = head
            r = np.concatenate([s.plan[k][ch][0] for k in range(N_LEVELS)]) - s.mins[ch]
            ctx = np.concatenate([s.plan[k][ch][1] for k in range(N_LEVELS)])
            for j, m in enumerate(s.models[ch]):
                sel = r[ctx == j]
                if sel.size:
                    bits += m.bits(np.bincount(sel, minlength=s.sizes[ch]))
            out[name].append(bits / v.shape[0])
    return out


def main() -> None:
    from gscodec.scene.base.group import to_gdiff
    from gscodec.scene.base.params import quality
    from gscodec.scene.codec import encode_base_chunks

    scene, label, qname = scene_args(__doc__)
    chunks, ints = encode_base_chunks(scene, quality=qname, keep_ints=True)
    n = ints["class"].shape[0]
    caps = quality(qname).caps()
    shifts = [np.minimum(ints["class"], c) for c in caps]
    coded = coded_bits(ints, shifts)
    cols = {}
    for name, si, c in CHANNELS:
        v = ints[name].reshape(n, c)
        v = to_gdiff(v) if name == "dc" else v
        for ch in range(c):
            cols[f"{name} {ch}"] = (v[:, ch] >> shifts[si], coded[name][ch])
    nb = nearest(ints["position"].astype(np.float64), 8)
    size = sum(len(ch.data) for ch in chunks)
    print(f"{label}, {n} Gaussians, quality {qname}, {size / n:.2f} bytes/Gaussian in chunks")
    print("| channel | coded | marginal | 8-NN | intra |")
    print("|---|---|---|---|---|")
    ent = {key: entropy_bits(x) for key, (x, _) in cols.items()}
    for key, (x, bits) in cols.items():
        h0 = ent[key]
        pred = np.median(x[nb], axis=1)
        h8 = entropy_bits(np.rint(x - pred).astype(np.int64))
        mi = max(h0 + ent[k2] - joint_bits(x, y) for k2, (y, _) in cols.items() if k2 != key)
        print(f"| {key} | {bits:.2f} | {h0:.2f} | {h8:.2f} | {mi:.2f} |")


if __name__ == "__main__":
    main()
