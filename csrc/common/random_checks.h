// Argument checks of philox_uniform / philox_normal, shared by the CPU and CUDA entry points
// (host code only). Values (seeds >= 0, counter in range) are checked only where they can be
// read without a device sync, i.e. on the CPU; the CUDA kernel writes NaN instead.
#pragma once
#include "common/checks.h"
#include "common/random_math.h"

namespace er_fast {

inline void check_random_args(const char* op, const at::Tensor& seeds, const at::Tensor& counter, int64_t stream,
                              at::IntArrayRef size, at::ScalarType dtype, c10::DeviceType dev) {
  ER_FAST_CHECK(seeds.scalar_type() == at::kLong, op, "seeds must be int64, got ", seeds.scalar_type());
  ER_FAST_CHECK(seeds.dim() == 1, op, "seeds must have shape (S,), got ", seeds.sizes());
  ER_FAST_CHECK_DEVICE(seeds, dev, op, "seeds");
  ER_FAST_CHECK(counter.scalar_type() == at::kLong, op, "counter must be int64, got ", counter.scalar_type());
  ER_FAST_CHECK(counter.dim() == 0, op, "counter must be a 0-dim tensor, got shape ", counter.sizes());
  ER_FAST_CHECK_SAME_DEVICE(seeds, counter, op, "seeds", "counter");
  ER_FAST_CHECK(stream >= 0 && stream < rng::kStreamLimit, op, "stream must be in [0, 65536), got ", stream);
  for (const int64_t d : size) ER_FAST_CHECK(d >= 0, op, "size must be non-negative, got ", size);
  ER_FAST_CHECK(dtype == at::kFloat || dtype == at::kDouble, op, "dtype must be float32 or float64, got ", dtype);
}

// CPU only: the values themselves.
inline void check_random_values(const char* op, const int64_t* seeds, int64_t S, int64_t counter) {
  for (int64_t s = 0; s < S; ++s)
    ER_FAST_CHECK(rng::valid_seed(seeds[s]), op, "every seed must be >= 0, got ", seeds[s]);
  ER_FAST_CHECK(rng::valid_counter(counter), op, "counter must be in [0, 2^48), got ", counter);
}

}  // namespace er_fast
