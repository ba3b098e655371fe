"""SSIM (Wang et al. 2004) in torch, Gaussian window, for the fitting loss."""
from __future__ import annotations

C1 = 0.01 ** 2
C2 = 0.03 ** 2


def _window(size: int, sigma: float, device) -> "torch.Tensor":
    import torch

    x = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def _blur(x: "torch.Tensor", g: "torch.Tensor") -> "torch.Tensor":
    import torch.nn.functional as F

    c = x.shape[1]
    k = g.numel()
    x = F.conv2d(x, g.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(x, g.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


def ssim(a: "torch.Tensor", b: "torch.Tensor", window: int = 11, sigma: float = 1.5) -> "torch.Tensor":
    """Mean SSIM of two (H, W, C) images with values in [0, 1] ('valid' windows only)."""
    x = a.permute(2, 0, 1).unsqueeze(0)
    y = b.permute(2, 0, 1).unsqueeze(0)
    size = min(window, x.shape[2], x.shape[3])
    if size % 2 == 0:
        size -= 1
    g = _window(size, sigma * size / window if size < window else sigma, x.device)
    import torch

    c = x.shape[1]
    # one grouped convolution over all five moment maps is several times faster than five
    mom = _blur(torch.cat([x, y, x * x, y * y, x * y], 1), g)
    mx, my = mom[:, :c], mom[:, c:2 * c]
    sxx = mom[:, 2 * c:3 * c] - mx * mx
    syy = mom[:, 3 * c:4 * c] - my * my
    sxy = mom[:, 4 * c:] - mx * my
    num = (2 * mx * my + C1) * (2 * sxy + C2)
    den = (mx * mx + my * my + C1) * (sxx + syy + C2)
    return (num / den).mean()

