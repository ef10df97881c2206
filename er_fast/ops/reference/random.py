"""Pure-PyTorch philox_uniform / philox_normal: the same stream layout and the same floating-point
operations, in the same order, as csrc/common/random_math.h, so they give the kernels' values bit
for bit (float64 tensor ops are exactly rounded and never fused in eager mode). The test oracle
and the fallback without the extension. Like the CUDA kernel, the counter is read as a tensor
(never .item()), an invalid counter makes the whole output NaN and a negative seed its slice.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from .beta import philox4x32_10

_M32 = 0xFFFFFFFF
SEED_SALT = 0x52414E44  # "RAND", csrc/common/random_math.h kSeedSalt
STREAM_LIMIT = 1 << 16
COUNTER_LIMIT = 1 << 48


def per_block(dtype: torch.dtype) -> int:
    """Outputs per Philox block: 4 (float32) or 2 (float64)."""
    return 4 if dtype == torch.float32 else 2


def philox_words(seeds: torch.Tensor, counter: torch.Tensor, stream: int, nblocks: int):
    """The four words (int64 tensors of uint32 values, shape (S, nblocks)) of blocks 0..nblocks-1
    of every seed's stream: key (lo32(seed), hi32(seed) ^ salt), counter words
    (lo32(j), hi32(j), stream | (counter >> 32) << 16, lo32(counter))."""
    seeds = seeds.reshape(-1, 1)
    c = counter.reshape(1, 1)
    j = torch.arange(nblocks, device=seeds.device, dtype=torch.int64).reshape(1, -1)
    shape = (seeds.shape[0], nblocks)
    k0 = (seeds & _M32).expand(shape)
    k1 = (((seeds >> 32) & _M32) ^ SEED_SALT).expand(shape)
    c0 = (j & _M32).expand(shape)
    c1 = ((j >> 32) & _M32).expand(shape)
    c2 = (((c >> 32) & 0xFFFF) << 16 | stream).expand(shape)
    c3 = (c & _M32).expand(shape)
    return philox4x32_10(c0, c1, c2, c3, k0, k1)


# ---------------------------------------------------------------- word -> number
def uniform_f32(w: torch.Tensor) -> torch.Tensor:
    """((w >> 9) + 1/2) 2^-23 as float32: the odd multiples of 2^-24 in (0, 1)."""
    return ((w >> 9).to(torch.float64) + 0.5).mul(2.0**-23).to(torch.float32)


def uniform_f64(hi: torch.Tensor, lo: torch.Tensor) -> torch.Tensor:
    """((hi:lo >> 12) + 1/2) 2^-52: the odd multiples of 2^-53 in (0, 1)."""
    return (((hi << 20) | (lo >> 12)).to(torch.float64) + 0.5) * 2.0**-52


def uniform32(w: torch.Tensor) -> torch.Tensor:
    return (w.to(torch.float64) + 0.5) * 2.0**-32


def log_(x: torch.Tensor) -> torch.Tensor:
    """random_math.h log_ (fdlibm e_log.c) op for op; x in [2^-64, 1]."""
    ix = x.view(torch.int64) + (0x3FF0000000000000 - 0x3FE6A09E00000000)
    k = (ix >> 52).to(torch.float64) - 1023.0
    ix = (ix & 0x000FFFFFFFFFFFFF) + 0x3FE6A09E00000000
    f = ix.view(torch.float64) - 1.0
    hfsq = (0.5 * f) * f
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (3.999999999940941908e-01 + w * (2.222219843214978396e-01 + w * 1.531383769920937332e-01))
    t2 = z * (6.666666666666735130e-01 + w * (2.857142874366239149e-01
                                             + w * (1.818357216161805012e-01 + w * 1.479819860511658591e-01)))
    r = t2 + t1
    y = s * (hfsq + r)
    y = y + k * 1.90821492927058770002e-10
    y = y - hfsq
    y = y + f
    return y + k * 6.93147180369123816490e-01


_SIN = (-4.377065467313742e-14, 6.0669357311061955e-12, -6.688035109811468e-10, 5.692172921967927e-08,
        -3.598843235212085e-06, 0.00016044118478735983, -0.004681754135318688, 0.07969262624616705,
        -0.6459640975062463, 1.5707963267948966)
_COS = (-5.294400200734623e-13, 6.565963114979473e-11, -6.386603083791852e-09, 4.710874778818172e-07,
        -2.5202042373060607e-05, 0.0009192602748394266, -0.02086348076335296, 0.25366950790104803,
        -1.2337005501361697, 1.0)


def sincos_2pi(u: torch.Tensor):
    """random_math.h sincos_2pi op for op: (sin 2 pi u, cos 2 pi u), u in [0, 1]."""
    t = 4.0 * u
    q = (t + 2.0**52) - 2.0**52
    f = t - q
    z = f * f
    ps = torch.full_like(z, _SIN[0])
    for a in _SIN[1:]:
        ps = ps * z + a
    s0 = f * ps
    pc = torch.full_like(z, _COS[0])
    for a in _COS[1:]:
        pc = pc * z + a
    c0 = pc
    odd = (q == 1.0) | (q == 3.0)
    a, b = torch.where(odd, c0, s0), torch.where(odd, s0, c0)
    s = torch.where((q == 2.0) | (q == 3.0), -a, a)
    c = torch.where((q == 1.0) | (q == 2.0), -b, b)
    return s, c


def sqrt_(y: torch.Tensor) -> torch.Tensor:
    """random_math.h sqrt_ op for op (torch.sqrt on the CPU is not correctly rounded)."""
    g = (0x5FE6EB50C7B537A9 - (y.view(torch.int64) >> 1)).view(torch.float64)
    hy = 0.5 * y
    for _ in range(3):
        g = g * (1.5 - hy * (g * g))
    s = y * g
    return 0.5 * (s + y / s)


def box_muller(u1: torch.Tensor, u2: torch.Tensor):
    r = sqrt_(-2.0 * log_(u1))
    s, c = sincos_2pi(u2)
    return r * c, r * s


# ---------------------------------------------------------------- the ops
def _draw(seeds: torch.Tensor, counter: torch.Tensor, stream: int, size: Sequence[int], dtype: torch.dtype,
          normal: bool) -> torch.Tensor:
    S = seeds.shape[0]
    shape = (S, *size)
    n = math.prod(size)
    if S == 0 or n == 0:
        return torch.empty(shape, dtype=dtype, device=seeds.device)
    E = per_block(dtype)
    nb = -(-n // E)
    w0, w1, w2, w3 = philox_words(seeds, counter, stream, nb)
    if dtype == torch.float32:
        if normal:
            a, b = box_muller(uniform32(w0), uniform32(w1))
            c, d = box_muller(uniform32(w2), uniform32(w3))
            vals = torch.stack([a, b, c, d], dim=-1).to(torch.float32)
        else:
            vals = torch.stack([uniform_f32(w) for w in (w0, w1, w2, w3)], dim=-1)
    else:
        ua, ub = uniform_f64(w0, w1), uniform_f64(w2, w3)
        vals = torch.stack(box_muller(ua, ub) if normal else (ua, ub), dim=-1)
    vals = vals.reshape(S, nb * E)[:, :n]
    ok = (seeds >= 0).reshape(S, 1) & (counter >= 0) & (counter < COUNTER_LIMIT)
    vals = torch.where(ok, vals, torch.full_like(vals, math.nan))
    return vals.reshape(shape)


def philox_uniform(seeds: torch.Tensor, counter: torch.Tensor, stream: int, size: Sequence[int],
                   dtype: torch.dtype) -> torch.Tensor:
    return _draw(seeds, counter, stream, size, dtype, normal=False)


def philox_normal(seeds: torch.Tensor, counter: torch.Tensor, stream: int, size: Sequence[int],
                  dtype: torch.dtype) -> torch.Tensor:
    return _draw(seeds, counter, stream, size, dtype, normal=True)
