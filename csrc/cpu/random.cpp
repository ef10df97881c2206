// CPU kernels of er_fast::philox_uniform and er_fast::philox_normal (maths in
// common/random_math.h). Output (S, *size): slice s is the stream of seeds[s]; its blocks are
// computed kW at a time in vectorized lane loops and handed to threads in chunks of whole blocks,
// so every value depends only on (seed, stream, counter, element index), never on the split.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>

#include "common/cpu_dispatch.h"
#include "common/random_checks.h"
#include "common/random_math.h"

// No FMA contraction in the kernels below: every ISA copy then rounds each operation as CUDA and
// the PyTorch reference do, which keeps all three bitwise equal (random_math.h).
#pragma GCC optimize("fp-contract=off")

namespace er_fast {
namespace {

using rng::kPerBlock;
constexpr int kW = 16;  // blocks per lane group
#define ER_FAST_LANES _Pragma("omp simd simdlen(16)")

// Blocks [jb, je) of one slice of n elements.
template <typename T, bool kNormal>
ER_FAST_INLINE void fill_blocks(T* out, int64_t n, const rng::Stream st, int64_t jb, int64_t je) {
  constexpr int E = kPerBlock<T>;
  for (int64_t j0 = jb; j0 < je; j0 += kW) {
    uint32_t w0[kW], w1[kW], w2[kW], w3[kW];
    ER_FAST_LANES
    for (int l = 0; l < kW; ++l) rng::block(st, static_cast<uint64_t>(j0 + l), w0[l], w1[l], w2[l], w3[l]);
    T buf[kW * E];
    ER_FAST_LANES
    for (int l = 0; l < kW; ++l) {
      if constexpr (kNormal)
        rng::normals(w0[l], w1[l], w2[l], w3[l], buf + E * l);
      else
        rng::uniforms(w0[l], w1[l], w2[l], w3[l], buf + E * l);
    }
    const int64_t e0 = j0 * E;
    const int64_t cnt = std::min<int64_t>(std::min<int64_t>(je - j0, kW) * E, n - e0);
    std::memcpy(out + e0, buf, static_cast<size_t>(cnt) * sizeof(T));
  }
}

// Global blocks [b, e) of the output; slice s owns blocks [s nb, (s + 1) nb).
template <typename T, bool kNormal>
ER_FAST_INLINE void fill_range(T* out, const int64_t* seeds, int64_t counter, int64_t stream, int64_t n, int64_t nb,
                               int64_t b, int64_t e) {
  while (b < e) {
    const int64_t s = b / nb, j = b - s * nb, je = std::min(nb, j + (e - b));
    fill_blocks<T, kNormal>(out + s * n, n, rng::make_stream(seeds[s], stream, counter), j, je);
    b += je - j;
  }
}

#define ER_FAST_RANDOM_ENTRY(name, T, normal)                                                                   \
  ER_FAST_CPU_MULTIVERSION(void, name,                                                                          \
                           (T * out, const int64_t* seeds, int64_t c, int64_t st, int64_t n, int64_t nb,        \
                            int64_t b, int64_t e),                                                              \
                           (out, seeds, c, st, n, nb, b, e), { fill_range<T, normal>(out, seeds, c, st, n, nb, b, e); })
ER_FAST_RANDOM_ENTRY(uniform_f32, float, false)
ER_FAST_RANDOM_ENTRY(uniform_f64, double, false)
ER_FAST_RANDOM_ENTRY(normal_f32, float, true)
ER_FAST_RANDOM_ENTRY(normal_f64, double, true)

constexpr int64_t kGrain = 1024;  // blocks per task: 4096 float32 values

template <bool kNormal>
at::Tensor philox_cpu(const char* op, const at::Tensor& seeds, const at::Tensor& counter, int64_t stream,
                      at::IntArrayRef size, at::ScalarType dtype) {
  check_random_args(op, seeds, counter, stream, size, dtype, at::kCPU);
  const at::Tensor sd = seeds.contiguous();
  const int64_t S = sd.size(0), c = counter.item<int64_t>();  // a CPU tensor: no sync
  const int64_t* sp = sd.data_ptr<int64_t>();
  check_random_values(op, sp, S, c);
  std::vector<int64_t> shape{S};
  shape.insert(shape.end(), size.begin(), size.end());
  at::Tensor out = at::empty(shape, seeds.options().dtype(dtype));
  const int64_t n = S == 0 ? 0 : out.numel() / S;
  if (out.numel() == 0) return out;
  const auto run = [&](auto* o, auto fn, int64_t E) {
    const int64_t nb = (n + E - 1) / E;
    at::parallel_for(0, S * nb, kGrain, [&](int64_t b, int64_t e) { fn(o, sp, c, stream, n, nb, b, e); });
  };
  if (dtype == at::kFloat)
    run(out.data_ptr<float>(), kNormal ? normal_f32 : uniform_f32, kPerBlock<float>);
  else
    run(out.data_ptr<double>(), kNormal ? normal_f64 : uniform_f64, kPerBlock<double>);
  return out;
}

at::Tensor philox_uniform_cpu(const at::Tensor& seeds, const at::Tensor& counter, int64_t stream,
                              at::IntArrayRef size, at::ScalarType dtype) {
  return philox_cpu<false>("philox_uniform", seeds, counter, stream, size, dtype);
}

at::Tensor philox_normal_cpu(const at::Tensor& seeds, const at::Tensor& counter, int64_t stream, at::IntArrayRef size,
                             at::ScalarType dtype) {
  return philox_cpu<true>("philox_normal", seeds, counter, stream, size, dtype);
}

}  // namespace

TORCH_LIBRARY_IMPL(er_fast, CPU, m) {
  m.impl("philox_uniform", &philox_uniform_cpu);
  m.impl("philox_normal", &philox_normal_cpu);
}

}  // namespace er_fast
