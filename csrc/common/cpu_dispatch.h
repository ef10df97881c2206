// Runtime instruction-set dispatch for CPU kernels.
//
// The extension is compiled for baseline x86-64 (no -march=native) so the binary runs on any
// x86-64 CPU. Hot, non-template entry functions are marked ER_FAST_CPU_CLONES: GCC then emits an
// AVX-512, an AVX2+FMA and a baseline copy and picks one at load time (ifunc) from the CPU's
// features. Template helpers called from them should be `ER_FAST_INLINE` so they are inlined into
// (and vectorized for) each clone rather than emitted once for the baseline.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(ER_FAST_NO_CLONES)
#define ER_FAST_CPU_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define ER_FAST_CPU_CLONES
#endif

#if defined(__GNUC__)
#define ER_FAST_INLINE inline __attribute__((always_inline))
#else
#define ER_FAST_INLINE inline
#endif
