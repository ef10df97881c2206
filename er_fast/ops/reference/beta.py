"""Pure-PyTorch Beta sampler and implicit reparameterization gradient: the same maths, the same
random streams (Philox4x32-10 in int64 tensor arithmetic) and the same decisions as the kernels in
csrc/common/beta_math.h, computed in float64. The test oracle and the fallback without the
extension. Vectorized: loops run over trials / continued-fraction terms, never over elements.
"""
from __future__ import annotations

import math

import torch

_M32 = 0xFFFFFFFF
_MAX_TRIALS = 64
_MAX_CF_ITER = 2000
_EPS = 2.0**-52
_SMALL = math.sqrt(2.2250738585072014e-308)
# The supported concentrations (csrc/common/beta_math.h kMinConcentration / kMaxConcentration).
SUPPORTED_RANGE = (1e-3, 1e5)


def _valid(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    lo, hi = SUPPORTED_RANGE
    return (a >= lo) & (a <= hi) & (b >= lo) & (b <= hi)


# ---------------------------------------------------------------- Philox4x32-10
def _mulhilo(a: torch.Tensor, m: int):
    """(hi, lo) 32-bit halves of a * m, a an int64 tensor of uint32 values: split m in 16-bit
    halves so every product fits in int64."""
    mh, ml = m >> 16, m & 0xFFFF
    al = a * ml
    t = a * mh + (al >> 16)
    return t >> 16, ((t & 0xFFFF) << 16) | (al & 0xFFFF)


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 on int64 tensors holding uint32 values (broadcasting)."""
    c0, c1, c2, c3 = torch.broadcast_tensors(c0, c1, c2, c3)
    k0 = torch.as_tensor(k0, dtype=torch.int64)
    k1 = torch.as_tensor(k1, dtype=torch.int64)
    for _ in range(10):
        hi0, lo0 = _mulhilo(c0, 0xD2511F53)
        hi1, lo1 = _mulhilo(c2, 0xCD9E8D57)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0 = (k0 + 0x9E3779B9) & _M32
        k1 = (k1 + 0xBB67AE85) & _M32
    return c0, c1, c2, c3


def _u53(hi, lo):
    return (((hi << 21) | (lo >> 11)).double() + 0.5) * 2.0**-53


def _u32(r):
    return (r.double() + 0.5) * 2.0**-32


def _streams(key: torch.Tensor, shape: torch.Size, device):
    """Per-element Philox key words and counter words (k0, k1, idx_lo, c2, c3), the layout of
    csrc/common/philox.h: key (2,) for the whole tensor or (S, 2), one row per leading slice with
    the element counter restarting in each slice."""
    n = math.prod(shape)
    key = key.to(device=device, dtype=torch.int64).reshape(-1, 2)
    s = key.shape[0]
    per = n // s if s > 0 else 0
    local = torch.arange(per, device=device, dtype=torch.int64).repeat(s)
    rows = torch.arange(s, device=device).repeat_interleave(per)
    key0, key1 = key[rows, 0], key[rows, 1]
    k0, k1 = key0 & _M32, (key0 >> 32) & _M32
    c2 = ((local >> 32) & _M32) ^ (key1 & _M32)
    c3 = (key1 >> 32) & _M32
    return k0, k1, local & _M32, c2, c3


# ---------------------------------------------------------------- sampling
def _gamma_log(shape_p: torch.Tensor, g: int, st, boost_u: torch.Tensor) -> torch.Tensor:
    """log of a Gamma(shape_p) variate per element (Marsaglia-Tsang, boosted below 1)."""
    k0, k1, idx, c2, c3 = st
    boost = shape_p < 1
    s = torch.where(boost, shape_p + 1, shape_p)
    d = s - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    lg = torch.log(d)
    acc = torch.zeros_like(boost)
    for t in range(_MAX_TRIALS):
        r0, r1, r2, r3 = philox4x32_10(torch.full_like(idx, 1 + 2 * t + g), idx, c2, c3, k0, k1)
        u1, u2, u3 = _u53(r0, r1), _u32(r2), _u32(r3)
        z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2 * math.pi * u2)
        w = 1.0 + c * z
        pos = w > 0
        ws = torch.where(pos, w, torch.ones_like(w))
        lv = 3.0 * torch.log(ws)
        v = ws * ws * ws
        ok = pos & (torch.log(u3) < 0.5 * z * z + d - d * v + d * lv)
        lg = torch.where(ok & ~acc, torch.log(d) + lv, lg)
        acc = acc | ok
        if bool(acc.all()):
            break
    return lg + torch.where(boost, torch.log(boost_u) / shape_p, torch.zeros_like(lg))


def _open_interval(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Round to dtype, then clamp into [smallest normal, largest value below 1] of dtype."""
    fi = torch.finfo(dtype)
    return x.to(dtype).clamp(fi.tiny, 1.0 - fi.eps / 2)


def beta_rsample(alpha: torch.Tensor, beta: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """x ~ Beta(alpha, beta); alpha and beta of the output's shape; key int64 (2,) or (S, 2).
    Not differentiable by itself (see BetaRsample)."""
    shape, dtype, dev = alpha.shape, alpha.dtype, alpha.device
    a = alpha.detach().reshape(-1).double()
    b = beta.detach().reshape(-1).double()
    if a.numel() == 0:
        return torch.empty(shape, dtype=dtype, device=dev)
    st = _streams(key, shape, dev)
    k0, k1, idx, c2, c3 = st
    r0, r1, r2, r3 = philox4x32_10(torch.zeros_like(idx), idx, c2, c3, k0, k1)
    lga = _gamma_log(a, 0, st, _u53(r0, r1))
    lgb = _gamma_log(b, 1, st, _u53(r2, r3))
    x = 1.0 / (1.0 + torch.exp(lgb - lga))
    bad = ~_valid(a, b)
    x = torch.where(bad, torch.full_like(x, math.nan), x)
    return _open_interval(x, dtype).reshape(shape)


# ---------------------------------------------------------------- gradient
def _psi_tail(w):
    r = 1.0 / (w * w)
    return -r * (1 / 12 - r * (1 / 120 - r * (1 / 252 - r * (1 / 240 - r * (1 / 132 - r * (691 / 32760 - r / 12))))))


def digamma_diff(z: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """psi(z + s) - psi(z), accurate when |s| << z (see csrc/common/beta_math.h)."""
    lo = torch.minimum(z, z + s)
    num, den, Z = torch.zeros_like(z), torch.ones_like(z), z
    for k in range(10):
        need = lo + k < 10
        d = Z * (Z + s)
        num = torch.where(need, num * d + den, num)
        den = torch.where(need, den * d, den)
        Z = torch.where(need, Z + 1, Z)
    return torch.log1p(s / Z) + s / (2 * Z * (Z + s)) + _psi_tail(Z + s) - _psi_tail(Z) + s * num / den


def _use_symmetry(x, a, b):
    sym = x * (a + b + 2) >= a + 1
    u, v = b * x, a * (1 - x)
    sym = torch.where((x <= 0.5) & (u <= torch.clamp(0.5 * a, min=20.0)) & (b >= 2000), torch.zeros_like(sym), sym)
    sym = torch.where((x > 0.5) & (v <= torch.clamp(0.5 * b, min=20.0)) & (a >= 2000), torch.ones_like(sym), sym)
    return sym


def _fix(v):
    return torch.where(v.abs() < _SMALL, torch.full_like(v, _SMALL), v)


def _cf(p, q, y):
    """The continued fraction h of I_y(p,q) = y^p (1-y)^q / (p B(p,q)) * h (DLMF 8.17.22) and its
    derivatives in p and q, by the fundamental recurrences A_j = A_{j-1} + d_j A_{j-2} (same for
    B) differentiated forward-mode (Boik & Robison-Cox 1998), rescaled by 1/B after every pair of
    terms so that h = A. Elements stop updating once h and both derivatives have converged."""
    one, zero = torch.ones_like(p), torch.zeros_like(p)
    d1 = -(p + q) * y / (p + 1)
    # (A_prev, A, B_prev, B) = (1, 1, 1, 1 + d1), then normalized by 1/B.
    iB = 1.0 / _fix(1 + d1)
    Ap, A, Bp, B = iB, iB, iB, one
    dAp_p = dAp_q = dA_p = dA_q = zero
    dBp_p = dBp_q = zero
    dB_p = y * (q - 1) / (p + 1) ** 2 * iB
    dB_q = -y / (p + 1) * iB
    st = (Ap, A, Bp, B, dAp_p, dAp_q, dA_p, dA_q, dBp_p, dBp_q, dB_p, dB_q)
    h, dhp, dhq = A, dA_p - A * dB_p, dA_q - A * dB_q
    active = torch.ones_like(p, dtype=torch.bool)

    def step(st, d, ddp, ddq):
        Ap, A, Bp, B, dAp_p, dAp_q, dA_p, dA_q, dBp_p, dBp_q, dB_p, dB_q = st
        return (A, A + d * Ap, B, B + d * Bp,
                dA_p, dA_q, dA_p + ddp * Ap + d * dAp_p, dA_q + ddq * Ap + d * dAp_q,
                dB_p, dB_q, dB_p + ddp * Bp + d * dBp_p, dB_q + ddq * Bp + d * dBp_q)

    for m in range(1, _MAX_CF_ITER + 1):
        p2m = p + 2 * m
        r = 1.0 / (p2m * (p2m - 1) * (p2m + 1))
        ie, io = r * (p2m + 1), r * (p2m - 1)
        dq = m * y * ie
        d = dq * (q - m)
        s1 = step(st, d, -d * (2 * p2m - 1) * ie, dq)
        pm = p + m
        dq = -pm * y * io
        d = dq * (pm + q)
        s2 = step(s1, d, -d * (2 * p2m + 1) * io - y * (2 * pm + q) * io, dq)
        sc = 1.0 / _fix(s2[3])
        s2 = tuple(v * sc for v in s2)
        hn = s2[1]
        dhpn, dhqn = s2[6] - hn * s2[10], s2[7] - hn * s2[11]
        # dh = dA - h dB cancels: judge its change against the size of the terms, not of dh.
        conv = ((hn - h).abs() <= 2 * _EPS * hn.abs()) \
            & ((dhpn - dhp).abs() <= 2 * _EPS * (s2[6].abs() + (hn * s2[10]).abs())) \
            & ((dhqn - dhq).abs() <= 2 * _EPS * (s2[7].abs() + (hn * s2[11]).abs()))
        st = tuple(torch.where(active, n, o) for n, o in zip(s2, st))
        h, dhp, dhq = torch.where(active, hn, h), torch.where(active, dhpn, dhp), torch.where(active, dhqn, dhq)
        active = active & ~conv
        if not bool(active.any()):
            break
    return h, dhp, dhq


def beta_rsample_grad(x: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor):
    """(dx/dalpha, dx/dbeta) = -(dI_x/dalpha, dI_x/dbeta) / p(x) by the continued fraction of
    I_x (DLMF 8.17.22) differentiated forward-mode (Boik & Robison-Cox 1998), in float64, returned
    in the dtype of x. 0 at x = 0 or 1, NaN for x outside [0, 1] or invalid parameters."""
    x, alpha, beta = torch.broadcast_tensors(x, alpha, beta)
    dtype = x.dtype
    x, a, b = x.detach().double(), alpha.detach().double(), beta.detach().double()
    bad = ~((x >= 0) & (x <= 1) & _valid(a, b))
    edge = (x == 0) | (x == 1)
    xs = torch.where(bad | edge, torch.full_like(x, 0.5), x)
    a = torch.where(bad, torch.ones_like(a), a)
    b = torch.where(bad, torch.ones_like(b), b)
    lx, l1x = torch.log(xs), torch.log1p(-xs)
    sym = _use_symmetry(xs, a, b)
    p, q = torch.where(sym, b, a), torch.where(sym, a, b)
    y = torch.where(sym, 1 - xs, xs)
    ly, l1y = torch.where(sym, l1x, lx), torch.where(sym, lx, l1x)
    h, dhp, dhq = _cf(p, q, y)
    Lp = ly + digamma_diff(p + 1, q - 1)
    Lq = l1y + digamma_diff(q, p)
    f = xs * (1 - xs) / p
    gp, gq = -f * (dhp + h * Lp), -f * (dhq + h * Lq)
    da, db = torch.where(sym, -gq, gp), torch.where(sym, -gp, gq)
    zero = torch.zeros_like(da)
    da = torch.where(edge, zero, da)
    db = torch.where(edge, zero, db)
    nan = torch.full_like(da, math.nan)
    return torch.where(bad, nan, da).to(dtype), torch.where(bad, nan, db).to(dtype)


class BetaRsample(torch.autograd.Function):
    """The reference sampler with the implicit gradient: the fallback path of er_fast.beta_rsample.
    Forward mode: dx/dalpha t_alpha + dx/dbeta t_beta. First derivatives only (their own
    derivatives would need the second-order implicit terms): nested use differentiates constants."""

    @staticmethod
    def forward(alpha, beta, key):
        return beta_rsample(alpha, beta, key)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output, inputs[0], inputs[1])
        ctx.save_for_forward(output, inputs[0], inputs[1])

    @staticmethod
    def backward(ctx, grad):
        x, alpha, beta = ctx.saved_tensors
        da, db = beta_rsample_grad(x, alpha, beta)
        return grad * da, grad * db, None

    @staticmethod
    def jvp(ctx, ta, tb, _):
        x, alpha, beta = ctx.saved_tensors
        da, db = beta_rsample_grad(x, alpha, beta)
        t = torch.zeros_like(x)
        if ta is not None:
            t = t + da * ta
        if tb is not None:
            t = t + db * tb
        return t
