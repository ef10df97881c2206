// Beta(a, b) sampling in log space and the exact implicit reparameterization gradient
// dx/da = -(dI_x(a,b)/da) / p(x; a, b), shared by the CPU (lane-vectorized) and CUDA kernels.
// Everything is computed in double. Python mirror: er_fast/reference/beta.py (same maths).
#pragma once
#include <cmath>

#include "common/hd.h"
#include "common/philox.h"
#include "common/vmath.h"

namespace er_fast {
namespace beta {

// The supported concentrations: [kMinConcentration, kMaxConcentration] for both. Inside it the
// implicit gradient is verified against mpmath (docs/ops.md "Supported range"); outside it the
// continued fraction and the digamma differences lose accuracy or overflow (e.g. alpha = beta =
// 1e-20, or alpha >= 1e34 with beta = 1), so parameters there are invalid: NaN samples and
// gradients, and a ValueError from the Python entry points. Python mirror: er_fast/ops/beta.py
// SUPPORTED_RANGE. NaN fails both comparisons.
constexpr double kMinConcentration = 1e-3;
constexpr double kMaxConcentration = 1e5;

// Bitwise & and | instead of && and || throughout: short-circuits are control flow, which stops
// GCC from vectorizing the lane loops.
ER_FAST_HD bool valid_params(double a, double b) {
  return (a >= kMinConcentration) & (a <= kMaxConcentration) & (b >= kMinConcentration) & (b <= kMaxConcentration);
}

// ---------------------------------------------------------------- sampling
// Per element: draw j = 0 gives the two "boost" uniforms; draw j = 1 + 2t + g is trial t of the
// Gamma variate g (0: alpha, 1: beta) of Marsaglia & Tsang (2000).
constexpr int kMaxTrials = 64;  // acceptance >= 0.95 per trial: P(64 rejections) < 1e-83

struct GammaParams {
  double d, c, log_d, inv_shape;
  double boost;  // 1 when shape < 1: G(s) = G(s + 1) * U^(1/s), done in logs (double: one element
                 // type per struct lets GCC vectorize lane loops that pass it around)
};

ER_FAST_HD GammaParams gamma_params(double shape) {
  GammaParams g;
  g.boost = shape < 1.0 ? 1.0 : 0.0;
  const double s = shape < 1.0 ? shape + 1.0 : shape;
  g.d = s - 1.0 / 3.0;
  g.c = 1.0 / std::sqrt(9.0 * g.d);
  g.log_d = vlog(g.d);
  g.inv_shape = 1.0 / shape;
  return g;
}

// log(U)/shape for the boost (0 when no boost); u from draw j = 0.
ER_FAST_HD double boost_term(const GammaParams& g, double u) { return g.boost != 0.0 ? vlog(u) * g.inv_shape : 0.0; }

// One Marsaglia-Tsang trial from draw (u1, u2, u3): returns whether it was accepted and, if so,
// log(d * v) in lg (the log of a Gamma(s) variate, s >= 1).
ER_FAST_HD bool gamma_trial(const GammaParams& g, double u1, double u2, double u3, double& lg) {
  const double z = std::sqrt(-2.0 * vlog(u1)) * vcos2pi(u2);  // Box-Muller, one normal per trial
  const double w = 1.0 + g.c * z;
  const bool pos = w > 0.0;
  const double ws = pos ? w : 1.0;
  const double lv = 3.0 * vlog(ws);
  const double v = ws * ws * ws;
  const bool ok = pos & (vlog(u3) < 0.5 * z * z + g.d - g.d * v + g.d * lv);
  lg = g.log_d + lv;
  return ok;
}

// The draws of trial t of variate g for element key k.
ER_FAST_HD void trial_uniforms(const PhiloxKey& k, uint32_t idx_lo, int t, int g, double& u1, double& u2, double& u3) {
  uint32_t r0, r1, r2, r3;
  philox4x32_10(static_cast<uint32_t>(1 + 2 * t + g), idx_lo, k.c2, k.c3, k.k0, k.k1, r0, r1, r2, r3);
  u1 = uniform53(r0, r1);
  u2 = uniform32(r2);
  u3 = uniform32(r3);
}

ER_FAST_HD void boost_uniforms(const PhiloxKey& k, uint32_t idx_lo, double& ua, double& ub) {
  uint32_t r0, r1, r2, r3;
  philox4x32_10(0u, idx_lo, k.c2, k.c3, k.k0, k.k1, r0, r1, r2, r3);
  ua = uniform53(r0, r1);
  ub = uniform53(r2, r3);
}

// x = GA / (GA + GB) from the two log-Gamma variates.
ER_FAST_HD double beta_from_logs(double lga, double lgb) { return 1.0 / (1.0 + vexp(lgb - lga)); }

// Scalar sampler (CUDA; the CPU kernel runs the same steps lane-parallel).
ER_FAST_HD double sample(double a, double b, const PhiloxKey& k, uint32_t idx_lo) {
  const GammaParams ga = gamma_params(a), gb = gamma_params(b);
  double ua, ub;
  boost_uniforms(k, idx_lo, ua, ub);
  double lg[2] = {ga.log_d, gb.log_d};  // fallback if every trial is rejected (P < 1e-83)
  for (int g = 0; g < 2; ++g) {
    const GammaParams& p = g == 0 ? ga : gb;
    for (int t = 0; t < kMaxTrials; ++t) {
      double u1, u2, u3, l;
      trial_uniforms(k, idx_lo, t, g, u1, u2, u3);
      if (gamma_trial(p, u1, u2, u3, l)) {
        lg[g] = l;
        break;
      }
    }
  }
  const double x = beta_from_logs(lg[0] + boost_term(ga, ua), lg[1] + boost_term(gb, ub));
  return valid_params(a, b) ? x : NAN;
}

// ---------------------------------------------------------------- gradient
// psi(z + s) - psi(z) for z > 0, z + s > 0, accurate also when |s| << z (where the plain
// difference cancels): shift both arguments up to >= 10 with the recurrence (the shift terms
// s/((z+k)(z+s+k)) summed as one fraction), then the asymptotic series, whose leading part
// log1p(s/Z) + s/(2Z(Z+s)) is formed without cancellation.
ER_FAST_HD double psi_tail(double r) {  // psi(w) - log(w) + 1/(2w) for w >= 10, from r = 1/w^2
  return -r * (1.0 / 12 - r * (1.0 / 120 - r * (1.0 / 252 - r * (1.0 / 240 - r * (1.0 / 132 - r * (691.0 / 32760 - r / 12))))));
}

ER_FAST_HD double digamma_diff(double z, double s) {
  const double lo = z < z + s ? z : z + s;
  double num = 0.0, den = 1.0, Z = z;
  ER_FAST_UNROLL
  for (int k = 0; k < 10; ++k) {
    const bool need = lo + k < 10.0;
    const double d = Z * (Z + s);
    num = need ? num * d + den : num;
    den = need ? den * d : den;
    Z = need ? Z + 1.0 : Z;
  }
  const double W = Z + s;
  const double inv = 1.0 / (Z * W);  // one division for 1/Z and 1/W
  const double iZ = inv * W, iW = inv * Z;
  return vlog1p(s * iZ) + 0.5 * s * inv + psi_tail(iW * iW) - psi_tail(iZ * iZ) + s * num / den;
}

// Which form of the continued fraction to use: I_x(a,b) directly, or 1 - I_{1-x}(b,a).
// Base rule (Numerical Recipes): direct iff x < (a+1)/(a+b+2), which also keeps the computed tail
// the smaller one (no cancellation). For one huge and one small concentration that rule can cost
// thousands of iterations; there the form whose "q*y" is small converges in a few dozen (measured
// on a grid of a, b in [1e-3, 1e5]: at most 358 iterations, 58 for a, b <= 1e3).
ER_FAST_HD double use_symmetry(double x, double a, double b) {  // 1: symmetric form, 0: direct
  const double base = x * (a + b + 2.0) >= a + 1.0 ? 1.0 : 0.0;
  // Override: x <= 1/2, b >= 2000 and b x <= max(20, a/2)  -> direct;
  //           x >  1/2, a >= 2000 and a (1-x) <= max(20, b/2) -> symmetric.
  // Written as one select of doubles and one compare (mixed boolean masks defeat GCC's vectorizer).
  const bool low = x <= 0.5;
  const double big = low ? b : a, small = low ? a : b, t = low ? x : 1.0 - x;
  const double lim = 0.5 * small > 20.0 ? 0.5 * small : 20.0;
  const double m1 = big * t - lim, m2 = 2000.0 - big;
  const double m = m1 > m2 ? m1 : m2;
  return m <= 0.0 ? (low ? 0.0 : 1.0) : base;
}

constexpr int kMaxCfIter = 2000;  // pairs of CF terms; a, b <= 1e5 need at most ~360
constexpr double kEps = 0x1p-52;
// Stopping tolerance of the continued fraction for float32 results: they keep 24 bits, and the
// measured error (float32 results vs float64 at the same points; a, b in [1e-2, 1e3] at quantiles
// 1e-4 .. 1 - 1e-4, and U[0.1, 5]) stays at the output rounding, 1.3e-7, for tolerances up to
// 1e-8 and grows to 4.9e-7 at 1e-7. 2^-30 keeps a 10x margin below that and saves ~25 % of the
// gradient's time against 2 eps.
constexpr double kTolF32 = 0x1p-30;
constexpr double kSmall = 1.4916681462400413e-154;  // sqrt(DBL_MIN): guard against B = 0

// The continued fraction (DLMF 8.17.22) of I_y(p,q) = y^p (1-y)^q / (p B(p,q)) * h, by the
// fundamental recurrences A_j = A_{j-1} + d_j A_{j-2}, B_j = B_{j-1} + d_j B_{j-2} differentiated
// forward-mode in p and q (Boik & Robison-Cox 1998). Unlike Lentz's method this needs no division
// per term: only 1/B once per pair of terms, which rescales the state so that B = 1 and h = A
// (and one for the pair's two partial-numerator denominators).
struct CF {
  double Ap, A, Bp, B, dApp, dApq, dAp, dAq, dBpp, dBpq, dBp, dBq;  // j-1 and j; d*p/d*q: d/dp, d/dq
  double h, dhp, dhq;                                               // current h and its derivatives
};

// Stopping tolerance for results of dtype T (float32 or float64).
template <typename T>
ER_FAST_HD constexpr double cf_tol() { return sizeof(T) == 4 ? kTolF32 : 2.0 * kEps; }

ER_FAST_HD double guard(double v) { return std::fabs(v) < kSmall ? kSmall : v; }

ER_FAST_HD CF cf_init(double p, double q, double y) {
  // (A_1, A_2, B_1, B_2) = (1, 1, 1, 1 + d_1), d_1 = -(p+q) y / (p+1); normalized by 1/B_2.
  const double ip1 = 1.0 / (p + 1.0);
  const double d1 = -(p + q) * y * ip1;
  const double iB = 1.0 / guard(1.0 + d1);
  CF s;
  s.Ap = iB; s.A = iB; s.Bp = iB; s.B = 1.0;
  s.dApp = 0.0; s.dApq = 0.0; s.dAp = 0.0; s.dAq = 0.0; s.dBpp = 0.0; s.dBpq = 0.0;
  s.dBp = y * (q - 1.0) * ip1 * ip1 * iB;
  s.dBq = -y * ip1 * iB;
  s.h = s.A;
  s.dhp = -s.A * s.dBp;
  s.dhq = -s.A * s.dBq;
  return s;
}

ER_FAST_HD void cf_term(CF& s, double d, double ddp, double ddq) {
  const double An = s.A + d * s.Ap, Bn = s.B + d * s.Bp;
  const double dAnp = s.dAp + ddp * s.Ap + d * s.dApp, dAnq = s.dAq + ddq * s.Ap + d * s.dApq;
  const double dBnp = s.dBp + ddp * s.Bp + d * s.dBpp, dBnq = s.dBq + ddq * s.Bp + d * s.dBpq;
  s.Ap = s.A; s.A = An; s.Bp = s.B; s.B = Bn;
  s.dApp = s.dAp; s.dApq = s.dAq; s.dAp = dAnp; s.dAq = dAnq;
  s.dBpp = s.dBp; s.dBpq = s.dBq; s.dBp = dBnp; s.dBq = dBnq;
}

// Iteration m >= 1: the even term d_{2m} then the odd term d_{2m+1}, then rescale. Returns
// whether h and both derivatives have converged (relative change below ~eps).
// tol: the relative change judged converged, cf_tol<T>().
ER_FAST_HD bool cf_iter(CF& s, double m, double p, double q, double y, double tol = 2.0 * kEps) {
  const double p2m = p + 2.0 * m;
  // One division for both denominators: 1/(p2m (p2m-1)) and 1/(p2m (p2m+1)).
  const double r = 1.0 / (p2m * (p2m - 1.0) * (p2m + 1.0));
  const double ie = r * (p2m + 1.0), io = r * (p2m - 1.0);
  {  // even: d = m (q - m) y / ((p+2m-1)(p+2m))
    const double dq = m * y * ie;
    const double d = dq * (q - m);
    cf_term(s, d, -d * (2.0 * p2m - 1.0) * ie, dq);
  }
  {  // odd: d = -(p+m)(p+q+m) y / ((p+2m)(p+2m+1))
    const double pm = p + m;
    const double dq = -pm * y * io;
    const double d = dq * (pm + q);
    cf_term(s, d, -d * (2.0 * p2m + 1.0) * io - y * (2.0 * pm + q) * io, dq);
  }
  const double sc = 1.0 / guard(s.B);
  s.Ap *= sc; s.A *= sc; s.Bp *= sc; s.B = 1.0;
  s.dApp *= sc; s.dApq *= sc; s.dAp *= sc; s.dAq *= sc;
  s.dBpp *= sc; s.dBpq *= sc; s.dBp *= sc; s.dBq *= sc;
  const double h = s.A, dhp = s.dAp - h * s.dBp, dhq = s.dAq - h * s.dBq;
  // dh = dA - h dB cancels: its change is judged against the size of the terms, not of dh (else
  // rounding noise in the terms keeps lanes iterating long after convergence).
  const bool conv = (std::fabs(h - s.h) <= tol * std::fabs(h)) &
                    (std::fabs(dhp - s.dhp) <= tol * (std::fabs(s.dAp) + std::fabs(h * s.dBp))) &
                    (std::fabs(dhq - s.dhq) <= tol * (std::fabs(s.dAq) + std::fabs(h * s.dBq)));
  s.h = h;
  s.dhp = dhp;
  s.dhq = dhq;
  return conv;
}

// Setup shared by the scalar and lane-parallel gradient: the chosen form (p, q, y). Flags are
// doubles (0/1) so the struct has one element type, which GCC's vectorizer needs.
struct GradSetup {
  double p, q, y, ly, l1y, xy1;
  double sym, edge, bad;
};

ER_FAST_HD void grad_setup(double x, double a, double b, GradSetup& g) {
  const bool bad = !((x >= 0.0) & (x <= 1.0) & valid_params(a, b));  // NaN, outside [0, 1], bad a or b
  const bool edge = (x == 0.0) | (x == 1.0);  // dx/da -> 0 there (Boik & Robison-Cox's convention)
  const double xs = (bad | edge) ? 0.5 : x;
  a = bad ? 1.0 : a;
  b = bad ? 1.0 : b;
  const double lx = vlog(xs), l1x = vlog1p(-xs);
  g.xy1 = xs * (1.0 - xs);
  const bool sym = use_symmetry(xs, a, b) != 0.0;
  g.p = sym ? b : a;
  g.q = sym ? a : b;
  g.y = sym ? 1.0 - xs : xs;
  g.ly = sym ? l1x : lx;
  g.l1y = sym ? lx : l1x;
  g.sym = sym ? 1.0 : 0.0;
  g.edge = edge ? 1.0 : 0.0;
  g.bad = bad ? 1.0 : 0.0;
}

// dy/dp = -(y(1-y)/p) [dh/dp + h (log y + psi(p+q) - psi(p+1))]     (the 1/p and psi(p) terms
// dy/dq = -(y(1-y)/p) [dh/dq + h (log(1-y) + psi(p+q) - psi(q))]      combined exactly)
// The density and the prefactor y^p(1-y)^q/(p B) cancel analytically: no lgamma, no exp.
ER_FAST_HD void grad_finish(const GradSetup& g, double h, double dhp, double dhq, double& dxda, double& dxdb) {
  const double Lp = g.ly + digamma_diff(g.p + 1.0, g.q - 1.0);
  const double Lq = g.l1y + digamma_diff(g.q, g.p);
  const double f = g.xy1 / g.p;
  const double gp = -f * (dhp + h * Lp), gq = -f * (dhq + h * Lq);
  double da = g.sym != 0.0 ? -gq : gp, db = g.sym != 0.0 ? -gp : gq;
  da = g.edge != 0.0 ? 0.0 : da;
  db = g.edge != 0.0 ? 0.0 : db;
  dxda = g.bad != 0.0 ? NAN : da;
  dxdb = g.bad != 0.0 ? NAN : db;
}

// Scalar gradient (CUDA; the CPU kernel runs the same steps lane-parallel).
ER_FAST_HD void grad(double x, double a, double b, double& dxda, double& dxdb, double tol = 2.0 * kEps) {
  GradSetup g;
  grad_setup(x, a, b, g);
  CF s = cf_init(g.p, g.q, g.y);
  for (int m = 1; m <= kMaxCfIter; ++m)
    if (cf_iter(s, static_cast<double>(m), g.p, g.q, g.y, tol)) break;
  grad_finish(g, s.h, s.dhp, s.dhq, dxda, dxdb);
}

}  // namespace beta
}  // namespace er_fast
