// Which copy of the multiversioned CPU kernels runs (common/cpu_dispatch.h).
#include <c10/util/Exception.h>

#include <cstdlib>
#include <cstring>

#include "common/cpu_dispatch.h"

namespace er_fast {
namespace {

CpuIsa detect() {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(ER_FAST_NO_CLONES)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("x86-64-v4")) return CpuIsa::kAvx512;
  if (__builtin_cpu_supports("x86-64-v3")) return CpuIsa::kAvx2;
#endif
  return CpuIsa::kBaseline;
}

CpuIsa select() {
  const CpuIsa best = detect();
  const char* env = std::getenv("ER_FAST_CPU_ISA");
  if (env == nullptr || *env == '\0' || std::strcmp(env, "auto") == 0) return best;
  CpuIsa want;
  if (std::strcmp(env, "avx512") == 0) {
    want = CpuIsa::kAvx512;
  } else if (std::strcmp(env, "avx2") == 0) {
    want = CpuIsa::kAvx2;
  } else if (std::strcmp(env, "baseline") == 0) {
    want = CpuIsa::kBaseline;
  } else {
    TORCH_WARN("er_fast: ER_FAST_CPU_ISA must be auto, avx512, avx2 or baseline, got '", env, "'; using ",
               cpu_isa_name(best));
    return best;
  }
  if (static_cast<int>(want) > static_cast<int>(best)) {
    TORCH_WARN("er_fast: ER_FAST_CPU_ISA=", env, " but this CPU supports only ", cpu_isa_name(best), "; using it");
    return best;
  }
  return want;
}

}  // namespace

CpuIsa cpu_isa() {
  static const CpuIsa isa = select();
  return isa;
}

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512:
      return "avx512";
    case CpuIsa::kAvx2:
      return "avx2";
    default:
      return "baseline";
  }
}

}  // namespace er_fast
