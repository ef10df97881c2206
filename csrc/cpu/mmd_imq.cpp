// CPU kernel of er_fast::mmd_imq: fused MMD² + gradients with the multi-scale IMQ kernel.
//
// Layout and loop nest (per batch element; the compute core is in cpu/mmd_imq_kernel.h):
//  * x and y are copied to SoA (d, n_pad) so the inner loops run over blocks of 64 consecutive
//    columns as 512-bit GCC vectors; rows are read from the AoS input.
//  * Three terms: xx and yy use only i<j pairs (symmetry), xy all n*m pairs. A row's own
//    gradient accumulates in vector lanes; the columns' gradients (the other side of each pair)
//    in a float SoA buffer flushed into double after every 32 rows. So float partial sums over
//    short runs, double accumulation across them.
//  * The kernel uses the rational form (one division per pair, common/imq.h) for a row against
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

#include "common/mmd_checks.h"
#include "cpu/mmd_imq_kernel.h"

namespace er_fast {
namespace {

using namespace mmd_cpu;

// The hot entry points, one per dtype, cloned for AVX-512 / AVX2 / baseline.
ER_FAST_CPU_CLONES void run_unit_f32(Unit<float>& u, const Consts<float>& kc) { run_unit_impl<float>(u, kc); }
ER_FAST_CPU_CLONES void run_unit_f64(Unit<double>& u, const Consts<double>& kc) { run_unit_impl<double>(u, kc); }
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
    TORCH_CHECK(mem, "er_fast: mmd_imq: out of memory (", bytes, " bytes)");
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

template <typename T>
std::tuple<at::Tensor, at::Tensor, at::Tensor> mmd_cpu_impl(const at::Tensor& x_in, const at::Tensor& y_in,
                                                            const MmdShape& sh, double c,
                                                            const std::vector<double>& scales, bool unbiased,
                                                            bool grad_x, bool grad_y) {
  const at::Tensor x = x_in.contiguous(), y = y_in.contiguous();
  const int64_t B = sh.B, n = sh.n, m = sh.m, d = sh.d;
  const Consts<T> kc = imq::make_consts<T>(c, scales);
  const int S = static_cast<int>(scales.size());
  const MmdWeights w = mmd_weights(n, m, unbiased);
  at::Tensor out = at::empty(sh.batch, x.options());
  at::Tensor gx = grad_x ? at::empty(x.sizes(), x.options()) : at::empty({0}, x.options());
  at::Tensor gy = grad_y ? at::empty(y.sizes(), y.options()) : at::empty({0}, y.options());
  if (B == 0) return {out, gx, gy};
  const T* xp = x.data_ptr<T>();
  const T* yp = y.data_ptr<T>();
  T* outp = out.data_ptr<T>();
  T* gxp = grad_x ? gx.data_ptr<T>() : nullptr;
  T* gyp = grad_y ? gy.data_ptr<T>() : nullptr;
  // SoA row stride: whole blocks plus one vector, so the d rows of a buffer (and the column
  // partials written next to them) do not sit at multiples of 4 KiB (4K-aliasing stalls).
  constexpr int64_t W = Simd<T>::W;
  const int64_t npad = round_up(n, JB) + W, mpad = round_up(m, JB) + W;

  // Units per batch element: enough to occupy every thread, but not for tiny problems.
  const int64_t threads = at::get_num_threads();
  const double pairs = 0.5 * double(n) * n + 0.5 * double(m) * m + double(n) * m;
  int64_t R = 1;
  if (B < threads) R = std::max<int64_t>(1, std::min<int64_t>((threads + B - 1) / B, int64_t(pairs / 65536)));
  const std::vector<int64_t> cuts = split_rows(n, m, R);

  // Per-unit scratch: transposes are shared by the units of one batch element.
  struct Buf {
    AlignedVec<T> xT, yT, cx, cy, racc;
    AlignedVec<double> gxd, gyd;
    void alloc(int64_t n, int64_t m, int64_t d, int64_t npad, int64_t mpad, bool gx, bool gy, bool trans) {
      if (trans) {
        xT.assign(d * npad);
        yT.assign(d * mpad);
      }
      // The column partials start 1 KiB + 64 B into their allocation: off the 4 KiB phase of
      // the transposed data they are updated together with.
      cx.assign(gx ? d * npad : 0, 1088 / sizeof(T));
      cy.assign(gy ? d * mpad : 0, 1088 / sizeof(T));
      racc.assign(d * W);
      gxd.assign(gx ? d * n : 0);
      gyd.assign(gy ? d * m : 0);
    }
  };
  auto make_unit = [&](int64_t b, int64_t r, const T* xT, const T* yT, Buf& buf) {
    Unit<T> u;
    u.x = xp + b * n * d;
    u.y = yp + b * m * d;
    u.xT = xT;
    u.yT = yT;
    u.n = n, u.m = m, u.d = d, u.npad = npad, u.mpad = mpad;
    u.gx = grad_x, u.gy = grad_y, u.w = w;
    const int64_t q0 = cuts[r], q1 = cuts[r + 1];
    u.xr0 = std::min(q0, n), u.xr1 = std::min(q1, n);
    u.yr0 = std::max<int64_t>(q0 - n, 0), u.yr1 = std::max<int64_t>(q1 - n, 0);
    u.cacc_x = buf.cx.data(), u.cacc_y = buf.cy.data(), u.racc = buf.racc.data();
    u.gxd = buf.gxd.data(), u.gyd = buf.gyd.data();
    u.sxx = u.syy = u.sxy = 0;
    return u;
  };
  // Write the batch element's outputs from its units' partials, summed in unit order.
  auto finalize = [&](int64_t b, const Unit<T>* units, const Buf* bufs, int64_t nu) {
    double sxx = 0, syy = 0, sxy = 0;
    for (int64_t r = 0; r < nu; ++r) sxx += units[r].sxx, syy += units[r].syy, sxy += units[r].sxy;
    outp[b] = static_cast<T>(mmd_combine(sxx, syy, sxy, n, m, S, unbiased));
    if (grad_x)
      for (int64_t i = 0; i < n; ++i)
        for (int64_t k = 0; k < d; ++k) {
          double g = 0;
          for (int64_t r = 0; r < nu; ++r) g += bufs[r].gxd[k * n + i];
          gxp[(b * n + i) * d + k] = static_cast<T>(g);
        }
    if (grad_y)
      for (int64_t j = 0; j < m; ++j)
        for (int64_t k = 0; k < d; ++k) {
          double g = 0;
          for (int64_t r = 0; r < nu; ++r) g += bufs[r].gyd[k * m + j];
          gyp[(b * m + j) * d + k] = static_cast<T>(g);
        }
  };

  if (R == 1) {
    // One unit per batch element; each thread reuses one set of buffers.
    at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
      Buf buf;
      for (int64_t b = b0; b < b1; ++b) {
        buf.alloc(n, m, d, npad, mpad, grad_x, grad_y, true);
        transpose_pad(xp + b * n * d, n, d, npad, buf.xT.data());
        transpose_pad(yp + b * m * d, m, d, mpad, buf.yT.data());
        Unit<T> u = make_unit(b, 0, buf.xT.data(), buf.yT.data(), buf);
        run_unit(u, kc);
        finalize(b, &u, &buf, 1);
      }
    });
  } else {
    // Few batch elements: R row ranges each, with their own buffers, merged in a fixed order.
    AlignedVec<T> xT, yT;
    xT.assign(B * d * npad);
    yT.assign(B * d * mpad);
    for (int64_t b = 0; b < B; ++b) {
      transpose_pad(xp + b * n * d, n, d, npad, xT.data() + b * d * npad);
      transpose_pad(yp + b * m * d, m, d, mpad, yT.data() + b * d * mpad);
    }
    std::vector<Buf> bufs(B * R);
    std::vector<Unit<T>> units(B * R);
    at::parallel_for(0, B * R, 1, [&](int64_t u0, int64_t u1) {
      for (int64_t ui = u0; ui < u1; ++ui) {
        const int64_t b = ui / R, r = ui % R;
        bufs[ui].alloc(n, m, d, npad, mpad, grad_x, grad_y, false);
        units[ui] = make_unit(b, r, xT.data() + b * d * npad, yT.data() + b * d * mpad, bufs[ui]);
        run_unit(units[ui], kc);
      }
    });
    at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) finalize(b, units.data() + b * R, bufs.data() + b * R, R);
    });
  }
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
