// CPU kernels of circle_embed / so2_rotate and their backward ops.
//
// Every op is one pass over memory: contiguous inputs, interleaved (x, y) pairs, branch-free
// sin/cos polynomials (common/circle_math.h) so GCC vectorizes each loop in each ISA clone
// (ER_FAST_CPU_MULTIVERSION), and at::parallel_for over element ranges.
// Backward passes use the saved output instead of recomputing sin/cos where they can:
//   circle_embed: d out / dz = 2 pi (-out_y, out_x), d out / d theta = (-out_y, out_x);
//   so2_rotate:   d out / d theta = (-out_y, out_x), d out / dp = R(theta) (needs cos, sin theta).
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>

#include "common/cpu_dispatch.h"
#include "common/circle_checks.h"
#include "common/circle_math.h"

namespace er_fast {
namespace {

using trig::rad_in_range;
using trig::sincos_rad;
using trig::sincos_turn;

constexpr int64_t kGrain = 16384;  // elements per task: ~100-200 KB of traffic

// Recompute out[i] with libm's double sin/cos for the (rare) elements whose angle exceeds the
// polynomial reduction's range. Scalar: only runs when a chunk holds such an angle.
template <typename T>
void circle_fix_big(const T* z, const T* th, T* out, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) {
    if (rad_in_range(th[i])) continue;
    T sz, cz;
    sincos_turn(z[i], sz, cz);
    const T st = static_cast<T>(std::sin(static_cast<double>(th[i])));
    const T ct = static_cast<T>(std::cos(static_cast<double>(th[i])));
    out[2 * i] = ct * cz - st * sz;
    out[2 * i + 1] = st * cz + ct * sz;
  }
}

template <typename T>
ER_FAST_INLINE void circle_fwd(const T* __restrict__ z, const T* __restrict__ th, T* __restrict__ out, int64_t b,
                               int64_t e) {
  if (th == nullptr) {
    for (int64_t i = b; i < e; ++i) {
      T s, c;
      sincos_turn(z[i], s, c);
      out[2 * i] = c;
      out[2 * i + 1] = s;
    }
    return;
  }
  int big = 0;
  for (int64_t i = b; i < e; ++i) {
    T sz, cz, st, ct;
    sincos_turn(z[i], sz, cz);
    sincos_rad(th[i], st, ct);
    out[2 * i] = ct * cz - st * sz;  // R(theta) (cos 2 pi z, sin 2 pi z)
    out[2 * i + 1] = st * cz + ct * sz;
    big |= !rad_in_range(th[i]);
  }
  if (big) circle_fix_big(z, th, out, b, e);
}

// a = g . (-out_y, out_x); dz = 2 pi a, dtheta = a.
template <typename T, bool kZ, bool kTh>
ER_FAST_INLINE void circle_bwd_loop(const T* __restrict__ g, const T* __restrict__ o, T* __restrict__ dz,
                                    T* __restrict__ dth, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) {
    const T a = g[2 * i + 1] * o[2 * i] - g[2 * i] * o[2 * i + 1];
    if (kZ) dz[i] = static_cast<T>(trig::kTwoPi) * a;
    if (kTh) dth[i] = a;
  }
}

template <typename T>
ER_FAST_INLINE void circle_bwd(const T* g, const T* o, T* dz, T* dth, int64_t b, int64_t e) {
  if (dz && dth) circle_bwd_loop<T, true, true>(g, o, dz, dth, b, e);
  else if (dz) circle_bwd_loop<T, true, false>(g, o, dz, dth, b, e);
  else if (dth) circle_bwd_loop<T, false, true>(g, o, dz, dth, b, e);
}

template <typename T>
void so2_fix_big(const T* p, const T* th, T* out, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) {
    if (rad_in_range(th[i])) continue;
    const T s = static_cast<T>(std::sin(static_cast<double>(th[i])));
    const T c = static_cast<T>(std::cos(static_cast<double>(th[i])));
    out[2 * i] = c * p[2 * i] - s * p[2 * i + 1];
    out[2 * i + 1] = s * p[2 * i] + c * p[2 * i + 1];
  }
}

template <typename T>
ER_FAST_INLINE void so2_fwd(const T* __restrict__ p, const T* __restrict__ th, T* __restrict__ out, int64_t b,
                            int64_t e) {
  int big = 0;
  for (int64_t i = b; i < e; ++i) {
    T s, c;
    sincos_rad(th[i], s, c);
    const T x = p[2 * i], y = p[2 * i + 1];
    out[2 * i] = c * x - s * y;
    out[2 * i + 1] = s * x + c * y;
    big |= !rad_in_range(th[i]);
  }
  if (big) so2_fix_big(p, th, out, b, e);
}

// dp = R(-theta) g (rotation is orthogonal); dtheta = g . (-out_y, out_x).
template <typename T>
void so2_bwd_fix_big(const T* g, const T* th, T* dp, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) {
    if (rad_in_range(th[i])) continue;
    const T s = static_cast<T>(std::sin(static_cast<double>(th[i])));
    const T c = static_cast<T>(std::cos(static_cast<double>(th[i])));
    dp[2 * i] = c * g[2 * i] + s * g[2 * i + 1];
    dp[2 * i + 1] = c * g[2 * i + 1] - s * g[2 * i];
  }
}

template <typename T, bool kTh>
ER_FAST_INLINE void so2_bwd_loop(const T* __restrict__ g, const T* __restrict__ o, const T* __restrict__ th,
                                 T* __restrict__ dp, T* __restrict__ dth, int64_t b, int64_t e) {
  int big = 0;
  for (int64_t i = b; i < e; ++i) {
    T s, c;
    sincos_rad(th[i], s, c);
    const T gx = g[2 * i], gy = g[2 * i + 1];
    dp[2 * i] = c * gx + s * gy;
    dp[2 * i + 1] = c * gy - s * gx;
    if (kTh) dth[i] = gy * o[2 * i] - gx * o[2 * i + 1];
    big |= !rad_in_range(th[i]);
  }
  if (big) so2_bwd_fix_big(g, th, dp, b, e);
}

template <typename T>
ER_FAST_INLINE void so2_bwd(const T* g, const T* o, const T* th, T* dp, T* dth, int64_t b, int64_t e) {
  if (dp && dth) {
    so2_bwd_loop<T, true>(g, o, th, dp, dth, b, e);
  } else if (dp) {
    so2_bwd_loop<T, false>(g, o, th, dp, dth, b, e);
  } else if (dth) {
    circle_bwd_loop<T, false, true>(g, o, nullptr, dth, b, e);  // same formula, no sin/cos
  }
}

// Non-template entry points: one set of ISA clones per dtype.
ER_FAST_CPU_MULTIVERSION(void, circle_fwd_k, (const float* z, const float* th, float* o, int64_t b, int64_t e), (z, th, o, b, e), { circle_fwd(z, th, o, b, e); })
ER_FAST_CPU_MULTIVERSION(void, circle_fwd_k, (const double* z, const double* th, double* o, int64_t b, int64_t e), (z, th, o, b, e), { circle_fwd(z, th, o, b, e); })
ER_FAST_CPU_MULTIVERSION(void, circle_bwd_k, (const float* g, const float* o, float* dz, float* dth, int64_t b, int64_t e), (g, o, dz, dth, b, e), { circle_bwd(g, o, dz, dth, b, e); })
ER_FAST_CPU_MULTIVERSION(void, circle_bwd_k, (const double* g, const double* o, double* dz, double* dth, int64_t b, int64_t e), (g, o, dz, dth, b, e), { circle_bwd(g, o, dz, dth, b, e); })
ER_FAST_CPU_MULTIVERSION(void, so2_fwd_k, (const float* p, const float* th, float* o, int64_t b, int64_t e), (p, th, o, b, e), { so2_fwd(p, th, o, b, e); })
ER_FAST_CPU_MULTIVERSION(void, so2_fwd_k, (const double* p, const double* th, double* o, int64_t b, int64_t e), (p, th, o, b, e), { so2_fwd(p, th, o, b, e); })
ER_FAST_CPU_MULTIVERSION(void, so2_bwd_k, (const float* g, const float* o, const float* th, float* dp, float* dth, int64_t b, int64_t e), (g, o, th, dp, dth, b, e), { so2_bwd(g, o, th, dp, dth, b, e); })
ER_FAST_CPU_MULTIVERSION(void, so2_bwd_k, (const double* g, const double* o, const double* th, double* dp, double* dth, int64_t b, int64_t e), (g, o, th, dp, dth, b, e), { so2_bwd(g, o, th, dp, dth, b, e); })

template <typename T>
const T* ptr_or_null(const at::Tensor& t) {
  return t.defined() ? t.const_data_ptr<T>() : nullptr;
}
template <typename T>
T* mut_ptr_or_null(at::Tensor& t) {
  return t.defined() ? t.mutable_data_ptr<T>() : nullptr;
}

std::vector<int64_t> with_pair(at::IntArrayRef s) {
  std::vector<int64_t> v(s.begin(), s.end());
  v.push_back(2);
  return v;
}

at::Tensor circle_embed_cpu(const at::Tensor& z_, const std::optional<at::Tensor>& theta_) {
  ER_FAST_CHECK_DEVICE(z_, at::kCPU, "circle_embed", "z");
  auto [z, th] = circle::prep_circle(z_, theta_);
  at::Tensor out = at::empty(with_pair(z.sizes()), z.options());
  const int64_t n = z.numel();
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "circle_embed_cpu", [&] {
    const scalar_t* zp = z.const_data_ptr<scalar_t>();
    const scalar_t* tp = ptr_or_null<scalar_t>(th);
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) {
      circle_fwd_k(zp, tp, op, b, e);
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> circle_embed_backward_cpu(const at::Tensor& grad_, const at::Tensor& out_,
                                                             bool grad_z, bool grad_theta) {
  ER_FAST_CHECK_DEVICE(out_, at::kCPU, "circle_embed_backward", "out");
  circle::check_grad_out(grad_, out_, "circle_embed_backward");
  const at::Tensor grad = grad_.contiguous(), out = out_.contiguous();
  auto batch = out.sizes().slice(0, out.dim() - 1);
  at::Tensor dz = grad_z ? at::empty(batch, out.options()) : at::empty({0}, out.options());
  at::Tensor dth = grad_theta ? at::empty(batch, out.options()) : at::empty({0}, out.options());
  at::Tensor dz_k = grad_z ? dz : at::Tensor(), dth_k = grad_theta ? dth : at::Tensor();
  const int64_t n = out.numel() / 2;
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "circle_embed_backward_cpu", [&] {
    const scalar_t* gp = grad.const_data_ptr<scalar_t>();
    const scalar_t* op = out.const_data_ptr<scalar_t>();
    scalar_t* dzp = mut_ptr_or_null<scalar_t>(dz_k);
    scalar_t* dtp = mut_ptr_or_null<scalar_t>(dth_k);
    if (!dzp && !dtp) return;
    at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) {
      circle_bwd_k(gp, op, dzp, dtp, b, e);
    });
  });
  return {dz, dth};
}

at::Tensor so2_rotate_cpu(const at::Tensor& p_, const at::Tensor& theta_) {
  ER_FAST_CHECK_DEVICE(p_, at::kCPU, "so2_rotate", "p");
  auto [p, th] = circle::prep_so2(p_, theta_);
  at::Tensor out = at::empty(p.sizes(), p.options());
  const int64_t n = th.numel();
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "so2_rotate_cpu", [&] {
    const scalar_t* pp = p.const_data_ptr<scalar_t>();
    const scalar_t* tp = th.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) {
      so2_fwd_k(pp, tp, op, b, e);
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> so2_rotate_backward_cpu(const at::Tensor& grad_, const at::Tensor& out_,
                                                           const at::Tensor& theta_, bool grad_p, bool grad_theta) {
  ER_FAST_CHECK_DEVICE(out_, at::kCPU, "so2_rotate_backward", "out");
  circle::check_grad_out(grad_, out_, "so2_rotate_backward");
  auto [out, th] = circle::prep_so2(out_, theta_);
  const at::Tensor grad = grad_.contiguous();
  at::Tensor dp = grad_p ? at::empty(out.sizes(), out.options()) : at::empty({0}, out.options());
  at::Tensor dth = grad_theta ? at::empty(th.sizes(), out.options()) : at::empty({0}, out.options());
  at::Tensor dp_k = grad_p ? dp : at::Tensor(), dth_k = grad_theta ? dth : at::Tensor();
  const int64_t n = th.numel();
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "so2_rotate_backward_cpu", [&] {
    const scalar_t* gp = grad.const_data_ptr<scalar_t>();
    const scalar_t* op = out.const_data_ptr<scalar_t>();
    const scalar_t* tp = th.const_data_ptr<scalar_t>();
    scalar_t* dpp = mut_ptr_or_null<scalar_t>(dp_k);
    scalar_t* dtp = mut_ptr_or_null<scalar_t>(dth_k);
    if (!dpp && !dtp) return;
    at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) {
      so2_bwd_k(gp, op, tp, dpp, dtp, b, e);
    });
  });
  return {dp, dth};
}

}  // namespace

TORCH_LIBRARY_IMPL(er_fast, CPU, m) {
  m.impl("circle_embed", &circle_embed_cpu);
  m.impl("circle_embed_backward", &circle_embed_backward_cpu);
  m.impl("so2_rotate", &so2_rotate_cpu);
  m.impl("so2_rotate_backward", &so2_rotate_backward_cpu);
}

}  // namespace er_fast
