// Argument checks of the beta ops, shared by the CPU and CUDA entry points (host code only).
#pragma once
#include "common/checks.h"

namespace er_fast {

// alpha, beta: float32/float64, same dtype and (already broadcast) shape, on a `dev` device.
inline void check_beta_params(const at::Tensor& alpha, const at::Tensor& beta, c10::DeviceType dev) {
  ER_CHECK_FLOAT(alpha, "alpha");
  TORCH_CHECK(beta.scalar_type() == alpha.scalar_type(), "er_fast: alpha and beta must have the same dtype, got ",
              alpha.scalar_type(), " and ", beta.scalar_type());
  TORCH_CHECK(alpha.sizes() == beta.sizes(), "er_fast: alpha and beta must have the same (broadcast) shape, got ",
              alpha.sizes(), " and ", beta.sizes());
  ER_CHECK_DEVICE(alpha, dev, "alpha");
  ER_CHECK_SAME_DEVICE(alpha, beta);
}

// key: int64 (2,) or (S, 2) beside alpha; S keys need a leading dimension S. Returns S.
inline int64_t check_beta_key(const at::Tensor& key, const at::Tensor& alpha) {
  ER_CHECK_SAME_DEVICE(alpha, key);
  TORCH_CHECK(key.scalar_type() == at::kLong, "er_fast: key must be int64, got ", key.scalar_type());
  TORCH_CHECK((key.dim() == 1 && key.size(0) == 2) || (key.dim() == 2 && key.size(1) == 2 && key.size(0) >= 1),
              "er_fast: key must have shape (2,) or (S, 2), got ", key.sizes());
  const int64_t nk = key.dim() == 1 ? 1 : key.size(0);
  TORCH_CHECK(nk == 1 || (alpha.dim() >= 1 && alpha.size(0) == nk), "er_fast: ", nk,
              " keys need a leading dimension of ", nk, ", got shape ", alpha.sizes());
  return nk;
}

// x: the points of beta_rsample_grad, with alpha's device, dtype and shape.
inline void check_beta_points(const at::Tensor& x, const at::Tensor& alpha) {
  ER_CHECK_SAME_DEVICE(x, alpha);
  TORCH_CHECK(x.scalar_type() == alpha.scalar_type(), "er_fast: x must have the dtype of alpha, got ",
              x.scalar_type(), " and ", alpha.scalar_type());
  TORCH_CHECK(x.sizes() == alpha.sizes(), "er_fast: x, alpha and beta must have the same (broadcast) shape, got ",
              x.sizes(), " and ", alpha.sizes());
}

}  // namespace er_fast
