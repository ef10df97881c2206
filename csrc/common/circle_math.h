// sin/cos polynomials shared by the CPU and CUDA circle_embed / so2_rotate kernels.
//
// Written branch-free (selects, no table lookups, no calls) so that GCC vectorizes the CPU loops
// in every ER_FAST_CPU_MULTIVERSION copy and CUDA runs them without divergence. The polynomial
// coefficients are minimax fits (relative error) made by tools/fit_sincos.py.
//
// * sincos_turn(z):  sin(2 pi z), cos(2 pi z). z is reduced modulo 1 *before* any scaling by
//   pi (sinpi/cospi style): r = z - rint(z), t = 4r, q = rint(t), f = t - q are all exact, so
//   z = 4096.25 gives exactly the point of z = 0.25 and the multiples of 1/4 give exact 0 / +-1.
//   The left-over angle (pi/2) f is formed as a double-word (hi + lo).
// * sincos_rad(x):   sin(x), cos(x) for |x| <= kRadLimit (double) / kRadLimitF (float).
//   Cody-Waite reduction by pi/2 with a 4-part pi/2 (the first three parts short enough that
//   q * part is exact) and TwoSum, giving a double-word remainder. Larger |x| must be handled
//   by the caller (rad_in_range() says when); the kernels use libm's double sin/cos there.
// Both end in sincos_dw: one polynomial pair on [-pi/4, pi/4] per dtype, evaluated in the dtype
// itself, so float loops run at full vector width.
#pragma once

#include <cmath>

#include "common/hd.h"

namespace er_fast {
namespace trig {

constexpr double kTwoPi = 6.283185307179586;        // 2 pi rounded to double
constexpr double kTwoOverPi = 0.6366197723675814;   // 2 / pi
constexpr double kPio2 = 1.5707963267948966;        // pi/2 rounded to double
constexpr double kPio2Lo = 6.123233995736766e-17;   // pi/2 - kPio2
constexpr double kPio2A = 1.5707963267341256;       // 0x1.921fb544p+0 (32 bits)
constexpr double kPio2B = 6.077100506303966e-11;    // 0x1.0b4611a6p-34 (32 bits)
constexpr double kPio2C = 2.0222662487111665e-21;   // 32 bits
constexpr double kPio2D = 8.4784276603689e-32;      // rest of pi/2 (error 7e-49)
// |x| up to 2^19 keeps q = rint(2x/pi) below 2^19, far inside the exact-product range.
constexpr double kRadLimit = 524288.0;
// float kernels reduce in float: pi/2 = A + B + C + D with A, B, C of 12 bits (q * A, q * B,
// q * C exact for q < 2^12) and D the float rest (pi/2 - A - B - C - D = 8e-20); valid for
// |x| <= kRadLimitF.
constexpr float kPio2Af = 1.5703125f;
constexpr float kPio2Bf = 0.0004837512969970703f;
constexpr float kPio2Cf = 7.549533620476723e-08f;
constexpr float kPio2Df = 2.5633440682570896e-12f;
constexpr float kTwoOverPif = 0.6366197466850281f;
constexpr float kPio2f = 1.5707963705062866f;       // pi/2 rounded to float
constexpr float kPio2Lof = -4.371138828673793e-08f;  // pi/2 - kPio2f
constexpr float kRadLimitF = 4096.0f;

ER_FAST_HD float rint_(float x) {
#if defined(__CUDA_ARCH__)
  return rintf(x);
#else
  return std::rint(x);
#endif
}
ER_FAST_HD double rint_(double x) {
#if defined(__CUDA_ARCH__)
  return ::rint(x);
#else
  return std::rint(x);
#endif
}

ER_FAST_HD double fabs_(double x) {
#if defined(__CUDA_ARCH__)
  return ::fabs(x);
#else
  return std::fabs(x);
#endif
}

ER_FAST_HD float fma_(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return fmaf(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
ER_FAST_HD double fma_(double a, double b, double c) {
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
ER_FAST_HD void sincos_dw(float yh, float yl, float& s, float& c) {
  const float u = yh * yh, hu = 0.5f * u, w = 1.0f - hu;
  // minimax fits on [0, (pi/4)^2], relative error: sin 3.8e-9, cos 1.2e-10
  const float ps = -0.166666546095f + u * (0.00833216076181f + u * -0.000195152831862f);
  const float pc = 0.041666645683f + u * (-0.00138873162545f + u * 0.0000244331570704f);
  s = yh + (yl * (1.0f - hu) + yh * u * ps);
  c = w + (((1.0f - w) - hu) + (u * u * pc - yh * yl));
}
ER_FAST_HD void sincos_dw(double yh, double yl, double& s, double& c) {
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

// Rotate (s0, c0) = (sin y, cos y) by q quarter turns, q an integer-valued float in [-2, 2]:
// returns sin and cos of y + q pi/2. Selects only, so it vectorizes.
template <typename T>
ER_FAST_HD void apply_quadrant(T q, T s0, T c0, T& s, T& c) {
  const bool odd = (q == T(1)) | (q == T(-1));
  const T a = odd ? c0 : s0;
  const T b = odd ? s0 : c0;
  s = ((q >= T(0)) & (q <= T(1))) ? a : -a;
  c = ((q >= T(-1)) & (q <= T(0))) ? b : -b;
}

// Exact quarter-turn reduction: z = n + (q + f) / 4 with n, q integers, q in [-2, 2] and
// f in [-1/2, 1/2]. Every step is exact in floating point.
template <typename T>
ER_FAST_HD void reduce_turn(T z, T& q, T& f) {
  const T r = z - rint_(z);  // in [-1/2, 1/2]
  const T t = T(4) * r;      // in [-2, 2]
  q = rint_(t);
  f = t - q;
}

// sin(2 pi z), cos(2 pi z) with exact periodicity in z; the remaining angle pi/2 f is formed
// as a double-word.
ER_FAST_HD void sincos_turn(float z, float& s, float& c) {
  float q, f, s0, c0;
  reduce_turn(z, q, f);
  const float yh = f * kPio2f;
  const float yl = fma_(f, kPio2f, -yh) + f * kPio2Lof;  // f (pi/2) to ~2^-48
  sincos_dw(yh, yl, s0, c0);
  apply_quadrant(q, s0, c0, s, c);
}
ER_FAST_HD void sincos_turn(double z, double& s, double& c) {
  double q, f, s0, c0;
  reduce_turn(z, q, f);
  const double yh = f * kPio2;
  const double yl = fma_(f, kPio2, -yh) + f * kPio2Lo;  // f (pi/2) to ~2^-106
  sincos_dw(yh, yl, s0, c0);
  apply_quadrant(q, s0, c0, s, c);
}

// True when sincos_rad's reduction is accurate for x (false beyond kRadLimit / kRadLimitF; NaN
// and inf count as in range: they give NaN, as sin and cos do). One compare keeps the loops
// if-convertible.
ER_FAST_HD bool rad_in_range(double x) { return !(fabs_(x) > kRadLimit); }
ER_FAST_HD bool rad_in_range(float x) { return !(fabs_(static_cast<double>(x)) > static_cast<double>(kRadLimitF)); }

// TwoSum: a + b = s + e exactly.
template <typename T>
ER_FAST_HD void two_sum(T a, T b, T& s, T& e) {
  s = a + b;
  const T bb = s - a;
  e = (a - (s - bb)) + (b - bb);
}

// Cody-Waite: x = q pi/2 + (yh + yl), q mod 4 returned in [-2, 2]. pi/2 = A + B + C + D with
// A, B, C of 32 bits, so q * A, q * B, q * C are exact (q < 2^21) and the subtractions are
// tracked with TwoSum: yh + yl is right to ~1e-40 absolute, enough for the arguments closest to
// a multiple of pi/2.
ER_FAST_HD void reduce_rad(double x, double& q4, double& yh, double& yl) {
  const double q = rint_(x * kTwoOverPi);
  const double x1 = x - q * kPio2A;  // exact
  double y1, e1, y2, e2;
  two_sum(x1, -(q * kPio2B), y1, e1);
  two_sum(y1, -(q * kPio2C), y2, e2);
  const double wd = q * kPio2D;
  yh = y2 - wd;
  yl = ((y2 - yh) - wd) + (e1 + e2);
  q4 = q - 4.0 * rint_(0.25 * q);
}

// Cody-Waite in float for |x| <= kRadLimitF (q < 2^12), one more part than the double version.
ER_FAST_HD void reduce_rad(float x, float& q4, float& yh, float& yl) {
  const float q = rint_(x * kTwoOverPif);
  const float x1 = x - q * kPio2Af;  // exact
  float y1, e1, y2, e2;
  two_sum(x1, -(q * kPio2Bf), y1, e1);  // q * B, q * C exact
  two_sum(y1, -(q * kPio2Cf), y2, e2);
  const float wd = q * kPio2Df;
  yh = y2 - wd;
  yl = ((y2 - yh) - wd) + (e1 + e2);
  q4 = q - 4.0f * rint_(0.25f * q);
}

// sin(x), cos(x) for x in range (see rad_in_range).
ER_FAST_HD void sincos_rad(float x, float& s, float& c) {
  float q4, yh, yl, s0, c0;
  reduce_rad(x, q4, yh, yl);
  sincos_dw(yh, yl, s0, c0);
  apply_quadrant(q4, s0, c0, s, c);
}
ER_FAST_HD void sincos_rad(double x, double& s, double& c) {
  double q4, yh, yl, s0, c0;
  reduce_rad(x, q4, yh, yl);
  sincos_dw(yh, yl, s0, c0);
  apply_quadrant(q4, s0, c0, s, c);
}

}  // namespace trig
}  // namespace er_fast
