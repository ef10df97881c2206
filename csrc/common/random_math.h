// Counter-based random numbers of er_fast::philox_uniform / philox_normal, shared by the CPU and
// CUDA kernels (and mirrored op for op by er_fast/ops/reference/random.py).
//
// Stream layout (docs/random.md): one (seed, stream, counter) names a sequence of Philox4x32-10
// blocks of four 32-bit words,
//   key     = (lo32(seed), hi32(seed) ^ kSeedSalt)
//   counter = (lo32(j), hi32(j), stream | (counter >> 32) << 16, lo32(counter))
// with j the block index within the seed's slice. Element e of a slice reads block e / E, E = 4
// (float32) or 2 (float64), so a slice depends only on (seed, stream, counter, element index).
//
// Bitwise reproducibility: every floating-point operation below is an exactly rounded IEEE
// operation (+, -, *, /, sqrt) in a fixed order with no fused multiply-add. On CUDA the helpers
// add/sub/mul use the __d*_rn intrinsics, which nvcc never contracts into FMAs; the CPU kernel
// (csrc/cpu/random.cpp) is compiled with fp-contract=off. So CPU (every ISA copy), CUDA and the
// float64 PyTorch reference give the same bits, normals included.
#pragma once
#include <cstdint>

#include "common/hd.h"
#include "common/philox.h"

namespace er_fast {
namespace rng {

// Keeps er_fast's streams for seed s apart from other Philox users keyed by s itself (curand,
// torch's CUDA generator). Below 2^31, so that seed = kSeedSalt << 32 (key (0, 0), Random123's
// known-answer key) is a valid non-negative seed.
constexpr uint32_t kSeedSalt = 0x52414E44u;  // "RAND"
constexpr int64_t kStreamLimit = int64_t{1} << 16;   // stream in [0, 2^16)
constexpr int64_t kCounterLimit = int64_t{1} << 48;  // counter in [0, 2^48): 16 high bits share word 2

// Outputs per Philox block.
template <typename T>
constexpr int kPerBlock = sizeof(T) == 4 ? 4 : 2;

// Key and the two high counter words of one (seed, stream, counter).
struct Stream {
  uint32_t k0, k1, c2, c3;
};

ER_FAST_HD bool valid_seed(int64_t seed) { return seed >= 0; }
ER_FAST_HD bool valid_counter(int64_t counter) { return counter >= 0 && counter < kCounterLimit; }

ER_FAST_HD Stream make_stream(int64_t seed, int64_t stream, int64_t counter) {
  const uint64_t s = static_cast<uint64_t>(seed), c = static_cast<uint64_t>(counter);
  Stream st;
  st.k0 = static_cast<uint32_t>(s);
  st.k1 = static_cast<uint32_t>(s >> 32) ^ kSeedSalt;
  st.c2 = static_cast<uint32_t>(stream & 0xFFFF) | (static_cast<uint32_t>((c >> 32) & 0xFFFF) << 16);
  st.c3 = static_cast<uint32_t>(c);
  return st;
}

// The four words of block j.
ER_FAST_HD void block(const Stream& st, uint64_t j, uint32_t& w0, uint32_t& w1, uint32_t& w2, uint32_t& w3) {
  philox4x32_10(static_cast<uint32_t>(j), static_cast<uint32_t>(j >> 32), st.c2, st.c3, st.k0, st.k1, w0, w1, w2, w3);
}

// Uncontracted arithmetic (see the header comment).
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
// sqrt(y) for y in [2^-60, 2^60] with +, -, *, / only: torch.sqrt on the CPU (MKL's vdSqrt) is
// not correctly rounded, so the reference could not match a hardware sqrt bit for bit. Initial
// 1/sqrt(y) by the bit trick (relative error < 3.5%), three Newton steps for 1/sqrt (error
// 4e-11), then one Heron step for sqrt. Error < 1 ulp.
ER_FAST_HD double sqrt_(double y) {
  double g = double_of(0x5FE6EB50C7B537A9ull - (bits_of(y) >> 1));
  const double hy = mul(0.5, y);
ER_FAST_UNROLL
  for (int i = 0; i < 3; ++i) g = mul(g, sub(1.5, mul(hy, mul(g, g))));
  const double s = mul(y, g);
  return mul(0.5, add(s, div(y, s)));
}

// float32 uniform on the open interval (0, 1): the top 23 bits, ((r >> 9) + 1/2) 2^-23, i.e. the
// odd multiples of 2^-24. Every value is a float (24 significant bits) and u -> 1 - u maps the
// set onto itself. (Through int32 so every ISA copy vectorizes the convert.)
ER_FAST_HD float uniform_f32(uint32_t r) {
  return (static_cast<float>(static_cast<int32_t>(r >> 9)) + 0.5f) * 0x1p-23f;
}

// float64 uniform on (0, 1): the top 52 bits of hi:lo, ((hi:lo >> 12) + 1/2) 2^-52, i.e. the odd
// multiples of 2^-53. Not philox.h's uniform53: the midpoints of 2^53 cells are not all doubles
// ((v + 1/2) 2^-53 rounds for v >= 2^52, and gives exactly 1.0 for v = 2^53 - 1).
ER_FAST_HD double uniform_f64(uint32_t hi, uint32_t lo) {
  const uint64_t v = (static_cast<uint64_t>(hi) << 20) | (lo >> 12);  // < 2^52
  return (small_u64_to_double(v) + 0.5) * 0x1p-52;
}

// log(x) for x in [2^-64, 1]: fdlibm's e_log.c (as vlog in vmath.h, without the subnormal path),
// written with the uncontracted helpers. Error < 1 ulp.
ER_FAST_HD double log_(double x) {
  uint64_t ix = bits_of(x);
  ix += 0x3ff0000000000000ull - 0x3fe6a09e00000000ull;  // x = 2^k (1 + f), 1 + f in [sqrt2/2, sqrt2)
  const double k = small_u64_to_double(ix >> 52) - 1023.0;
  ix = (ix & 0x000fffffffffffffull) + 0x3fe6a09e00000000ull;
  const double f = double_of(ix) - 1.0;  // exact
  const double hfsq = mul(mul(0.5, f), f);
  const double s = div(f, add(2.0, f));
  const double z = mul(s, s), w = mul(z, z);
  const double t1 = mul(w, add(3.999999999940941908e-01, mul(w, add(2.222219843214978396e-01,
                                                                     mul(w, 1.531383769920937332e-01)))));
  const double t2 = mul(z, add(6.666666666666735130e-01,
                               mul(w, add(2.857142874366239149e-01,
                                          mul(w, add(1.818357216161805012e-01, mul(w, 1.479819860511658591e-01)))))));
  const double R = add(t2, t1);
  double y = mul(s, add(hfsq, R));
  y = add(y, mul(k, 1.90821492927058770002e-10));
  y = sub(y, hfsq);
  y = add(y, f);
  return add(y, mul(k, 6.93147180369123816490e-01));
}

// sin(2 pi u), cos(2 pi u) for u in [0, 1]. u = (q + f) / 4 exactly, q = rint(4u) in {0..4},
// f in [-1/2, 1/2] (4u exact; rint by the 2^52 shifter, exact for 0 <= 4u < 2^51); then
// sin(pi f / 2), cos(pi f / 2) by Taylor polynomials in f whose coefficients carry the powers of
// pi/2 (truncation < 1e-19 at |f| = 1/2), rotated by q quarter turns with selects. Error ~1 ulp.
ER_FAST_HD void sincos_2pi(double u, double& s, double& c) {
  const double t = mul(4.0, u);
  const double q = sub(add(t, 0x1p52), 0x1p52);
  const double f = sub(t, q);
  const double z = mul(f, f);
  double ps = -4.377065467313742e-14;
  ps = add(mul(ps, z), 6.0669357311061955e-12);
  ps = add(mul(ps, z), -6.688035109811468e-10);
  ps = add(mul(ps, z), 5.692172921967927e-08);
  ps = add(mul(ps, z), -3.598843235212085e-06);
  ps = add(mul(ps, z), 0.00016044118478735983);
  ps = add(mul(ps, z), -0.004681754135318688);
  ps = add(mul(ps, z), 0.07969262624616705);
  ps = add(mul(ps, z), -0.6459640975062463);
  ps = add(mul(ps, z), 1.5707963267948966);
  const double s0 = mul(f, ps);
  double pc = -5.294400200734623e-13;
  pc = add(mul(pc, z), 6.565963114979473e-11);
  pc = add(mul(pc, z), -6.386603083791852e-09);
  pc = add(mul(pc, z), 4.710874778818172e-07);
  pc = add(mul(pc, z), -2.5202042373060607e-05);
  pc = add(mul(pc, z), 0.0009192602748394266);
  pc = add(mul(pc, z), -0.02086348076335296);
  pc = add(mul(pc, z), 0.25366950790104803);
  pc = add(mul(pc, z), -1.2337005501361697);
  const double c0 = add(mul(pc, z), 1.0);
  // q mod 4: 0 -> (s0, c0), 1 -> (c0, -s0), 2 -> (-s0, -c0), 3 -> (-c0, s0); q = 4 is q = 0.
  const bool odd = (q == 1.0) | (q == 3.0);
  const double a = odd ? c0 : s0, b = odd ? s0 : c0;
  s = (q == 2.0) | (q == 3.0) ? -a : a;
  c = (q == 1.0) | (q == 2.0) ? -b : b;
}

// Box-Muller: two independent standard normals from two uniforms on (0, 1).
ER_FAST_HD void box_muller(double u1, double u2, double& z0, double& z1) {
  const double r = sqrt_(mul(-2.0, log_(u1)));
  double s, c;
  sincos_2pi(u2, s, c);
  z0 = mul(r, c);
  z1 = mul(r, s);
}

// The outputs of one block, in element order.
//   uniform float32: uniform_f32(w0..w3)
//   uniform float64: uniform_f64(w0, w1), uniform_f64(w2, w3)
//   normal float32:  box_muller(uniform32(w0), uniform32(w1)), box_muller(uniform32(w2), uniform32(w3)),
//                    computed in double and rounded once (the tails reach 6.7 sigma, not the 5.8
//                    of 24-bit uniforms; the sign and digits do not depend on float rounding)
//   normal float64:  box_muller(uniform_f64(w0, w1), uniform_f64(w2, w3))
ER_FAST_HD void uniforms(uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3, float* o) {
  o[0] = uniform_f32(w0);
  o[1] = uniform_f32(w1);
  o[2] = uniform_f32(w2);
  o[3] = uniform_f32(w3);
}
ER_FAST_HD void uniforms(uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3, double* o) {
  o[0] = uniform_f64(w0, w1);
  o[1] = uniform_f64(w2, w3);
}
ER_FAST_HD void normals(uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3, float* o) {
  double a, b, c, d;
  box_muller(uniform32(w0), uniform32(w1), a, b);
  box_muller(uniform32(w2), uniform32(w3), c, d);
  o[0] = static_cast<float>(a);
  o[1] = static_cast<float>(b);
  o[2] = static_cast<float>(c);
  o[3] = static_cast<float>(d);
}
ER_FAST_HD void normals(uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3, double* o) {
  box_muller(uniform_f64(w0, w1), uniform_f64(w2, w3), o[0], o[1]);
}

}  // namespace rng
}  // namespace er_fast
