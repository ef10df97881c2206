// Runtime instruction-set dispatch for the CPU kernels.
//
// The extension is compiled for baseline x86-64 (no -march=native), so the binary runs on any
// x86-64 CPU. Each hot entry function is defined with ER_FAST_CPU_MULTIVERSION: GCC compiles its
// body three times, for x86-64-v4 (AVX-512), x86-64-v3 (AVX2 + FMA) and the baseline, and a small
// dispatcher calls the copy that cpu_isa() selects: the best the CPU supports, or a lower one
// named by the environment variable ER_FAST_CPU_ISA (avx512 | avx2 | baseline), read once, so the
// tests can run every shipped copy on one machine. Template helpers called from the bodies are
// ER_FAST_INLINE so they are inlined into (and vectorized for) each copy.
#pragma once

#if defined(__GNUC__)
#define ER_FAST_INLINE inline __attribute__((always_inline))
#else
#define ER_FAST_INLINE inline
#endif

namespace er_fast {

enum class CpuIsa : int { kBaseline = 0, kAvx2 = 1, kAvx512 = 2 };

// The instruction set the CPU kernels run with (csrc/cpu/cpu_isa.cpp).
CpuIsa cpu_isa();
const char* cpu_isa_name(CpuIsa isa);

}  // namespace er_fast

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(ER_FAST_NO_CLONES)
// ret name params: three bodies and the dispatcher. `args` forwards the parameters, e.g.
//   ER_FAST_CPU_MULTIVERSION(void, axpy, (float a, const float* x, float* y, int64_t n), (a, x, y, n), { ... })
#define ER_FAST_CPU_MULTIVERSION(ret, name, params, args, ...)                  \
  __attribute__((target("arch=x86-64-v4"))) ret name##_v4 params __VA_ARGS__    \
  __attribute__((target("arch=x86-64-v3"))) ret name##_v3 params __VA_ARGS__    \
  ret name##_v1 params __VA_ARGS__                                              \
  ret name params {                                                             \
    switch (::er_fast::cpu_isa()) {                                             \
      case ::er_fast::CpuIsa::kAvx512:                                          \
        return name##_v4 args;                                                  \
      case ::er_fast::CpuIsa::kAvx2:                                            \
        return name##_v3 args;                                                  \
      default:                                                                  \
        return name##_v1 args;                                                  \
    }                                                                           \
  }
// The same, for a body that should use each copy's native vector width: ``impl`` is a function
// template on the vector size in bytes, called as impl<64> (AVX-512), impl<32> (AVX2) or impl<16>.
#define ER_FAST_CPU_MULTIVERSION_VEC(ret, name, params, args, impl)               \
  __attribute__((target("arch=x86-64-v4"))) ret name##_v4 params { return impl<64> args; } \
  __attribute__((target("arch=x86-64-v3"))) ret name##_v3 params { return impl<32> args; } \
  ret name##_v1 params { return impl<16> args; }                                  \
  ret name params {                                                               \
    switch (::er_fast::cpu_isa()) {                                               \
      case ::er_fast::CpuIsa::kAvx512:                                            \
        return name##_v4 args;                                                    \
      case ::er_fast::CpuIsa::kAvx2:                                              \
        return name##_v3 args;                                                    \
      default:                                                                    \
        return name##_v1 args;                                                    \
    }                                                                             \
  }
#else
#define ER_FAST_CPU_MULTIVERSION(ret, name, params, args, ...) ret name params __VA_ARGS__
#define ER_FAST_CPU_MULTIVERSION_VEC(ret, name, params, args, impl) ret name params { return impl<64> args; }
#endif
