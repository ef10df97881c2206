"""mmd_imq: against the float64 reference (values and gradients), gradcheck, opcheck, torch.compile,
the reference fallback, bad input, float32 accuracy at large n, large distances, determinism, CUDA."""
import math

import pytest
import torch
from torch.autograd import forward_ad as fwAD

import er_fast
from er_fast.ops import reference
from er_fast.ops import backend
from er_fast.ops.mmd import DEFAULT_SCALES

from conftest import devices, dtypes

HAS_KERNEL = backend.defined("mmd_imq") and backend.compiled("mmd_imq", torch.empty(0))
needs_ext = pytest.mark.skipif(not HAS_KERNEL, reason="compiled extension not available")
S7 = list(DEFAULT_SCALES)


def _ref(x, y, c=None, scales=S7, unbiased=True):
    """Value and gradients (for upstream gradient `up`) of the float64 reference."""
    c = 2.0 * x.shape[-1] if c is None else c
    return reference.mmd_imq(x.double(), y.double(), c, scales, unbiased)


def _ref_with_grads(x, y, up, **kw):
    xd = x.detach().double().requires_grad_()
    yd = y.detach().double().requires_grad_()
    r = _ref(xd, yd, **kw)
    gx, gy = torch.autograd.grad(r, (xd, yd), up.double())
    return r.detach(), gx, gy


def _noncontig(t):
    """The same values as t (..., n, d), as a non-contiguous view."""
    wide = torch.zeros(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype, device=t.device)
    wide[..., ::2] = t
    return wide[..., ::2]


def _tol(dtype, scale):
    # MMD² is a difference of O(S) terms; errors are judged against the size of the terms.
    return (1e-11 if dtype == torch.float64 else 2e-6) * scale


def _check_against_ref(x, y, up=None, **kw):
    out = er_fast.mmd_imq(x, y, **kw)
    batch = x.shape[:-2]
    assert out.shape == batch and out.dtype == x.dtype
    up = torch.randn(batch, dtype=torch.float64, device=x.device) if up is None else up
    ref, rgx, rgy = _ref_with_grads(x, y, up, **kw)
    nscales = len(kw.get("scales", S7))
    assert (out.double() - ref).abs().max().item() <= _tol(x.dtype, nscales), (out, ref)
    if x.requires_grad or y.requires_grad:
        gx, gy = torch.autograd.grad(out, (x, y), up.to(x.dtype))
        for g, rg in ((gx, rgx), (gy, rgy)):
            assert g.shape == rg.shape and g.dtype == x.dtype
            # gradients: relative to the largest component (they too are differences of terms)
            err = (g.double() - rg).abs().max().item()
            assert err <= (1e-10 if x.dtype == torch.float64 else 2e-5) * rg.abs().max().item() + 1e-300, err


# ---------------------------------------------------------------- against the float64 reference
SHAPES = [  # batch, n, m, d
    ((), 2, 2, 1),
    ((), 5, 7, 3),
    ((3, 4), 9, 4, 2),
    ((2,), 70, 130, 64),
    ((), 65, 200, 8),   # crosses the 64-column blocks and the padding
    ((1,), 300, 129, 1),
]


@pytest.mark.parametrize("device", devices)
@pytest.mark.parametrize("dtype", dtypes)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("unbiased", [True, False])
def test_vs_reference(device, dtype, shape, unbiased):
    batch, n, m, d = shape
    x = torch.randn(*batch, n, d, dtype=dtype, device=device).requires_grad_()
    y = (torch.rand(*batch, m, d, dtype=dtype, device=device) * 2).requires_grad_()
    _check_against_ref(x, y, unbiased=unbiased)


@pytest.mark.parametrize("device", devices)
@pytest.mark.parametrize("dtype", dtypes)
@pytest.mark.parametrize(
    "c,scales",
    [(0.7, S7), (3.0, [1.0]), (1.0, [0.5, 2.0]), (5.0, [0.01, 0.1, 1, 10, 100, 1000, 1e4, 1e5]),
     (2.0, [0.1 * (i + 1) for i in range(9)]),  # 9 scales: direct form only
     (1e-3, S7), (1e4, [1e-30, 1.0])],  # far pairs; a tiny scale (rational form refused)
    ids=str,
)
def test_custom_c_and_scales(device, dtype, c, scales):
    x = torch.randn(3, 40, 5, dtype=dtype, device=device).requires_grad_()
    y = torch.randn(3, 33, 5, dtype=dtype, device=device).add(0.3).requires_grad_()
    _check_against_ref(x, y, c=c, scales=scales)


@pytest.mark.parametrize("device", devices)
@pytest.mark.parametrize("dtype", dtypes)
def test_noncontiguous(device, dtype):
    x = _noncontig(torch.randn(2, 3, 50, 4, dtype=dtype, device=device))
    y = torch.randn(2, 3, 4, 37, dtype=dtype, device=device).transpose(-1, -2)  # (2,3,37,4) view
    assert not x.is_contiguous() and not y.is_contiguous()
    x.requires_grad_()
    y.requires_grad_()
    _check_against_ref(x, y)


@pytest.mark.parametrize("device", devices)
@pytest.mark.parametrize("dtype", dtypes)
@pytest.mark.parametrize("spread", [1e2, 1e4, 1e8])
def test_large_distances(device, dtype, spread):
    """Distances far beyond the rational form's overflow bound, and outliers mixed with near pairs:
    both evaluations and the switch between them must agree with the reference."""
    x = torch.randn(2, 150, 3, dtype=dtype, device=device)
    y = torch.randn(2, 90, 3, dtype=dtype, device=device)
    x[:, ::7] *= spread  # outliers: their rows and the column blocks holding them go direct
    y[:, 5] += spread
    x.requires_grad_()
    y.requires_grad_()
    _check_against_ref(x, y, c=1.0)


@pytest.mark.parametrize("device", devices)
def test_half_inputs_computed_in_float32(device):
    x = torch.randn(2, 20, 3, device=device).half()
    y = torch.randn(2, 25, 3, device=device).half()
    out = er_fast.mmd_imq(x, y)
    assert out.dtype == torch.float16
    ref = _ref(x, y)
    assert (out.double() - ref).abs().max() < 1e-2


@pytest.mark.parametrize("device", devices)
def test_v_statistic_single_point_and_empty_batch(device):
    x = torch.randn(1, 3, device=device, dtype=torch.float64).requires_grad_()
    y = torch.randn(4, 3, device=device, dtype=torch.float64).requires_grad_()
    _check_against_ref(x, y, unbiased=False, up=torch.tensor(1.0, dtype=torch.float64, device=device))
    e = er_fast.mmd_imq(torch.randn(0, 5, 2, device=device), torch.randn(0, 6, 2, device=device))
    assert e.shape == (0,)


def test_identical_samples_give_zero_v_statistic():
    x = torch.randn(30, 4, dtype=torch.float64)
    assert abs(er_fast.mmd_imq(x, x.clone(), unbiased=False).item()) < 1e-14


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize("which", ["both", "x", "y"])
def test_gradcheck(which):
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=which in ("both", "x"))
    y = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=which in ("both", "y"))
    assert torch.autograd.gradcheck(lambda a, b: er_fast.mmd_imq(a, b, c=1.5), (x, y))
    assert torch.autograd.gradcheck(lambda a, b: er_fast.mmd_imq(a, b, unbiased=False), (x, y))


@needs_ext
def test_only_requested_gradients_are_computed():
    x = torch.randn(6, 2, dtype=torch.float64)
    y = torch.randn(5, 2, dtype=torch.float64)
    _, gx, gy = torch.ops.er_fast.mmd_imq(x, y, 4.0, S7, True, True, False)
    assert gx.shape == x.shape and gy.numel() == 0
    _, gx, gy = torch.ops.er_fast.mmd_imq(x, y, 4.0, S7, True, False, True)
    assert gx.numel() == 0 and gy.shape == y.shape
    # the value does not depend on which gradients are computed alongside
    vals = {torch.ops.er_fast.mmd_imq(x, y, 4.0, S7, True, a, b)[0].item() for a in (0, 1) for b in (0, 1)}
    assert len(vals) == 1


def test_second_derivatives_are_refused():
    """create_graph=True gives the first derivative (torch.func.grad relies on it); a second
    derivative, which would treat the op's saved gradients as constants, raises."""
    if not HAS_KERNEL:
        pytest.skip("the reference path differentiates twice correctly")
    x = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    y = torch.randn(5, 2, dtype=torch.float64)
    (g,) = torch.autograd.grad(er_fast.mmd_imq(x, y), x, create_graph=True)
    torch.testing.assert_close(g, torch.autograd.grad(er_fast.mmd_imq(x, y), x)[0], rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="second derivatives"):
        torch.autograd.grad(g.square().sum(), x)


# ---------------------------------------------------------------- op registration, compile, fallback
@needs_ext
def test_opcheck():
    op = torch.ops.er_fast.mmd_imq.default
    for dtype in dtypes:
        x = torch.randn(2, 7, 3, dtype=dtype)
        y = torch.randn(2, 5, 3, dtype=dtype)
        for gx, gy in ((False, False), (True, False), (False, True), (True, True)):
            torch.library.opcheck(op, (x, y, 6.0, S7, True, gx, gy))
        torch.library.opcheck(op, (x[0], y[0], 1.0, [1.0, 2.0], False, True, True))


def test_torch_compile_fullgraph():
    def f(x, y):
        return er_fast.mmd_imq(x, y, scales=(0.5, 1.0, 2.0)).sum() * 2

    cf = torch.compile(f, fullgraph=True, backend="aot_eager")
    x = torch.randn(3, 9, 2, dtype=torch.float64, requires_grad=True)
    y = torch.randn(3, 8, 2, dtype=torch.float64)
    out = cf(x, y)
    (g,) = torch.autograd.grad(out, x)
    ref = f(x, y)
    (rg,) = torch.autograd.grad(ref, x)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(g, rg)


def test_reference_fallback():
    x = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, 7, 3, dtype=torch.float64)
    with er_fast.use_reference():
        out = er_fast.mmd_imq(x, y)
        (g,) = torch.autograd.grad(out.sum(), x)
    ref, rgx, _ = _ref_with_grads(x, y, torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-14)
    torch.testing.assert_close(g, rgx, rtol=0, atol=1e-14)
    if HAS_KERNEL:  # and the compiled path agrees with it
        torch.testing.assert_close(er_fast.mmd_imq(x, y), out, rtol=0, atol=1e-13)


@needs_ext
def test_cpu_deterministic():
    x = torch.randn(1, 3000, 3)
    y = torch.randn(1, 2000, 3)
    a = torch.ops.er_fast.mmd_imq(x, y, 6.0, S7, True, True, True)
    b = torch.ops.er_fast.mmd_imq(x, y, 6.0, S7, True, True, True)
    for u, v in zip(a, b):
        assert torch.equal(u, v)


# ---------------------------------------------------------------- accuracy at large n
@needs_ext
def test_float32_accuracy_large_n():
    """n = m = 16384 (about 5e8 pairs): the float32 kernel must stay within ~1e-6 of the float64
    kernel (itself checked against the reference above) relative to the size of the terms."""
    n, d = 16384, 2
    x = torch.randn(1, n, d, dtype=torch.float64)
    y = torch.randn(1, n, d, dtype=torch.float64) * 1.1 + 0.05
    v64, g64, _ = torch.ops.er_fast.mmd_imq(x, y, 2.0 * d, S7, True, True, False)
    v32, g32, _ = torch.ops.er_fast.mmd_imq(x.float(), y.float(), 2.0 * d, S7, True, True, False)
    # the terms: mean kernel value within x, about 5 for these data and 7 scales
    term = _ref(x[:, :500], x[:, :500]).abs().item() + reference.mmd.imq_kernel_sum(
        (x[0, :500, None] - x[0, None, :500]).square().sum(-1), 2.0 * d, S7).mean().item()
    assert abs(v32.double() - v64).item() <= 1e-6 * term, (v32.item(), v64.item())
    gerr = (g32.double() - g64).abs().max() / g64.abs().max()
    assert gerr <= 1e-5, gerr.item()


# ---------------------------------------------------------------- bad input
BAD = [
    (lambda: (torch.randn(5, 3), torch.randn(5, 2)), {}, ValueError, "same d"),
    (lambda: (torch.randn(2, 5, 3), torch.randn(3, 5, 3)), {}, ValueError, "batch shape"),
    (lambda: (torch.randn(2, 5, 3), torch.randn(5, 3)), {}, ValueError, "batch shape"),
    (lambda: (torch.randn(1, 3), torch.randn(5, 3)), {}, ValueError, "at least 2 points"),
    (lambda: (torch.randn(5, 3), torch.randn(1, 3)), {}, ValueError, "at least 2 points"),
    (lambda: (torch.randn(0, 3), torch.randn(4, 3)), {"unbiased": False}, ValueError, "at least one point"),
    (lambda: (torch.randn(5), torch.randn(5)), {}, ValueError, r"\(\.\.\., n, d\)"),
    (lambda: (torch.randn(5, 3), torch.randn(5, 3)), {"c": 0.0}, ValueError, "c must be positive"),
    (lambda: (torch.randn(5, 3), torch.randn(5, 3)), {"c": -1.0}, ValueError, "c must be positive"),
    (lambda: (torch.randn(5, 3), torch.randn(5, 3)), {"c": math.inf}, ValueError, "c must be positive"),
    (lambda: (torch.randn(5, 3), torch.randn(5, 3)), {"c": math.nan}, ValueError, "c must be positive"),
    (lambda: (torch.randn(5, 3), torch.randn(5, 3)), {"c": 1e38}, ValueError, r"c \* scale must be a positive normal"),
    (lambda: (torch.randn(5, 3), torch.randn(5, 3)), {"scales": []}, ValueError, "must be non-empty"),
    (lambda: (torch.randn(5, 3), torch.randn(5, 3)), {"scales": [1.0, 0.0]}, ValueError, "every scale"),
    (lambda: (torch.randn(5, 3), torch.randn(5, 3)), {"scales": [-1.0]}, ValueError, "every scale"),
    (lambda: (torch.randn(5, 3), torch.randn(5, 3)), {"scales": [math.inf]}, ValueError, "every scale"),
    (lambda: (torch.randn(5, 3), torch.randn(5, 3)), {"scales": [math.nan]}, ValueError, "every scale"),
    (lambda: (torch.randn(5, 3), torch.randn(5, 3)), {"scales": [1.0] * 33}, ValueError, "at most 32"),
    (lambda: (torch.ones(5, 3, dtype=torch.int64), torch.ones(5, 3, dtype=torch.int64)), {}, TypeError, "floating"),
    (lambda: (torch.randn(5, 3), torch.randn(5, 3, dtype=torch.float64)), {}, TypeError, "must be of the dtype of x"),
    (lambda: (torch.randn(5, 3), torch.randn(5, 3, device="meta")), {}, ValueError, "must be on the device of x"),
    (lambda: ([[1.0, 2.0]] * 3, torch.randn(3, 2)), {}, TypeError, "torch.Tensor"),
]


@pytest.mark.parametrize("make,kw,exc,match", BAD, ids=[b[3] + str(i) for i, b in enumerate(BAD)])
def test_bad_input_python(make, kw, exc, match):
    x, y = make()
    with pytest.raises(exc, match=match):
        er_fast.mmd_imq(x, y, **kw)


@needs_ext
@pytest.mark.parametrize(
    "args,match",
    [
        ((torch.randn(5, 3), torch.randn(5, 2), 1.0, S7, True, False, False), "same d"),
        ((torch.randn(2, 5, 3), torch.randn(3, 5, 3), 1.0, S7, True, False, False), "batch shape"),
        ((torch.randn(1, 3), torch.randn(5, 3), 1.0, S7, True, False, False), "at least 2 points"),
        ((torch.randn(5, 3), torch.randn(5, 3), 0.0, S7, True, False, False), "c must be positive"),
        ((torch.randn(5, 3), torch.randn(5, 3), math.nan, S7, True, False, False), "c must be positive"),
        ((torch.randn(5, 3), torch.randn(5, 3), 1.0, [], True, False, False), "must be non-empty"),
        ((torch.randn(5, 3), torch.randn(5, 3), 1.0, [0.0], True, False, False), "every scale"),
        ((torch.randn(5, 3), torch.randn(5, 3), 1.0, [math.inf], True, False, False), "every scale"),
        ((torch.randn(5, 3), torch.randn(5, 3), 1e38, [10.0], True, False, False), r"c \* scale must be a positive normal"),
        ((torch.randn(5, 3), torch.randn(5, 3), 1.0, [1.0] * 33, True, False, False), "at most 32"),
        ((torch.ones(5, 3, dtype=torch.int32), torch.ones(5, 3, dtype=torch.int32), 1.0, S7, True, False, False),
         "float32 or float64"),
        ((torch.randn(5, 3).half(), torch.randn(5, 3).half(), 1.0, S7, True, False, False), "float32 or float64"),
        ((torch.randn(5, 3), torch.randn(5, 3, dtype=torch.float64), 1.0, S7, True, False, False),
         "must be of the dtype of x"),
        ((torch.randn(5), torch.randn(5), 1.0, S7, True, False, False), r"\(\.\.\., n, d\)"),
    ],
)
def test_bad_input_cpp(args, match):
    """The C++ entry checks too (TORCH_CHECK -> RuntimeError), for callers of torch.ops directly."""
    with pytest.raises(RuntimeError, match=match):
        torch.ops.er_fast.mmd_imq(*args)


# ---------------------------------------------------------------- fake kernels: same words as eager
CPP_BAD = [
    ((torch.randn(5, 3), torch.randn(5, 2), 1.0, S7, True, False, False), "same d"),
    ((torch.randn(2, 5, 3), torch.randn(3, 5, 3), 1.0, S7, True, False, False), "batch shape"),
    ((torch.randn(1, 3), torch.randn(5, 3), 1.0, S7, True, False, False), "at least 2 points"),
    ((torch.randn(5, 3), torch.randn(5, 3), 0.0, S7, True, False, False), "c must be positive"),
    ((torch.randn(5, 3), torch.randn(5, 3), 1e38, [10.0], True, False, False), "positive normal"),
    ((torch.randn(5, 3), torch.randn(5, 3), 1.0, [0.0], True, False, False), "every scale"),
    ((torch.randn(5, 3).half(), torch.randn(5, 3).half(), 1.0, S7, True, False, False), "float32 or float64"),
    ((torch.randn(5, 3), torch.randn(5, 3, dtype=torch.float64), 1.0, S7, True, False, False), "dtype of x"),
    ((torch.randn(5), torch.randn(5), 1.0, S7, True, False, False), r"\(\.\.\., n, d\)"),
]


@needs_ext
@pytest.mark.parametrize("args,what", CPP_BAD, ids=[w for _, w in CPP_BAD])
def test_fake_kernel_checks_match_eager(args, what):
    """A bad direct call fails with the eager (C++) message also on meta tensors and under
    torch.compile, where only the fake kernel sees the arguments."""
    with pytest.raises(RuntimeError, match=what) as eager:
        torch.ops.er_fast.mmd_imq(*args)
    msg = str(eager.value).splitlines()[0]
    meta = tuple(a.to("meta") if isinstance(a, torch.Tensor) else a for a in args)
    with pytest.raises(RuntimeError) as on_meta:
        torch.ops.er_fast.mmd_imq(*meta)
    assert str(on_meta.value).splitlines()[0] == msg
    torch._dynamo.reset()
    f = torch.compile(lambda x, y: torch.ops.er_fast.mmd_imq(x, y, *args[2:])[0], fullgraph=True, backend="eager")
    with pytest.raises(Exception) as compiled:
        f(args[0], args[1])
    assert msg in str(compiled.value)


@needs_ext
def test_fake_kernel_checks_devices():
    x = torch.randn(5, 3, device="meta")
    with pytest.raises(RuntimeError, match=r"y must be on the device of x \(meta\), got cpu"):
        torch.ops.er_fast.mmd_imq(x, torch.randn(5, 3), 1.0, S7, True, False, False)


# ---------------------------------------------------------------- c and scales: plain numbers only
@pytest.mark.parametrize("kw,match", [
    ({"c": torch.tensor(2.0)}, "c must be a real number"),
    ({"c": torch.tensor(2.0, requires_grad=True)}, "c must be a real number"),
    ({"c": "2.0"}, "c must be a real number"),
    ({"scales": "0.5"}, "scales must be a sequence of real numbers"),
    ({"scales": torch.tensor([0.5, 1.0])}, "scales must be a sequence of real numbers"),
    ({"scales": ["0.5", 1.0]}, "every scale must be a real number"),
    ({"scales": [torch.tensor(0.5)]}, "every scale must be a real number"),
])
def test_tensor_or_string_c_and_scales_refused(kw, match):
    """A tensor c or scale would silently get no gradient (the kernels take plain doubles)."""
    x, y = torch.randn(5, 3), torch.randn(4, 3)
    with pytest.raises(TypeError, match=match):
        er_fast.mmd_imq(x, y, **kw)


# ---------------------------------------------------------------- forward-mode AD
def _reverse_jvp(x, y, tx, ty, **kw):
    """<dMMD/dx, tx> + <dMMD/dy, ty> by reverse mode: what every forward-mode path must give."""
    xr, yr = x.detach().requires_grad_(), y.detach().requires_grad_()
    gx, gy = torch.autograd.grad(er_fast.mmd_imq(xr, yr, **kw).sum(), (xr, yr))
    return (gx * tx).sum((-2, -1)) + (gy * ty).sum((-2, -1))


# Forward and reverse mode contract the same per-point gradients in another order: a few ulps
# of the largest term, far below this.
FWD_TOL = dict(rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("device", devices)
@pytest.mark.parametrize("use_reference", [False, True])
def test_forward_ad_matches_reverse_mode(device, use_reference):
    kw = dict(dtype=torch.float64, device=device)
    x, y = torch.randn(3, 9, 2, **kw), torch.randn(3, 7, 2, **kw)
    tx, ty = torch.randn_like(x), torch.randn_like(y)
    with er_fast.use_reference(use_reference):
        want = _reverse_jvp(x, y, tx, ty, c=1.5)

        def f(a, b):
            return er_fast.mmd_imq(a, b, c=1.5)

        out, t = torch.func.jvp(f, (x, y), (tx, ty))
        torch.testing.assert_close(out, f(x, y), rtol=0, atol=0)
        torch.testing.assert_close(t, want, **FWD_TOL)
        with fwAD.dual_level():
            o = f(fwAD.make_dual(x, tx), fwAD.make_dual(y, ty))
            torch.testing.assert_close(fwAD.unpack_dual(o).tangent, want, **FWD_TOL)
        # one side only (the other input without a tangent)
        _, t = torch.func.jvp(lambda a: f(a, y), (x,), (tx,))
        torch.testing.assert_close(t, _reverse_jvp(x, y, tx, torch.zeros_like(y), c=1.5), **FWD_TOL)
        with fwAD.dual_level():
            o = f(x, fwAD.make_dual(y, ty))
            torch.testing.assert_close(fwAD.unpack_dual(o).tangent,
                                       _reverse_jvp(x, y, torch.zeros_like(x), ty, c=1.5), **FWD_TOL)
        # Jacobians both ways, and torch.func.grad
        torch.testing.assert_close(torch.func.jacfwd(lambda a: f(a, y))(x), torch.func.jacrev(lambda a: f(a, y))(x),
                                   **FWD_TOL)
        xr = x.detach().requires_grad_()
        (g,) = torch.autograd.grad(f(xr, y).sum(), xr)
        torch.testing.assert_close(torch.func.grad(lambda a: f(a, y).sum())(x), g, **FWD_TOL)


@pytest.mark.parametrize("device", devices)
def test_forward_ad_finite_difference(device):
    kw = dict(dtype=torch.float64, device=device)
    x, y = torch.randn(2, 8, 3, **kw), torch.randn(2, 6, 3, **kw)
    tx, ty = torch.randn_like(x), torch.randn_like(y)
    _, t = torch.func.jvp(er_fast.mmd_imq, (x, y), (tx, ty))
    h = 1e-5  # central difference: truncation ~h^2 |f'''| ~ 1e-10, rounding ~eps |f| / h ~ 1e-11
    fd = (er_fast.mmd_imq(x + h * tx, y + h * ty) - er_fast.mmd_imq(x - h * tx, y - h * ty)) / (2 * h)
    torch.testing.assert_close(t, fd, rtol=1e-6, atol=1e-9)


@needs_ext
def test_forward_ad_direct_op_and_compile():
    """Forward AD also through a direct op call that did not ask for the gradients (they are
    computed once more), and through a torch.compile'd function (traced without tangents)."""
    x, y = torch.randn(2, 6, 3, dtype=torch.float64), torch.randn(2, 5, 3, dtype=torch.float64)
    tx, ty = torch.randn_like(x), torch.randn_like(y)
    want = _reverse_jvp(x, y, tx, ty, c=6.0)
    with fwAD.dual_level():
        o = torch.ops.er_fast.mmd_imq(fwAD.make_dual(x, tx), fwAD.make_dual(y, ty), 6.0, S7, True, False, False)[0]
        torch.testing.assert_close(fwAD.unpack_dual(o).tangent, want, **FWD_TOL)
    torch._dynamo.reset()
    cf = torch.compile(lambda a, b: er_fast.mmd_imq(a, b, c=6.0), fullgraph=True, backend="aot_eager")
    with fwAD.dual_level():
        o = cf(fwAD.make_dual(x, tx), fwAD.make_dual(y, ty))
        torch.testing.assert_close(fwAD.unpack_dual(o).tangent, want, **FWD_TOL)


def _fw_over_rev(f, x, t):
    with fwAD.dual_level():
        xx = fwAD.make_dual(x, t).requires_grad_()
        (g,) = torch.autograd.grad(f(xx).sum(), xx)
        return fwAD.unpack_dual(g).tangent


def _rev_over_fw(f, x, t):
    with fwAD.dual_level():
        xx = x.detach().requires_grad_()
        o = f(fwAD.make_dual(xx, t))
        return torch.autograd.grad(fwAD.unpack_dual(o).tangent.sum(), xx)


def _double_backward(f, x, t):
    xx = x.detach().requires_grad_()
    (g,) = torch.autograd.grad(f(xx).sum(), xx, create_graph=True)
    return torch.autograd.grad((g * t).sum(), xx)


SECOND_ORDER = {
    "jvp(grad)": lambda f, x, t: torch.func.jvp(torch.func.grad(lambda a: f(a).sum()), (x,), (t,)),
    "jacfwd(jacrev)": lambda f, x, t: torch.func.jacfwd(torch.func.jacrev(lambda a: f(a).sum()))(x),
    "jacrev(jvp)": lambda f, x, t: torch.func.jacrev(lambda a: torch.func.jvp(f, (a,), (t,))[1].sum())(x),
    "jvp(jvp)": lambda f, x, t: torch.func.jvp(lambda a: torch.func.jvp(f, (a,), (t,))[1], (x,), (t,)),
    "grad(grad)": lambda f, x, t: torch.func.grad(lambda a: torch.func.grad(lambda b: f(b).sum())(a).sum())(x),
    "fwAD over reverse": _fw_over_rev,
    "reverse over fwAD": _rev_over_fw,
    "double backward": _double_backward,
}


@needs_ext
@pytest.mark.parametrize("how", list(SECOND_ORDER))
def test_second_order_is_refused_in_every_mode(how):
    """The op has no second derivatives: every way of asking for one raises (none returns a number
    that treats the saved gradients as constants)."""
    x, y = torch.randn(6, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="second derivatives"):
        SECOND_ORDER[how](lambda a: er_fast.mmd_imq(a, y), x, torch.randn_like(x))


# ---------------------------------------------------------------- every device (CUDA when there is one)
LARGE = {"cpu": [((2,), 300, 200, 8), ((), 150, 150, 40)],
         "cuda": [((4,), 1000, 700, 8), ((), 300, 300, 40)]}


@pytest.mark.parametrize("dtype", dtypes)
@pytest.mark.parametrize("device,shape", [(d, s) for d in devices for s in LARGE[d]], ids=str)
def test_device_vs_reference_large(device, dtype, shape):
    """Larger samples on each device, and far pairs (the direct form), against the float64
    reference; every tensor, the upstream gradient included, lives on the device."""
    batch, n, m, d = shape
    x = torch.randn(*batch, n, d, dtype=dtype, device=device).requires_grad_()
    y = torch.rand(*batch, m, d, dtype=dtype, device=device).requires_grad_()
    _check_against_ref(x, y, up=torch.randn(batch, dtype=torch.float64, device=device))
    x2 = (x.detach() * 1e4).requires_grad_()  # the direct form for far pairs
    _check_against_ref(x2, y, c=1.0, up=torch.randn(batch, dtype=torch.float64, device=device))


@needs_ext
@pytest.mark.parametrize("device", devices)
def test_device_deterministic_and_matches_cpu_float64(device):
    x = torch.randn(3, 2000, 4, device=device)
    y = torch.randn(3, 1500, 4, device=device)
    a = torch.ops.er_fast.mmd_imq(x, y, 8.0, S7, True, True, True)
    b = torch.ops.er_fast.mmd_imq(x, y, 8.0, S7, True, True, True)
    for u, v in zip(a, b):
        assert torch.equal(u, v)
    c = torch.ops.er_fast.mmd_imq(x.cpu().double(), y.cpu().double(), 8.0, S7, True, True, True)
    # float32 on the device against float64 on the CPU. Error model: each pair's kernel sum
    # (7 scales, values in (0, 7]) is formed from d = 4 differences and FMAs in float32, relative
    # error a few u = 6e-8 per value, so <= ~4 * 7 * u = 1.7e-6 absolute; the kernels accumulate
    # the ~5e6 pairs of a term in higher precision, so each of the three means keeps that absolute
    # error and MMD^2 = Sxx + Syy - 2 Sxy at most 4x it, ~7e-6, with or without FMA contraction.
    assert (a[0].cpu().double() - c[0]).abs().max() < 1e-5
