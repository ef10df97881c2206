// Every er_fast op schema lives in this one block; each backend registers its kernels
// with TORCH_LIBRARY_IMPL in csrc/cpu/<op>.cpp and csrc/cuda/<op>.cu.
// Autograd and fake (meta) kernels are registered from Python (er_fast/ops/*.py).
//
// The Python module init; the CMake build (a plain C++ library for libtorch users) defines
// ER_FAST_NO_PYTHON and needs no Python.h.
#ifndef ER_FAST_NO_PYTHON
#include <Python.h>

extern "C" {
// Importing er_fast._C loads this shared object, which runs the static registrations below.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}
#endif

#include <torch/library.h>

#include <string>

#include "common/cpu_dispatch.h"

TORCH_LIBRARY(er_fast, m) {
  // MMD² with the IMQ kernel sum_s C_s/(C_s+|a-b|²), C_s = c*scales[s].
  // Returns (mmd (...), d mmd/dx or empty, d mmd/dy or empty): the gradients per unit upstream
  // gradient are computed in the same pass when grad_x / grad_y ask for them.
  m.def("mmd_imq(Tensor x, Tensor y, float c, float[] scales, bool unbiased, bool grad_x, bool grad_y)"
        " -> (Tensor, Tensor, Tensor)");
  // x ~ Beta(alpha, beta) elementwise (alpha, beta already broadcast to the output shape); key is
  // int64 (2,) or (S, 2): one Philox stream per leading slice. Returns (x, dx/dalpha, dx/dbeta);
  // the gradients are computed in the same pass when with_grad, else they are empty.
  m.def("beta_rsample(Tensor alpha, Tensor beta, Tensor key, bool with_grad) -> (Tensor, Tensor, Tensor)");
  // The implicit reparameterization gradient (dx/dalpha, dx/dbeta) at given points x.
  m.def("beta_rsample_grad(Tensor x, Tensor alpha, Tensor beta) -> (Tensor, Tensor)");
  // circle_embed: z (..., k) -> (..., k, 2) = R(theta) (cos 2 pi z, sin 2 pi z), z reduced mod 1
  // first; theta (optional) broadcasts to z's shape. so2_rotate: p (..., 2) rotated by theta,
  // theta broadcastable to p.shape[:-1]. The backward ops take the forward's output and return
  // (grad wrt z or p, grad wrt theta at the broadcast shape); an output not asked for is empty.
  m.def("circle_embed(Tensor z, Tensor? theta) -> Tensor");
  m.def("circle_embed_backward(Tensor grad, Tensor out, bool grad_z, bool grad_theta) -> (Tensor, Tensor)");
  m.def("so2_rotate(Tensor p, Tensor theta) -> Tensor");
  m.def("so2_rotate_backward(Tensor grad, Tensor out, Tensor theta, bool grad_p, bool grad_theta)"
        " -> (Tensor, Tensor)");
  // Counter-based random numbers for S seeds in one launch (common/random_math.h, docs/random.md):
  // output (S, *size) of dtype (float32 / float64) on the seeds' device; slice s depends only on
  // (seeds[s], stream, counter, element index). counter is an int64 0-dim tensor on the seeds'
  // device, read by the kernel (never on the host for CUDA), so it can advance inside a CUDA graph.
  // uniform: on the open interval (0, 1); normal: standard normal (Box-Muller). Not differentiable.
  m.def("philox_uniform(Tensor seeds, Tensor counter, int stream, int[] size, ScalarType dtype) -> Tensor");
  m.def("philox_normal(Tensor seeds, Tensor counter, int stream, int[] size, ScalarType dtype) -> Tensor");
  // One Adam step (torch.optim.Adam's defaults: no weight decay, no amsgrad) over lists of tensors,
  // in place: step (a 0-dim int64 / float32 / float64 tensor on the params' device) is incremented
  // by the op itself, bias corrections come from it inside the kernel (CUDA-graph friendly). Each
  // element's update is the same fixed sequence of correctly rounded operations on every path
  // (common/adam_math.h, docs/adam.md), so it never depends on where the element sits.
  m.def("adam_(Tensor(a!)[] params, Tensor[] grads, Tensor(b!)[] exp_avgs, Tensor(c!)[] exp_avg_sqs,"
        " Tensor(d!) step, float lr, float beta1, float beta2, float eps) -> ()");
  // Which copy of the multiversioned CPU kernels runs: "avx512", "avx2" or "baseline"
  // (common/cpu_dispatch.h; ER_FAST_CPU_ISA can force a lower one).
  m.def("cpu_isa() -> str", [] { return std::string(er_fast::cpu_isa_name(er_fast::cpu_isa())); });
}
