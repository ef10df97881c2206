// Branch-free double-precision log, log1p, exp and cos(2*pi*u) for the Beta kernels.
//
// Why not <cmath>: GCC only vectorizes libm calls through glibc's libmvec under -ffast-math, so a
// lane loop calling std::log stays scalar. These versions use only arithmetic, selects and 64-bit
// integer ops, so they vectorize in every ER_FAST_CPU_MULTIVERSION copy, and the same code runs on CUDA
// (which keeps CPU and GPU samples close to bit-identical). Accuracy: about 1 ulp (log: fdlibm's
// polynomial; exp: degree-13 Taylor on |r| <= ln2/2).
#pragma once
#include <cmath>

#include "common/hd.h"

namespace er_fast {

// log(x) for x > 0 (subnormals included); callers never pass 0, negatives, inf or NaN.
ER_FAST_HD double vlog(double x) {
  const bool sub = x < 0x1p-1022;
  x = sub ? x * 0x1p54 : x;
  uint64_t ix = bits_of(x);
  // Reduce to x = 2^k * (1 + f) with 1 + f in [sqrt(2)/2, sqrt(2)) (musl's trick).
  ix += 0x3ff0000000000000ull - 0x3fe6a09e00000000ull;
  const double k = small_u64_to_double(ix >> 52) - (sub ? 1023.0 + 54.0 : 1023.0);
  ix = (ix & 0x000fffffffffffffull) + 0x3fe6a09e00000000ull;
  const double f = double_of(ix) - 1.0;
  const double hfsq = 0.5 * f * f;
  const double s = f / (2.0 + f);
  const double z = s * s, w = z * z;
  const double t1 = w * (3.999999999940941908e-01 + w * (2.222219843214978396e-01 + w * 1.531383769920937332e-01));
  const double t2 = z * (6.666666666666735130e-01 +
                         w * (2.857142874366239149e-01 + w * (1.818357216161805012e-01 + w * 1.479819860511658591e-01)));
  const double R = t2 + t1;
  return s * (hfsq + R) + k * 1.90821492927058770002e-10 - hfsq + f + k * 6.93147180369123816490e-01;
}

// log(1 + x) for x > -1: log(u) with u = 1 + x, corrected by the rounding error of u.
ER_FAST_HD double vlog1p(double x) {
  const double u = 1.0 + x;
  return vlog(u) + (x - (u - 1.0)) / u;
}

// exp(x); x below -745.2 gives 0, above 709.78 gives inf.
ER_FAST_HD double vexp(double x) {
  const bool over = x > 709.782712893384;
  x = x < -745.2 ? -745.2 : (over ? 0.0 : x);
  const double shifter = 0x1.8p52;
  const double kd = x * 1.4426950408889634 + shifter;
  const int64_t n = static_cast<int64_t>(bits_of(kd) - bits_of(shifter));
  const double nd = kd - shifter;
  const double r = (x - nd * 6.93147180369123816490e-01) - nd * 1.90821492927058770002e-10;
  // Taylor series of exp on |r| <= 0.347: the degree-13 term bounds the error below 2e-17.
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r * r + r;
  p = p + 1.0;
  // 2^n as the product of two powers (n in [-1075, 1024]) so subnormal results come out right.
  const uint64_t nb = static_cast<uint64_t>(n + 2048);
  const int64_t n1 = static_cast<int64_t>(nb >> 1) - 1024;
  const int64_t n2 = n - n1;
  const double s1 = double_of(static_cast<uint64_t>(n1 + 1023) << 52);
  const double s2 = double_of(static_cast<uint64_t>(n2 + 1023) << 52);
  const double y = p * s1 * s2;
  return over ? static_cast<double>(INFINITY) : y;
}

// cos(2*pi*u) for u in [0, 1] (the Box-Muller angle).
ER_FAST_HD double vcos2pi(double u) {
  double t = u > 0.5 ? 1.0 - u : u;  // cos(2 pi u) = cos(2 pi (1 - u)); t in [0, 0.5]
  const bool flip = t > 0.25;        // cos(2 pi t) = -cos(2 pi (0.5 - t))
  t = flip ? 0.5 - t : t;            // t in [0, 0.25]
  const double th = t * 6.283185307179586;
  const double z = th * th;  // <= (pi/2)^2; Taylor to z^11 leaves < 2e-17
  double p = 1.0 / 1124000727777607680000.0;
  p = -p * z + 1.0 / 2432902008176640000.0;
  p = -p * z + 1.0 / 6402373705728000.0;
  p = -p * z + 1.0 / 20922789888000.0;
  p = -p * z + 1.0 / 87178291200.0;
  p = -p * z + 1.0 / 479001600.0;
  p = -p * z + 1.0 / 3628800.0;
  p = -p * z + 1.0 / 40320.0;
  p = -p * z + 1.0 / 720.0;
  p = -p * z + 1.0 / 24.0;
  p = -p * z + 0.5;
  p = -p * z + 1.0;
  return flip ? -p : p;
}

}  // namespace er_fast
