"""Where is beta_rsample's implicit gradient finite and accurate? A scan over log-spaced (alpha, beta)
against an independent oracle: the derivative of the quantile function, dx/dalpha at fixed
u = I_x(alpha, beta), by a central difference of scipy's betaincinv (Boost; ~1e-15 relative) in
float64 with relative step 1e-5 (truncation ~1e-10, rounding ~1e-10: the oracle is good to ~1e-8).

    python benchmarks/beta_range_scan.py            # table of the worst relative error per (alpha, beta)

Used to choose and document the supported concentration range (docs/ops_edges.md).
"""
from __future__ import annotations

import argparse
import math

import numpy as np
import scipy.special as sp
import torch

import er_fast

QUANTILES = (1e-3, 0.05, 0.3, 0.5, 0.7, 0.95, 0.999)
H = 1e-5


def oracle(x: float, a: float, b: float) -> tuple[float, float]:
    u = sp.betainc(a, b, x)
    def d(f):
        return (f(1 + H) - f(1 - H)) / (2 * H)
    da = d(lambda s: sp.betaincinv(a * s, b, u)) / a
    db = d(lambda s: sp.betaincinv(a, b * s, u)) / b
    return da, db


def scan(values, dtype: torch.dtype):
    """[(a, b, worst relative error or inf if non-finite, points compared)]."""
    rows = []
    for a in values:
        for b in values:
            worst, n = 0.0, 0
            for q in QUANTILES:
                x = float(sp.betaincinv(a, b, q))
                x = float(torch.tensor(x, dtype=dtype))  # a point the dtype can hold
                if not (0.0 < x < 1.0):
                    continue
                u = sp.betainc(a, b, x)
                if not (1e-300 < u < 1 - 1e-15):
                    continue
                ga, gb = er_fast.beta_rsample_grad(torch.tensor([x], dtype=dtype), torch.tensor([a], dtype=dtype),
                                                   torch.tensor([b], dtype=dtype))
                ra, rb = oracle(x, a, b)
                for g, r in ((float(ga), ra), (float(gb), rb)):
                    if not math.isfinite(g):
                        worst = math.inf
                    elif math.isfinite(r) and abs(r) > 1e-300:
                        worst = max(worst, abs(g - r) / abs(r))
                n += 1
            rows.append((a, b, worst, n))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exponents", default="-9,-7,-6,-5,-3,-1,0,1,3,5,6,7,9", help="alpha, beta = 10^e")
    args = ap.parse_args()
    values = [10.0 ** int(e) for e in args.exponents.split(",")]
    for dtype in (torch.float64, torch.float32):
        rows = scan(values, dtype)
        print(f"\n{dtype}: worst relative error of dx/dalpha, dx/dbeta against the quantile oracle "
              f"(rows alpha, columns beta; '-' no comparable point, 'INF' non-finite)")
        print("alpha\\beta " + " ".join(f"{b:>8.0e}" for b in values))
        for a in values:
            cells = []
            for (ra, rb, w, n) in rows:
                if ra == a:
                    cells.append("       -" if n == 0 else ("     INF" if math.isinf(w) else f"{w:8.1e}"))
            print(f"{a:>10.0e} " + " ".join(cells))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
