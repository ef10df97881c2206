// Multi-scale IMQ kernel maths shared by the CPU and CUDA MMD kernels.
//
// For a squared distance D >= 0 and S scales C_s (= c * scales[s]):
//   K(D) = sum_s C_s / (C_s + D)          (the kernel value)
//   G(D) = -dK/dD = sum_s C_s / (C_s + D)^2 (>= 0; the gradient weight)
//
// Two evaluations, both accurate to a few roundings:
//  * direct:   S divisions per pair.
//  * rational: with t = D / Cmax and c_s = C_s / Cmax <= 1,
//                K = P(t) / Q(t),  G = R(t) / Q(t)^2 / Cmax,
//              Q = prod_s (t + c_s), P = sum_s c_s prod_{r!=s} (t + c_r),
//              R = sum_s c_s prod_{r!=s} (t + c_r)^2.
//              All coefficients are positive and t >= 0, so Horner has no cancellation
//              (relative error <= about (deg+2) roundings). ONE division per pair instead of S.
//              Valid while nothing overflows: t <= t_max (host-computed), else use direct.
//              Chosen on the host only when S <= kMaxRational and prod c_s is not tiny.
#pragma once
#include <c10/macros/Macros.h>

#include <algorithm>
#include <cmath>
#include <vector>

#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
// The CPU passes GCC vector types between always-inlined functions of one clone only.
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

// Per-pair maths is always inlined (ER_FAST_HD): on the CPU these templates take GCC vector types, and
// an out-of-line copy would be shared between the AVX-512/AVX2/baseline clones (wrong ABI/ISA).
#include "common/hd.h"

namespace er_fast {
namespace imq {

constexpr int kMaxScales = 32;    // hard limit on the number of scales (checked at the entry)
constexpr int kMaxRational = 8;   // rational form used only for S <= 8; polynomials padded to 8

template <typename T>
struct Consts {
  int S;                      // number of scales
  bool rational;              // rational form usable at all (else always direct)
  T d_max;                    // rational form valid for D <= d_max
  T inv_cmax;                 // 1 / max_s C_s
  T C[kMaxScales];            // C_s for the direct form
  T q[kMaxRational + 1];      // Q coefficients q_0..q_8 (zero-padded above degree S)
  T p[kMaxRational];          // P coefficients p_0..p_7
  T r[2 * kMaxRational - 1];  // R coefficients r_0..r_14
};

// 1/q. V is the element type T or, on the CPU, a GCC vector of T (scalar / vector broadcast).
// (nvcc runs without --use_fast_math, so this is an IEEE division on the GPU as well.)
template <typename T, typename V>
ER_FAST_HD V recip(V q) {
  return T(1) / q;
}

// Direct form: K and (if kGrad) G, S divisions.
template <typename T, bool kGrad, typename V>
ER_FAST_HD void eval_direct(V D, const Consts<T>& k, V& K, V& G) {
  V kk = V{}, gg = V{};
  for (int s = 0; s < k.S; ++s) {
    const V r = recip<T>(k.C[s] + D);
    const V v = k.C[s] * r;
    kk += v;
    if (kGrad) gg += v * r;
  }
  K = kk;
  if (kGrad) G = gg;
}

// Rational form (caller guarantees D <= k.d_max and k.rational). Horner with the padded degrees
// 8 (Q), 7 (P), 14 (R): leading zero coefficients cost a few FMAs but give one fixed, unrolled
// code path. (Estrin's scheme was measured: shorter chains but more instructions, no faster on
// the CPU, where 4 independent vectors per block already hide the FMA latency.)
template <typename T, bool kGrad, typename V>
ER_FAST_HD void eval_rational(V D, const Consts<T>& k, V& K, V& G) {
  const V t = D * k.inv_cmax;
  V q = k.q[8] * t + k.q[7];
ER_FAST_UNROLL
  for (int i = 6; i >= 0; --i) q = q * t + k.q[i];
  V p = k.p[7] * t + k.p[6];
ER_FAST_UNROLL
  for (int i = 5; i >= 0; --i) p = p * t + k.p[i];
  const V inv = recip<T>(q);
  K = p * inv;
  if (kGrad) {
    V r = k.r[14] * t + k.r[13];
ER_FAST_UNROLL
    for (int i = 12; i >= 0; --i) r = r * t + k.r[i];
    G = (r * inv) * (inv * k.inv_cmax);  // this order cannot overflow: r*inv <= S (1+t)^(S-1)
  }
}

// eval_rational with the polynomial degrees cut to kDeg (Q), kDeg - 1 (P), 2 kDeg - 2 (R) and the
// reciprocal of Q supplied by the caller (rcp(q) ~ 1/q). Exact when S <= kDeg: the coefficients above
// those degrees are zero, and the Horner steps dropped are fma(0, t, c) = c. So kDeg = kMaxRational
// with rcp = recip<T> is eval_rational, and kDeg = 7 for S <= 7 gives its bits with 4 FMAs fewer.
template <int kDeg, typename T, bool kGrad, typename V, typename Rcp>
ER_FAST_HD void eval_rational_deg(V D, const Consts<T>& k, V& K, V& G, Rcp rcp) {
  static_assert(kDeg >= 2 && kDeg <= kMaxRational, "kDeg must be in [2, kMaxRational]");
  const V t = D * k.inv_cmax;
  V q = k.q[kDeg] * t + k.q[kDeg - 1];
ER_FAST_UNROLL
  for (int i = kDeg - 2; i >= 0; --i) q = q * t + k.q[i];
  V p = k.p[kDeg - 1] * t + k.p[kDeg - 2];
ER_FAST_UNROLL
  for (int i = kDeg - 3; i >= 0; --i) p = p * t + k.p[i];
  const V inv = rcp(q);
  K = p * inv;
  if (kGrad) {
    V r = k.r[2 * kDeg - 2] * t + k.r[2 * kDeg - 3];
ER_FAST_UNROLL
    for (int i = 2 * kDeg - 4; i >= 0; --i) r = r * t + k.r[i];
    G = (r * inv) * (inv * k.inv_cmax);  // the order of eval_rational (no overflow)
  }
}

template <typename T, bool kGrad>
ER_FAST_HD void eval(T D, const Consts<T>& k, T& K, T& G) {
  if (k.rational && D <= k.d_max)
    eval_rational<T, kGrad>(D, k, K, G);
  else
    eval_direct<T, kGrad>(D, k, K, G);
}

// Host: build the constants (coefficients computed in double, then rounded to T).
template <typename T>
inline Consts<T> make_consts(double c, const std::vector<double>& scales) {
  Consts<T> k{};
  const int S = static_cast<int>(scales.size());
  k.S = S;
  double cmax = 0;
  for (int s = 0; s < S; ++s) {
    k.C[s] = static_cast<T>(c * scales[s]);
    cmax = std::max(cmax, c * scales[s]);
  }
  k.inv_cmax = static_cast<T>(1.0 / cmax);
  std::vector<double> cs(S);
  double prod = 1;
  for (int s = 0; s < S; ++s) {
    cs[s] = c * scales[s] / cmax;
    prod *= cs[s];
  }
  // Rational form: only for few scales and when prod c_s = Q(0) is far from underflow
  // (1/Q must stay normal, and Q(0)^2 appears in G).
  const bool is_float = sizeof(T) == 4;
  const double tiny = is_float ? 1e-15 : 1e-140;
  k.rational = S <= kMaxRational && prod >= tiny;
  if (!k.rational) return k;

  auto mul = [](const std::vector<double>& a, const std::vector<double>& b) {
    std::vector<double> out(a.size() + b.size() - 1, 0.0);
    for (size_t i = 0; i < a.size(); ++i)
      for (size_t j = 0; j < b.size(); ++j) out[i + j] += a[i] * b[j];
    return out;
  };
  std::vector<double> Q{1.0};
  for (int s = 0; s < S; ++s) Q = mul(Q, {cs[s], 1.0});
  std::vector<double> P(S, 0.0), R(std::max(2 * S - 1, 1), 0.0);
  for (int s = 0; s < S; ++s) {
    std::vector<double> prod_others{1.0};
    for (int r = 0; r < S; ++r)
      if (r != s) prod_others = mul(prod_others, {cs[r], 1.0});
    for (size_t i = 0; i < prod_others.size(); ++i) P[i] += cs[s] * prod_others[i];
    const std::vector<double> sq = mul(prod_others, prod_others);
    for (size_t i = 0; i < sq.size(); ++i) R[i] += cs[s] * sq[i];
  }
  for (int i = 0; i <= kMaxRational; ++i) k.q[i] = static_cast<T>(i < (int)Q.size() ? Q[i] : 0.0);
  for (int i = 0; i < kMaxRational; ++i) k.p[i] = static_cast<T>(i < (int)P.size() ? P[i] : 0.0);
  for (int i = 0; i < 2 * kMaxRational - 1; ++i) k.r[i] = static_cast<T>(i < (int)R.size() ? R[i] : 0.0);
  // Overflow bound: Q(t) <= (1+t)^S, R(t) <= S (1+t)^(2S-2), and the Horner partial sums are
  // bounded by the same. Keep all below `big` (1/Q then also stays a normal number).
  const double big = is_float ? 1e30 : 1e290;
  const int deg = std::max(S, 2 * S - 2);
  const double t_max = std::pow(big / S, 1.0 / deg) - 1.0;
  k.d_max = static_cast<T>(t_max * cmax * 0.99);  // margin for the rounding of t = D / Cmax
  return k;
}

}  // namespace imq

// MMD² from the three pair sums of one batch element. sxx, syy: sums over i<j pairs (half of
// the off-diagonal sum); sxy: sum over all n*m pairs. S: number of scales (= K(0)).
C10_HOST_DEVICE inline double mmd_combine(double sxx, double syy, double sxy, int64_t n, int64_t m, int S, bool unbiased) {
  const double dn = double(n), dm = double(m);
  if (unbiased) return 2 * sxx / (dn * (dn - 1)) + 2 * syy / (dm * (dm - 1)) - 2 * sxy / (dn * dm);
  return (2 * sxx + dn * S) / (dn * dn) + (2 * syy + dm * S) / (dm * dm) - 2 * sxy / (dn * dm);
}

// Gradient weights: with G = -K'(D) >= 0,
//   dMMD/dx_i = w_xx * sum_j G(x_i,x_j) (x_i - x_j) + w_xy * sum_j G(x_i,y_j) (x_i - y_j)
//   dMMD/dy_j = w_yy * sum_l G(y_j,y_l) (y_j - y_l) + w_xy * sum_i G(x_i,y_j) (y_j - x_i)
struct MmdWeights {
  double xx, yy, xy;
};
C10_HOST_DEVICE inline MmdWeights mmd_weights(int64_t n, int64_t m, bool unbiased) {
  const double dn = double(n), dm = double(m);
  const double a = unbiased ? 1.0 / (dn * (dn - 1)) : 1.0 / (dn * dn);
  const double b = unbiased ? 1.0 / (dm * (dm - 1)) : 1.0 / (dm * dm);
  return {-4 * a, -4 * b, 4.0 / (dn * dm)};
}

}  // namespace er_fast
