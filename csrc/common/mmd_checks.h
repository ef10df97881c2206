// Argument checks of er_fast::mmd_imq shared by the CPU and CUDA entry points (host code).
#pragma once
#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <vector>

#include "common/checks.h"
#include "common/imq.h"

namespace er_fast {

struct MmdShape {
  int64_t B, n, m, d;
  std::vector<int64_t> batch;
};

inline MmdShape mmd_check(const at::Tensor& x, const at::Tensor& y, double c, const std::vector<double>& scales,
                          bool unbiased, at::DeviceType dev) {
  ER_CHECK_FLOAT(x, "mmd_imq: x");
  ER_CHECK_FLOAT(y, "mmd_imq: y");
  TORCH_CHECK(x.scalar_type() == y.scalar_type(), "er_fast: mmd_imq: x and y have different dtypes (",
              x.scalar_type(), " and ", y.scalar_type(), ")");
  ER_CHECK_DEVICE(x, dev, "mmd_imq: x");
  ER_CHECK_SAME_DEVICE(x, y);
  TORCH_CHECK(x.dim() >= 2 && y.dim() >= 2, "er_fast: mmd_imq: x and y must have shape (..., n, d), got ",
              x.sizes(), " and ", y.sizes());
  TORCH_CHECK(x.dim() == y.dim() && x.sizes().slice(0, x.dim() - 2) == y.sizes().slice(0, y.dim() - 2),
              "er_fast: mmd_imq: x and y must have the same batch shape, got ", x.sizes(), " and ", y.sizes());
  const int64_t d = x.size(-1);
  TORCH_CHECK(d == y.size(-1), "er_fast: mmd_imq: x and y must have the same d, got ", d, " and ", y.size(-1));
  TORCH_CHECK(d >= 1, "er_fast: mmd_imq: d must be at least 1");
  const int64_t n = x.size(-2), m = y.size(-2);
  if (unbiased) {
    TORCH_CHECK(n >= 2 && m >= 2, "er_fast: mmd_imq: unbiased=True needs at least 2 points in x and in y, got n=",
                n, ", m=", m);
  } else {
    TORCH_CHECK(n >= 1 && m >= 1, "er_fast: mmd_imq: x and y need at least one point each, got n=", n, ", m=", m);
  }
  TORCH_CHECK(n < (int64_t(1) << 31) && m < (int64_t(1) << 31), "er_fast: mmd_imq: n and m must be < 2^31");
  TORCH_CHECK(std::isfinite(c) && c > 0, "er_fast: mmd_imq: c must be positive and finite, got ", c);
  TORCH_CHECK(!scales.empty(), "er_fast: mmd_imq: scales must not be empty");
  TORCH_CHECK((int)scales.size() <= imq::kMaxScales, "er_fast: mmd_imq: at most ", imq::kMaxScales,
              " scales are supported, got ", scales.size());
  const bool f32 = x.scalar_type() == at::kFloat;
  for (double s : scales) {
    TORCH_CHECK(std::isfinite(s) && s > 0, "er_fast: mmd_imq: every scale must be positive and finite, got ", s);
    // C_s = c * s must be a positive finite number in the compute dtype too.
    const double cs = c * s;
    const double hi = f32 ? double(std::numeric_limits<float>::max()) : std::numeric_limits<double>::max();
    const double lo = f32 ? double(std::numeric_limits<float>::min()) : std::numeric_limits<double>::min();
    TORCH_CHECK(cs >= lo && cs <= hi, "er_fast: mmd_imq: c * scale = ", cs, " is not a positive finite ",
                x.scalar_type(), " number");
  }
  MmdShape sh;
  sh.n = n;
  sh.m = m;
  sh.d = d;
  sh.batch = x.sizes().slice(0, x.dim() - 2).vec();
  sh.B = 1;
  for (auto b : sh.batch) sh.B *= b;
  return sh;
}

}  // namespace er_fast
