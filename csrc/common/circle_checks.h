// Host-side argument checks and layout preparation shared by the CPU and CUDA entry points of
// circle_embed / so2_rotate. Kernels see contiguous tensors of one shape; a broadcast theta is
// materialized here (expand + contiguous), and the autograd layer sums its gradient back.
#pragma once
#include <ATen/ATen.h>
#include <ATen/ExpandUtils.h>

#include "common/checks.h"

namespace er_fast {
namespace circle {

inline void check_theta(const char* op, const at::Tensor& theta, const at::Tensor& like, const char* like_name,
                        at::IntArrayRef target, const char* target_name) {
  ER_FAST_CHECK_FLOAT(theta, op, "theta");
  ER_FAST_CHECK_SAME_DTYPE(like, theta, op, like_name, "theta");
  ER_FAST_CHECK_SAME_DEVICE(like, theta, op, like_name, "theta");
  ER_FAST_CHECK(at::is_expandable_to(theta.sizes(), target), op, "theta must broadcast to ", target_name, " ", target,
                ", got shape ", theta.sizes());
}

// z (..., k) and an optional theta broadcastable to z.shape -> contiguous (z, theta or undefined).
inline std::pair<at::Tensor, at::Tensor> prep_circle(const at::Tensor& z, const std::optional<at::Tensor>& theta) {
  ER_FAST_CHECK_FLOAT(z, "circle_embed", "z");
  ER_FAST_CHECK(z.dim() >= 1, "circle_embed", "z must have shape (..., k), got a 0-dim tensor");
  at::Tensor th;
  if (theta.has_value() && theta->defined()) {
    check_theta("circle_embed", *theta, z, "z", z.sizes(), "z's shape");
    th = theta->expand(z.sizes()).contiguous();
  }
  return {z.contiguous(), th};
}

// p (..., 2), theta broadcastable to p.shape[:-1] -> contiguous (p, theta).
inline std::pair<at::Tensor, at::Tensor> prep_so2(const at::Tensor& p, const at::Tensor& theta) {
  ER_FAST_CHECK_FLOAT(p, "so2_rotate", "p");
  ER_FAST_CHECK(p.dim() >= 1 && p.size(-1) == 2, "so2_rotate", "p must have shape (..., 2), got ", p.sizes());
  auto batch = p.sizes().slice(0, p.dim() - 1);
  check_theta("so2_rotate", theta, p, "p", batch, "p.shape[:-1]");
  return {p.contiguous(), theta.expand(batch).contiguous()};
}

// grad and out of shape (..., 2), same dtype and device.
inline void check_grad_out(const at::Tensor& grad, const at::Tensor& out, const char* op) {
  ER_FAST_CHECK_FLOAT(out, op, "out");
  ER_FAST_CHECK_SAME_DTYPE(out, grad, op, "out", "grad");
  ER_FAST_CHECK_SAME_DEVICE(out, grad, op, "out", "grad");
  ER_FAST_CHECK(out.dim() >= 1 && out.size(-1) == 2, op, "out must have shape (..., 2), got ", out.sizes());
  ER_FAST_CHECK(grad.sizes() == out.sizes(), op, "grad must have the shape of out ", out.sizes(), ", got ",
                grad.sizes());
}

}  // namespace circle
}  // namespace er_fast
