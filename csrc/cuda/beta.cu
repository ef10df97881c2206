// CUDA kernels of er_fast::beta_rsample and er_fast::beta_rsample_grad: one thread per element,
// the same double-precision maths as the CPU kernel (csrc/common/beta_math.h), the same Philox
// streams, so CPU and GPU draw the same samples up to floating-point contraction differences.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>

#include "common/beta_math.h"
#include "common/beta_checks.h"

namespace er_fast {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void beta_sample_kernel(const T* __restrict__ A, const T* __restrict__ B, const int64_t* __restrict__ K,
                                   int64_t nk, int64_t sn, int64_t n, double lo, double hi, T* __restrict__ X,
                                   T* __restrict__ DA, T* __restrict__ DB) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t s = nk == 1 ? 0 : i / sn;
    const int64_t local = i - s * sn;
    const PhiloxKey k = make_philox_key(K[2 * s], K[2 * s + 1], local);
    const double a = static_cast<double>(A[i]), b = static_cast<double>(B[i]);
    double x = beta::sample(a, b, k, static_cast<uint32_t>(local));
    // Round to the output dtype, then clamp into the open interval (0, 1) of that dtype.
    x = static_cast<double>(static_cast<T>(x));
    x = x < lo ? lo : (x > hi ? hi : x);
    X[i] = static_cast<T>(x);
    if (DA != nullptr) {
      double da, db;
      beta::grad(x, a, b, da, db, beta::cf_tol<T>());
      DA[i] = static_cast<T>(da);
      DB[i] = static_cast<T>(db);
    }
  }
}

template <typename T>
__global__ void beta_grad_kernel(const T* __restrict__ X, const T* __restrict__ A, const T* __restrict__ B, int64_t n,
                                 T* __restrict__ DA, T* __restrict__ DB) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    double da, db;
    beta::grad(static_cast<double>(X[i]), static_cast<double>(A[i]), static_cast<double>(B[i]), da, db,
               beta::cf_tol<T>());
    DA[i] = static_cast<T>(da);
    DB[i] = static_cast<T>(db);
  }
}

int blocks_for(int64_t n) {
  return static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, int64_t{1} << 20));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> beta_rsample_cuda(const at::Tensor& alpha, const at::Tensor& beta,
                                                                 const at::Tensor& key, bool with_grad) {
  check_beta_params("beta_rsample", alpha, beta, at::kCUDA);
  const int64_t nk = check_beta_key("beta_rsample", key, alpha);
  const c10::cuda::CUDAGuard guard(alpha.device());
  const at::Tensor A = alpha.contiguous(), B = beta.contiguous(), K = key.contiguous();
  at::Tensor X = at::empty(A.sizes(), A.options());
  at::Tensor DA = with_grad ? at::empty(A.sizes(), A.options()) : at::empty({0}, A.options());
  at::Tensor DB = with_grad ? at::empty(A.sizes(), A.options()) : at::empty({0}, A.options());
  const int64_t n = A.numel();
  if (n == 0) return {X, DA, DB};
  const int64_t sn = nk == 1 ? n : n / nk;
  const auto stream = c10::cuda::getCurrentCUDAStream();
  if (A.scalar_type() == at::kFloat) {
    const double lo = std::numeric_limits<float>::min(), hi = 1.0 - std::numeric_limits<float>::epsilon() / 2;
    beta_sample_kernel<float><<<blocks_for(n), kThreads, 0, stream>>>(
        A.data_ptr<float>(), B.data_ptr<float>(), K.data_ptr<int64_t>(), nk, sn, n, lo, hi, X.data_ptr<float>(),
        with_grad ? DA.data_ptr<float>() : nullptr, with_grad ? DB.data_ptr<float>() : nullptr);
  } else {
    const double lo = std::numeric_limits<double>::min(), hi = 1.0 - std::numeric_limits<double>::epsilon() / 2;
    beta_sample_kernel<double><<<blocks_for(n), kThreads, 0, stream>>>(
        A.data_ptr<double>(), B.data_ptr<double>(), K.data_ptr<int64_t>(), nk, sn, n, lo, hi, X.data_ptr<double>(),
        with_grad ? DA.data_ptr<double>() : nullptr, with_grad ? DB.data_ptr<double>() : nullptr);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {X, DA, DB};
}

std::tuple<at::Tensor, at::Tensor> beta_rsample_grad_cuda(const at::Tensor& x, const at::Tensor& alpha,
                                                          const at::Tensor& beta) {
  check_beta_params("beta_rsample_grad", alpha, beta, at::kCUDA);
  check_beta_points("beta_rsample_grad", x, alpha);
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor X = x.contiguous(), A = alpha.contiguous(), B = beta.contiguous();
  at::Tensor DA = at::empty(X.sizes(), X.options()), DB = at::empty(X.sizes(), X.options());
  const int64_t n = X.numel();
  if (n == 0) return {DA, DB};
  const auto stream = c10::cuda::getCurrentCUDAStream();
  if (X.scalar_type() == at::kFloat) {
    beta_grad_kernel<float><<<blocks_for(n), kThreads, 0, stream>>>(
        X.data_ptr<float>(), A.data_ptr<float>(), B.data_ptr<float>(), n, DA.data_ptr<float>(), DB.data_ptr<float>());
  } else {
    beta_grad_kernel<double><<<blocks_for(n), kThreads, 0, stream>>>(X.data_ptr<double>(), A.data_ptr<double>(),
                                                                     B.data_ptr<double>(), n, DA.data_ptr<double>(),
                                                                     DB.data_ptr<double>());
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {DA, DB};
}

}  // namespace

TORCH_LIBRARY_IMPL(er_fast, CUDA, m) {
  m.impl("beta_rsample", &beta_rsample_cuda);
  m.impl("beta_rsample_grad", &beta_rsample_grad_cuda);
}

}  // namespace er_fast
