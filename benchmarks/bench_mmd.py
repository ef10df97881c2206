"""mmd_imq (the WAE penalty) forward + backward w.r.t. x only, B=16 batches of n=m=1024 points in
d=8, the 7 default scales, side by side with what a user would otherwise run:

  plain     the eager PyTorch a user writes (torch.cdist(...)**2, as the WAE code's MMD)
  compiled  the same function under torch.compile (inductor; compiled outside the timing)
  keops     pykeops LazyTensor reductions (no n x m matrix; its CPU kernel is compiled by g++ on
            first use, outside the timing); skipped if pykeops cannot be imported or compiled
  er_fast   er_fast.mmd_imq

Run: python -m pytest benchmarks/bench_mmd.py --benchmark-only -q
Read the ratios within the group (same inputs, same run). The n-sweep with peak memory is
benchmarks/mmd_sweep.py.
"""
import pytest
import torch

import er_fast
from er_fast.app.baselines import SCALES, make_keops_mmd as make_keops, mmd_plain

B, N, D = 16, 1024, 8


def er_fast_mmd(x, y):
    return er_fast.mmd_imq(x, y, scales=SCALES)


def _inputs(dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, N, D, generator=g, dtype=dtype).requires_grad_()
    y = torch.rand(B, N, D, generator=g, dtype=dtype)  # a prior sample: no gradient
    return x, y


def _fwd_bwd(fn, x, y):
    return torch.autograd.grad(fn(x, y).sum(), x)[0]


_COMPILED = {}


def _impl(name):
    if name == "plain":
        return mmd_plain
    if name == "compiled":
        if "c" not in _COMPILED:
            _COMPILED["c"] = torch.compile(mmd_plain)
        return _COMPILED["c"]
    if name == "keops":
        fn = make_keops()
        if fn is None:
            pytest.skip("pykeops not importable")
        return fn
    return er_fast_mmd


ROUNDS = {"plain": 3, "compiled": 3, "keops": 5, "er_fast": 15}


@pytest.mark.parametrize("dtype", [torch.float32], ids=["f32"])
@pytest.mark.parametrize("impl", ["plain", "compiled", "keops", "er_fast"])
def test_mmd_fwd_bwd_B16_n1024_d8(benchmark, impl, dtype):
    benchmark.group = f"mmd_imq fwd+bwd(x) B={B} n=m={N} d={D} 7 scales {str(dtype)[6:]}"
    fn = _impl(impl)
    x, y = _inputs(dtype)
    try:
        ref = _fwd_bwd(mmd_plain, x, y) if impl != "plain" else None
        g = _fwd_bwd(fn, x, y)  # warm-up: torch.compile / KeOps compile here, not in the timing
    except Exception as e:  # noqa: BLE001
        if impl == "keops":
            pytest.skip(f"KeOps failed to compile or run: {type(e).__name__}: {e}")
        raise
    if ref is not None:  # every contender computes the same gradient
        assert (g - ref).abs().max() <= 1e-4 * ref.abs().max()
    benchmark.pedantic(_fwd_bwd, args=(fn, x, y), rounds=ROUNDS[impl], iterations=1, warmup_rounds=1)
