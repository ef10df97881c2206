// Host-side argument checks and layout preparation shared by the CPU and CUDA entry points of
// circle_embed / so2_rotate. Kernels see contiguous tensors of one shape; a broadcast theta is
// materialized here (expand + contiguous), and the autograd layer sums its gradient back.
#pragma once
#include <ATen/ATen.h>
#include <ATen/ExpandUtils.h>

#include "common/checks.h"

namespace er_fast {
namespace manifold {

inline void check_theta(const at::Tensor& theta, const at::Tensor& like, at::IntArrayRef target, const char* op,
                        const char* target_name) {
  ER_CHECK_FLOAT(theta, "theta");
  TORCH_CHECK(theta.scalar_type() == like.scalar_type(), "er_fast.", op, ": theta has dtype ", theta.scalar_type(),
              " but the other input has ", like.scalar_type());
  ER_CHECK_SAME_DEVICE(theta, like);
  TORCH_CHECK(at::is_expandable_to(theta.sizes(), target), "er_fast.", op, ": theta of shape ", theta.sizes(),
              " does not broadcast to ", target_name, " ", target);
}

// z (..., k) and an optional theta broadcastable to z.shape -> contiguous (z, theta or undefined).
inline std::pair<at::Tensor, at::Tensor> prep_circle(const at::Tensor& z, const std::optional<at::Tensor>& theta) {
  ER_CHECK_FLOAT(z, "z");
  TORCH_CHECK(z.dim() >= 1, "er_fast.circle_embed: z must have shape (..., k), got a 0-dim tensor");
  at::Tensor th;
  if (theta.has_value() && theta->defined()) {
    check_theta(*theta, z, z.sizes(), "circle_embed", "z's shape");
    th = theta->expand(z.sizes()).contiguous();
  }
  return {z.contiguous(), th};
}

// p (..., 2), theta broadcastable to p.shape[:-1] -> contiguous (p, theta).
inline std::pair<at::Tensor, at::Tensor> prep_so2(const at::Tensor& p, const at::Tensor& theta) {
  ER_CHECK_FLOAT(p, "p");
  TORCH_CHECK(p.dim() >= 1 && p.size(-1) == 2, "er_fast.so2_rotate: p must have shape (..., 2), got ", p.sizes());
  auto batch = p.sizes().slice(0, p.dim() - 1);
  check_theta(theta, p, batch, "so2_rotate", "p.shape[:-1]");
  return {p.contiguous(), theta.expand(batch).contiguous()};
}

// grad and out of shape (..., 2), same dtype and device.
inline void check_grad_out(const at::Tensor& grad, const at::Tensor& out, const char* op) {
  ER_CHECK_FLOAT(out, "out");
  TORCH_CHECK(grad.scalar_type() == out.scalar_type(), "er_fast.", op, ": grad has dtype ", grad.scalar_type(),
              " but out has ", out.scalar_type());
  ER_CHECK_SAME_DEVICE(grad, out);
  TORCH_CHECK(out.dim() >= 1 && out.size(-1) == 2, "er_fast.", op, ": out must have shape (..., 2), got ",
              out.sizes());
  TORCH_CHECK(grad.sizes() == out.sizes(), "er_fast.", op, ": grad has shape ", grad.sizes(), " but out has ",
              out.sizes());
}

}  // namespace manifold
}  // namespace er_fast
