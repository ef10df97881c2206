// CPU kernel of er_fast::mmd_imq: fused MMD² + gradients with the multi-scale IMQ kernel.
//
// Layout and loop nest (per batch element; the compute core is in cpu/mmd_imq_kernel.h):
//  * x and y are copied to SoA (d, n_pad) so the inner loops run over blocks of 64 consecutive
//    columns as 512-bit GCC vectors; rows are read from the AoS input.
//  * Three terms: xx and yy use only i<j pairs (symmetry), xy all n*m pairs. A row's own
//    gradient accumulates in vector lanes; the columns' gradients (the other side of each pair)
//    in a float SoA buffer flushed into double after every 32 rows. So float partial sums over
//    short runs, double accumulation across them.
//  * The kernel uses the rational form (one division per pair, common/mmd_imq_math.h) for a row against
//    a super-block of columns whenever the bounding box of those columns proves every distance
//    is below its overflow bound; otherwise the direct form (S divisions).
//  * Parallel over (batch element, row range) units; each unit owns its gradient buffers,
//    merged in a fixed order: results do not depend on scheduling (only on the thread count).
// Memory: O((n+m) d) per unit; no n x m buffer.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "common/mmd_imq_checks.h"
#include "cpu/mmd_imq_kernel.h"

namespace er_fast {
namespace {

using namespace mmd_cpu;

// The hot entry points, one per dtype, cloned for AVX-512 / AVX2 / baseline.
template <int VB>
ER_FAST_INLINE void run_unit_f32_impl(Unit<float>& u, const Consts<float>& kc) { run_unit_impl<float, VB>(u, kc); }
template <int VB>
ER_FAST_INLINE void run_unit_f64_impl(Unit<double>& u, const Consts<double>& kc) { run_unit_impl<double, VB>(u, kc); }
ER_FAST_CPU_MULTIVERSION_VEC(void, run_unit_f32, (Unit<float>& u, const Consts<float>& kc), (u, kc), run_unit_f32_impl)
ER_FAST_CPU_MULTIVERSION_VEC(void, run_unit_f64, (Unit<double>& u, const Consts<double>& kc), (u, kc), run_unit_f64_impl)
inline void run_unit(Unit<float>& u, const Consts<float>& kc) { run_unit_f32(u, kc); }
inline void run_unit(Unit<double>& u, const Consts<double>& kc) { run_unit_f64(u, kc); }

// Zero-filled, 64-byte aligned buffer (vector loads never straddle cache lines), optionally
// starting `skew` elements into its allocation.
template <typename T>
struct AlignedVec {
  std::unique_ptr<T[], void (*)(void*)> mem{nullptr, std::free};
  T* ptr = nullptr;
  void assign(int64_t count, int64_t skew = 0) {
    const size_t bytes = (size_t(count + skew) * sizeof(T) + 63) / 64 * 64 + 64;
    mem.reset(static_cast<T*>(std::aligned_alloc(64, bytes)));
    ER_FAST_CHECK(mem, "mmd_imq", "scratch memory must be available, got an allocation failure for ", bytes, " bytes");
    std::memset(mem.get(), 0, bytes);
    ptr = mem.get() + skew;
  }
  T* data() const { return ptr; }
  const T& operator[](int64_t i) const { return ptr[i]; }
};

template <typename T>
void transpose_pad(const T* src, int64_t rows, int64_t d, int64_t ld, T* dst) {
  for (int64_t k = 0; k < d; ++k) {
    T* out = dst + k * ld;
    for (int64_t r = 0; r < rows; ++r) out[r] = src[r * d + k];
    std::fill(out + rows, out + ld, T(0));
  }
}

// Split the n+m rows (x rows, then y rows) into R ranges of about equal pair counts.
inline std::vector<int64_t> split_rows(int64_t n, int64_t m, int64_t R) {
  auto work = [&](int64_t q) { return q < n ? double(n - 1 - q) + double(m) : double(m - 1 - (q - n)); };
  double total = 0;
  for (int64_t q = 0; q < n + m; ++q) total += work(q);
  std::vector<int64_t> cuts{0};
  double acc = 0;
  for (int64_t q = 0; q < n + m && (int64_t)cuts.size() < R; ++q) {
    acc += work(q);
    if (acc >= total * double(cuts.size()) / double(R)) cuts.push_back(q + 1);
  }
  while ((int64_t)cuts.size() < R) cuts.push_back(n + m);
  cuts.push_back(n + m);
  return cuts;  // R + 1 boundaries
}

// What every unit of one call shares: sizes, SoA strides, the row split, constants and pointers.
template <typename T>
struct Plan {
  int64_t B, n, m, d, npad, mpad;
  int64_t R;                  // units (row ranges) per batch element
  std::vector<int64_t> cuts;  // R + 1 boundaries over the n + m rows
  Consts<T> kc;
  int S;
  bool unbiased, grad_x, grad_y;
  MmdWeights w;
  const T* x;
  const T* y;
  T* out;
  T* gx;  // null when not asked for
  T* gy;
};

// Step 1: sizes and the split into units. A batch element gets several units (row ranges) only
// when there are fewer batch elements than threads and enough pairs to be worth splitting.
template <typename T>
Plan<T> make_plan(const MmdShape& sh, double c, const std::vector<double>& scales, bool unbiased, bool grad_x,
                  bool grad_y) {
  Plan<T> p;
  p.B = sh.B, p.n = sh.n, p.m = sh.m, p.d = sh.d;
  // SoA row stride: whole blocks plus one vector, so the d rows of a buffer (and the column
  // partials written next to them) do not sit at multiples of 4 KiB (4K-aliasing stalls).
  constexpr int64_t W = Simd<T, 64>::W;  // the widest copy's lanes (narrower copies use less)
  p.npad = round_up(p.n, kMaxJB) + W;
  p.mpad = round_up(p.m, kMaxJB) + W;
  const int64_t threads = at::get_num_threads();
  const double pairs = 0.5 * double(p.n) * p.n + 0.5 * double(p.m) * p.m + double(p.n) * p.m;
  p.R = 1;
  if (p.B < threads)
    p.R = std::max<int64_t>(1, std::min<int64_t>((threads + p.B - 1) / p.B, int64_t(pairs / 65536)));
  p.cuts = split_rows(p.n, p.m, p.R);
  p.kc = imq::make_consts<T>(c, scales);
  p.S = static_cast<int>(scales.size());
  p.unbiased = unbiased, p.grad_x = grad_x, p.grad_y = grad_y;
  p.w = mmd_weights(p.n, p.m, unbiased);
  return p;
}

// Per-unit scratch. The transposes are shared by the units of one batch element when R > 1.
template <typename T>
struct UnitBuffers {
  AlignedVec<T> xT, yT, cx, cy, racc;
  AlignedVec<double> gxd, gyd;
  void alloc(const Plan<T>& p, bool own_transposes) {
    if (own_transposes) {
      xT.assign(p.d * p.npad);
      yT.assign(p.d * p.mpad);
    }
    // The column partials start 1 KiB + 64 B into their allocation: off the 4 KiB phase of the
    // transposed data they are updated together with.
    cx.assign(p.grad_x ? p.d * p.npad : 0, 1088 / sizeof(T));
    cy.assign(p.grad_y ? p.d * p.mpad : 0, 1088 / sizeof(T));
    racc.assign(p.d * Simd<T, 64>::W);
    gxd.assign(p.grad_x ? p.d * p.n : 0);
    gyd.assign(p.grad_y ? p.d * p.m : 0);
  }
};

// Step 2: the compute core's view of unit r of batch element b.
template <typename T>
Unit<T> make_unit(const Plan<T>& p, int64_t b, int64_t r, const T* xT, const T* yT, UnitBuffers<T>& buf) {
  Unit<T> u;
  u.x = p.x + b * p.n * p.d;
  u.y = p.y + b * p.m * p.d;
  u.xT = xT;
  u.yT = yT;
  u.n = p.n, u.m = p.m, u.d = p.d, u.npad = p.npad, u.mpad = p.mpad;
  u.gx = p.grad_x, u.gy = p.grad_y, u.w = p.w;
  const int64_t q0 = p.cuts[r], q1 = p.cuts[r + 1];
  u.xr0 = std::min(q0, p.n), u.xr1 = std::min(q1, p.n);
  u.yr0 = std::max<int64_t>(q0 - p.n, 0), u.yr1 = std::max<int64_t>(q1 - p.n, 0);
  u.cacc_x = buf.cx.data(), u.cacc_y = buf.cy.data(), u.racc = buf.racc.data();
  u.gxd = buf.gxd.data(), u.gyd = buf.gyd.data();
  u.sxx = u.syy = u.sxy = 0;
  return u;
}

// Step 3: batch element b's outputs from its nu units' partials, summed in unit order.
template <typename T>
void finalize(const Plan<T>& p, int64_t b, const Unit<T>* units, const UnitBuffers<T>* bufs, int64_t nu) {
  double sxx = 0, syy = 0, sxy = 0;
  for (int64_t r = 0; r < nu; ++r) sxx += units[r].sxx, syy += units[r].syy, sxy += units[r].sxy;
  p.out[b] = static_cast<T>(mmd_combine(sxx, syy, sxy, p.n, p.m, p.S, p.unbiased));
  // The units' double gradients are SoA (d, rows); the output is AoS (rows, d).
  auto write_grad = [&](T* g, int64_t rows, bool of_x) {
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t k = 0; k < p.d; ++k) {
        double acc = 0;
        for (int64_t r = 0; r < nu; ++r) acc += (of_x ? bufs[r].gxd : bufs[r].gyd)[k * rows + i];
        g[(b * rows + i) * p.d + k] = static_cast<T>(acc);
      }
  };
  if (p.grad_x) write_grad(p.gx, p.n, true);
  if (p.grad_y) write_grad(p.gy, p.m, false);
}

// Many batch elements: one unit each; each thread reuses one set of buffers.
template <typename T>
void run_unit_per_batch(const Plan<T>& p) {
  at::parallel_for(0, p.B, 1, [&](int64_t b0, int64_t b1) {
    UnitBuffers<T> buf;
    for (int64_t b = b0; b < b1; ++b) {
      buf.alloc(p, true);
      transpose_pad(p.x + b * p.n * p.d, p.n, p.d, p.npad, buf.xT.data());
      transpose_pad(p.y + b * p.m * p.d, p.m, p.d, p.mpad, buf.yT.data());
      Unit<T> u = make_unit(p, b, 0, buf.xT.data(), buf.yT.data(), buf);
      run_unit(u, p.kc);
      finalize(p, b, &u, &buf, 1);
    }
  });
}

// Few batch elements: R row ranges each, with their own buffers, merged in a fixed order.
template <typename T>
void run_split_rows(const Plan<T>& p) {
  const int64_t B = p.B, R = p.R, d = p.d;
  AlignedVec<T> xT, yT;
  xT.assign(B * d * p.npad);
  yT.assign(B * d * p.mpad);
  for (int64_t b = 0; b < B; ++b) {
    transpose_pad(p.x + b * p.n * d, p.n, d, p.npad, xT.data() + b * d * p.npad);
    transpose_pad(p.y + b * p.m * d, p.m, d, p.mpad, yT.data() + b * d * p.mpad);
  }
  std::vector<UnitBuffers<T>> bufs(B * R);
  std::vector<Unit<T>> units(B * R);
  at::parallel_for(0, B * R, 1, [&](int64_t u0, int64_t u1) {
    for (int64_t ui = u0; ui < u1; ++ui) {
      const int64_t b = ui / R, r = ui % R;
      bufs[ui].alloc(p, false);
      units[ui] = make_unit(p, b, r, xT.data() + b * d * p.npad, yT.data() + b * d * p.mpad, bufs[ui]);
      run_unit(units[ui], p.kc);
    }
  });
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) finalize(p, b, units.data() + b * R, bufs.data() + b * R, R);
  });
}

template <typename T>
std::tuple<at::Tensor, at::Tensor, at::Tensor> mmd_cpu_impl(const at::Tensor& x_in, const at::Tensor& y_in,
                                                            const MmdShape& sh, double c,
                                                            const std::vector<double>& scales, bool unbiased,
                                                            bool grad_x, bool grad_y) {
  const at::Tensor x = x_in.contiguous(), y = y_in.contiguous();
  at::Tensor out = at::empty(sh.batch, x.options());
  at::Tensor gx = grad_x ? at::empty(x.sizes(), x.options()) : at::empty({0}, x.options());
  at::Tensor gy = grad_y ? at::empty(y.sizes(), y.options()) : at::empty({0}, y.options());
  if (sh.B == 0) return {out, gx, gy};
  Plan<T> p = make_plan<T>(sh, c, scales, unbiased, grad_x, grad_y);
  p.x = x.data_ptr<T>();
  p.y = y.data_ptr<T>();
  p.out = out.data_ptr<T>();
  p.gx = grad_x ? gx.data_ptr<T>() : nullptr;
  p.gy = grad_y ? gy.data_ptr<T>() : nullptr;
  if (p.R == 1)
    run_unit_per_batch(p);
  else
    run_split_rows(p);
  return {out, gx, gy};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> mmd_imq_cpu(const at::Tensor& x, const at::Tensor& y, double c,
                                                           at::ArrayRef<double> scales_ref, bool unbiased,
                                                           bool grad_x, bool grad_y) {
  const std::vector<double> scales(scales_ref.begin(), scales_ref.end());
  const MmdShape sh = mmd_check(x, y, c, scales, unbiased, at::kCPU);
  if (x.scalar_type() == at::kFloat) return mmd_cpu_impl<float>(x, y, sh, c, scales, unbiased, grad_x, grad_y);
  return mmd_cpu_impl<double>(x, y, sh, c, scales, unbiased, grad_x, grad_y);
}

}  // namespace
}  // namespace er_fast

TORCH_LIBRARY_IMPL(er_fast, CPU, m) { m.impl("mmd_imq", &er_fast::mmd_imq_cpu); }
