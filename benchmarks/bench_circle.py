"""circle_embed / so2_rotate vs the eager PyTorch a user would write, forward + backward, 10^6 points.

Run: python -m pytest benchmarks/bench_circle.py --benchmark-only -q
Read the ratios within a group (same inputs, same run). The "bandwidth" group times a plain
64 MiB tensor copy: the machine's memory bandwidth, for the floor in README.
"""
import math

import pytest
import torch

import er_fast
from er_fast.app.baselines import circle_rotate_eager, circle_rotate_matmul, rotate_eager, rotate_matmul

N = 1_000_000


CIRCLE = {
    "er_fast": er_fast.circle_embed,
    "eager_matmul": circle_rotate_matmul,
    "eager_elementwise": circle_rotate_eager,
}
ROTATE = {"er_fast": er_fast.so2_rotate, "eager_matmul": rotate_matmul, "eager_elementwise": rotate_eager}


def _fwd_bwd(fn, args, grad):
    # autograd.grad, not .backward(): no accumulation into .grad inside the timed region
    return torch.autograd.grad(fn(*args), args, grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("impl", list(CIRCLE))
def test_circle_embed_rotate_fwd_bwd(benchmark, impl, dtype):
    benchmark.group = f"circle_embed(z (1e6,1), theta (1e6,1)) fwd+bwd {dtype}"
    z = torch.rand(N, 1, dtype=dtype, requires_grad=True)
    th = torch.randn(N, 1, dtype=dtype, requires_grad=True)
    g = torch.randn(N, 1, 2, dtype=dtype)
    benchmark(_fwd_bwd, CIRCLE[impl], (z, th), g)


@pytest.mark.parametrize("impl", list(CIRCLE))
def test_circle_embed_rotate_fwd(benchmark, impl):
    benchmark.group = "circle_embed(z (1e6,1), theta (1e6,1)) forward, no grad, float32"
    z, th = torch.rand(N, 1), torch.randn(N, 1)
    with torch.no_grad():
        benchmark(CIRCLE[impl], z, th)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("impl", list(ROTATE))
def test_so2_rotate_fwd_bwd(benchmark, impl, dtype):
    benchmark.group = f"so2_rotate(p (1e6,2), theta (1e6,)) fwd+bwd {dtype}"
    p = torch.randn(N, 2, dtype=dtype, requires_grad=True)
    th = torch.randn(N, dtype=dtype, requires_grad=True)
    g = torch.randn(N, 2, dtype=dtype)
    benchmark(_fwd_bwd, ROTATE[impl], (p, th), g)


@pytest.mark.parametrize("impl", ["er_fast", "eager"])
def test_circle_embed_no_theta_fwd_bwd(benchmark, impl):
    benchmark.group = "circle_embed(z (1e6,1)) no theta fwd+bwd float32"
    z = torch.rand(N, 1, requires_grad=True)
    g = torch.randn(N, 1, 2)

    def eager(z):
        a = 2 * math.pi * z
        return torch.stack((torch.cos(a), torch.sin(a)), -1)

    benchmark(_fwd_bwd, er_fast.circle_embed if impl == "er_fast" else eager, (z,), g)


@pytest.mark.parametrize("mib", [16, 64])
def test_bandwidth_copy(benchmark, mib):
    """mib MiB read + mib MiB written: bandwidth = 2 * mib MiB / time. 16 MiB matches the
    working set of the 10^6-point ops (16-48 MB), 64 MiB is past the 4 MiB L2s."""
    benchmark.group = "bandwidth: copy_ of float32, read + write"
    src = torch.randn(mib << 18)
    dst = torch.empty_like(src)
    benchmark(dst.copy_, src)
