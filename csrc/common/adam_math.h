// The Adam update of er_fast::adam_, shared by the CPU and CUDA kernels (and mirrored op for op
// by er_fast/ops/reference/adam.py). torch.optim.Adam's default semantics (no weight decay, no
// amsgrad, minimizing); the exact operation order (docs/adam.md):
//
//   per call, float64:   t   = step + 1                       (written back to step)
//                        bc1 = 1 - beta1^t,  bc2 = 1 - beta2^t  (one_minus_pow: double-double)
//                        a   = lr / bc1,            s   = sqrt(bc2)
//   cast once to T:      b1 = T(beta1), c1 = T(1 - beta1), b2 = T(beta2), c2 = T(1 - beta2),
//                        a, s, e = T(eps)
//   per element, in T:   m = b1*m + c1*g
//                        v = b2*v + c2*(g*g)
//                        p = p - a*(m / (sqrt(v)/s + e))
//
// Bitwise reproducibility: every operation is a correctly rounded IEEE +, -, *, / or sqrt, in
// this fixed order, with no fused multiply-add: the CPU kernel (csrc/cpu/adam.cpp) is compiled
// with fp-contract=off, and on CUDA the helpers below are the _rn intrinsics, which nvcc never
// contracts. So an element's update is the same in the vector body, the scalar tail, every ISA
// copy and on CUDA, wherever it sits in its tensor (hence independent of the seed count S).
#pragma once
#include <cmath>
#include <cstdint>

#include "common/hd.h"

namespace er_fast {
namespace adam {

ER_FAST_HD float add(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
ER_FAST_HD float sub(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
ER_FAST_HD float mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
ER_FAST_HD float div(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
ER_FAST_HD float sqrt_rn(float a) {
#if defined(__CUDA_ARCH__)
  return __fsqrt_rn(a);
#else
  return std::sqrt(a);  // sqrtss / vsqrtps: correctly rounded (-fno-math-errno: no errno branch)
#endif
}
ER_FAST_HD double add(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
ER_FAST_HD double sub(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dsub_rn(a, b);
#else
  return a - b;
#endif
}
ER_FAST_HD double mul(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
ER_FAST_HD double div(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}
ER_FAST_HD double sqrt_rn(double a) {
#if defined(__CUDA_ARCH__)
  return __dsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}

// 1 - x^t for t >= 0 and x in [0, 1): binary exponentiation in double-double arithmetic (Dekker's
// exact product from +, -, * only), so the same sequence of correctly rounded operations runs
// everywhere (std::pow and CUDA's pow need not agree) and the repeated squarings do not compound
// the rounding (in plain double the relative error of x^t grows like t ulps; here like t ulps of
// 2^-106). Within about 1 ulp of the exact 1 - x^t, like torch's 1 - beta ** step.
struct DD {
  double hi, lo;
};
ER_FAST_HD void split(double a, double& hi, double& lo) {  // a = hi + lo, 26-bit halves
  const double c = mul(134217729.0, a);                      // 2^27 + 1
  hi = sub(c, sub(c, a));
  lo = sub(a, hi);
}
ER_FAST_HD DD dd_mul(DD x, DD y) {
  const double p = mul(x.hi, y.hi);
  double xh, xl, yh, yl;
  split(x.hi, xh, xl);
  split(y.hi, yh, yl);
  // x.hi * y.hi = p + e exactly (Dekker), then the cross terms
  double e = add(add(add(sub(mul(xh, yh), p), mul(xh, yl)), mul(xl, yh)), mul(xl, yl));
  e = add(e, add(mul(x.hi, y.lo), mul(x.lo, y.hi)));
  const double h = add(p, e);
  return DD{h, sub(e, sub(h, p))};
}
ER_FAST_HD double one_minus_pow(double x, int64_t t) {
  DD r{1.0, 0.0}, b{x, 0.0};
  while (t > 0) {
    if (t & 1) r = dd_mul(r, b);
    t >>= 1;
    if (t > 0) b = dd_mul(b, b);
  }
  return sub(sub(1.0, r.hi), r.lo);
}

// The per-call constants of step t (t >= 1), rounded once to the parameters' type.
template <typename T>
struct Coeffs {
  T b1, c1, b2, c2, a, s, e;
};

// a = lr / (1 - beta1^t) and s = sqrt(1 - beta2^t), in float64.
ER_FAST_HD void step_scalars(int64_t t, double lr, double beta1, double beta2, double& a, double& s) {
  a = div(lr, one_minus_pow(beta1, t));
  s = sqrt_rn(one_minus_pow(beta2, t));
}

template <typename T>
ER_FAST_HD Coeffs<T> coeffs(double a, double s, double beta1, double beta2, double eps) {
  Coeffs<T> c;
  c.b1 = static_cast<T>(beta1);
  c.c1 = static_cast<T>(sub(1.0, beta1));
  c.b2 = static_cast<T>(beta2);
  c.c2 = static_cast<T>(sub(1.0, beta2));
  c.a = static_cast<T>(a);
  c.s = static_cast<T>(s);
  c.e = static_cast<T>(eps);
  return c;
}

// One element: m, v and p updated in place.
template <typename T>
ER_FAST_HD void update(T& p, T g, T& m, T& v, const Coeffs<T>& c) {
  m = add(mul(c.b1, m), mul(c.c1, g));
  v = add(mul(c.b2, v), mul(c.c2, mul(g, g)));
  const T d = add(div(sqrt_rn(v), c.s), c.e);
  p = sub(p, mul(c.a, div(m, d)));
}

}  // namespace adam
}  // namespace er_fast
