"""Three pieces of the training step, each against the form it replaced, at the Table 1 shapes
(S = 50 seeds, batch 128, width 64, one thread):

  * the circle data: ToyData's closed form (CircleMap: segment lookup + one embedding_bag) vs the
    random MLP's two GEMMs (ToyData.embed);
  * the encoder's narrow last layer (64 -> 2): computed transposed (what StackedMLP does) vs the
    plain baddbmm / bmm, forward and weight gradient;
  * KL(Beta || Uniform) and its gradient: closed-form derivatives (kl_beta_uniform) vs autograd
    through the formula.

    python -m pytest benchmarks/bench_step_parts.py --benchmark-only -q --benchmark-columns=min,median

Read the ratios within a group (same inputs, same run); docs/performance.md quotes them.
"""
import math

import pytest
import torch

from er_fast.vae import ToyData
from er_fast.vae.data import params_to_points
from er_fast.vae.densities import _kl_beta_uniform64, kl_beta_uniform
from er_fast.vae.stacked_mlp import _linear, _weight_grad

S, B, WIDTH = 50, 128, 64


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("impl", ["closed_form", "two_gemms"])
def test_circle_data(benchmark, impl):
    benchmark.group = f"circle data x(r) for ({S}, {B}) positions, float32"
    data = ToyData(test_size=5)
    r = torch.rand(S, B, 1)
    if impl == "closed_form":
        benchmark(data._map, r)
    else:
        benchmark(lambda: data.embed(params_to_points("circle", r)))


def _plain_linear(b, h, w):
    return torch.baddbmm(b, h, w)


def _plain_weight_grad(a, g):
    return torch.bmm(a.transpose(1, 2), g)


@pytest.mark.parametrize("impl", ["transposed", "baddbmm"])
def test_narrow_layer(benchmark, impl):
    benchmark.group = f"encoder last layer {WIDTH} -> 2, forward + weight gradient, S = {S}"
    h, w, b, g = torch.randn(S, B, WIDTH), torch.randn(S, WIDTH, 2), torch.randn(S, 1, 2), torch.randn(S, B, 2)
    lin, wg = (_linear, _weight_grad) if impl == "transposed" else (_plain_linear, _plain_weight_grad)
    benchmark(lambda: (lin(b, h, w), wg(h, g)))


def _kl_autograd(alpha, beta):
    """The same formula, differentiated by autograd (what kl_beta_uniform did before)."""
    return _kl_beta_uniform64(alpha.double(), beta.double()).to(alpha.dtype)


@pytest.mark.parametrize("impl", ["closed_form_grad", "autograd"])
def test_beta_kl(benchmark, impl):
    benchmark.group = f"KL(Beta || U) + gradient, ({S}, {B}, 1) float32"
    g = torch.Generator().manual_seed(0)
    alpha = (torch.rand(S, B, 1, generator=g) * 5 + 0.1).requires_grad_()
    beta = (torch.rand(S, B, 1, generator=g) * 5 + 0.1).requires_grad_()
    fn = kl_beta_uniform if impl == "closed_form_grad" else _kl_autograd
    benchmark(lambda: torch.autograd.grad(fn(alpha, beta).sum(), (alpha, beta)))


def test_same_numbers():
    """The benchmarked pairs compute the same function (a benchmark of a wrong result is worthless)."""
    data = ToyData(test_size=5)
    r = torch.rand(S, B, 1)
    torch.testing.assert_close(data._map(r), data.embed(params_to_points("circle", r)))
    h, w, b = torch.randn(S, B, WIDTH), torch.randn(S, WIDTH, 2), torch.randn(S, 1, 2)
    torch.testing.assert_close(_linear(b, h, w), _plain_linear(b, h, w))
    a = torch.rand(S, B, 1) * 5 + 0.1
    torch.testing.assert_close(kl_beta_uniform(a, a.flip(1)), _kl_autograd(a, a.flip(1)))
    assert math.isfinite(float(kl_beta_uniform(a, a).sum()))
