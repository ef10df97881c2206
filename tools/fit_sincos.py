"""Fit the sin/cos polynomials of csrc/common/circle_math.h (run: python tools/fit_sincos.py).

Two argument conventions, each in float32 and float64:
  * "quarter turns": f in [-1/2, 1/2], sin(pi/2 f) = f * S(f^2), cos(pi/2 f) = 1 + f^2 * C(f^2)
  * "radians":       x in [-pi/4, pi/4], sin(x) = x + x^3 * S(x^2), cos(x) = 1 - x^2/2 + x^4 * C(x^2)
S and C are fitted by a Remez exchange in mpmath (relative error weight), then rounded to the
target precision. Prints C++ initialisers and the max fitted relative error.
"""
import mpmath as mp

mp.mp.dps = 50


def remez(g, w, a, b, deg, iters=30):
    """Minimax p of degree deg for g on [a, b] with weight w: min max |w (g - p)|."""
    n = deg + 2
    xs = [(a + b) / 2 + (b - a) / 2 * mp.cos(mp.pi * i / (n - 1)) for i in range(n)][::-1]
    for _ in range(iters):
        # Solve p(x_i) + (-1)^i E / w(x_i) = g(x_i).
        A = mp.matrix(n, n)
        rhs = mp.matrix(n, 1)
        for i, x in enumerate(xs):
            for j in range(deg + 1):
                A[i, j] = x**j
            A[i, deg + 1] = (-1) ** i / w(x)
            rhs[i] = g(x)
        sol = mp.lu_solve(A, rhs)
        c = [sol[j] for j in range(deg + 1)]
        err = lambda x: w(x) * (g(x) - sum(c[j] * x**j for j in range(deg + 1)))
        # New reference: extrema of err on a fine grid, one per sign run.
        grid = [a + (b - a) * k / 4000 for k in range(4001)]
        vals = [err(x) for x in grid]
        ext, cur = [], None
        for x, v in zip(grid, vals):
            s = v >= 0
            if cur is None or s != cur[0]:
                ext.append((x, v))
                cur = (s, x, v)
            elif abs(v) > abs(ext[-1][1]):
                ext[-1] = (x, v)
                cur = (s, x, v)
        while len(ext) > n:  # drop the smallest end extremum
            if abs(ext[0][1]) < abs(ext[-1][1]):
                ext.pop(0)
            else:
                ext.pop()
        if len(ext) < n:
            break
        xs = [x for x, _ in ext]
    return c, max(abs(v) for v in vals)


def fit(kind, deg_s, deg_c, u_max):
    if kind == "turns":
        k = mp.pi / 2
        gs = lambda u: mp.sin(k * mp.sqrt(u)) / mp.sqrt(u) if u > 0 else k
        ws = lambda u: 1 / gs(u)
        gc = lambda u: (mp.cos(k * mp.sqrt(u)) - 1) / u if u > 0 else -k**2 / 2
        wc = lambda u: u / mp.cos(k * mp.sqrt(u)) if u > 0 else mp.mpf(1e-30)
    else:
        gs = lambda u: (mp.sin(mp.sqrt(u)) - mp.sqrt(u)) / mp.sqrt(u) ** 3 if u > 0 else mp.mpf(-1) / 6
        ws = lambda u: u / (mp.sin(mp.sqrt(u)) / mp.sqrt(u)) if u > 0 else mp.mpf(1e-30)
        gc = lambda u: (mp.cos(mp.sqrt(u)) - 1 + u / 2) / u**2 if u > 0 else mp.mpf(1) / 24
        wc = lambda u: u**2 / mp.cos(mp.sqrt(u)) if u > 0 else mp.mpf(1e-30)
    cs, es = remez(gs, ws, mp.mpf(0), u_max, deg_s)
    cc, ec = remez(gc, wc, mp.mpf(0), u_max, deg_c)
    return cs, es, cc, ec


if __name__ == "__main__":
    # csrc/common/circle_math.h uses the "radians" fits only (sincos_turn forms (pi/2) f as a
    # double-word and shares them); the "turns" fits are kept for comparison.
    cases = [  # (kind, dtype, sin degree in u, cos degree in u)
        ("turns", "float", 3, 3),
        ("turns", "double", 6, 6),
        ("radians", "float", 2, 2),
        ("radians", "double", 5, 5),
    ]
    for kind, dt, ds, dc in cases:
        umax = mp.mpf(1) / 4 if kind == "turns" else (mp.pi / 4) ** 2
        cs, es, cc, ec = fit(kind, ds, dc, umax)
        fmt = (lambda v: mp.nstr(v, 12, min_fixed=-100, max_fixed=100) + "f") if dt == "float" else (
            lambda v: mp.nstr(v, 20, min_fixed=-100, max_fixed=100))
        print(f"// {kind} {dt}: sin rel err {mp.nstr(es, 3)}, cos rel err {mp.nstr(ec, 3)}")
        print("  S:", ", ".join(fmt(v) for v in cs))
        print("  C:", ", ".join(fmt(v) for v in cc))
