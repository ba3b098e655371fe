"""F: a compact NAFNet-style restoration network (Chen et al. 2022) for rendering residuals.

Input: the degraded render I~ and the decoded residual R~ (6 channels); output the
correction F(I~, R~), so the restored image is I^ = I~ + F(I~, R~). F is parameterised as
R~ + G(I~, R~) with G's last layer zero-initialised: an untrained F is exactly the paper's
"residual" ablation, and training can only learn what the side information misses.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

DEFAULT_CONFIG = {"width": 16, "enc_blocks": [1, 1, 2], "middle_blocks": 2, "dec_blocks": [1, 1, 1]}


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel of an (N, C, H, W) tensor."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        y = (x - mu) / torch.sqrt(var + self.eps)
        return self.weight.view(1, -1, 1, 1) * y + self.bias.view(1, -1, 1, 1)


class SimpleGate(nn.Module):
    """Split the channels in two halves and multiply them (NAFNet's activation)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class NAFBlock(nn.Module):
    """NAFNet block: LN, 1x1, depthwise 3x3, SimpleGate, simplified channel attention, FFN."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(c)
        self.conv1 = nn.Conv2d(c, 2 * c, 1)
        self.dwconv = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)
        self.gate = SimpleGate()
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, c, 1))
        self.conv2 = nn.Conv2d(c, c, 1)
        self.norm2 = LayerNorm2d(c)
        self.ffn1 = nn.Conv2d(c, 2 * c, 1)
        self.ffn2 = nn.Conv2d(c, c, 1)
        # Zero-initialised branch gains make every block start as the identity.
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.gate(self.dwconv(self.conv1(self.norm1(x))))
        y = self.conv2(y * self.sca(y))
        x = x + self.beta * y
        y = self.ffn2(self.gate(self.ffn1(self.norm2(x))))
        return x + self.gamma * y


class RestoreNet(nn.Module):
    """U-shaped NAFNet: 6-channel input (I~, R~), 3-channel correction output."""

    def __init__(self, width: int = 16, enc_blocks=(1, 1, 2), middle_blocks: int = 2,
                 dec_blocks=(1, 1, 1)) -> None:
        super().__init__()
        self.config = {"width": int(width), "enc_blocks": list(enc_blocks),
                       "middle_blocks": int(middle_blocks), "dec_blocks": list(dec_blocks)}
        if len(enc_blocks) != len(dec_blocks):
            raise ValueError("enc_blocks and dec_blocks need the same length")
        self.intro = nn.Conv2d(6, width, 3, padding=1)
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        self.decoders, self.ups = nn.ModuleList(), nn.ModuleList()
        c = width
        for n in enc_blocks:
            self.encoders.append(nn.Sequential(*[NAFBlock(c) for _ in range(n)]))
            self.downs.append(nn.Conv2d(c, 2 * c, 2, stride=2))
            c *= 2
        self.middle = nn.Sequential(*[NAFBlock(c) for _ in range(middle_blocks)])
        for n in dec_blocks:
            self.ups.append(nn.Sequential(nn.Conv2d(c, 2 * c, 1, bias=False), nn.PixelShuffle(2)))
            c //= 2
            self.decoders.append(nn.Sequential(*[NAFBlock(c) for _ in range(n)]))
        self.ending = nn.Conv2d(width, 3, 3, padding=1)
        nn.init.zeros_(self.ending.weight)
        nn.init.zeros_(self.ending.bias)
        self.multiple = 2 ** len(enc_blocks)

    def forward(self, degraded: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """Correction F(I~, R~) for (N, 3, H, W) inputs; any H, W (padded internally)."""
        h, w = degraded.shape[-2:]
        ph, pw = (-h) % self.multiple, (-w) % self.multiple
        x = torch.cat([degraded - 0.5, residual], dim=1)
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        x = self.intro(x)
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            x = enc(x)
            skips.append(x)
            x = down(x)
        x = self.middle(x)
        for dec, up, skip in zip(self.decoders, self.ups, reversed(skips)):
            x = dec(up(x) + skip)
        return residual + self.ending(x)[..., :h, :w]


def build(config: dict | None = None) -> RestoreNet:
    """A RestoreNet from a config dict (DEFAULT_CONFIG when None)."""
    cfg = dict(DEFAULT_CONFIG, **(config or {}))
    return RestoreNet(cfg["width"], cfg["enc_blocks"], cfg["middle_blocks"], cfg["dec_blocks"])


def parameter_count(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
