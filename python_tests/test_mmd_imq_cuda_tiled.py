"""The tiled CUDA kernels of mmd_imq (ER_FAST_MMD_CUDA_KERNEL=tiled, csrc/cuda/mmd_imq_tiled.cu):
against the float64 reference on odd shapes (small path: n, m <= 256; general path above), gradients
(both, x only, y only, none), determinism, agreement with the default rows kernel, the switch itself.

Tolerances (the error model of docs/cuda_mmd.md):
* float32 value: a pair's kernel value is off by <= ~10 ulp (Horner of degree <= 7 with positive
  terms: <= deg + 2 roundings, plus <= 1 ulp of the hardware reciprocal); it is summed in float over
  <= 128 terms (a rotation; <= 256 on the small path), then in double. Rounding errors of a float sum
  of N terms grow like sqrt(N) ulp of the terms (worst case N ulp), so |error| <~ (10 + 16) ulp * S
  with the terms <= S = number of scales: 26 * 6e-8 * S = 1.6e-6 S -> 2e-6 S, the rows kernel's bound.
* float32 gradients: per pair <= ~20 ulp (the degree-12 R plus products), float over <= 128 rows or
  columns and the column partials' float accumulation over <= P / 128 row blocks (<= 64 here), then
  double: relative to the largest component, 2e-5 (as for the rows kernel).
* float64: everything in double: 1e-11 S for values, 1e-10 relative for gradients.
* tiled vs rows: both within the above of the exact value, so within twice of each other.
"""
import pytest
import torch

import er_fast
from er_fast.ops import backend, reference
from er_fast.ops.mmd import DEFAULT_SCALES

from conftest import dtypes, requires_cuda

pytestmark = [
    requires_cuda,
    pytest.mark.skipif(not (torch.cuda.is_available() and backend.compiled("mmd_imq", torch.empty(0, device="cuda"))),
                       reason="extension built without CUDA kernels"),
]

S7 = list(DEFAULT_SCALES)
ENV = "ER_FAST_MMD_CUDA_KERNEL"


@pytest.fixture
def tiled(monkeypatch):
    monkeypatch.setenv(ENV, "tiled")


def _tol_value(dtype, nscales):
    return (1e-11 if dtype == torch.float64 else 2e-6) * nscales


def _tol_grad(dtype):
    return 1e-10 if dtype == torch.float64 else 2e-5


def _op(x, y, c, scales=S7, unbiased=True, gx=True, gy=True):
    return torch.ops.er_fast.mmd_imq(x, y, c, scales, unbiased, gx, gy)


def _ref(x, y, c, scales, unbiased):
    """float64 value and per-element gradients (d value_b / d x, d value_b / d y)."""
    xd = x.detach().double().requires_grad_()
    yd = y.detach().double().requires_grad_()
    v = reference.mmd_imq(xd, yd, c, scales, unbiased)
    gx, gy = torch.autograd.grad(v.sum(), (xd, yd))  # batch elements are independent
    return v.detach(), gx, gy


def _noncontig(t):
    wide = torch.zeros(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype, device=t.device)
    wide[..., ::2] = t
    return wide[..., ::2]


def _assert_close_to_ref(out, x, y, c, scales, unbiased, gx=True, gy=True):
    v, ogx, ogy = out
    rv, rgx, rgy = _ref(x, y, c, scales, unbiased)
    assert v.shape == rv.shape and v.dtype == x.dtype and v.device == x.device
    err = (v.double() - rv).abs().max().item()
    assert err <= _tol_value(x.dtype, len(scales)), (err, v, rv)
    for want, g, rg in ((gx, ogx, rgx), (gy, ogy, rgy)):
        if not want:
            assert g.numel() == 0
            continue
        assert g.shape == rg.shape and g.dtype == x.dtype
        gerr = (g.double() - rg).abs().max().item()
        assert gerr <= _tol_grad(x.dtype) * rg.abs().max().item() + 1e-300, gerr


SHAPES = [  # batch, n, m, d
    ((), 2, 2, 1),          # small path, tiniest
    ((), 5, 7, 3),          # n < tile
    ((3, 4), 9, 4, 2),      # batch shape
    ((), 256, 256, 8),      # small path at its limit
    ((2,), 70, 130, 16),    # small path, float32's largest register bucket
    ((1,), 300, 129, 1),    # general path: d = 1, n not a multiple of 128
    ((), 257, 300, 3),      # general path: partial panels on both sides
    ((2,), 129, 400, 8),    # general path: one row beyond a panel
    ((4,), 1000, 700, 8),   # general path, several panels per set
    ((), 300, 280, 33),     # d beyond the tiled range: the rows kernel runs
]


@pytest.mark.parametrize("dtype", dtypes)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("unbiased", [True, False])
def test_vs_reference(tiled, dtype, shape, unbiased):
    batch, n, m, d = shape
    x = torch.randn(*batch, n, d, dtype=dtype, device="cuda")
    y = torch.rand(*batch, m, d, dtype=dtype, device="cuda") * 2
    _assert_close_to_ref(_op(x, y, 2.0 * d, unbiased=unbiased), x, y, 2.0 * d, S7, unbiased)


@pytest.mark.parametrize("dtype", dtypes)
def test_many_panels_and_warps(tiled, dtype):
    """B16 n1024 (a benchmark shape): thousands of blocks over 16 batch elements."""
    x = torch.randn(16, 1024, 8, dtype=dtype, device="cuda")
    y = torch.randn(16, 1024, 8, dtype=dtype, device="cuda") * 1.2 + 0.1
    _assert_close_to_ref(_op(x, y, 16.0), x, y, 16.0, S7, True)


@pytest.mark.parametrize("dtype", dtypes)
@pytest.mark.parametrize("n,m", [(40, 33), (600, 333)], ids=str)
@pytest.mark.parametrize("gx,gy", [(True, False), (False, True), (False, False)])
def test_only_requested_gradients(tiled, dtype, n, m, gx, gy):
    """Items then skip or keep their row / column gradients; the value must not change."""
    x = torch.randn(2, n, 4, dtype=dtype, device="cuda")
    y = torch.randn(2, m, 4, dtype=dtype, device="cuda") + 0.2
    out = _op(x, y, 8.0, gx=gx, gy=gy)
    _assert_close_to_ref(out, x, y, 8.0, S7, True, gx=gx, gy=gy)
    full = _op(x, y, 8.0)
    assert torch.equal(out[0], full[0])  # the value does not depend on the gradients asked for
    if gx:
        assert torch.equal(out[1], full[1])


@pytest.mark.parametrize("dtype", dtypes)
@pytest.mark.parametrize("n,m", [(50, 37), (400, 300)], ids=str)
def test_noncontiguous(tiled, dtype, n, m):
    x = _noncontig(torch.randn(2, 3, n, 4, dtype=dtype, device="cuda"))
    y = torch.randn(2, 3, 4, m, dtype=dtype, device="cuda").transpose(-1, -2)
    assert not x.is_contiguous() and not y.is_contiguous()
    _assert_close_to_ref(_op(x, y, 8.0), x, y, 8.0, S7, True)


@pytest.mark.parametrize("dtype", dtypes)
@pytest.mark.parametrize(
    "c,scales",
    [(0.7, S7), (3.0, [1.0]), (1.0, [0.5, 2.0]), (5.0, [0.01, 0.1, 1, 10, 100, 1000, 1e4, 1e5]),  # 8: no fast form
     (2.0, [0.1 * (i + 1) for i in range(9)]),  # 9 scales: direct form only
     (1e4, [1e-30, 1.0])],  # rational form refused
    ids=str,
)
@pytest.mark.parametrize("n", [40, 300])
def test_custom_c_and_scales(tiled, dtype, c, scales, n):
    x = torch.randn(2, n, 5, dtype=dtype, device="cuda")
    y = torch.randn(2, n - 7, 5, dtype=dtype, device="cuda").add(0.3)
    _assert_close_to_ref(_op(x, y, c, scales), x, y, c, scales, True)


@pytest.mark.parametrize("dtype", dtypes)
@pytest.mark.parametrize("n", [150, 700])
@pytest.mark.parametrize("spread", [1e2, 1e8])
def test_far_pairs_mixed_with_near(tiled, dtype, n, spread):
    """Steps where some lanes are beyond the rational form's bound take the per-pair path."""
    x = torch.randn(2, n, 3, dtype=dtype, device="cuda")
    y = torch.randn(2, n - 60, 3, dtype=dtype, device="cuda")
    x[:, ::7] *= spread
    y[:, 5] += spread
    _assert_close_to_ref(_op(x, y, 1.0), x, y, 1.0, S7, True)


@pytest.mark.parametrize("dtype", dtypes)
@pytest.mark.parametrize("n,m,d", [(200, 100, 3), (3000, 2000, 8)], ids=str)
def test_deterministic(tiled, dtype, n, m, d):
    x = torch.randn(2, n, d, dtype=dtype, device="cuda")
    y = torch.randn(2, m, d, dtype=dtype, device="cuda")
    a = _op(x, y, 2.0 * d)
    b = _op(x, y, 2.0 * d)
    for u, v in zip(a, b):
        assert torch.equal(u, v)


@pytest.mark.parametrize("dtype", dtypes)
@pytest.mark.parametrize("b,n,m,d", [(1, 100, 120, 2), (2, 3000, 2000, 8), (1, 8192, 6000, 4)], ids=str)
def test_agrees_with_rows_kernel(monkeypatch, dtype, b, n, m, d):
    """Shapes too large for the reference; the panel model picks P = 128 ... 512 for them (4 and 8
    warps per block) on a 132-SM GPU. The rows kernel is checked against the reference elsewhere."""
    x = torch.randn(b, n, d, dtype=dtype, device="cuda")
    y = torch.randn(b, m, d, dtype=dtype, device="cuda") * 1.1 + 0.05
    monkeypatch.setenv(ENV, "rows")
    rv, rgx, rgy = _op(x, y, 2.0 * d)
    monkeypatch.setenv(ENV, "tiled")
    tv, tgx, tgy = _op(x, y, 2.0 * d)
    assert (tv.double() - rv.double()).abs().max().item() <= 2 * _tol_value(dtype, len(S7))
    for t, r in ((tgx, rgx), (tgy, rgy)):
        assert (t.double() - r.double()).abs().max().item() <= 2 * _tol_grad(dtype) * r.double().abs().max().item()


def test_float32_large_n_against_float64(tiled):
    """n = m = 8192 (panels of 512 on a 132-SM GPU): float32 tiled against the float64 tiled
    kernel (itself checked against the reference above), relative to the size of the terms."""
    n, d = 8192, 8
    x = torch.randn(1, n, d, dtype=torch.float64, device="cuda")
    y = torch.randn(1, n, d, dtype=torch.float64, device="cuda") * 1.1 + 0.05
    v64, g64, _ = _op(x, y, 2.0 * d, gy=False)
    v32, g32, _ = _op(x.float(), y.float(), 2.0 * d, gy=False)
    term = reference.mmd.imq_kernel_sum((x[0, :500, None] - x[0, None, :500]).square().sum(-1), 2.0 * d, S7).mean()
    assert abs(v32.double() - v64).item() <= 1e-6 * term.item()
    assert ((g32.double() - g64).abs().max() / g64.abs().max()).item() <= 1e-5


def test_autograd_through_the_switch(tiled):
    x = torch.randn(3, 300, 4, device="cuda", requires_grad=True)
    y = torch.randn(3, 290, 4, device="cuda", requires_grad=True)
    up = torch.randn(3, device="cuda")
    gx, gy = torch.autograd.grad(er_fast.mmd_imq(x, y), (x, y), up)
    xd = x.detach().double().requires_grad_()
    yd = y.detach().double().requires_grad_()
    rgx, rgy = torch.autograd.grad(reference.mmd_imq(xd, yd, 8.0, S7, True), (xd, yd), up.double())
    for g, rg in ((gx, rgx), (gy, rgy)):
        assert (g.double() - rg).abs().max().item() <= 2e-5 * rg.abs().max().item()


@pytest.mark.parametrize("n", [100, 600])
def test_switch_runs_the_tiled_kernels(monkeypatch, n):
    """The kernels launched under each setting (by name, from the profiler)."""
    x = torch.randn(2, n, 3, device="cuda")
    y = torch.randn(2, n, 3, device="cuda")

    def kernels():
        torch.cuda.synchronize()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            _op(x, y, 6.0)
            torch.cuda.synchronize()
        names = [e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
        if not names:
            pytest.skip("the profiler recorded no CUDA kernels here")
        return " ".join(names)

    monkeypatch.setenv(ENV, "tiled")
    names = kernels()
    assert ("mmd_small_kernel" if n <= 256 else "mmd_tiled_kernel") in names and "mmd_rows_kernel" not in names
    monkeypatch.delenv(ENV)
    names = kernels()
    assert "mmd_rows_kernel" in names and "mmd_tiled_kernel" not in names and "mmd_small_kernel" not in names


def test_bad_switch_value(monkeypatch):
    monkeypatch.setenv(ENV, "fast")
    x = torch.randn(5, 3, device="cuda")
    with pytest.raises(RuntimeError, match="ER_FAST_MMD_CUDA_KERNEL must be 'rows' or 'tiled', got 'fast'"):
        _op(x, x + 1, 6.0)
