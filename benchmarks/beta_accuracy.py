"""Accuracy of the reparameterization gradient dx/dalpha, dx/dbeta of er_fast.beta_rsample and of
torch.distributions.Beta.rsample, against mpmath (30 digits), at the same points.

    python benchmarks/beta_accuracy.py [n_points]

Two point sets: (alpha, beta) ~ U[0.1, 5] (the benchmark's), and log-uniform on [1e-2, 1e3]; x is
drawn from Beta(alpha, beta) and kept where float32 can hold it. torch's gradient is its backward
(_Dirichlet_backward, the Jankowiak-Obermeyer approximations) evaluated at those x.
"""
import sys

import mpmath as mp
import torch
from torch.distributions.dirichlet import _Dirichlet_backward

import er_fast
from er_fast.ops.reference.beta_mpmath import mp_grad


def torch_grad(x, a, b):
    """d x / d(alpha, beta) of torch's Beta.rsample at x (its Dirichlet backward, x = x_0)."""
    x2 = torch.stack([x, 1 - x], -1)
    conc = torch.stack([a, b], -1)
    g = _Dirichlet_backward(x2, conc, torch.stack([torch.ones_like(x), torch.zeros_like(x)], -1))
    return g[..., 0], g[..., 1]


def points(n, kind, seed):
    g = torch.Generator().manual_seed(seed)
    if kind == "U[0.1,5]":
        a, b = torch.rand(2, n, generator=g, dtype=torch.float64) * 4.9 + 0.1
    else:
        a, b = 10 ** (torch.rand(2, n, generator=g, dtype=torch.float64) * 5 - 2)
    x = er_fast.beta_rsample(a, b, generator=g)
    keep = (x > 1e-30) & (x < 1 - 1e-7)  # float32 must hold x, 1 - x and the gradients
    return x[keep], a[keep], b[keep]


def stats(got, ref):
    e = ((got - ref).abs() / ref.abs()).flatten()
    return e.max().item(), e.median().item()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    print("| point set | n | method | max rel. err | median rel. err |")
    print("|---|---|---|---|---|")
    for kind, seed in (("U[0.1,5]", 1), ("log-U[1e-2,1e3]", 2)):
        x, a, b = points(n, kind, seed)
        x = x.float().double()  # points representable in float32, so every method sees the same x
        ref = torch.tensor([mp_grad(*v) for v in zip(x.tolist(), a.tolist(), b.tolist())], dtype=torch.float64)
        rows = {
            "er_fast float64": er_fast.beta_rsample_grad(x, a, b),
            "er_fast float32": [t.double() for t in er_fast.beta_rsample_grad(x.float(), a.float(), b.float())],
            "torch float64": torch_grad(x, a, b),
            "torch float32": [t.double() for t in torch_grad(x.float(), a.float(), b.float())],
        }
        for name, (da, db) in rows.items():
            m, med = stats(torch.stack([da, db], 1), ref)
            print(f"| {kind} | {len(x)} | {name} | {m:.2e} | {med:.2e} |")


if __name__ == "__main__":
    mp.mp.dps = 30
    main()
