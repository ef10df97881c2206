// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a
// counter-based generator. Output = f_key(counter), so element i's random numbers depend only on
// (key, i, draw number), never on thread count, launch configuration or which device runs it.
// Header-only, usable from CPU (vectorizable: no branches) and CUDA.
#pragma once
#include <cstdint>

#include "common/hd.h"

namespace er_fast {

// Random123's known-answer test: counter {0,0,0,0}, key {0,0} -> 6627e8d5 e169c58d bc57ac4c 9b00dbd8.
ER_FAST_HD void philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1,
                         uint32_t& o0, uint32_t& o1, uint32_t& o2, uint32_t& o3) {
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
ER_FAST_UNROLL
  for (int r = 0; r < 10; ++r) {
    const uint64_t p0 = static_cast<uint64_t>(M0) * c0;
    const uint64_t p1 = static_cast<uint64_t>(M1) * c2;
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n1 = static_cast<uint32_t>(p1);
    const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    const uint32_t n3 = static_cast<uint32_t>(p0);
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += W0; k1 += W1;
  }
  o0 = c0; o1 = c1; o2 = c2; o3 = c3;
}

// Uniform on the open interval (0, 1) from 53 random bits (hi:lo, top 53 bits), exactly
// representable: ((bits >> 11) + 0.5) * 2^-53.
ER_FAST_HD double uniform53(uint32_t hi, uint32_t lo) {
  const uint64_t v = (static_cast<uint64_t>(hi) << 21) | (lo >> 11);  // < 2^53
  const double d = 2.0 * small_u64_to_double(v >> 1) + static_cast<double>(static_cast<int>(v & 1));
  return (d + 0.5) * 0x1p-53;
}

// Uniform on (0, 1) from 32 bits: (r + 0.5) * 2^-32.
ER_FAST_HD double uniform32(uint32_t r) { return (small_u64_to_double(r) + 0.5) * 0x1p-32; }

// The per-element stream of er_fast's Beta sampler. key = (k0, k1) are two int64 drawn from a
// torch.Generator; idx is the element's index within its slice; j numbers the draws of that
// element. Philox key = k0, counter = (j, idx_lo, idx_hi ^ k1_lo, k1_hi).
struct PhiloxKey {
  uint32_t k0, k1, c2, c3;
};

ER_FAST_HD PhiloxKey make_philox_key(int64_t key0, int64_t key1, int64_t idx) {
  const uint64_t a = static_cast<uint64_t>(key0), b = static_cast<uint64_t>(key1),
                 i = static_cast<uint64_t>(idx);
  PhiloxKey k;
  k.k0 = static_cast<uint32_t>(a);
  k.k1 = static_cast<uint32_t>(a >> 32);
  k.c2 = static_cast<uint32_t>(i >> 32) ^ static_cast<uint32_t>(b);
  k.c3 = static_cast<uint32_t>(b >> 32);
  return k;
}

}  // namespace er_fast
