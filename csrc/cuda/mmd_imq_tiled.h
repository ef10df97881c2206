// Entry of the tiled CUDA kernels of er_fast::mmd_imq (csrc/cuda/mmd_imq_tiled.cu), called by the
// op's CUDA entry (csrc/cuda/mmd_imq.cu) when ER_FAST_MMD_CUDA_KERNEL=tiled. See docs/cuda_mmd.md.
#pragma once
#include <ATen/ATen.h>

#include <vector>

#include "common/mmd_imq_checks.h"

namespace er_fast {

// Fills out (and gx / gy when asked) and returns true; returns false, launching nothing, when the
// shape is outside the tiled kernels' range (d > 16 for float32, d > 8 for float64: their rows and
// column no longer fit the registers): the caller then runs the rows kernel.
// x, y: contiguous CUDA tensors checked by mmd_check; the current device and stream are used.
bool mmd_imq_tiled_cuda(const at::Tensor& x, const at::Tensor& y, const MmdShape& sh, double c,
                        const std::vector<double>& scales, bool unbiased, bool grad_x, bool grad_y, at::Tensor& out,
                        at::Tensor& gx, at::Tensor& gy);

}  // namespace er_fast
