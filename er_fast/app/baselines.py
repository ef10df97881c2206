"""What a user would write without er_fast: the baselines every benchmark times in the same run."""
from __future__ import annotations

import math

import torch

SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def mmd_plain(x, y, scales=SCALES):
    """Unbiased MMD² with the multi-scale IMQ kernel as the WAE code writes it (full n x n
    matrices, the diagonal removed with (1 - eye)), batched over the leading dimension."""
    n, m, d = x.shape[-2], y.shape[-2], x.shape[-1]
    c = 2.0 * d
    dxx, dyy, dxy = torch.cdist(x, x) ** 2, torch.cdist(y, y) ** 2, torch.cdist(x, y) ** 2
    offx = 1 - torch.eye(n, dtype=x.dtype, device=x.device)
    offy = 1 - torch.eye(m, dtype=x.dtype, device=x.device)
    res = 0
    for s in scales:
        cs = c * s
        kxx = (cs / (cs + dxx) * offx).sum((-2, -1)) / (n * (n - 1))
        kyy = (cs / (cs + dyy) * offy).sum((-2, -1)) / (m * (m - 1))
        kxy = (cs / (cs + dxy)).sum((-2, -1)) / (n * m)
        res = res + kxx + kyy - 2 * kxy
    return res


def make_keops_mmd():
    """The same MMD² with KeOps LazyTensors (no n x m matrix); None if pykeops is unusable here."""
    try:
        from pykeops.torch import LazyTensor
    except Exception:  # noqa: BLE001 - any import problem means: no KeOps baseline
        return None

    def ksum(a, b, scales):
        a_i, b_j = LazyTensor(a[..., :, None, :]), LazyTensor(b[..., None, :, :])
        d2 = ((a_i - b_j) ** 2).sum(-1)
        k = None
        for s in scales:
            cs = 2.0 * a.shape[-1] * s
            t = cs / (d2 + cs)
            k = t if k is None else k + t
        return k.sum(dim=a.dim() - 1).sum((-2, -1))  # reduce over j, then over i

    def mmd_keops(x, y, scales=SCALES):
        n, m = x.shape[-2], y.shape[-2]
        S = len(scales)
        sxx = (ksum(x, x, scales) - n * S) / (n * (n - 1))  # the diagonal holds k(0) = S exactly
        syy = (ksum(y, y, scales) - m * S) / (m * (m - 1))
        return sxx + syy - 2 * ksum(x, y, scales) / (n * m)

    return mmd_keops


def beta_rsample_torch(alpha, beta):
    return torch.distributions.Beta(alpha, beta).rsample()


def circle_rotate_eager(z, theta):
    """cos/sin of 2πz, then a 2×2 rotation built from cos θ / sin θ, elementwise."""
    a = 2 * math.pi * z
    x, y = torch.cos(a), torch.sin(a)
    c, s = torch.cos(theta), torch.sin(theta)
    return torch.stack((c * x - s * y, s * x + c * y), -1)


def circle_rotate_matmul(z, theta):
    """cos/sin of 2πz, then a 2×2 rotation matrix applied with matmul."""
    a = 2 * math.pi * z
    p = torch.stack((torch.cos(a), torch.sin(a)), -1)  # (..., k, 2)
    c, s = torch.cos(theta), torch.sin(theta)
    rot = torch.stack((torch.stack((c, -s), -1), torch.stack((s, c), -1)), -2)  # (..., k, 2, 2)
    return (rot @ p.unsqueeze(-1)).squeeze(-1)


def rotate_eager(p, theta):
    c, s = torch.cos(theta), torch.sin(theta)
    x, y = p[..., 0], p[..., 1]
    return torch.stack((c * x - s * y, s * x + c * y), -1)


def rotate_matmul(p, theta):
    c, s = torch.cos(theta), torch.sin(theta)
    rot = torch.stack((torch.stack((c, -s), -1), torch.stack((s, c), -1)), -2)  # (..., 2, 2)
    return (rot @ p.unsqueeze(-1)).squeeze(-1)
