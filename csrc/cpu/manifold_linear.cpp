// CPU kernels of circle_embed_linear: y[s, b, :] = bias[s] + W[s] . flatten(circle_embed(z[s, b], theta[s, b])).
//
// The embedding of one row is 2k numbers, computed in registers; the op's traffic is the output
// (forward) and the upstream gradient (backward), each touched once:
//   forward : per row, y = bias + sum_j Wt[j] e_j  (Wt = W transposed to (S, 2k, out), L1-resident)
//   backward: per seed s, one pass over g[s] (B x out) accumulates db, dWt and de (dot products),
//             then dz, dtheta from de and the recomputed embedding.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <vector>

#include "common/checks.h"
#include "common/cpu_dispatch.h"
#include "common/sincos.h"

namespace er_fast {
namespace {

// e[0..2k) of one row: (cos, sin) of each coordinate, rotated by theta (theta may be null).
template <typename T>
ER_FAST_INLINE void embed_row(const T* z, const T* th, int64_t k, T* e) {
  for (int64_t i = 0; i < k; ++i) {
    T s, c;
    trig::sincos_turn(z[i], s, c);
    if (th) {
      T st, ct;
      if (trig::rad_in_range(th[i])) {
        trig::sincos_rad(th[i], st, ct);
      } else {
        st = static_cast<T>(std::sin(static_cast<double>(th[i])));
        ct = static_cast<T>(std::cos(static_cast<double>(th[i])));
      }
      const T x = ct * c - st * s, y = st * c + ct * s;
      c = x;
      s = y;
    }
    e[2 * i] = c;
    e[2 * i + 1] = s;
  }
}

// e[2i], e[2i+1] for n consecutive coordinates (vectorized like circle_embed's own loop).
template <typename T>
ER_FAST_INLINE void embed_block(const T* __restrict__ z, const T* __restrict__ th, T* __restrict__ e, int64_t n) {
  if (!th) {
    for (int64_t i = 0; i < n; ++i) {
      T s, c;
      trig::sincos_turn(z[i], s, c);
      e[2 * i] = c;
      e[2 * i + 1] = s;
    }
    return;
  }
  int big = 0;
  for (int64_t i = 0; i < n; ++i) {
    T sz, cz, st, ct;
    trig::sincos_turn(z[i], sz, cz);
    trig::sincos_rad(th[i], st, ct);
    e[2 * i] = ct * cz - st * sz;
    e[2 * i + 1] = st * cz + ct * sz;
    big |= !trig::rad_in_range(th[i]);
  }
  if (big)
    for (int64_t i = 0; i < n; ++i)
      if (!trig::rad_in_range(th[i])) embed_row(z + i, th + i, 1, e + 2 * i);
}

constexpr int64_t kRows = 64;  // rows embedded per block (k <= 32: at most 4096 values)

struct Dims {
  int64_t S, B, k, out;
};

// rows [r0, r1) of the flattened (S*B) rows.
template <typename T>
ER_FAST_INLINE void lin_fwd(const T* __restrict__ z, const T* __restrict__ th, const T* __restrict__ wt,
                            const T* __restrict__ bias, T* __restrict__ y, Dims d, int64_t r0, int64_t r1) {
  const int64_t k2 = 2 * d.k, out = d.out;
  T ebuf[2 * kRows * 32];
  for (int64_t rb = r0; rb < r1; rb += kRows) {
    const int64_t re = std::min(r1, rb + kRows);
    embed_block(z + rb * d.k, th ? th + rb * d.k : nullptr, ebuf, (re - rb) * d.k);
    for (int64_t r = rb; r < re; ++r) {
      const int64_t s = r / d.B;
      const T* e = ebuf + (r - rb) * k2;
      T* __restrict__ yr = y + r * out;
      const T* __restrict__ w = wt + s * k2 * out;
      if (bias) {
        const T* __restrict__ br = bias + s * out;
        for (int64_t o = 0; o < out; ++o) yr[o] = br[o];
      } else {
        for (int64_t o = 0; o < out; ++o) yr[o] = T(0);
      }
      for (int64_t j = 0; j < k2; ++j) {
        const T ej = e[j];
        const T* __restrict__ wj = w + j * out;
        for (int64_t o = 0; o < out; ++o) yr[o] += wj[o] * ej;
      }
    }
  }
}

// seeds [s0, s1): one pass over g[s].
template <typename T>
ER_FAST_INLINE void lin_bwd(const T* __restrict__ g, const T* __restrict__ z, const T* __restrict__ th,
                            const T* __restrict__ wt, T* __restrict__ dz, T* __restrict__ dth, T* __restrict__ dwt,
                            T* __restrict__ db, Dims d, int64_t s0, int64_t s1) {
  const int64_t k2 = 2 * d.k, out = d.out;
  T ebuf[2 * kRows * 32], de[64];
  for (int64_t s = s0; s < s1; ++s) {
    T* __restrict__ dws = dwt + s * k2 * out;
    T* __restrict__ dbs = db ? db + s * out : nullptr;
    const T* __restrict__ w = wt + s * k2 * out;
    for (int64_t i = 0; i < k2 * out; ++i) dws[i] = T(0);
    if (dbs)
      for (int64_t o = 0; o < out; ++o) dbs[o] = T(0);
    for (int64_t b = 0; b < d.B; ++b) {
      const int64_t r = s * d.B + b;
      if (b % kRows == 0) {
        const int64_t nb = std::min(kRows, d.B - b);
        embed_block(z + r * d.k, th ? th + r * d.k : nullptr, ebuf, nb * d.k);
      }
      const T* e = ebuf + (b % kRows) * k2;
      const T* __restrict__ gr = g + r * out;
      if (dbs)
        for (int64_t o = 0; o < out; ++o) dbs[o] += gr[o];
      for (int64_t j = 0; j < k2; ++j) {
        const T ej = e[j];
        T* __restrict__ dwj = dws + j * out;
        const T* __restrict__ wj = w + j * out;
        T acc = T(0);
#pragma omp simd reduction(+ : acc)
        for (int64_t o = 0; o < out; ++o) {
          dwj[o] += gr[o] * ej;
          acc += gr[o] * wj[o];
        }
        de[j] = acc;
      }
      for (int64_t i = 0; i < d.k; ++i) {
        const T a = de[2 * i + 1] * e[2 * i] - de[2 * i] * e[2 * i + 1];
        if (dz) dz[r * d.k + i] = static_cast<T>(trig::kTwoPi) * a;
        if (dth) dth[r * d.k + i] = a;
      }
    }
  }
}

ER_FAST_CPU_CLONES void lin_fwd_k(const float* z, const float* th, const float* wt, const float* bias, float* y, Dims d,
                                  int64_t r0, int64_t r1) {
  lin_fwd(z, th, wt, bias, y, d, r0, r1);
}
ER_FAST_CPU_CLONES void lin_fwd_k(const double* z, const double* th, const double* wt, const double* bias, double* y,
                                  Dims d, int64_t r0, int64_t r1) {
  lin_fwd(z, th, wt, bias, y, d, r0, r1);
}
ER_FAST_CPU_CLONES void lin_bwd_k(const float* g, const float* z, const float* th, const float* wt, float* dz,
                                  float* dth, float* dwt, float* db, Dims d, int64_t s0, int64_t s1) {
  lin_bwd(g, z, th, wt, dz, dth, dwt, db, d, s0, s1);
}
ER_FAST_CPU_CLONES void lin_bwd_k(const double* g, const double* z, const double* th, const double* wt, double* dz,
                                  double* dth, double* dwt, double* db, Dims d, int64_t s0, int64_t s1) {
  lin_bwd(g, z, th, wt, dz, dth, dwt, db, d, s0, s1);
}

// Prototype contract (the Python layer normalizes): z (S, B, k), theta (S, B, k) or undefined,
// weight (S, out, 2k), bias (S, out) or undefined, all one float dtype, CPU.
at::Tensor circle_embed_linear_cpu(const at::Tensor& z_, const at::Tensor& weight, const std::optional<at::Tensor>& bias_,
                                   const std::optional<at::Tensor>& theta_) {
  ER_CHECK_FLOAT(z_, "z");
  TORCH_CHECK(z_.dim() == 3 && weight.dim() == 3 && weight.size(0) == z_.size(0) && weight.size(2) == 2 * z_.size(2),
              "circle_embed_linear: expected z (S, B, k) and weight (S, out, 2k)");
  TORCH_CHECK(z_.size(2) <= 32, "circle_embed_linear: k <= 32");
  const at::Tensor z = z_.contiguous();
  const at::Tensor wt = weight.transpose(1, 2).contiguous();
  at::Tensor th = theta_.has_value() && theta_->defined() ? theta_->expand(z.sizes()).contiguous() : at::Tensor();
  at::Tensor bias = bias_.has_value() && bias_->defined() ? bias_->contiguous() : at::Tensor();
  Dims d{z.size(0), z.size(1), z.size(2), weight.size(1)};
  at::Tensor y = at::empty({d.S, d.B, d.out}, z.options());
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "circle_embed_linear_cpu", [&] {
    const scalar_t* tp = th.defined() ? th.const_data_ptr<scalar_t>() : nullptr;
    const scalar_t* bp = bias.defined() ? bias.const_data_ptr<scalar_t>() : nullptr;
    const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, d.out));
    at::parallel_for(0, d.S * d.B, grain, [&](int64_t r0, int64_t r1) {
      lin_fwd_k(z.const_data_ptr<scalar_t>(), tp, wt.const_data_ptr<scalar_t>(), bp, y.mutable_data_ptr<scalar_t>(), d,
                r0, r1);
    });
  });
  return y;
}

// Returns (dz, dweight, dbias, dtheta); dtheta at z's shape (empty when theta is undefined).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> circle_embed_linear_backward_cpu(
    const at::Tensor& grad_, const at::Tensor& z_, const at::Tensor& weight, const std::optional<at::Tensor>& theta_,
    bool has_bias) {
  const at::Tensor g = grad_.contiguous(), z = z_.contiguous();
  const at::Tensor wt = weight.transpose(1, 2).contiguous();
  at::Tensor th = theta_.has_value() && theta_->defined() ? theta_->expand(z.sizes()).contiguous() : at::Tensor();
  Dims d{z.size(0), z.size(1), z.size(2), weight.size(1)};
  at::Tensor dz = at::empty_like(z), dwt = at::empty_like(wt);
  at::Tensor db = has_bias ? at::empty({d.S, d.out}, z.options()) : at::empty({0}, z.options());
  at::Tensor dth = th.defined() ? at::empty_like(z) : at::empty({0}, z.options());
  AT_DISPATCH_FLOATING_TYPES(z.scalar_type(), "circle_embed_linear_backward_cpu", [&] {
    const scalar_t* tp = th.defined() ? th.const_data_ptr<scalar_t>() : nullptr;
    at::parallel_for(0, d.S, 1, [&](int64_t s0, int64_t s1) {
      lin_bwd_k(g.const_data_ptr<scalar_t>(), z.const_data_ptr<scalar_t>(), tp, wt.const_data_ptr<scalar_t>(),
                dz.mutable_data_ptr<scalar_t>(), th.defined() ? dth.mutable_data_ptr<scalar_t>() : nullptr,
                dwt.mutable_data_ptr<scalar_t>(), has_bias ? db.mutable_data_ptr<scalar_t>() : nullptr, d, s0, s1);
    });
  });
  return {dz, dwt.transpose(1, 2), db, dth};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(er_fast_proto, m) {
  m.def("circle_embed_linear(Tensor z, Tensor weight, Tensor? bias, Tensor? theta) -> Tensor");
  m.def("circle_embed_linear_backward(Tensor grad, Tensor z, Tensor weight, Tensor? theta, bool has_bias)"
        " -> (Tensor, Tensor, Tensor, Tensor)");
}
TORCH_LIBRARY_IMPL(er_fast_proto, CPU, m) {
  m.impl("circle_embed_linear", &circle_embed_linear_cpu);
  m.impl("circle_embed_linear_backward", &circle_embed_linear_backward_cpu);
}

}  // namespace er_fast
