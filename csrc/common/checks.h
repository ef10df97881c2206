// Input checks of the kernel entry points (host code only), in ONE error style:
//   "er_fast.<op>: <what> must <rule>, got <value>"
// (the Python layer, er_fast/util/validation.py, words its messages the same way).
#pragma once
#include <ATen/ATen.h>

#define ER_FAST_CHECK(cond, op, ...) TORCH_CHECK((cond), "er_fast.", op, ": ", __VA_ARGS__)

#define ER_FAST_CHECK_FLOAT(t, op, name)                                                                 \
  ER_FAST_CHECK((t).scalar_type() == at::kFloat || (t).scalar_type() == at::kDouble, op, name,          \
                " must be float32 or float64, got ", (t).scalar_type())
#define ER_FAST_CHECK_DEVICE(t, dev_type, op, name) \
  ER_FAST_CHECK((t).device().type() == (dev_type), op, name, " must be on ", (dev_type), ", got ", (t).device())
// b must live where a does.
#define ER_FAST_CHECK_SAME_DEVICE(a, b, op, a_name, b_name)                                        \
  ER_FAST_CHECK((a).device() == (b).device(), op, b_name, " must be on the device of ", a_name, " (", \
                (a).device(), "), got ", (b).device())
#define ER_FAST_CHECK_SAME_DTYPE(a, b, op, a_name, b_name)                                                  \
  ER_FAST_CHECK((a).scalar_type() == (b).scalar_type(), op, b_name, " must be of the dtype of ", a_name, " (", \
                (a).scalar_type(), "), got ", (b).scalar_type())
