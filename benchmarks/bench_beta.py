"""Beta reparameterized sampling, forward + backward on 10^6 elements with alpha, beta ~ U[0.1, 5]:
er_fast.beta_rsample vs torch.distributions.Beta(alpha, beta).rsample() in the same run.

    python -m pytest benchmarks/bench_beta.py --benchmark-only -q --benchmark-columns=min,median,mean

Read the ratio within a group (one group per dtype); the machine's other load affects both alike.
"""
import pytest
import torch

import er_fast

N = 10**6


def _params(dtype):
    g = torch.Generator().manual_seed(0)
    a = (torch.rand(N, generator=g, dtype=dtype) * 4.9 + 0.1).requires_grad_()
    b = (torch.rand(N, generator=g, dtype=dtype) * 4.9 + 0.1).requires_grad_()
    return a, b


IMPLS = {
    "er_fast": lambda a, b: er_fast.beta_rsample(a, b),
    "torch": lambda a, b: torch.distributions.Beta(a, b).rsample(),
}


@pytest.fixture(params=["all", "1"], ids=["threads=all", "threads=1"])
def threads(request):
    old = torch.get_num_threads()
    if request.param == "1":
        torch.set_num_threads(1)
    yield request.param
    torch.set_num_threads(old)


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_beta_rsample_fwd_bwd(benchmark, impl, dtype, threads):
    benchmark.group = f"beta_rsample fwd+bwd 1e6 {dtype} threads={threads}"
    a, b = _params(dtype)
    w = torch.rand(N, dtype=dtype)
    fn = IMPLS[impl]

    def step():
        a.grad = b.grad = None
        x = fn(a, b)
        (x * w).sum().backward()

    benchmark.pedantic(step, rounds=7, iterations=1, warmup_rounds=1)
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()


@pytest.mark.parametrize("impl", ["er_fast", "torch"])
def test_beta_sample_only_f32(benchmark, impl):
    benchmark.group = "beta sample only (no grad) 1e6 float32"
    a, b = _params(torch.float32)
    a, b = a.detach(), b.detach()
    fn = IMPLS[impl]
    benchmark.pedantic(lambda: fn(a, b), rounds=7, iterations=1, warmup_rounds=1)
