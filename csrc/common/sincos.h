// sin/cos polynomials shared by the CPU and CUDA circle_embed / so2_rotate kernels.
//
// Written branch-free (selects, no table lookups, no calls) so that GCC vectorizes the CPU loops
// in every ER_FAST_CPU_CLONES clone and CUDA runs them without divergence. The polynomial
// coefficients are minimax fits (relative error) made by tools/fit_sincos.py.
//
// * sincos_turn(z):  sin(2 pi z), cos(2 pi z). z is reduced modulo 1 *before* any scaling by
//   pi (sinpi/cospi style): r = z - rint(z), t = 4r, q = rint(t), f = t - q are all exact, so
//   z = 4096.25 gives exactly the point of z = 0.25 and the multiples of 1/4 give exact 0 / +-1.
//   The left-over angle (pi/2) f is formed as a double-word (hi + lo).
// * sincos_rad(x):   sin(x), cos(x) for |x| <= kRadLimit. Cody-Waite reduction by pi/2 in double
//   with a 3-part pi/2 (first two parts 32 bits wide, so q * part is exact) and TwoSum, giving a
//   double-word remainder. Larger |x| must be handled by the caller (rad_in_range() says when);
//   the kernels use libm's double sin/cos there.
// Both end in sincos_dw: one polynomial pair on [-pi/4, pi/4] per dtype, evaluated in the
// dtype itself (float kernels do only the reductions in double).
#pragma once

#include <cmath>

#if defined(__CUDACC__)
#define ER_HD __host__ __device__ __forceinline__
#elif defined(__GNUC__)
#define ER_HD inline __attribute__((always_inline))
#else
#define ER_HD inline
#endif

namespace er_fast {
namespace trig {

constexpr double kTwoPi = 6.283185307179586;        // 2 pi rounded to double
constexpr double kTwoOverPi = 0.6366197723675814;   // 2 / pi
constexpr double kPio2 = 1.5707963267948966;        // pi/2 rounded to double
constexpr double kPio2Lo = 6.123233995736766e-17;   // pi/2 - kPio2
constexpr double kPio2A = 1.5707963267341256;       // 0x1.921fb544p+0 (32 bits)
constexpr double kPio2B = 6.077100506303966e-11;    // 0x1.0b4611a6p-34 (32 bits)
constexpr double kPio2C = 2.0222662487959506e-21;   // rest of pi/2 (error 1e-37)
// |x| up to 2^19 keeps q = rint(2x/pi) below 2^19, far inside the exact-product range.
constexpr double kRadLimit = 524288.0;

ER_HD float rint_(float x) {
#if defined(__CUDA_ARCH__)
  return rintf(x);
#else
  return std::rint(x);
#endif
}
ER_HD double rint_(double x) {
#if defined(__CUDA_ARCH__)
  return ::rint(x);
#else
  return std::rint(x);
#endif
}

ER_HD double fabs_(double x) {
#if defined(__CUDA_ARCH__)
  return ::fabs(x);
#else
  return std::fabs(x);
#endif
}

ER_HD double fma_(double a, double b, double c) {
#if defined(__CUDA_ARCH__)
  return ::fma(a, b, c);
#else
  return std::fma(a, b, c);  // one instruction in the FMA clones (-fno-math-errno)
#endif
}

// sin(y), cos(y) for y = yh + yl, |yh| <= pi/4 (plus rounding), |yl| <= ulp(yh): the reduced
// argument arrives as a double-word so the reduction's rounding does not reach the result.
//   sin(yh + yl) ~ yh + (yl (1 - yh^2/2) + yh^3 S(yh^2))
//   cos(yh + yl) ~ w + (((1 - w) - yh^2/2) + (yh^4 C(yh^2) - yh yl)),  w = 1 - yh^2/2
// (the fdlibm arrangement: 1 - yh^2/2 is split so cos keeps ~half an ulp near |y| = pi/4).
ER_HD void sincos_dw(float yh, float yl, float& s, float& c) {
  const float u = yh * yh, hu = 0.5f * u, w = 1.0f - hu;
  // minimax fits on [0, (pi/4)^2], relative error: sin 3.8e-9, cos 1.2e-10
  const float ps = -0.166666546095f + u * (0.00833216076181f + u * -0.000195152831862f);
  const float pc = 0.041666645683f + u * (-0.00138873162545f + u * 0.0000244331570704f);
  s = yh + (yl * (1.0f - hu) + yh * u * ps);
  c = w + (((1.0f - w) - hu) + (u * u * pc - yh * yl));
}
ER_HD void sincos_dw(double yh, double yl, double& s, double& c) {
  const double u = yh * yh, hu = 0.5 * u, w = 1.0 - hu;
  // minimax fits on [0, (pi/4)^2], relative error: sin 3.6e-18, cos 5.6e-20
  const double ps =
      -0.1666666666666663073 +
      u * (0.0083333333333221185917 +
           u * (-0.00019841269829589540564 +
                u * (0.0000027557313621386340157 +
                     u * (-0.0000000250507477629462228 + u * 0.00000000015896230162360659462))));
  const double pc =
      0.041666666666666592922 +
      u * (-0.0013888888888873056407 +
           u * (0.000024801587288851702055 +
                u * (-0.00000027557314179296080855 +
                     u * (0.0000000020875700841892227676 + u * -0.000000000011358536517414802762))));
  s = yh + (yl * (1.0 - hu) + yh * u * ps);
  c = w + (((1.0 - w) - hu) + (u * u * pc - yh * yl));
}

// Split a double into float hi + lo (for the float kernels, whose reductions run in double).
ER_HD void split_(double y, float& yh, float& yl) {
  yh = static_cast<float>(y);
  yl = static_cast<float>(y - static_cast<double>(yh));
}

// Rotate (s0, c0) = (sin y, cos y) by q quarter turns, q an integer-valued float in [-2, 2]:
// returns sin and cos of y + q pi/2. Selects only, so it vectorizes.
template <typename T>
ER_HD void apply_quadrant(T q, T s0, T c0, T& s, T& c) {
  const bool odd = (q == T(1)) | (q == T(-1));
  const T a = odd ? c0 : s0;
  const T b = odd ? s0 : c0;
  s = ((q >= T(0)) & (q <= T(1))) ? a : -a;
  c = ((q >= T(-1)) & (q <= T(0))) ? b : -b;
}

// Exact quarter-turn reduction: z = n + (q + f) / 4 with n, q integers, q in [-2, 2] and
// f in [-1/2, 1/2]. Every step is exact in floating point.
template <typename T>
ER_HD void reduce_turn(T z, T& q, T& f) {
  const T r = z - rint_(z);  // in [-1/2, 1/2]
  const T t = T(4) * r;      // in [-2, 2]
  q = rint_(t);
  f = t - q;
}

// sin(2 pi z), cos(2 pi z) with exact periodicity in z; the remaining angle pi/2 f is formed
// as a double-word.
ER_HD void sincos_turn(float z, float& s, float& c) {
  float q, f, yh, yl, s0, c0;
  reduce_turn(z, q, f);
  split_(static_cast<double>(f) * kPio2, yh, yl);  // exact to 2^-53 relative
  sincos_dw(yh, yl, s0, c0);
  apply_quadrant(q, s0, c0, s, c);
}
ER_HD void sincos_turn(double z, double& s, double& c) {
  double q, f, s0, c0;
  reduce_turn(z, q, f);
  const double yh = f * kPio2;
  const double yl = fma_(f, kPio2, -yh) + f * kPio2Lo;  // f (pi/2) to ~2^-106
  sincos_dw(yh, yl, s0, c0);
  apply_quadrant(q, s0, c0, s, c);
}

// True when sincos_rad's reduction is accurate for x (false for |x| > kRadLimit; NaN and inf
// count as in range: they give NaN, as sin and cos do).
template <typename T>
ER_HD bool rad_in_range(T x) {
  return !(fabs_(static_cast<double>(x)) > kRadLimit);  // one compare: keeps loops if-convertible
}

// Cody-Waite: x = q pi/2 + (yh + yl), q mod 4 returned in [-2, 2]. q * kPio2A and q * kPio2B are
// exact (q < 2^20), the subtractions are tracked with TwoSum, so yh + yl carries ~2^-100.
ER_HD void reduce_rad(double x, double& q4, double& yh, double& yl) {
  const double q = rint_(x * kTwoOverPi);
  const double x1 = x - q * kPio2A;  // exact
  const double w = q * kPio2B;       // exact
  const double y1 = x1 - w;
  const double bb = y1 - x1;
  const double e1 = (x1 - (y1 - bb)) + (-w - bb);  // TwoSum error of x1 - w
  const double wc = q * kPio2C;
  yh = y1 - wc;
  yl = ((y1 - yh) - wc) + e1;
  q4 = q - 4.0 * rint_(0.25 * q);
}

// sin(x), cos(x) for |x| <= kRadLimit (see rad_in_range).
ER_HD void sincos_rad(float x, float& s, float& c) {
  double q4, yh, yl;
  reduce_rad(static_cast<double>(x), q4, yh, yl);
  float fh, fl, s0, c0;
  split_(yh + yl, fh, fl);
  sincos_dw(fh, fl, s0, c0);
  apply_quadrant(static_cast<float>(q4), s0, c0, s, c);
}
ER_HD void sincos_rad(double x, double& s, double& c) {
  double q4, yh, yl, s0, c0;
  reduce_rad(x, q4, yh, yl);
  sincos_dw(yh, yl, s0, c0);
  apply_quadrant(q4, s0, c0, s, c);
}

}  // namespace trig
}  // namespace er_fast
