"""circle_embed / so2_rotate: against the float64 reference, gradients, opcheck, torch.compile,
exact periodicity, polynomial accuracy (ulp, vs 80-bit long double or mpmath), bad input, fallback."""
import math

import numpy as np
import pytest
import torch
from torch.autograd import forward_ad as fwAD

import er_fast
from er_fast.ops import reference
from er_fast.ops import backend

from conftest import devices, dtypes

HAS_KERNEL = backend.defined("circle_embed") and backend.compiled("circle_embed", torch.empty(0))
needs_ext = pytest.mark.skipif(not HAS_KERNEL, reason="compiled extension not available")
EPS = {torch.float32: torch.finfo(torch.float32).eps, torch.float64: torch.finfo(torch.float64).eps}


def _noncontig(t):
    """The same values as t, as a non-contiguous view (every other element of a wider tensor)."""
    wide = torch.empty(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype, device=t.device) if t.dim() else None
    if wide is None or t.shape[-1] == 0:
        return t
    wide[..., ::2] = t
    v = wide[..., ::2]
    assert not v.is_contiguous() or v.numel() <= 1
    return v


def _theta_shape(mode, batch, k):
    return {"full": (*batch, k), "last1": (*batch, 1), "k": (k,), "scalar": (), "ones": (1,) * (len(batch) + 1)}[mode]


# ---------------------------------------------------------------- against the float64 reference
@pytest.mark.parametrize("device", devices)
@pytest.mark.parametrize("dtype", dtypes)
@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("batch", [(), (5,), (3, 4)])
@pytest.mark.parametrize("theta_mode", [None, "full", "last1", "k", "scalar", "ones"])
@pytest.mark.parametrize("contiguous", [True, False])
def test_circle_embed_vs_reference(device, dtype, k, batch, theta_mode, contiguous):
    z = torch.randn(*batch, k, dtype=dtype, device=device) * 3
    theta = None
    if theta_mode is not None:
        theta = torch.randn(_theta_shape(theta_mode, batch, k), dtype=dtype, device=device) * 4
    if not contiguous:
        z = _noncontig(z)
        theta = _noncontig(theta) if theta is not None and theta.dim() else theta
    out = er_fast.circle_embed(z, theta)
    ref = reference.circle_embed(z.double(), None if theta is None else theta.double())
    assert out.shape == (*batch, k, 2) and out.dtype == dtype
    torch.testing.assert_close(out.double(), ref, atol=4 * EPS[dtype], rtol=0)


@pytest.mark.parametrize("device", devices)
@pytest.mark.parametrize("dtype", dtypes)
@pytest.mark.parametrize("batch", [(1,), (7,), (3, 5), (2, 3, 4)])
@pytest.mark.parametrize("theta_mode", ["full", "last1", "scalar", "lead"])
@pytest.mark.parametrize("contiguous", [True, False])
def test_so2_rotate_vs_reference(device, dtype, batch, theta_mode, contiguous):
    p = torch.randn(*batch, 2, dtype=dtype, device=device)
    tshape = {"full": batch, "last1": (*batch[:-1], 1), "scalar": (), "lead": batch[-1:]}[theta_mode]
    theta = torch.randn(tshape, dtype=dtype, device=device) * 10
    if not contiguous:
        wide = torch.randn(*batch, 4, dtype=dtype, device=device)
        wide[..., ::2] = p
        p = wide[..., ::2]  # last-dim stride 2
        theta = _noncontig(theta) if theta.dim() else theta
    out = er_fast.so2_rotate(p, theta)
    ref = reference.so2_rotate(p.double(), theta.double())
    assert out.shape == p.shape and out.dtype == dtype
    scale = p.double().abs().amax(-1, keepdim=True)
    torch.testing.assert_close(out.double() / scale, ref / scale, atol=4 * EPS[dtype], rtol=0)


@pytest.mark.parametrize("device", devices)
@pytest.mark.parametrize("dtype", dtypes)
def test_gradients_vs_reference(device, dtype):
    z = torch.randn(6, 2, dtype=dtype, device=device, requires_grad=True)
    th = torch.randn(6, 1, dtype=dtype, device=device, requires_grad=True)
    p = torch.randn(6, 2, 2, dtype=dtype, device=device, requires_grad=True)
    g1 = torch.randn(6, 2, 2, dtype=dtype, device=device)
    got = torch.autograd.grad((er_fast.circle_embed(z, th) * g1).sum() + (er_fast.so2_rotate(p, th) * g1).sum(), (z, th, p))
    zd, td, pd = (t.detach().double().requires_grad_() for t in (z, th, p))
    want = torch.autograd.grad(
        (reference.circle_embed(zd, td) * g1.double()).sum() + (reference.so2_rotate(pd, td) * g1.double()).sum(),
        (zd, td, pd),
    )
    for a, b in zip(got, want):
        torch.testing.assert_close(a.double(), b, atol=64 * EPS[dtype], rtol=16 * EPS[dtype])


def test_one_sided_gradients():
    z = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    th = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    (gz,) = torch.autograd.grad(er_fast.circle_embed(z, th.detach()).sum(), (z,))
    (gt,) = torch.autograd.grad(er_fast.circle_embed(z.detach(), th).sum(), (th,))
    torch.testing.assert_close(gz, 2 * math.pi * gt)
    p = torch.randn(4, 3, 2, dtype=torch.float64, requires_grad=True)
    (gp,) = torch.autograd.grad(er_fast.so2_rotate(p, th.detach()).sum(), (p,))
    (gt2,) = torch.autograd.grad(er_fast.so2_rotate(p.detach(), th).sum(), (th,))
    pr, tr = p.detach().requires_grad_(), th.detach().requires_grad_()
    want = torch.autograd.grad(reference.so2_rotate(pr, tr).sum(), (pr, tr))
    torch.testing.assert_close(gp, want[0])
    torch.testing.assert_close(gt2, want[1])


@pytest.mark.parametrize("device", devices)
def test_gradcheck(device):
    kw = dict(dtype=torch.float64, device=device, requires_grad=True)
    z, th_full, th_b = torch.randn(3, 2, **kw), torch.randn(3, 2, **kw), torch.randn(3, 1, **kw)
    p, th_p = torch.randn(2, 3, 2, **kw), torch.randn(3, **kw)
    assert torch.autograd.gradcheck(er_fast.circle_embed, (z,))
    assert torch.autograd.gradcheck(er_fast.circle_embed, (z, th_full))
    assert torch.autograd.gradcheck(er_fast.circle_embed, (z, th_b))
    assert torch.autograd.gradcheck(er_fast.so2_rotate, (p, th_p))
    # double backward (create_graph=True takes the differentiable formula)
    assert torch.autograd.gradgradcheck(er_fast.circle_embed, (z, th_b))
    assert torch.autograd.gradgradcheck(er_fast.so2_rotate, (p, th_p))


@needs_ext
def test_opcheck():
    kw = dict(dtype=torch.float64, requires_grad=True)
    ops = torch.ops.er_fast
    z, th = torch.randn(4, 3, **kw), torch.randn(4, 1, **kw)
    p, thp = torch.randn(4, 3, 2, **kw), torch.randn(3, **kw)
    g = torch.randn(4, 3, 2, dtype=torch.float64)
    torch.library.opcheck(ops.circle_embed.default, (z, th))
    torch.library.opcheck(ops.circle_embed.default, (z, None))
    torch.library.opcheck(ops.so2_rotate.default, (p, thp))
    out = ops.circle_embed(z, th).detach()
    torch.library.opcheck(ops.circle_embed_backward.default, (g, out, True, True))
    torch.library.opcheck(ops.circle_embed_backward.default, (g, out, False, True))
    torch.library.opcheck(ops.so2_rotate_backward.default, (g, out, thp.detach(), True, True))
    torch.library.opcheck(ops.so2_rotate_backward.default, (g, out, thp.detach(), True, False))


def test_torch_compile_fullgraph():
    def f(z, th, p):
        q = er_fast.circle_embed(z, th)
        return (er_fast.so2_rotate(q, th) * p).sum() + er_fast.circle_embed(z).square().sum()

    torch._dynamo.reset()
    cf = torch.compile(f, fullgraph=True, backend="aot_eager")
    args = [torch.randn(5, 2, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    args.append(torch.randn(5, 2, 2, dtype=torch.float64, requires_grad=True))
    out = cf(*args)
    got = torch.autograd.grad(out, args)
    args2 = [a.detach().requires_grad_() for a in args]
    want_out = f(*args2)
    want = torch.autograd.grad(want_out, args2)
    torch.testing.assert_close(out, want_out)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


# ---------------------------------------------------------------- periodicity and exact values
@pytest.mark.parametrize("device", devices)
@pytest.mark.parametrize("dtype", dtypes)
def test_periodicity_exact(device, dtype):
    big = 2.0**12 if dtype == torch.float32 else 2.0**40
    frac = torch.arange(-1024, 1025, dtype=dtype, device=device) / 1024  # exact in both dtypes
    base = er_fast.circle_embed(frac[:, None])
    for n in (1.0, 7.0, -3.0, big, -big):
        shifted = er_fast.circle_embed((frac + n)[:, None])
        assert torch.equal(shifted, base), n
    z = torch.tensor([0.25, 4096.25, 0.0, 4096.0, 0.5, -4095.5, 0.75, -0.25, 0.125, 4096.125], dtype=dtype, device=device)
    out = er_fast.circle_embed(z[:, None])[:, 0]
    r = math.sqrt(0.5)
    exact = torch.tensor([[0, 1], [0, 1], [1, 0], [1, 0], [-1, 0], [-1, 0], [0, -1], [0, -1], [r, r], [r, r]], dtype=torch.float64)
    assert torch.equal(out[:8].cpu().double(), exact[:8])  # multiples of 1/4: exactly 0 and +-1
    torch.testing.assert_close(out[8:].cpu().double(), exact[8:], atol=EPS[dtype] * 0.5, rtol=0)
    # what the naive formula gives, for contrast: float32 cos(2 pi 4096.25) is ~1e-3 off zero
    if dtype == torch.float32:
        naive = torch.cos(2 * math.pi * torch.tensor(4096.25, dtype=dtype))
        assert naive.abs() > 1e-5


@pytest.mark.parametrize("device", devices)
def test_special_values(device):
    z = torch.tensor([float("inf"), float("nan"), 0.3], device=device)
    out = er_fast.circle_embed(z[:, None])
    assert out[:2].isnan().all() and out[2].isfinite().all()
    th = torch.tensor([float("inf"), float("nan"), 1e7, -1e20, 5e5], device=device)
    p = torch.tensor([1.0, 0.0], device=device).expand(5, 2)
    o = er_fast.so2_rotate(p, th)
    assert o[:2].isnan().all()
    # beyond the polynomial reduction's range the kernel switches to libm's double sin/cos
    thd = th[2:].double()
    want = torch.stack((torch.cos(thd), torch.sin(thd)), -1)
    torch.testing.assert_close(o[2:].double(), want, atol=2 * EPS[torch.float32], rtol=0)
    zc = er_fast.circle_embed(torch.zeros(3, 1, device=device), th[2:, None])[:, 0]
    torch.testing.assert_close(zc.double(), want, atol=2 * EPS[torch.float32], rtol=0)


def test_empty_and_low_precision():
    z = torch.randn(0, 3, requires_grad=True)
    out = er_fast.circle_embed(z, torch.randn(0, 1))
    assert out.shape == (0, 3, 2)
    out.sum().backward()
    assert er_fast.circle_embed(torch.randn(4, 0)).shape == (4, 0, 2)
    assert er_fast.so2_rotate(torch.randn(0, 2), torch.randn(0)).shape == (0, 2)
    zh = torch.randn(5, 2, dtype=torch.float16)
    th = torch.randn(5, 1, dtype=torch.float16)
    oh = er_fast.circle_embed(zh, th)
    assert oh.dtype == torch.float16
    torch.testing.assert_close(oh.double(), reference.circle_embed(zh.double(), th.double()), atol=2e-3, rtol=0)


# ---------------------------------------------------------------- polynomial accuracy (ulp)
LD_OK = np.finfo(np.longdouble).nmant >= 63  # x86 80-bit long double: a good-enough oracle
PI_LD = np.longdouble("3.14159265358979323846264338327950288")


def _ulp_err(got, true, dtype):
    sp = np.spacing(np.abs(true).astype(dtype)).astype(np.longdouble)
    return np.max(np.abs(got.astype(np.longdouble) - true) / sp)


def _turn_oracle(z):
    """sin/cos(2 pi z) in long double through the exact quarter-turn decomposition."""
    zl = z.astype(np.longdouble)
    r = zl - np.rint(zl)
    t = 4 * r
    q = np.mod(np.rint(t), 4)
    f = t - np.rint(t)
    s0, c0 = np.sin(PI_LD / 2 * f), np.cos(PI_LD / 2 * f)
    s = np.select([q == 0, q == 1, q == 2, q == 3], [s0, c0, -s0, -c0])
    c = np.select([q == 0, q == 1, q == 2, q == 3], [c0, -s0, -c0, s0])
    return s, c


@pytest.mark.skipif(not LD_OK, reason="needs x86 80-bit long double as the oracle")
@pytest.mark.parametrize("dtype", dtypes)
def test_sincos_accuracy_ulp(dtype):
    npdt = np.float32 if dtype == torch.float32 else np.float64
    z = torch.cat([torch.rand(200_000, dtype=dtype) - 0.5, torch.linspace(-0.5, 0.5, 100_001, dtype=dtype),
                   torch.randn(50_000, dtype=dtype) * 100, (torch.rand(50_000, dtype=dtype) - 0.5) * 1e-4])
    out = er_fast.circle_embed(z[:, None])[:, 0].numpy()
    s, c = _turn_oracle(z.numpy())
    assert _ulp_err(out[:, 0], c, npdt) < 1.0
    assert _ulp_err(out[:, 1], s, npdt) < 1.0
    th = torch.cat([(torch.rand(200_000, dtype=dtype) - 0.5) * 2 * math.pi, torch.randn(100_000, dtype=dtype) * 1e3,
                    torch.rand(20_000, dtype=dtype) * 5e5])
    p = torch.tensor([1.0, 0.0], dtype=dtype).expand(th.shape[0], 2)
    o = er_fast.so2_rotate(p, th).numpy()
    tl = th.numpy().astype(np.longdouble)
    assert _ulp_err(o[:, 0], np.cos(tl), npdt) < 1.0
    assert _ulp_err(o[:, 1], np.sin(tl), npdt) < 1.0


@pytest.mark.skipif(not LD_OK, reason="needs x86 80-bit long double as the oracle")
@pytest.mark.parametrize("dtype", dtypes)
def test_sincos_hard_arguments(dtype):
    """The floats closest to multiples of pi/2 (where range reduction cancels most) up to the
    polynomial path's limit (4096 in float32, 2^19 in float64): still within an ulp."""
    npdt, lim = (np.float32, 4096) if dtype == torch.float32 else (np.float64, 524288)
    q = np.arange(1, int(lim / (PI_LD / 2)) + 1, dtype=np.int64)[:: (1 if dtype == torch.float32 else 7)]
    c = (q.astype(np.longdouble) * PI_LD / 2).astype(npdt)
    x = np.concatenate([c, np.nextafter(c, npdt(np.inf)), np.nextafter(c, npdt(-np.inf))])
    x = np.concatenate([x, -x])
    th = torch.from_numpy(x.copy())
    o = er_fast.so2_rotate(torch.tensor([1.0, 0.0], dtype=dtype).expand(len(th), 2), th).numpy()
    tl = x.astype(np.longdouble)
    assert _ulp_err(o[:, 0], np.cos(tl), npdt) < 1.0
    assert _ulp_err(o[:, 1], np.sin(tl), npdt) < 1.0


def test_sincos_accuracy_mpmath():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    z = torch.rand(300, dtype=torch.float64) * 8 - 4
    out = er_fast.circle_embed(z[:, None])[:, 0]
    for zi, (c, s) in zip(z.tolist(), out.tolist()):
        r = mpmath.mpf(zi) - mpmath.nint(zi)
        for got, true in ((c, mpmath.cospi(2 * r)), (s, mpmath.sinpi(2 * r))):
            assert abs(mpmath.mpf(got) - true) <= np.spacing(abs(float(true))), (zi, got, true)


# ---------------------------------------------------------------- bad input
def test_bad_input():
    z = torch.randn(5, 3)
    with pytest.raises(ValueError, match="0-dim"):
        er_fast.circle_embed(torch.tensor(0.5))
    with pytest.raises(TypeError, match="floating-point"):
        er_fast.circle_embed(torch.ones(5, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        er_fast.circle_embed([0.5])
    with pytest.raises(TypeError, match="floating-point"):
        er_fast.circle_embed(z, torch.ones(5, 1, dtype=torch.int32))
    with pytest.raises(TypeError, match="dtype"):
        er_fast.circle_embed(z, torch.randn(5, 1, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"theta must broadcast to .*theta\[\.\.\., None\]"):
        er_fast.circle_embed(z, torch.randn(5))
    with pytest.raises(ValueError, match="theta must broadcast to"):
        er_fast.circle_embed(z, torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        er_fast.so2_rotate(torch.randn(5, 3), torch.randn(5))
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        er_fast.so2_rotate(torch.tensor(1.0), torch.randn(()))
    with pytest.raises(ValueError, match="theta must broadcast to"):
        er_fast.so2_rotate(torch.randn(5, 2), torch.randn(4))
    with pytest.raises(TypeError, match="dtype"):
        er_fast.so2_rotate(torch.randn(5, 2), torch.randn(5, dtype=torch.float64))
    with pytest.raises(TypeError, match="floating-point"):
        er_fast.so2_rotate(torch.ones(5, 2, dtype=torch.int32), torch.randn(5))


@needs_ext
def test_bad_input_direct_op():
    ops = torch.ops.er_fast
    with pytest.raises(RuntimeError, match="float32 or float64"):
        ops.circle_embed(torch.ones(3, dtype=torch.int64), None)
    with pytest.raises(RuntimeError, match="0-dim"):
        ops.circle_embed(torch.tensor(0.5), None)
    with pytest.raises(RuntimeError, match="theta must broadcast to"):
        ops.circle_embed(torch.randn(5, 3), torch.randn(5))
    with pytest.raises(RuntimeError, match=r"\(\.\.\., 2\)"):
        ops.so2_rotate(torch.randn(5, 3), torch.randn(5))
    with pytest.raises(RuntimeError, match="dtype"):
        ops.so2_rotate(torch.randn(5, 2), torch.randn(5, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="shape"):
        ops.circle_embed_backward(torch.randn(4, 2), torch.randn(5, 2), True, True)


# ---------------------------------------------------------------- fallback
def test_reference_fallback():
    z = torch.randn(4, 2, requires_grad=True)
    th = torch.randn(4, 1, requires_grad=True)
    p = torch.randn(4, 2, requires_grad=True)
    with er_fast.use_reference():
        assert er_fast.backend_info()["circle_embed"]["cpu"][0] == "reference"
        out = er_fast.circle_embed(z, th).sum() + er_fast.so2_rotate(p, th[:, 0]).sum()
        got = torch.autograd.grad(out, (z, th, p))
    out2 = er_fast.circle_embed(z, th).sum() + er_fast.so2_rotate(p, th[:, 0]).sum()
    want = torch.autograd.grad(out2, (z, th, p))
    torch.testing.assert_close(out, out2)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


# ---------------------------------------------------------------- forward-mode AD and second order
def _args(device, which):
    kw = dict(dtype=torch.float64, device=device)
    if which == "circle":
        return er_fast.circle_embed, reference.circle_embed, (torch.randn(4, 3, **kw) * 3, torch.randn(4, 1, **kw))
    if which == "circle, no theta":
        return er_fast.circle_embed, reference.circle_embed, (torch.randn(4, 3, **kw) * 3,)
    return er_fast.so2_rotate, reference.so2_rotate, (torch.randn(4, 3, 2, **kw), torch.randn(3, **kw) * 2)


CASES = ["circle", "circle, no theta", "so2"]


@pytest.mark.parametrize("device", devices)
@pytest.mark.parametrize("which", CASES)
def test_forward_ad_matches_reference(device, which):
    """torch.func.jvp and torch.autograd.forward_ad against the pure-PyTorch reference's own
    forward AD (circle_embed: perp(out) (2 pi t_z + t_theta); so2_rotate: R(theta) t_p +
    perp(out) t_theta), and against a central finite difference."""
    f, fr, args = _args(device, which)
    tans = tuple(torch.randn_like(a) for a in args)
    out, t = torch.func.jvp(f, args, tans)
    _, tr = torch.func.jvp(fr, args, tans)
    torch.testing.assert_close(out, f(*args), rtol=0, atol=0)
    # a few ulps of values of size 1-10 (|p| ~ 3, 2 pi |t_z| ~ 20)
    torch.testing.assert_close(t, tr, rtol=0, atol=1e-13)
    with fwAD.dual_level():
        o = f(*(fwAD.make_dual(a, ta) for a, ta in zip(args, tans)))
        torch.testing.assert_close(fwAD.unpack_dual(o).tangent, tr, rtol=0, atol=1e-13)
    h = 1e-6  # truncation h^2 |f'''| ~ 1e-10 (|f'''| <= (2 pi)^3 |t|^3), rounding eps / h ~ 2e-10
    fd = (f(*(a + h * ta for a, ta in zip(args, tans))) - f(*(a - h * ta for a, ta in zip(args, tans)))) / (2 * h)
    torch.testing.assert_close(t, fd, rtol=0, atol=1e-7)
    # one input only (the other without tangent)
    _, t1 = torch.func.jvp(lambda a: f(a, *args[1:]), args[:1], tans[:1])
    _, t1r = torch.func.jvp(lambda a: fr(a, *args[1:]), args[:1], tans[:1])
    torch.testing.assert_close(t1, t1r, rtol=0, atol=1e-13)


def _fw_over_rev(L, args, tans):
    with fwAD.dual_level():
        a = [fwAD.make_dual(x, t).requires_grad_() for x, t in zip(args, tans)]
        return [fwAD.unpack_dual(g).tangent for g in torch.autograd.grad(L(*a), a)]


def _double_backward(L, args, tans):
    a = [x.detach().requires_grad_() for x in args]
    g = torch.autograd.grad(L(*a), a, create_graph=True)
    return torch.autograd.grad(sum((u * t).sum() for u, t in zip(g, tans)), a)


SECOND_ORDER = {
    "hessian": lambda L, args, tans: torch.func.hessian(L, argnums=tuple(range(len(args))))(*args),
    "jacrev(jacrev)": lambda L, args, tans: torch.func.jacrev(torch.func.jacrev(L))(*args),
    "jvp(jvp)": lambda L, args, tans: torch.func.jvp(lambda *b: torch.func.jvp(L, b, tans)[1], args, tans)[1],
    "jvp(grad)": lambda L, args, tans: torch.func.jvp(torch.func.grad(L, argnums=tuple(range(len(args)))), args,
                                                      tans)[1],
    "fwAD over reverse": _fw_over_rev,
    "double backward": _double_backward,
}


@pytest.mark.parametrize("device", devices)
@pytest.mark.parametrize("which", CASES)
@pytest.mark.parametrize("how", list(SECOND_ORDER))
def test_second_derivatives_match_reference(device, which, how):
    """Every formula (backward and jvp) runs through the saved output, so second derivatives are
    right in every combination of modes, nested torch.func transforms included."""
    f, fr, args = _args(device, which)
    tans = tuple(torch.randn_like(a) for a in args)
    got = SECOND_ORDER[how](lambda *a: f(*a).pow(3).sum(), args, tans)
    want = SECOND_ORDER[how](lambda *a: fr(*a).pow(3).sum(), args, tans)
    for u, v in zip(torch.utils._pytree.tree_leaves(got), torch.utils._pytree.tree_leaves(want)):
        torch.testing.assert_close(u, v, rtol=1e-12, atol=1e-11)


@needs_ext
def test_forward_ad_direct_op_and_compile():
    z, th = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 1, dtype=torch.float64)
    tz, tth = torch.randn_like(z), torch.randn_like(th)
    _, want = torch.func.jvp(reference.circle_embed, (z, th), (tz, tth))
    with fwAD.dual_level():
        o = torch.ops.er_fast.circle_embed(fwAD.make_dual(z, tz), fwAD.make_dual(th, tth))
        torch.testing.assert_close(fwAD.unpack_dual(o).tangent, want, rtol=0, atol=1e-13)
    torch._dynamo.reset()
    cf = torch.compile(lambda a, b: er_fast.so2_rotate(er_fast.circle_embed(a, b), b), fullgraph=True,
                       backend="aot_eager")
    _, want = torch.func.jvp(lambda a, b: reference.so2_rotate(reference.circle_embed(a, b), b), (z, th), (tz, tth))
    with fwAD.dual_level():
        o = cf(fwAD.make_dual(z, tz), fwAD.make_dual(th, tth))
        torch.testing.assert_close(fwAD.unpack_dual(o).tangent, want, rtol=0, atol=1e-13)


# ---------------------------------------------------------------- fake kernels: same words as eager
CPP_BAD = [
    ("circle_embed", (torch.ones(3, dtype=torch.float16), None), "float32 or float64"),
    ("circle_embed", (torch.tensor(0.5), None), "0-dim"),
    ("circle_embed", (torch.randn(5, 3), torch.randn(5)), "theta must broadcast to"),
    ("circle_embed", (torch.randn(5, 3), torch.randn(5, 1, dtype=torch.float64)), "dtype of z"),
    ("so2_rotate", (torch.randn(5, 3), torch.randn(5)), r"\(\.\.\., 2\)"),
    ("so2_rotate", (torch.randn(5, 2), torch.randn(5, dtype=torch.float64)), "dtype of p"),
    ("so2_rotate", (torch.randn(5, 2), torch.randn(4)), "theta must broadcast to"),
    ("circle_embed_backward", (torch.randn(4, 2), torch.randn(5, 2), True, True), "grad must have the shape"),
    ("circle_embed_backward", (torch.randn(5, 2).double(), torch.randn(5, 2), True, True), "dtype of out"),
    ("so2_rotate_backward", (torch.randn(5, 2), torch.randn(5, 2), torch.randn(4), True, True), "broadcast"),
    ("so2_rotate_backward", (torch.randn(5, 2), torch.randn(5, 3), torch.randn(5), True, True), "shape"),
]


@needs_ext
@pytest.mark.parametrize("name,args,what", CPP_BAD, ids=[f"{n}: {w}" for n, _, w in CPP_BAD])
def test_fake_kernel_checks_match_eager(name, args, what):
    """A bad direct call fails with the eager (C++) message also on meta tensors and under
    torch.compile, where only the fake kernel sees the arguments."""
    op = getattr(torch.ops.er_fast, name)
    with pytest.raises(RuntimeError, match=what) as eager:
        op(*args)
    msg = str(eager.value).splitlines()[0]
    meta = tuple(a.to("meta") if isinstance(a, torch.Tensor) else a for a in args)
    with pytest.raises(RuntimeError) as on_meta:
        op(*meta)
    assert str(on_meta.value).splitlines()[0] == msg
    torch._dynamo.reset()
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    n = len(tensors)

    def call(*t):
        full = list(t) + list(args[n:])
        if name == "circle_embed" and len(full) == 1:
            full.append(None)
        out = op(*full)
        return out[0] if isinstance(out, (tuple, list)) else out

    if name == "circle_embed" and args[1] is None:
        tensors = tensors[:1]
    with pytest.raises(Exception) as compiled:
        torch.compile(call, fullgraph=True, backend="eager")(*tensors)
    assert msg in str(compiled.value)


# ---------------------------------------------------------------- every device (CUDA when there is one)
@pytest.mark.parametrize("device", devices)
@pytest.mark.parametrize("dtype", dtypes)
def test_device_matches_cpu(device, dtype):
    z = torch.randn(1000, 3, dtype=dtype, device=device) * 10
    th = torch.randn(1000, 1, dtype=dtype, device=device) * 10
    th[0, 0] = 1e7  # libm path
    g = torch.randn(1000, 3, 2, dtype=dtype, device=device)

    def run(dev):
        zz, tt = z.to(dev).requires_grad_(), th.to(dev).requires_grad_()
        out = er_fast.circle_embed(zz, tt)
        out2 = er_fast.so2_rotate(out, tt)
        grads = torch.autograd.grad((out2 * g.to(dev)).sum(), (zz, tt))
        return [t.cpu().double() for t in (out, out2, *grads)]

    # Error model, per device against the exact value: cos/sin of the reduced turn within 1 ulp
    # (test_sincos_accuracy_ulp; the libm path for |theta| = 1e7 within 2 ulps on either device),
    # a rotation adds 2 products and a sum (<= 2 ulps more, FMA-contracted or not), so |out|,
    # |out2| = 1 carry <= ~5 eps; the gradients are sums over 3 terms of such values times |g| ~ 3
    # and 2 pi: <= ~5 eps * 2 pi * 3 * |g| ~ 100 eps |b|. Two devices differ by at most twice one
    # device's error: 64 eps * max(1, |b|) for the outputs (a 6x margin), and the gradients' rows
    # are bounded by their largest entry.
    for a, b in zip(run(device), run("cpu")):
        torch.testing.assert_close(a, b, atol=64 * EPS[dtype] * max(1.0, b.abs().max().item()), rtol=0)
