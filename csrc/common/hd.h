// Host/device helpers for header-only maths shared by the CPU and CUDA kernels.
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define ER_FAST_HD __host__ __device__ __forceinline__
#elif defined(__GNUC__)
// always_inline: the helpers must be inlined into the vectorized lane loops of each CPU clone.
#define ER_FAST_HD inline __attribute__((always_inline))
#else
#define ER_FAST_HD inline
#endif

// Full unrolling of fixed-count loops (Philox rounds, digamma shifts).
#if defined(__CUDACC__)
#define ER_FAST_UNROLL _Pragma("unroll")
#elif defined(__GNUC__) && !defined(__clang__)
#define ER_FAST_UNROLL _Pragma("GCC unroll 16")
#else
#define ER_FAST_UNROLL
#endif

namespace er_fast {

ER_FAST_HD uint64_t bits_of(double x) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint64_t>(__double_as_longlong(x));
#else
  uint64_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
#endif
}

ER_FAST_HD double double_of(uint64_t u) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(static_cast<long long>(u));
#else
  double x;
  std::memcpy(&x, &u, sizeof x);
  return x;
#endif
}

// Exact uint64 -> double for v < 2^52 with plain 64-bit integer ops (AVX2 has no such convert).
ER_FAST_HD double small_u64_to_double(uint64_t v) {
  return double_of(0x4330000000000000ull | v) - 0x1p52;
}

}  // namespace er_fast
