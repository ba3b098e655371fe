"""Least-squares colour solve shared by initialisation and fitting (torch)."""
from __future__ import annotations

from typing import Callable


def cgls(fwd: Callable, adj: Callable, x, target, iters: int, on_step: Callable[[], None] | None = None):
    """CGLS on min ||fwd(x) - target||^2 from x, per colour channel; fwd is linear, adj its adjoint."""
    import torch

    r = target - fwd(x)
    g = adj(r)
    p = g.clone()
    gamma = (g * g).sum(0)
    for _ in range(iters):
        q = fwd(p)
        qq = (q * q).sum((0, 1))
        alpha = torch.where(qq > 0, gamma / qq.clamp_min(1e-30), torch.zeros_like(qq))
        x = x + alpha * p
        r = r - alpha * q
        g = adj(r)
        g_new = (g * g).sum(0)
        beta = torch.where(gamma > 0, g_new / gamma.clamp_min(1e-30), torch.zeros_like(gamma))
        p = g + beta * p
        gamma = g_new
        if on_step is not None:
            on_step()
    return x
