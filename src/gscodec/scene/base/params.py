"""Quality presets and spec caps of the .gsz base layer."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import InputError

MAX_GAUSSIANS = 1 << 28          # per file
MAX_GROUP = 1 << 20              # per group (SGRP chunk)
DEFAULT_GROUP = 1 << 18
MAX_POS_BITS = 21                # per axis; Morton codes fit 63 bits
QMAX = 8191                      # |quantised attribute| cap, keeps residual alphabets <= 65536
ANCHOR_LOG2 = 12                 # level-0 stride 4096 in Morton order
MAX_CODEBOOK = 4096
MAX_CLASS = 7                    # precision classes 0..7: step multipliers 1, 2, 4, ..., 128


@dataclass(frozen=True)
class Quality:
    """Quantiser steps and encoder choices of one quality level."""

    code: int
    pos_bits: int          # bits per axis across the scene's robust extent
    dc_step: float         # f_dc units
    rest_step: float       # f_rest units
    opacity_step: float    # logit units
    scale_step: float      # log-scale units
    rot_levels: int        # quaternion ratio step is 1/rot_levels
    vq_lambda: float       # rate-distortion multiplier of the SH path choice
    codebook: int          # SH codebook size cap
    class_bias: float      # precision class = floor(0.5 log2(median importance / importance) + bias)
    max_steps: tuple = (0.3, 0.25, 0.25, 1.0, 1.0)  # coarsest step of opacity, scale, rotation, dc, rest

    def caps(self) -> tuple[int, ...]:
        """Largest class shift per attribute so no step exceeds max_steps."""
        steps = (self.opacity_step, self.scale_step, 1.0 / self.rot_levels, self.dc_step, self.rest_step)
        return tuple(int(min(MAX_CLASS, max(0, np.floor(np.log2(m / s)))))
                     for m, s in zip(self.max_steps, steps))


QUALITIES = {
    # code, position bits, dc, rest, opacity, scale steps, rotation levels, VQ lambda, codebook, class bias
    # Rotation 1/384 (was 1/192): scored on 24 orbit views at 800 px, the rotation error was
    # the second largest share on playbot_lod2 (alone 42.5 dB foreground); each preset's rest
    # step was then raised to keep about its size. With the 400-px importance renders, playbot
    # bench/gsz_rd.py: medium +0.60 dB for +0.08 B/G, low +0.43 for +0.12, high +0.17 for +0.01.
    "low": Quality(0, 12, 0.01, 0.024, 0.04, 0.03, 384, 1e-3, 1024, 5.5),
    # medium: a fine SH rest step and a strong pull to the codebook; with the SH transform
    # (bitstream 2.0) rest 0.0125 gave +0.78 dB over 0.01 at equal size on playbot_lod2.
    "medium": Quality(1, 13, 0.01, 0.014, 0.04, 0.03, 384, 3.5e-3, 1024, 4.6),
    "high": Quality(2, 16, 0.01, 0.022, 0.04, 0.03, 384, 1e-4, 1024, 1.5),
}


def quality(name: str) -> Quality:
    """Preset by name (low, medium, high)."""
    try:
        return QUALITIES[name]
    except KeyError:
        raise InputError(f"unknown quality {name!r} (use low, medium or high)") from None
