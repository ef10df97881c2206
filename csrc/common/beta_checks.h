// Argument checks of the beta ops, shared by the CPU and CUDA entry points (host code only).
#pragma once
#include "common/checks.h"

namespace er_fast {

// alpha, beta: float32/float64, same dtype and (already broadcast) shape, on a `dev` device.
inline void check_beta_params(const char* op, const at::Tensor& alpha, const at::Tensor& beta, c10::DeviceType dev) {
  ER_FAST_CHECK_FLOAT(alpha, op, "alpha");
  ER_FAST_CHECK_SAME_DTYPE(alpha, beta, op, "alpha", "beta");
  ER_FAST_CHECK(alpha.sizes() == beta.sizes(), op, "beta must have the (broadcast) shape of alpha ", alpha.sizes(),
                ", got ", beta.sizes());
  ER_FAST_CHECK_DEVICE(alpha, dev, op, "alpha");
  ER_FAST_CHECK_SAME_DEVICE(alpha, beta, op, "alpha", "beta");
}

// key: int64 (2,) or (S, 2) beside alpha; S keys need a leading dimension S. Returns S.
inline int64_t check_beta_key(const char* op, const at::Tensor& key, const at::Tensor& alpha) {
  ER_FAST_CHECK_SAME_DEVICE(alpha, key, op, "alpha", "key");
  ER_FAST_CHECK(key.scalar_type() == at::kLong, op, "key must be int64, got ", key.scalar_type());
  ER_FAST_CHECK((key.dim() == 1 && key.size(0) == 2) || (key.dim() == 2 && key.size(1) == 2 && key.size(0) >= 1), op,
                "key must have shape (2,) or (S, 2), got ", key.sizes());
  const int64_t nk = key.dim() == 1 ? 1 : key.size(0);
  ER_FAST_CHECK(nk == 1 || (alpha.dim() >= 1 && alpha.size(0) == nk), op, "alpha must have leading dimension ", nk,
                " (one per key row), got shape ", alpha.sizes());
  return nk;
}

// x: the points of beta_rsample_grad, with alpha's device, dtype and shape.
inline void check_beta_points(const char* op, const at::Tensor& x, const at::Tensor& alpha) {
  ER_FAST_CHECK_SAME_DEVICE(alpha, x, op, "alpha", "x");
  ER_FAST_CHECK_SAME_DTYPE(alpha, x, op, "alpha", "x");
  ER_FAST_CHECK(x.sizes() == alpha.sizes(), op, "x must have the (broadcast) shape of alpha and beta ", alpha.sizes(),
                ", got ", x.sizes());
}

}  // namespace er_fast
