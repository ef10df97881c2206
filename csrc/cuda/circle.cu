// CUDA kernels of circle_embed / so2_rotate and their backward ops: grid-stride elementwise
// loops over contiguous tensors, same maths as the CPU kernels (common/circle_math.h).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "common/circle_checks.h"
#include "common/circle_math.h"

namespace er_fast {
namespace {

using trig::rad_in_range;
using trig::sincos_rad;
using trig::sincos_turn;

constexpr int kThreads = 256;

// sin, cos of an angle in radians; libm's double sincos beyond the polynomial reduction's range.
template <typename T>
__device__ __forceinline__ void sincos_angle(T x, T& s, T& c) {
  if (rad_in_range(x)) {
    sincos_rad(x, s, c);
  } else {
    double sd, cd;
    ::sincos(static_cast<double>(x), &sd, &cd);
    s = static_cast<T>(sd);
    c = static_cast<T>(cd);
  }
}

template <typename T>
__global__ void circle_fwd_kernel(const T* __restrict__ z, const T* __restrict__ th, T* __restrict__ out, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    T sz, cz;
    sincos_turn(z[i], sz, cz);
    if (th != nullptr) {
      T st, ct;
      sincos_angle(th[i], st, ct);
      const T x = ct * cz - st * sz, y = st * cz + ct * sz;
      cz = x;
      sz = y;
    }
    out[2 * i] = cz;
    out[2 * i + 1] = sz;
  }
}

template <typename T>
__global__ void circle_bwd_kernel(const T* __restrict__ g, const T* __restrict__ o, T* __restrict__ dz,
                                  T* __restrict__ dth, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const T a = g[2 * i + 1] * o[2 * i] - g[2 * i] * o[2 * i + 1];
    if (dz != nullptr) dz[i] = static_cast<T>(trig::kTwoPi) * a;
    if (dth != nullptr) dth[i] = a;
  }
}

template <typename T>
__global__ void so2_fwd_kernel(const T* __restrict__ p, const T* __restrict__ th, T* __restrict__ out, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    T s, c;
    sincos_angle(th[i], s, c);
    const T x = p[2 * i], y = p[2 * i + 1];
    out[2 * i] = c * x - s * y;
    out[2 * i + 1] = s * x + c * y;
  }
}

template <typename T>
__global__ void so2_bwd_kernel(const T* __restrict__ g, const T* __restrict__ o, const T* __restrict__ th,
                               T* __restrict__ dp, T* __restrict__ dth, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const T gx = g[2 * i], gy = g[2 * i + 1];
    if (dp != nullptr) {
      T s, c;
      sincos_angle(th[i], s, c);
      dp[2 * i] = c * gx + s * gy;  // R(theta)^T g
      dp[2 * i + 1] = c * gy - s * gx;
    }
    if (dth != nullptr) dth[i] = gy * o[2 * i] - gx * o[2 * i + 1];
  }
}

unsigned int blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned int>(std::max<int64_t>(1, std::min<int64_t>(b, 1 << 20)));  // grid-stride beyond
}

std::vector<int64_t> with_pair(at::IntArrayRef s) {
  std::vector<int64_t> v(s.begin(), s.end());
  v.push_back(2);
  return v;
}

at::Tensor circle_embed_cuda(const at::Tensor& z_, const std::optional<at::Tensor>& theta_) {
  ER_FAST_CHECK_DEVICE(z_, at::kCUDA, "circle_embed", "z");
  auto [z, th] = circle::prep_circle(z_, theta_);
  c10::cuda::CUDAGuard guard(z.device());
  at::Tensor out = at::empty(with_pair(z.sizes()), z.options());
  const int64_t n = z.numel();
  if (n == 0) return out;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "circle_embed_cuda", [&] {
    circle_fwd_kernel<scalar_t><<<blocks_for(n), kThreads, 0, stream>>>(
        z.const_data_ptr<scalar_t>(), th.defined() ? th.const_data_ptr<scalar_t>() : nullptr,
        out.mutable_data_ptr<scalar_t>(), n);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> circle_embed_backward_cuda(const at::Tensor& grad_, const at::Tensor& out_,
                                                              bool grad_z, bool grad_theta) {
  ER_FAST_CHECK_DEVICE(out_, at::kCUDA, "circle_embed_backward", "out");
  circle::check_grad_out(grad_, out_, "circle_embed_backward");
  c10::cuda::CUDAGuard guard(out_.device());
  const at::Tensor grad = grad_.contiguous(), out = out_.contiguous();
  auto batch = out.sizes().slice(0, out.dim() - 1);
  at::Tensor dz = at::empty(grad_z ? batch : at::IntArrayRef{0}, out.options());
  at::Tensor dth = at::empty(grad_theta ? batch : at::IntArrayRef{0}, out.options());
  const int64_t n = out.numel() / 2;
  if (n == 0 || !(grad_z || grad_theta)) return {dz, dth};
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "circle_embed_backward_cuda", [&] {
    circle_bwd_kernel<scalar_t><<<blocks_for(n), kThreads, 0, stream>>>(
        grad.const_data_ptr<scalar_t>(), out.const_data_ptr<scalar_t>(),
        grad_z ? dz.mutable_data_ptr<scalar_t>() : nullptr, grad_theta ? dth.mutable_data_ptr<scalar_t>() : nullptr,
        n);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {dz, dth};
}

at::Tensor so2_rotate_cuda(const at::Tensor& p_, const at::Tensor& theta_) {
  ER_FAST_CHECK_DEVICE(p_, at::kCUDA, "so2_rotate", "p");
  auto [p, th] = circle::prep_so2(p_, theta_);
  c10::cuda::CUDAGuard guard(p.device());
  at::Tensor out = at::empty(p.sizes(), p.options());
  const int64_t n = th.numel();
  if (n == 0) return out;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "so2_rotate_cuda", [&] {
    so2_fwd_kernel<scalar_t><<<blocks_for(n), kThreads, 0, stream>>>(
        p.const_data_ptr<scalar_t>(), th.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), n);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> so2_rotate_backward_cuda(const at::Tensor& grad_, const at::Tensor& out_,
                                                            const at::Tensor& theta_, bool grad_p, bool grad_theta) {
  ER_FAST_CHECK_DEVICE(out_, at::kCUDA, "so2_rotate_backward", "out");
  circle::check_grad_out(grad_, out_, "so2_rotate_backward");
  auto [out, th] = circle::prep_so2(out_, theta_);
  c10::cuda::CUDAGuard guard(out.device());
  const at::Tensor grad = grad_.contiguous();
  at::Tensor dp = at::empty(grad_p ? out.sizes() : at::IntArrayRef{0}, out.options());
  at::Tensor dth = at::empty(grad_theta ? th.sizes() : at::IntArrayRef{0}, out.options());
  const int64_t n = th.numel();
  if (n == 0 || !(grad_p || grad_theta)) return {dp, dth};
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "so2_rotate_backward_cuda", [&] {
    so2_bwd_kernel<scalar_t><<<blocks_for(n), kThreads, 0, stream>>>(
        grad.const_data_ptr<scalar_t>(), out.const_data_ptr<scalar_t>(), th.const_data_ptr<scalar_t>(),
        grad_p ? dp.mutable_data_ptr<scalar_t>() : nullptr, grad_theta ? dth.mutable_data_ptr<scalar_t>() : nullptr,
        n);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {dp, dth};
}

}  // namespace

TORCH_LIBRARY_IMPL(er_fast, CUDA, m) {
  m.impl("circle_embed", &circle_embed_cuda);
  m.impl("circle_embed_backward", &circle_embed_backward_cuda);
  m.impl("so2_rotate", &so2_rotate_cuda);
  m.impl("so2_rotate_backward", &so2_rotate_backward_cuda);
}

}  // namespace er_fast
