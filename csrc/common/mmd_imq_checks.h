// Argument checks of er_fast::mmd_imq shared by the CPU and CUDA entry points (host code).
#pragma once
#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <vector>

#include "common/checks.h"
#include "common/mmd_imq_math.h"

namespace er_fast {

struct MmdShape {
  int64_t B, n, m, d;
  std::vector<int64_t> batch;
};

inline MmdShape mmd_check(const at::Tensor& x, const at::Tensor& y, double c, const std::vector<double>& scales,
                          bool unbiased, at::DeviceType dev) {
  constexpr const char* op = "mmd_imq";
  ER_FAST_CHECK_FLOAT(x, op, "x");
  ER_FAST_CHECK_SAME_DTYPE(x, y, op, "x", "y");
  ER_FAST_CHECK_DEVICE(x, dev, op, "x");
  ER_FAST_CHECK_SAME_DEVICE(x, y, op, "x", "y");
  ER_FAST_CHECK(x.dim() >= 2 && y.dim() >= 2, op, "x and y must be of shape (..., n, d), got ", x.sizes(), " and ",
                y.sizes());
  ER_FAST_CHECK(x.dim() == y.dim() && x.sizes().slice(0, x.dim() - 2) == y.sizes().slice(0, y.dim() - 2), op,
                "x and y must be of the same batch shape, got ", x.sizes(), " and ", y.sizes());
  const int64_t d = x.size(-1);
  ER_FAST_CHECK(d == y.size(-1), op, "x and y must be of the same d, got ", d, " and ", y.size(-1));
  ER_FAST_CHECK(d >= 1, op, "d must be at least 1, got ", d);
  const int64_t n = x.size(-2), m = y.size(-2);
  if (unbiased) {
    ER_FAST_CHECK(n >= 2 && m >= 2, op, "x and y must be samples of at least 2 points each when unbiased=True, got n=", n,
                  ", m=", m);
  } else {
    ER_FAST_CHECK(n >= 1 && m >= 1, op, "x and y must be samples of at least one point each, got n=", n, ", m=", m);
  }
  ER_FAST_CHECK(n < (int64_t(1) << 31) && m < (int64_t(1) << 31), op, "n and m must be < 2^31, got n=", n, ", m=", m);
  ER_FAST_CHECK(std::isfinite(c) && c > 0, op, "c must be positive and finite, got ", c);
  ER_FAST_CHECK(!scales.empty(), op, "scales must be non-empty, got []");
  ER_FAST_CHECK((int)scales.size() <= imq::kMaxScales, op, "scales must be a list of at most ", imq::kMaxScales,
                " values, got ", scales.size(), " values");
  const bool f32 = x.scalar_type() == at::kFloat;
  for (double s : scales) {
    ER_FAST_CHECK(std::isfinite(s) && s > 0, op, "every scale must be positive and finite, got ", s);
    // C_s = c * s must be a positive finite number in the compute dtype too.
    const double cs = c * s;
    const double hi = f32 ? double(std::numeric_limits<float>::max()) : std::numeric_limits<double>::max();
    const double lo = f32 ? double(std::numeric_limits<float>::min()) : std::numeric_limits<double>::min();
    ER_FAST_CHECK(cs >= lo && cs <= hi, op, "c * scale must be a positive normal ", x.scalar_type(), " number, got ",
                  cs);
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
