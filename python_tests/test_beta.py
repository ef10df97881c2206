"""Tests of er_fast.beta_rsample / beta_rsample_grad / distributions.Beta.

Goodness of fit: randomized probability integral transform. A sample v of dtype T stands for
every real number that rounds to v (for the clamped extremes: everything below / above), so
u = F(cell_lo) + V (F(cell_hi) - F(cell_lo)), V ~ U(0,1), is exactly uniform when the sampler is
right; a KS test of u against U(0,1) then also covers the atoms that float32 (and float64 for
concentrations ~1e-3) put at the ends of (0, 1). Each case uses a fixed seed; the per-case
threshold is Bonferroni-corrected so the whole grid has a false-alarm rate of 1e-3.

No torch.autograd.gradcheck: with the random key fixed, x(alpha, beta) is the Gamma-transform
path, whose derivative is a different (also unbiased) estimator than the implicit gradient this
op returns by design. The gradient is checked against mpmath and against a finite difference
of the CDF instead.
"""
import contextlib
import math

import numpy as np
import pytest
import scipy.stats as st
import torch

import er_fast
from er_fast.ops import reference
from er_fast.ops.reference.beta_mpmath import mp_grad
from er_fast.ops import backend
from conftest import dtypes, requires_cuda

COMPILED = backend.compiled("beta_rsample", torch.empty(0))

# ---------------------------------------------------------------- goodness of fit
GRID = [
    (1e-3, 1e-3), (0.01, 0.01), (0.05, 0.05), (0.5, 0.5), (1.0, 1.0), (2.0, 5.0), (0.01, 1.0),
    (1e3, 1e3), (1e5, 1e5), (1e-3, 1e5), (1e5, 1e-2), (0.1, 1e3), (1e3, 0.1), (1e5, 1.0), (3.0, 1e4),
]
N_FIT = 20000
FAMILY_ALPHA = 1e-3
PER_CASE = FAMILY_ALPHA / (len(GRID) * len(dtypes) + 4)  # + the reference-path cases below


def _pit(x: torch.Tensor, a: float, b: float, seed: int) -> np.ndarray:
    """Randomized PIT of samples x (float32 or float64) of Beta(a, b), see the module docstring."""
    fi = torch.finfo(x.dtype)
    v = x.double().numpy()
    lo_clamp, hi_clamp = fi.tiny, 1.0 - fi.eps / 2
    # Half the distance to each neighbour in the sample's dtype.
    down = (x - torch.nextafter(x, torch.zeros_like(x))).double().numpy() / 2
    up = (torch.nextafter(x, torch.ones_like(x)) - x).double().numpy() / 2
    lower, upper = v <= 0.5, v > 0.5
    F_lo, F_hi = np.empty_like(v), np.empty_like(v)
    dist, mirror = st.beta(a, b), st.beta(b, a)
    # Below 1/2: the cell in x. Above: in y = 1 - x (exact), through the mirrored distribution.
    xl, xh = v[lower] - down[lower], v[lower] + up[lower]
    xl = np.where(v[lower] <= lo_clamp, 0.0, xl)
    F_lo[lower], F_hi[lower] = dist.cdf(xl), dist.cdf(xh)
    y = 1.0 - v[upper]
    yl, yh = y - up[upper], y + down[upper]
    yl = np.where(v[upper] >= hi_clamp, 0.0, yl)
    F_lo[upper], F_hi[upper] = mirror.sf(yh), mirror.sf(yl)
    V = np.random.default_rng(seed).random(v.shape)
    return F_lo + V * (F_hi - F_lo)


def _ks_p(x, a, b, seed=0):
    return st.kstest(_pit(x, a, b, seed), "uniform").pvalue


@pytest.mark.parametrize("dtype", dtypes)
@pytest.mark.parametrize("a,b", GRID)
def test_goodness_of_fit(a, b, dtype):
    g = torch.Generator().manual_seed(1234)
    x = er_fast.beta_rsample(torch.tensor(a, dtype=dtype), torch.tensor(b, dtype=dtype), (N_FIT,), generator=g)
    assert x.dtype == dtype and x.shape == (N_FIT,)
    assert bool(((x > 0) & (x < 1)).all())
    assert _ks_p(x, a, b) > PER_CASE


def test_ks_procedure_detects_a_wrong_sampler():
    # The test has power: a 5% error in one concentration, and a wrong floor at 1e-12 for
    # Beta(0.05, 0.05) (about 13% of its mass lies below 1e-12), are both rejected.
    f64 = dict(dtype=torch.float64)
    x = er_fast.beta_rsample(torch.tensor(2.1, **f64), torch.tensor(5.0, **f64), (N_FIT,))
    assert _ks_p(x, 2.0, 5.0) < PER_CASE
    x = er_fast.beta_rsample(torch.tensor(0.05, **f64), torch.tensor(0.05, **f64), (N_FIT,))
    assert _ks_p(x, 0.05, 0.05) > PER_CASE
    assert _ks_p(x.clamp(min=1e-12), 0.05, 0.05) < PER_CASE


# ---------------------------------------------------------------- gradient vs mpmath
PARAMS = [0.01, 0.1, 1.0, 7.5, 100.0, 1000.0]
QUANTILES = [1e-4, 0.3, 0.5, 0.9, 1 - 1e-4]


@pytest.fixture(scope="module")
def grad_points():
    rows = []
    for a in PARAMS:
        for b in PARAMS:
            for q in QUANTILES:
                x = float(st.beta.ppf(q, a, b))
                if 0 < x < 1:
                    rows.append((x, a, b, *mp_grad(x, a, b)))
    return [torch.tensor(c, dtype=torch.float64) for c in zip(*rows)]


def _rel(got, ref):
    return ((got - ref).abs() / ref.abs()).max().item()


def test_gradient_matches_mpmath_float64(grad_points):
    x, a, b, ga, gb = grad_points
    da, db = er_fast.beta_rsample_grad(x, a, b)
    assert _rel(da, ga) < 1e-10 and _rel(db, gb) < 1e-10


def test_gradient_float32_close_to_float64(grad_points):
    x, a, b, _, _ = grad_points
    x32 = x.float()
    keep = (x32 > 0) & (x32 < 1)
    x32, a, b = x32[keep], a[keep], b[keep]
    da, db = er_fast.beta_rsample_grad(x32, a.float(), b.float())
    ra, rb = er_fast.beta_rsample_grad(x32.double(), a, b)  # the same points in float64
    normal = (ra.abs() > 1e-30) & (rb.abs() > 1e-30)  # float32 cannot hold smaller ones
    assert da.dtype == torch.float32
    assert _rel(da.double()[normal], ra[normal]) < 1e-6 and _rel(db.double()[normal], rb[normal]) < 1e-6


def test_reference_gradient_matches_mpmath(grad_points):
    x, a, b, ga, gb = grad_points
    da, db = reference.beta_rsample_grad(x, a, b)
    assert _rel(da, ga) < 1e-10 and _rel(db, gb) < 1e-10


def test_gradient_finite_over_wide_range():
    vals = torch.tensor([1e-3, 1e-2, 0.3, 1.0, 4.0, 1e2, 1e4, 1e5], dtype=torch.float64)
    a, b = torch.meshgrid(vals, vals, indexing="ij")
    a, b = a.reshape(-1, 1), b.reshape(-1, 1)
    x = er_fast.beta_rsample(a, b, generator=torch.Generator().manual_seed(3)).expand(-1, 1)
    q = torch.tensor([1e-300, 1e-30, 1e-5, 0.25, 0.5, 0.75, 1 - 1e-5, 1 - 2**-53], dtype=torch.float64)
    xs = torch.cat([x, q.expand(a.shape[0], -1)], 1)
    for dt in dtypes:
        da, db = er_fast.beta_rsample_grad(xs.to(dt), a.to(dt), b.to(dt))
        assert bool(torch.isfinite(da).all() & torch.isfinite(db).all()), dt


def test_gradient_edges_and_outside():
    a, b = torch.tensor(2.0, dtype=torch.float64), torch.tensor(3.0, dtype=torch.float64)
    x = torch.tensor([0.0, 1.0, -0.5, 1.5, math.nan], dtype=torch.float64)
    da, db = er_fast.beta_rsample_grad(x, a, b)
    assert da[:2].tolist() == [0.0, 0.0] and db[:2].tolist() == [0.0, 0.0]
    assert bool(da[2:].isnan().all() & db[2:].isnan().all())


def test_gradient_is_the_implicit_one():
    # dx/da = -(dF/da)/p: differentiate the CDF numerically (scipy) at a moderate point.
    x, a, b, h = 0.3, 2.5, 4.0, 1e-6
    fa = (st.beta.cdf(x, a + h, b) - st.beta.cdf(x, a - h, b)) / (2 * h)
    fb = (st.beta.cdf(x, a, b + h) - st.beta.cdf(x, a, b - h)) / (2 * h)
    p = st.beta.pdf(x, a, b)
    da, db = er_fast.beta_rsample_grad(torch.tensor(x, dtype=torch.float64), torch.tensor(a, dtype=torch.float64),
                                       torch.tensor(b, dtype=torch.float64))
    assert da.item() == pytest.approx(-fa / p, rel=1e-6) and db.item() == pytest.approx(-fb / p, rel=1e-6)


# ---------------------------------------------------------------- autograd
@pytest.mark.parametrize("dtype", dtypes)
def test_autograd_equals_beta_rsample_grad(dtype):
    a = (torch.rand(3, 1, 4, dtype=dtype) * 3 + 0.05).requires_grad_()
    b = (torch.rand(5, 1, dtype=dtype) * 3 + 0.05).requires_grad_()
    x = er_fast.beta_rsample(a, b, (2,), generator=torch.Generator().manual_seed(5))
    assert x.shape == (2, 3, 5, 4)
    w = torch.randn_like(x)
    (x * w).sum().backward()
    da, db = er_fast.beta_rsample_grad(x.detach(), a.detach(), b.detach())
    tol = dict(rtol=1e-5, atol=0) if dtype == torch.float32 else dict(rtol=1e-12, atol=0)
    torch.testing.assert_close(a.grad, (w * da).sum((0, 2), keepdim=True).sum(0), **tol)
    torch.testing.assert_close(b.grad, (w * db).sum((0, 1, 3)).reshape(5, 1), **tol)


def test_reference_autograd_path():
    a = torch.tensor([0.3, 2.0, 40.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([1.5, 0.02, 40.0], dtype=torch.float64, requires_grad=True)
    with er_fast.use_reference():
        x = er_fast.beta_rsample(a, b, (4,), generator=torch.Generator().manual_seed(2))
        x.sum().backward()
    da, db = reference.beta_rsample_grad(x.detach(), a.detach(), b.detach())
    torch.testing.assert_close(a.grad, da.sum(0), rtol=1e-12, atol=0)
    torch.testing.assert_close(b.grad, db.sum(0), rtol=1e-12, atol=0)


def _beta_fn(use_ref, key_seed=2):
    """x(alpha, beta) with a fixed random stream, on the compiled op or the reference."""
    def f(a, b):
        with er_fast.use_reference() if use_ref else contextlib.nullcontext():
            return er_fast.beta_rsample(a, b, generator=torch.Generator().manual_seed(key_seed))
    return f


@pytest.mark.parametrize("use_ref", [False, True])
@pytest.mark.parametrize("dtype", dtypes)
def test_forward_ad_matches_reverse_mode(use_ref, dtype):
    """jvp(x; t_alpha, t_beta) == dx/dalpha t_alpha + dx/dbeta t_beta with the implicit gradients
    (beta_rsample_grad at the same samples), by torch.func.jvp and by forward_ad; and the
    tangent is not zero (the silent failure this guards against)."""
    if not COMPILED and not use_ref:
        pytest.skip("extension not built")
    g = torch.Generator().manual_seed(0)
    a = (torch.rand(7, generator=g, dtype=torch.float64) * 5 + 0.05).to(dtype)
    b = (torch.rand(7, generator=g, dtype=torch.float64) * 5 + 0.05).to(dtype)
    ta, tb = torch.randn(7, generator=g, dtype=dtype), torch.randn(7, generator=g, dtype=dtype)
    f = _beta_fn(use_ref)
    x, t = torch.func.jvp(f, (a, b), (ta, tb))
    da, db = er_fast.beta_rsample_grad(x, a, b)
    rtol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(t, da * ta + db * tb, rtol=rtol, atol=0)
    assert (t != 0).all()
    torch.testing.assert_close(x, f(a, b), rtol=0, atol=0)  # same stream: the same samples
    from torch.autograd import forward_ad as fwAD
    with fwAD.dual_level():
        xd = f(fwAD.make_dual(a, ta), b)
        t2 = fwAD.unpack_dual(xd).tangent
    torch.testing.assert_close(t2, da * ta, rtol=rtol, atol=0)
    # And against reverse mode: <t, v> == <ta, grad_a(<x, v>)> + <tb, grad_b(<x, v>)>.
    a_, b_ = a.clone().requires_grad_(), b.clone().requires_grad_()
    v = torch.randn(7, generator=g, dtype=dtype)
    ga, gb = torch.autograd.grad((f(a_, b_) * v).sum(), (a_, b_))
    torch.testing.assert_close((t * v).sum(), (ga * ta).sum() + (gb * tb).sum(), rtol=rtol * 10, atol=0)


@pytest.mark.skipif(not COMPILED, reason="extension not built")
def test_forward_ad_finite_difference_of_the_quantile():
    """The tangent is the derivative of x at a fixed CDF level u: compare with a central difference of
    scipy's inverse CDF (an independent code path)."""
    import scipy.special as sp
    a = torch.tensor([0.7, 3.0, 40.0], dtype=torch.float64)
    b = torch.tensor([2.0, 0.4, 15.0], dtype=torch.float64)
    x, t = torch.func.jvp(_beta_fn(False), (a, b), (torch.ones(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)))
    for i in range(3):
        u = sp.betainc(float(a[i]), float(b[i]), float(x[i]))
        h = 1e-6 * float(a[i])
        fd = (sp.betaincinv(float(a[i]) + h, float(b[i]), u) - sp.betaincinv(float(a[i]) - h, float(b[i]), u)) / (2 * h)
        assert abs(float(t[i]) - fd) <= 1e-6 * abs(fd), (i, float(t[i]), fd)


def test_second_derivatives_are_refused():
    """First derivatives work (also with create_graph=True); differentiating them again, in either
    mode, raises instead of silently giving 0."""
    if not COMPILED:
        pytest.skip("extension not built")
    a = torch.tensor([1.5], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([2.0], dtype=torch.float64)
    x = er_fast.beta_rsample(a, b)
    (g,) = torch.autograd.grad(x.sum(), a, create_graph=False)
    assert torch.isfinite(g).all()
    x = er_fast.beta_rsample(a, b)
    (g,) = torch.autograd.grad(x.sum(), a, create_graph=True)
    with pytest.raises(RuntimeError, match="second derivatives"):
        torch.autograd.grad(g.sum(), a)
    f = _beta_fn(False)
    one = torch.ones(1, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="second derivatives"):
        torch.func.jvp(lambda a_: torch.func.jvp(lambda z: f(z, b), (a_,), (one,))[1], (a.detach(),), (one,))
    with pytest.raises(RuntimeError, match="second derivatives"):
        torch.func.grad(lambda a_: torch.func.grad(lambda z: f(z, b).sum())(a_).sum())(a.detach())


# ---------------------------------------------------------------- compiled vs reference
@pytest.mark.skipif(not COMPILED, reason="extension not built")
@pytest.mark.parametrize("dtype", dtypes)
def test_kernel_matches_reference_samples(dtype):
    vals = torch.tensor([1e-3, 0.02, 0.7, 1.0, 3.0, 250.0, 1e5], dtype=dtype)
    a, b = torch.meshgrid(vals, vals, indexing="ij")
    key = torch.tensor([[0x1234_5678_9ABC, -77], [42, 2**62 + 5]], dtype=torch.int64)
    a2, b2 = a.expand(2, -1, -1), b.expand(2, -1, -1)
    x = torch.ops.er_fast.beta_rsample(a2, b2, key, False)[0]
    xr = reference.beta_rsample(a2, b2, key)
    if dtype == torch.float64:
        torch.testing.assert_close(x, xr, rtol=1e-12, atol=0)
    else:  # rounding of nearly equal doubles may rarely differ by one float32 ulp
        torch.testing.assert_close(x, xr, rtol=2**-23, atol=0)


def test_reference_goodness_of_fit():
    g = torch.Generator().manual_seed(11)
    with er_fast.use_reference():
        for a, b in [(0.01, 0.01), (2.0, 5.0), (1e3, 0.1), (1e-3, 1e5)]:
            x = er_fast.beta_rsample(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64),
                                     (4000,), generator=g)
            assert _ks_p(x, a, b) > PER_CASE, (a, b)


# ---------------------------------------------------------------- reproducibility
def test_same_generator_state_same_samples():
    a, b = torch.rand(7, 3) + 0.1, torch.rand(3) + 0.5
    g = torch.Generator().manual_seed(9)
    state = g.get_state()
    x1 = er_fast.beta_rsample(a, b, (2,), generator=g)
    x2 = er_fast.beta_rsample(a, b, (2,), generator=g)
    assert not torch.equal(x1, x2)  # the generator advanced
    g.set_state(state)
    assert torch.equal(er_fast.beta_rsample(a, b, (2,), generator=g), x1)
    torch.manual_seed(4)
    y1 = er_fast.beta_rsample(a, b)
    torch.manual_seed(4)
    assert torch.equal(er_fast.beta_rsample(a, b), y1)


def test_independent_of_thread_count():
    a = torch.rand(10001, dtype=torch.float64) * 5 + 0.01
    b = torch.rand(10001, dtype=torch.float64) * 5 + 0.01
    old = torch.get_num_threads()
    try:
        outs = []
        for n in (1, 2):
            torch.set_num_threads(n)
            outs.append(er_fast.beta_rsample(a, b, generator=torch.Generator().manual_seed(1)))
        assert torch.equal(outs[0], outs[1])
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("use_ref", [False, True])
def test_generator_list_slices_are_independent(use_ref):
    S = 3
    a = torch.rand(S, 5, dtype=torch.float64) + 0.2
    b = torch.rand(5, dtype=torch.float64) + 0.2
    with er_fast.use_reference(use_ref):
        gens = [torch.Generator().manual_seed(100 + s) for s in range(S)]
        x = er_fast.beta_rsample(a, b, generator=gens)
        for s in range(S):
            alone = er_fast.beta_rsample(a[s], b, generator=torch.Generator().manual_seed(100 + s))
            assert torch.equal(x[s], alone)
        # with sample_shape: leading dim of the output is S
        gens = [torch.Generator().manual_seed(7 + s) for s in range(S)]
        y = er_fast.beta_rsample(b, b, (S, 4), generator=gens)
        assert torch.equal(y[1], er_fast.beta_rsample(b, b, (4,), generator=torch.Generator().manual_seed(8)))


# ---------------------------------------------------------------- shapes, views, dtypes
def test_shapes_views_and_empty():
    base = torch.rand(6, 4, dtype=torch.float64) + 0.1
    a = base.t()  # non-contiguous
    b = torch.tensor(2.0, dtype=torch.float64)
    x = er_fast.beta_rsample(a, b, (3,), generator=torch.Generator().manual_seed(0))
    y = er_fast.beta_rsample(a.contiguous(), b, (3,), generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 4, 6) and torch.equal(x, y)
    assert er_fast.beta_rsample(torch.empty(0, 3), torch.ones(3)).shape == (0, 3)
    assert er_fast.beta_rsample(1.5, 2.0).shape == ()
    assert er_fast.beta_rsample(torch.tensor([1.0, 2.0]), torch.tensor(3.0, dtype=torch.float64)).dtype == torch.float64


# ---------------------------------------------------------------- bad input
def test_bad_inputs():
    one = torch.ones(3)
    # Outside the supported range [1e-3, 1e5]: non-positive, NaN, infinite, subnormal (float64
    # 1e-309 once gave NaN samples), just below / above the ends.
    for dt in (torch.float32, torch.float64):
        for bad in (0.0, -1.0, math.nan, math.inf, 1e-309, 1e-20, 9.99e-4, 1.0001e5, 1e34):
            t = torch.tensor([1.0, bad, 2.0], dtype=torch.float64).to(dt)
            if dt == torch.float32 and 1e-3 <= float(t[1]) <= 1e5:
                continue
            for args in ((t, one.to(dt)), (one.to(dt), t)):
                with pytest.raises(ValueError, match=r"supported range \[0.001, 100000\]"):
                    er_fast.beta_rsample(*args)
                with pytest.raises(ValueError, match=r"supported range"):
                    er_fast.beta_rsample_grad(torch.full((3,), 0.5, dtype=dt), *args)
                # without validation (and on direct op calls) they give NaN, never a wrong number
                assert torch.isnan(er_fast.beta_rsample(*args, validate_args=False)[1])
                with er_fast.use_reference():
                    assert torch.isnan(er_fast.beta_rsample(*args, validate_args=False)[1])
    # the ends themselves are supported
    ends = torch.tensor([1e-3, 1e5, 1e-3, 1e5], dtype=torch.float64)
    a = ends.clone().requires_grad_()
    x = er_fast.beta_rsample(a, ends.flip(0))
    x.sum().backward()
    assert ((x >= 0) & (x <= 1)).all() and torch.isfinite(a.grad).all()
    with pytest.raises(ValueError, match="broadcast"):
        er_fast.beta_rsample(torch.ones(3), torch.ones(4))
    with pytest.raises(TypeError, match="float32 or float64"):
        er_fast.beta_rsample(torch.ones(3, dtype=torch.int64), one)
    with pytest.raises(TypeError, match="float32 or float64"):
        er_fast.beta_rsample(torch.ones(3, dtype=torch.float16), one)
    with pytest.raises(TypeError):
        er_fast.beta_rsample("a", one)
    gens = [torch.Generator() for _ in range(2)]
    with pytest.raises(ValueError, match="leading dimension"):
        er_fast.beta_rsample(one, one, generator=gens)
    with pytest.raises(ValueError, match="leading dimension"):
        er_fast.beta_rsample(torch.tensor(1.0), torch.tensor(1.0), generator=gens)
    with pytest.raises(TypeError, match="Generator"):
        er_fast.beta_rsample(one, one, generator=[1, 2, 3])
    with pytest.raises(TypeError, match="generator"):
        er_fast.beta_rsample(one, one, generator=5)
    with pytest.raises(ValueError, match="sample_shape"):
        er_fast.beta_rsample(one, one, (-1,))
    with pytest.raises(ValueError, match="broadcast"):
        er_fast.beta_rsample_grad(torch.full((2,), 0.5), one, one)
    with pytest.raises(TypeError, match="float32 or float64"):
        er_fast.beta_rsample_grad(torch.ones(3, dtype=torch.int32), one, one)
    with pytest.raises(ValueError, match="supported range"):
        er_fast.beta_rsample_grad(torch.full((3,), 0.5), -one, one)


@pytest.mark.skipif(not COMPILED, reason="extension not built")
def test_kernel_checks():
    a = torch.ones(2, 3)
    with pytest.raises(RuntimeError, match="key must have shape"):
        torch.ops.er_fast.beta_rsample(a, a, torch.zeros(3, dtype=torch.int64), False)
    with pytest.raises(RuntimeError, match="key must be int64"):
        torch.ops.er_fast.beta_rsample(a, a, torch.zeros(2), False)
    with pytest.raises(RuntimeError, match="leading dimension"):
        torch.ops.er_fast.beta_rsample(a, a, torch.zeros(3, 2, dtype=torch.int64), False)
    with pytest.raises(RuntimeError, match="beta must be of the dtype of alpha"):
        torch.ops.er_fast.beta_rsample(a, a.double(), torch.zeros(2, dtype=torch.int64), False)
    with pytest.raises(RuntimeError, match="float32 or float64"):
        torch.ops.er_fast.beta_rsample_grad(a.int(), a.int(), a.int())
    # invalid parameters reaching the kernel (validation skipped) give NaN, never garbage
    x = er_fast.beta_rsample(torch.tensor([1.0, -1.0, math.nan]), torch.ones(3), validate_args=False)
    assert not x[0].isnan() and bool(x[1:].isnan().all())


# ---------------------------------------------------------------- torch.library / compile
@pytest.mark.skipif(not COMPILED, reason="extension not built")
@pytest.mark.parametrize("dtype", dtypes)
def test_opcheck(dtype):
    a = (torch.rand(3, 4, dtype=dtype) + 0.1).requires_grad_()
    b = (torch.rand(3, 4, dtype=dtype) + 0.1).requires_grad_()
    key = torch.tensor([[1, 2], [3, 4], [5, 6]], dtype=torch.int64)
    for k in (key[0], key):
        torch.library.opcheck(torch.ops.er_fast.beta_rsample.default, (a, b, k, True))
        torch.library.opcheck(torch.ops.er_fast.beta_rsample.default, (a.detach(), b.detach(), k, False))
    x = torch.rand(3, 4, dtype=dtype)
    torch.library.opcheck(torch.ops.er_fast.beta_rsample_grad.default, (x, a.detach(), b.detach()))


@pytest.mark.skipif(not COMPILED, reason="extension not built")
def test_torch_compile_fullgraph():
    torch._dynamo.reset()

    def loss(a, b):
        x = er_fast.beta_rsample(a, b, (8,))
        return (x * torch.arange(8.0).reshape(8, 1)).sum()

    a = torch.rand(5) + 0.5
    b = torch.rand(5) + 0.5
    ac, bc = a.clone().requires_grad_(), b.clone().requires_grad_()
    cl = torch.compile(loss, fullgraph=True, backend="aot_eager")
    torch.manual_seed(3)
    cl(ac, bc).backward()
    assert torch.isfinite(ac.grad).all() and torch.isfinite(bc.grad).all()

    # With the key fixed, the compiled op and its backward equal eager exactly.
    key = torch.tensor([5, 6], dtype=torch.int64)

    def f(a, b, key):
        return torch.ops.er_fast.beta_rsample(a, b, key, True)[0]

    ae, be = a.clone().requires_grad_(), b.clone().requires_grad_()
    xe = f(ae, be, key)
    xe.sum().backward()
    ac, bc = a.clone().requires_grad_(), b.clone().requires_grad_()
    xc = torch.compile(f, fullgraph=True)(ac, bc, key)
    xc.sum().backward()
    assert torch.equal(xc, xe) and torch.equal(ac.grad, ae.grad) and torch.equal(bc.grad, be.grad)


# ---------------------------------------------------------------- distributions.Beta
def test_distribution_beta():
    a = torch.tensor([0.5, 2.0, 30.0], requires_grad=True)
    b = torch.tensor([0.5, 5.0, 0.05], requires_grad=True)
    d = er_fast.distributions.Beta(a, b)
    x = d.rsample((6,), generator=torch.Generator().manual_seed(0))
    assert x.shape == (6, 3)
    assert torch.equal(x, d.rsample((6,), generator=torch.Generator().manual_seed(0)))
    kl = torch.distributions.kl_divergence(d, torch.distributions.Uniform(torch.zeros(3), torch.ones(3)))
    ref = torch.distributions.kl_divergence(torch.distributions.Beta(a, b),
                                            torch.distributions.Uniform(torch.zeros(3), torch.ones(3)))
    torch.testing.assert_close(kl, ref)
    (d.log_prob(x).sum() + kl.sum() + d.entropy().sum() + x.sum()).backward()
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()
    assert not d.sample((2,)).requires_grad
    assert d.expand((4, 3)).rsample().shape == (4, 3)


def test_distribution_beta_infinite_concentrations():
    """Beta(inf, b) is the point mass at 1 and Beta(a, inf) the one at 0; Beta(inf, inf) is refused
    (NaN without validation). Finite elements are untouched, and the limits get zero gradient."""
    inf = math.inf
    a = torch.tensor([inf, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([1.0, inf, 4.0], dtype=torch.float64, requires_grad=True)
    x = er_fast.distributions.Beta(a, b).rsample((5,), generator=torch.Generator().manual_seed(0))
    assert (x[:, 0] == 1).all() and (x[:, 1] == 0).all() and ((x[:, 2] > 0) & (x[:, 2] < 1)).all()
    x.sum().backward()
    assert a.grad[0] == 0 and b.grad[1] == 0 and torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()
    assert a.grad[2] != 0
    both = torch.tensor([inf]), torch.tensor([inf])
    with pytest.raises(ValueError, match="both be infinite"):
        er_fast.distributions.Beta(*both, validate_args=True).rsample()
    assert torch.isnan(er_fast.distributions.Beta(*both, validate_args=False).rsample()).all()


def test_fake_kernel_checks_match_eager():
    """A bad direct call fails under torch.compile (fake tensors) with the words eager gives."""
    if not COMPILED:
        pytest.skip("extension not built")
    from torch._subclasses.fake_tensor import FakeTensorMode
    cases = [
        (torch.ones(3), torch.ones(4), torch.zeros(2, dtype=torch.int64)),
        (torch.ones(3), torch.ones(3), torch.zeros(3, dtype=torch.int64)),
        (torch.ones(3), torch.ones(3), torch.zeros(2, dtype=torch.int32)),
        (torch.ones(3, dtype=torch.int32), torch.ones(3, dtype=torch.int32), torch.zeros(2, dtype=torch.int64)),
        (torch.ones(3), torch.ones(3, dtype=torch.float64), torch.zeros(2, dtype=torch.int64)),
        (torch.ones(3), torch.ones(3), torch.zeros(2, 2, dtype=torch.int64)),
    ]
    for a, b, k in cases:
        with pytest.raises(RuntimeError) as eager:
            torch.ops.er_fast.beta_rsample(a, b, k, False)
        with FakeTensorMode() as mode:
            fa, fb, fk = (mode.from_tensor(t) for t in (a, b, k))
            with pytest.raises(RuntimeError) as fake:
                torch.ops.er_fast.beta_rsample(fa, fb, fk, False)
        assert str(eager.value).split("\n")[0] in str(fake.value), (str(eager.value), str(fake.value))


# ---------------------------------------------------------------- CUDA
@requires_cuda
@pytest.mark.parametrize("dtype", dtypes)
def test_cuda_matches_cpu(dtype):
    vals = torch.tensor([1e-3, 0.02, 0.7, 1.0, 3.0, 250.0, 1e5], dtype=dtype)
    a, b = torch.meshgrid(vals, vals, indexing="ij")
    key = torch.tensor([123, 456], dtype=torch.int64)
    x = torch.ops.er_fast.beta_rsample(a, b, key, True)
    xc = torch.ops.er_fast.beta_rsample(a.cuda(), b.cuda(), key.cuda(), True)
    rtol = 1e-12 if dtype == torch.float64 else 2**-23
    for u, v in zip(x, xc):
        torch.testing.assert_close(v.cpu(), u, rtol=rtol, atol=0)


@requires_cuda
def test_cuda_goodness_of_fit_and_grad():
    g = torch.Generator(device="cuda").manual_seed(0)
    a = torch.tensor(0.01, dtype=torch.float64, device="cuda", requires_grad=True)
    x = er_fast.beta_rsample(a, torch.tensor(0.01, dtype=torch.float64, device="cuda"), (N_FIT,), generator=g)
    assert _ks_p(x.detach().cpu(), 0.01, 0.01) > PER_CASE
    x.sum().backward()
    da, _ = er_fast.beta_rsample_grad(x.detach().cpu(), a.detach().cpu(), torch.tensor(0.01, dtype=torch.float64))
    torch.testing.assert_close(a.grad.cpu(), da.sum(), rtol=1e-10, atol=0)
