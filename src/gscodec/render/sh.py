"""Real spherical harmonics up to degree 3 in the reference 3DGS / gsplat basis and signs."""
from __future__ import annotations

import torch

# Normalisation constants of the real SH basis, as used by the reference 3DGS trainer and
# gsplat (the signs of the odd-m terms are folded into the evaluation below).
SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005,
         -1.0925484305920792, 0.5462742152960396)
SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
         -0.4570457994644658, 1.445305721320277, -0.5900435899266435)

SH_COUNT_TO_DEGREE = {1: 0, 4: 1, 9: 2, 16: 3}


def sh_degree_of(k: int) -> int:
    """SH degree for a coefficient count K in {1, 4, 9, 16}."""
    if k not in SH_COUNT_TO_DEGREE:
        raise ValueError(f"SH coefficient count must be 1, 4, 9 or 16, got {k}")
    return SH_COUNT_TO_DEGREE[k]


def sh_basis(dirs: torch.Tensor, degree: int) -> torch.Tensor:
    """Basis values (..., (degree+1)**2) for unit directions (..., 3)."""
    x, y, z = dirs[..., 0], dirs[..., 1], dirs[..., 2]
    out = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        out += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        xy, yz, xz = x * y, y * z, x * z
        out += [SH_C2[0] * xy, SH_C2[1] * yz, SH_C2[2] * (2.0 * zz - xx - yy),
                SH_C2[3] * xz, SH_C2[4] * (xx - yy)]
        if degree >= 3:
            out += [SH_C3[0] * y * (3.0 * xx - yy), SH_C3[1] * xy * z,
                    SH_C3[2] * y * (4.0 * zz - xx - yy),
                    SH_C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
                    SH_C3[4] * x * (4.0 * zz - xx - yy), SH_C3[5] * z * (xx - yy),
                    SH_C3[6] * x * (xx - 3.0 * yy)]
    return torch.stack(out, dim=-1)


def eval_sh(coeffs: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Raw SH value sum_k basis_k(dir) * coeffs[..., k, :] (no +0.5, no clamp); dirs need not be unit."""
    degree = sh_degree_of(coeffs.shape[-2])
    # Same guard as gsplat: a zero direction stays finite instead of producing NaNs.
    unit = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    basis = sh_basis(unit, degree)
    return (basis.unsqueeze(-1) * coeffs).sum(dim=-2)


def sh_to_rgb(coeffs: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """View-dependent colour max(SH(dir) . coeffs + 0.5, 0) as in 3DGS / gsplat."""
    return (eval_sh(coeffs, dirs) + 0.5).clamp_min(0.0)
