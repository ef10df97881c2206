"""The Beta reparameterization gradient by mpmath at 30 digits: the oracle of the tests and of
benchmarks/beta_accuracy.py (needs mpmath, a test dependency)."""
import mpmath as mp


def _mp_lower(a, b, x):
    # I_x(a,b) = x^a (1-x)^b / (a B(a,b)) 2F1(a+b, 1; a+1; x): positive terms, no cancellation.
    return mp.exp(a * mp.log(x) + b * mp.log1p(-x) - mp.log(a) - mp.log(mp.beta(a, b))) * mp.hyp2f1(a + b, 1, a + 1, x)


def mp_grad(x, a, b, dps=30):
    """-dI_x/da / p(x) and -dI_x/db / p(x) by mpmath (numerical differentiation at 30 digits of
    the regularized incomplete beta; the smaller tail, through I_x(a,b) = 1 - I_{1-x}(b,a))."""
    with mp.workdps(dps):
        x, a, b = mp.mpf(x), mp.mpf(a), mp.mpf(b)
        dens = mp.exp((a - 1) * mp.log(x) + (b - 1) * mp.log1p(-x) - mp.log(mp.beta(a, b)))
        if x <= a / (a + b):
            da = mp.diff(lambda t: _mp_lower(t, b, x), a)
            db = mp.diff(lambda t: _mp_lower(a, t, x), b)
        else:
            y = 1 - x
            da = -mp.diff(lambda t: _mp_lower(b, t, y), a)
            db = -mp.diff(lambda t: _mp_lower(t, a, y), b)
        return float(-da / dens), float(-db / dens)
