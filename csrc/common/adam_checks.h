// Argument checks of er_fast::adam_, shared by the CPU and CUDA entry points (host code only).
// The kernels update p, m, v in place and read g, element i of each at flat index i: all four of
// one parameter must be contiguous, of one shape, dtype and device. The step count is a 0-dim
// int64 / float32 / float64 tensor on the parameters' device.
#pragma once
#include <ATen/MemoryOverlap.h>

#include <cmath>
#include <string>

#include "common/checks.h"

namespace er_fast {

inline void check_adam_args(at::TensorList params, at::TensorList grads, at::TensorList exp_avgs,
                            at::TensorList exp_avg_sqs, const at::Tensor& step, double lr, double beta1, double beta2,
                            double eps, c10::DeviceType dev) {
  const char* op = "adam_";
  const size_t n = params.size();
  ER_FAST_CHECK(grads.size() == n && exp_avgs.size() == n && exp_avg_sqs.size() == n, op,
                "params, grads, exp_avgs and exp_avg_sqs must have the same length, got ", n, ", ", grads.size(),
                ", ", exp_avgs.size(), ", ", exp_avg_sqs.size());
  ER_FAST_CHECK(step.scalar_type() == at::kLong || step.scalar_type() == at::kFloat ||
                    step.scalar_type() == at::kDouble,
                op, "step must be int64, float32 or float64, got ", step.scalar_type());
  ER_FAST_CHECK(step.dim() == 0, op, "step must be a 0-dim tensor, got shape ", step.sizes());
  ER_FAST_CHECK_DEVICE(step, dev, op, "step");
  ER_FAST_CHECK(std::isfinite(lr) && lr >= 0, op, "lr must be a finite number >= 0, got ", lr);
  ER_FAST_CHECK(beta1 >= 0 && beta1 < 1, op, "beta1 must be in [0, 1), got ", beta1);
  ER_FAST_CHECK(beta2 >= 0 && beta2 < 1, op, "beta2 must be in [0, 1), got ", beta2);
  ER_FAST_CHECK(std::isfinite(eps) && eps >= 0, op, "eps must be a finite number >= 0, got ", eps);
  for (size_t i = 0; i < n; ++i) {
    const at::Tensor& p = params[i];
    ER_FAST_CHECK_FLOAT(p, op, "params[" + std::to_string(i) + "]");
    ER_FAST_CHECK_SAME_DEVICE(step, p, op, "step", "params[" + std::to_string(i) + "]");
    const std::pair<const at::Tensor*, const char*> others[] = {
        {&grads[i], "grads"}, {&exp_avgs[i], "exp_avgs"}, {&exp_avg_sqs[i], "exp_avg_sqs"}};
    for (const auto& [t, name] : others) {
      const std::string what = std::string(name) + "[" + std::to_string(i) + "]";
      ER_FAST_CHECK_SAME_DTYPE(p, (*t), op, "params[" + std::to_string(i) + "]", what);
      ER_FAST_CHECK_SAME_DEVICE(p, (*t), op, "params[" + std::to_string(i) + "]", what);
      ER_FAST_CHECK(t->sizes() == p.sizes(), op, what, " must have the shape of params[", i, "] (", p.sizes(),
                    "), got ", t->sizes());
      ER_FAST_CHECK(t->is_contiguous(), op, what, " must be contiguous, got strides ", t->strides());
    }
    ER_FAST_CHECK(p.is_contiguous(), op, "params[", i, "] must be contiguous, got strides ", p.strides());
    // Written in place while g is read: the four must not share memory.
    const at::Tensor* four[] = {&p, &grads[i], &exp_avgs[i], &exp_avg_sqs[i]};
    for (int a = 0; a < 4; ++a)
      for (int b = a + 1; b < 4; ++b)
        ER_FAST_CHECK(four[a]->numel() == 0 || at::get_overlap_status(*four[a], *four[b]) == at::MemOverlapStatus::No,
                      op, "params[", i, "], grads[", i, "], exp_avgs[", i, "] and exp_avg_sqs[", i,
                      "] must not share memory, got an overlap");
  }
}

}  // namespace er_fast
