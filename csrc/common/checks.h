// Small input checks shared by the CPU and CUDA entry points (host code only).
#pragma once
#include <ATen/ATen.h>

#define ER_CHECK_FLOAT(t, name)                                                                  \
  TORCH_CHECK((t).scalar_type() == at::kFloat || (t).scalar_type() == at::kDouble, "er_fast: ", \
              name, " must be float32 or float64, got ", (t).scalar_type())
#define ER_CHECK_DEVICE(t, dev_type, name)                                                        \
  TORCH_CHECK((t).device().type() == (dev_type), "er_fast: ", name, " must be on ", (dev_type), \
              ", got ", (t).device())
#define ER_CHECK_SAME_DEVICE(a, b)                                                          \
  TORCH_CHECK((a).device() == (b).device(), "er_fast: tensors on different devices: ", \
              (a).device(), " and ", (b).device())
