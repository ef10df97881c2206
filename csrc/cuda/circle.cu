// CUDA kernels of circle_embed / so2_rotate and their backward ops: grid-stride elementwise
// loops over contiguous tensors, same maths as the CPU kernels (common/circle_math.h).
// One launch per op. When all pointers are 16-byte aligned, each thread takes 4 float / 2 double
// elements with 16-byte loads and stores (the (.., 2) pairs too); otherwise one element per thread.
// Both paths call the same per-element functions, so their results are bitwise the same.
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

// ---- per-element maths (the only maths: the scalar and the vector kernels both call these)
// (cos, sin)(2 pi z), rotated by th when has_th.
template <typename T>
__device__ __forceinline__ void circle_point(T z, bool has_th, T th, T& x, T& y) {
  T sz, cz;
  sincos_turn(z, sz, cz);
  if (has_th) {
    T st, ct;
    sincos_angle(th, st, ct);
    x = ct * cz - st * sz;
    y = st * cz + ct * sz;
  } else {
    x = cz;
    y = sz;
  }
}

// d/dtheta of the point: (g . d out/dtheta) = gy * ox - gx * oy.
template <typename T>
__device__ __forceinline__ T circle_angle_grad(T gx, T gy, T ox, T oy) {
  return gy * ox - gx * oy;
}

template <typename T>
__device__ __forceinline__ void so2_point(T px, T py, T th, T& x, T& y) {
  T s, c;
  sincos_angle(th, s, c);
  x = c * px - s * py;
  y = s * px + c * py;
}

template <typename T>
__device__ __forceinline__ void so2_unrotate(T gx, T gy, T th, T& x, T& y) {
  T s, c;
  sincos_angle(th, s, c);
  x = c * gx + s * gy;  // R(theta)^T g
  y = c * gy - s * gx;
}

// ---- scalar kernels: grid-stride over elements (any alignment, any n)
template <typename T>
__device__ __forceinline__ void circle_fwd_one(const T* z, const T* th, T* out, int64_t i) {
  T x, y;
  circle_point(z[i], th != nullptr, th != nullptr ? th[i] : T(0), x, y);
  out[2 * i] = x;
  out[2 * i + 1] = y;
}

template <typename T>
__device__ __forceinline__ void circle_bwd_one(const T* g, const T* o, T* dz, T* dth, int64_t i) {
  const T a = circle_angle_grad(g[2 * i], g[2 * i + 1], o[2 * i], o[2 * i + 1]);
  if (dz != nullptr) dz[i] = static_cast<T>(trig::kTwoPi) * a;
  if (dth != nullptr) dth[i] = a;
}

template <typename T>
__device__ __forceinline__ void so2_fwd_one(const T* p, const T* th, T* out, int64_t i) {
  so2_point(p[2 * i], p[2 * i + 1], th[i], out[2 * i], out[2 * i + 1]);
}

template <typename T>
__device__ __forceinline__ void so2_bwd_one(const T* g, const T* o, const T* th, T* dp, T* dth, int64_t i) {
  const T gx = g[2 * i], gy = g[2 * i + 1];
  if (dp != nullptr) so2_unrotate(gx, gy, th[i], dp[2 * i], dp[2 * i + 1]);
  if (dth != nullptr) dth[i] = circle_angle_grad(gx, gy, o[2 * i], o[2 * i + 1]);
}

#define ER_FAST_GRID_STRIDE(i, n)                                                        \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)

template <typename T>
__global__ void circle_fwd_kernel(const T* __restrict__ z, const T* __restrict__ th, T* __restrict__ out, int64_t n) {
  ER_FAST_GRID_STRIDE(i, n) circle_fwd_one(z, th, out, i);
}

template <typename T>
__global__ void circle_bwd_kernel(const T* __restrict__ g, const T* __restrict__ o, T* __restrict__ dz,
                                  T* __restrict__ dth, int64_t n) {
  ER_FAST_GRID_STRIDE(i, n) circle_bwd_one(g, o, dz, dth, i);
}

template <typename T>
__global__ void so2_fwd_kernel(const T* __restrict__ p, const T* __restrict__ th, T* __restrict__ out, int64_t n) {
  ER_FAST_GRID_STRIDE(i, n) so2_fwd_one(p, th, out, i);
}

template <typename T>
__global__ void so2_bwd_kernel(const T* __restrict__ g, const T* __restrict__ o, const T* __restrict__ th,
                               T* __restrict__ dp, T* __restrict__ dth, int64_t n) {
  ER_FAST_GRID_STRIDE(i, n) so2_bwd_one(g, o, th, dp, dth, i);
}

// ---- vector kernels: each thread takes kN consecutive elements with 16-byte loads and stores
// (float4 / double2) of the per-element arrays and of the (.., 2) pairs; the last n % kN elements
// go through the scalar per-element functions. Used when every pointer is 16-byte aligned.
template <typename T>
struct Vec;
template <>
struct Vec<float> {
  using type = float4;
  static constexpr int kN = 4;
  __device__ static void get(float4 v, float* a) { a[0] = v.x, a[1] = v.y, a[2] = v.z, a[3] = v.w; }
  __device__ static float4 make(const float* a) { return make_float4(a[0], a[1], a[2], a[3]); }
};
template <>
struct Vec<double> {
  using type = double2;
  static constexpr int kN = 2;
  __device__ static void get(double2 v, double* a) { a[0] = v.x, a[1] = v.y; }
  __device__ static double2 make(const double* a) { return make_double2(a[0], a[1]); }
};

// kN values of a per-element array / 2 kN values of a pair array, chunk v.
template <typename T>
__device__ __forceinline__ void load_vec(const T* p, int64_t v, T* a) {
  Vec<T>::get(reinterpret_cast<const typename Vec<T>::type*>(p)[v], a);
}
template <typename T>
__device__ __forceinline__ void store_vec(T* p, int64_t v, const T* a) {
  reinterpret_cast<typename Vec<T>::type*>(p)[v] = Vec<T>::make(a);
}
template <typename T>
__device__ __forceinline__ void load_pairs(const T* p, int64_t v, T* a) {
  load_vec(p, 2 * v, a);
  load_vec(p, 2 * v + 1, a + Vec<T>::kN);
}
template <typename T>
__device__ __forceinline__ void store_pairs(T* p, int64_t v, const T* a) {
  store_vec(p, 2 * v, a);
  store_vec(p, 2 * v + 1, a + Vec<T>::kN);
}

// Vector chunk v (< n / kN) by vec(v), then the n % kN tail elements i by tail(i), one per thread of
// the grid-stride range.
template <typename T, typename VecFn, typename TailFn>
__device__ __forceinline__ void vec_loop(int64_t n, VecFn vec, TailFn tail) {
  constexpr int kN = Vec<T>::kN;
  const int64_t nv = n / kN;
  ER_FAST_GRID_STRIDE(v, nv + n % kN) {
    if (v < nv)
      vec(v);
    else
      tail(nv * kN + (v - nv));
  }
}

template <typename T>
__global__ void circle_fwd_vec_kernel(const T* __restrict__ z, const T* __restrict__ th, T* __restrict__ out,
                                      int64_t n) {
  constexpr int kN = Vec<T>::kN;
  vec_loop<T>(
      n,
      [&](int64_t v) {
        T zv[kN], tv[kN] = {}, ov[2 * kN];
        load_vec(z, v, zv);
        if (th != nullptr) load_vec(th, v, tv);
#pragma unroll
        for (int l = 0; l < kN; ++l) circle_point(zv[l], th != nullptr, tv[l], ov[2 * l], ov[2 * l + 1]);
        store_pairs(out, v, ov);
      },
      [&](int64_t i) { circle_fwd_one(z, th, out, i); });
}

template <typename T>
__global__ void circle_bwd_vec_kernel(const T* __restrict__ g, const T* __restrict__ o, T* __restrict__ dz,
                                      T* __restrict__ dth, int64_t n) {
  constexpr int kN = Vec<T>::kN;
  vec_loop<T>(
      n,
      [&](int64_t v) {
        T gv[2 * kN], ov[2 * kN], a[kN], za[kN];
        load_pairs(g, v, gv);
        load_pairs(o, v, ov);
#pragma unroll
        for (int l = 0; l < kN; ++l) {
          a[l] = circle_angle_grad(gv[2 * l], gv[2 * l + 1], ov[2 * l], ov[2 * l + 1]);
          za[l] = static_cast<T>(trig::kTwoPi) * a[l];
        }
        if (dz != nullptr) store_vec(dz, v, za);
        if (dth != nullptr) store_vec(dth, v, a);
      },
      [&](int64_t i) { circle_bwd_one(g, o, dz, dth, i); });
}

template <typename T>
__global__ void so2_fwd_vec_kernel(const T* __restrict__ p, const T* __restrict__ th, T* __restrict__ out,
                                   int64_t n) {
  constexpr int kN = Vec<T>::kN;
  vec_loop<T>(
      n,
      [&](int64_t v) {
        T pv[2 * kN], tv[kN], ov[2 * kN];
        load_pairs(p, v, pv);
        load_vec(th, v, tv);
#pragma unroll
        for (int l = 0; l < kN; ++l) so2_point(pv[2 * l], pv[2 * l + 1], tv[l], ov[2 * l], ov[2 * l + 1]);
        store_pairs(out, v, ov);
      },
      [&](int64_t i) { so2_fwd_one(p, th, out, i); });
}

template <typename T>
__global__ void so2_bwd_vec_kernel(const T* __restrict__ g, const T* __restrict__ o, const T* __restrict__ th,
                                   T* __restrict__ dp, T* __restrict__ dth, int64_t n) {
  constexpr int kN = Vec<T>::kN;
  vec_loop<T>(
      n,
      [&](int64_t v) {
        T gv[2 * kN];
        load_pairs(g, v, gv);
        if (dp != nullptr) {
          T tv[kN], pv[2 * kN];
          load_vec(th, v, tv);
#pragma unroll
          for (int l = 0; l < kN; ++l) so2_unrotate(gv[2 * l], gv[2 * l + 1], tv[l], pv[2 * l], pv[2 * l + 1]);
          store_pairs(dp, v, pv);
        }
        if (dth != nullptr) {
          T ov[2 * kN], a[kN];
          load_pairs(o, v, ov);
#pragma unroll
          for (int l = 0; l < kN; ++l) a[l] = circle_angle_grad(gv[2 * l], gv[2 * l + 1], ov[2 * l], ov[2 * l + 1]);
          store_vec(dth, v, a);
        }
      },
      [&](int64_t i) { so2_bwd_one(g, o, th, dp, dth, i); });
}

// Every pointer (null ones aside) 16-byte aligned: the vector kernels apply.
bool aligned16(std::initializer_list<const void*> ps) {
  for (const void* p : ps)
    if (p != nullptr && reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}

unsigned int blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned int>(std::max<int64_t>(1, std::min<int64_t>(b, 1 << 20)));  // grid-stride beyond
}

// Threads of the vector kernels: one per kN elements, plus one per tail element.
template <typename T>
unsigned int vec_blocks(int64_t n) {
  return blocks_for(n / Vec<T>::kN + n % Vec<T>::kN);
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
    const scalar_t* zp = z.const_data_ptr<scalar_t>();
    const scalar_t* tp = th.defined() ? th.const_data_ptr<scalar_t>() : nullptr;
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    if (aligned16({zp, tp, op}))
      circle_fwd_vec_kernel<scalar_t><<<vec_blocks<scalar_t>(n), kThreads, 0, stream>>>(zp, tp, op, n);
    else
      circle_fwd_kernel<scalar_t><<<blocks_for(n), kThreads, 0, stream>>>(zp, tp, op, n);
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
    const scalar_t* gp = grad.const_data_ptr<scalar_t>();
    const scalar_t* op = out.const_data_ptr<scalar_t>();
    scalar_t* dzp = grad_z ? dz.mutable_data_ptr<scalar_t>() : nullptr;
    scalar_t* dtp = grad_theta ? dth.mutable_data_ptr<scalar_t>() : nullptr;
    if (aligned16({gp, op, dzp, dtp}))
      circle_bwd_vec_kernel<scalar_t><<<vec_blocks<scalar_t>(n), kThreads, 0, stream>>>(gp, op, dzp, dtp, n);
    else
      circle_bwd_kernel<scalar_t><<<blocks_for(n), kThreads, 0, stream>>>(gp, op, dzp, dtp, n);
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
    const scalar_t* pp = p.const_data_ptr<scalar_t>();
    const scalar_t* tp = th.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    if (aligned16({pp, tp, op}))
      so2_fwd_vec_kernel<scalar_t><<<vec_blocks<scalar_t>(n), kThreads, 0, stream>>>(pp, tp, op, n);
    else
      so2_fwd_kernel<scalar_t><<<blocks_for(n), kThreads, 0, stream>>>(pp, tp, op, n);
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
    const scalar_t* gp = grad.const_data_ptr<scalar_t>();
    const scalar_t* op = out.const_data_ptr<scalar_t>();
    const scalar_t* tp = th.const_data_ptr<scalar_t>();
    scalar_t* dpp = grad_p ? dp.mutable_data_ptr<scalar_t>() : nullptr;
    scalar_t* dtp = grad_theta ? dth.mutable_data_ptr<scalar_t>() : nullptr;
    if (aligned16({gp, op, tp, dpp, dtp}))
      so2_bwd_vec_kernel<scalar_t><<<vec_blocks<scalar_t>(n), kThreads, 0, stream>>>(gp, op, tp, dpp, dtp, n);
    else
      so2_bwd_kernel<scalar_t><<<blocks_for(n), kThreads, 0, stream>>>(gp, op, tp, dpp, dtp, n);
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
