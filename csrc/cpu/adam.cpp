// CPU kernel of er_fast::adam_ (maths and operation order in common/adam_math.h).
//
// All tensors of the call are cut into chunks of kChunk elements; at::parallel_for hands whole
// chunks to threads, and each chunk is one vectorized lane loop per ISA copy
// (ER_FAST_CPU_MULTIVERSION). The update is elementwise and every operation is correctly rounded
// with no FMA contraction, so an element's result depends on nothing but its own four values and
// the step: not on its position (vector body or tail), the chunking, the thread count or the ISA.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/adam_checks.h"
#include "common/cpu_dispatch.h"

// Before the maths header, so its always-inline helpers carry the setting too: no FMA
// contraction anywhere in this file (see csrc/cpu/random.cpp).
#pragma GCC optimize("fp-contract=off")
#include "common/adam_math.h"

namespace er_fast {
namespace {

constexpr int64_t kChunk = 16384;  // elements per task: 448 KB of float32 traffic

template <typename T>
ER_FAST_INLINE void adam_range(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ m, T* __restrict__ v,
                               int64_t n, const adam::Coeffs<T>& c) {
  const adam::Coeffs<T> k = c;  // by value: the loop must not reload the constants
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    T pi = p[i], mi = m[i], vi = v[i];
    adam::update(pi, g[i], mi, vi, k);
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
  }
}

ER_FAST_CPU_MULTIVERSION(void, adam_f32,
                         (float* p, const float* g, float* m, float* v, int64_t n, const adam::Coeffs<float>& c),
                         (p, g, m, v, n, c), { adam_range<float>(p, g, m, v, n, c); })
ER_FAST_CPU_MULTIVERSION(void, adam_f64,
                         (double* p, const double* g, double* m, double* v, int64_t n,
                          const adam::Coeffs<double>& c),
                         (p, g, m, v, n, c), { adam_range<double>(p, g, m, v, n, c); })

struct Chunk {
  int32_t tensor;
  int64_t begin, end;
};

void adam_cpu(at::TensorList params, at::TensorList grads, at::TensorList exp_avgs, at::TensorList exp_avg_sqs,
              const at::Tensor& step, double lr, double beta1, double beta2, double eps) {
  check_adam_args(params, grads, exp_avgs, exp_avg_sqs, step, lr, beta1, beta2, eps, at::kCPU);
  const double s0 = step.item<double>();  // a CPU tensor: no sync
  // s0 + 1 must be exact in step's dtype (float32 counts exactly up to 2^24 only).
  const double limit = step.scalar_type() == at::kFloat ? 0x1p24 : 0x1p53;
  ER_FAST_CHECK(s0 >= 0 && s0 < limit && s0 == std::floor(s0), "adam_", "step must hold a whole number in [0, ",
                static_cast<int64_t>(limit), "), got ", s0);
  const int64_t t = static_cast<int64_t>(s0) + 1;
  step.fill_(t);  // the step count of this update, as torch.optim.Adam counts it
  double a, s;
  adam::step_scalars(t, lr, beta1, beta2, a, s);
  const auto c32 = adam::coeffs<float>(a, s, beta1, beta2, eps);
  const auto c64 = adam::coeffs<double>(a, s, beta1, beta2, eps);

  std::vector<Chunk> chunks;
  for (size_t i = 0; i < params.size(); ++i)
    for (int64_t b = 0, n = params[i].numel(); b < n; b += kChunk)
      chunks.push_back({static_cast<int32_t>(i), b, std::min(n, b + kChunk)});
  at::parallel_for(0, static_cast<int64_t>(chunks.size()), 1, [&](int64_t cb, int64_t ce) {
    for (int64_t k = cb; k < ce; ++k) {
      const Chunk& ch = chunks[k];
      const int64_t b = ch.begin, n = ch.end - ch.begin;
      const at::Tensor &p = params[ch.tensor], &g = grads[ch.tensor];
      const at::Tensor &m = exp_avgs[ch.tensor], &v = exp_avg_sqs[ch.tensor];
      if (p.scalar_type() == at::kFloat)
        adam_f32(p.data_ptr<float>() + b, g.const_data_ptr<float>() + b, m.data_ptr<float>() + b,
                 v.data_ptr<float>() + b, n, c32);
      else
        adam_f64(p.data_ptr<double>() + b, g.const_data_ptr<double>() + b, m.data_ptr<double>() + b,
                 v.data_ptr<double>() + b, n, c64);
    }
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(er_fast, CPU, m) { m.impl("adam_", &adam_cpu); }

}  // namespace er_fast
