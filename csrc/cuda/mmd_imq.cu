// CUDA kernel of er_fast::mmd_imq: fused MMD² + gradients with the multi-scale IMQ kernel.
//
// One thread per row (a point of x or of y), one pass over all columns, tiled through shared
// memory; no n x m buffer (memory O((n+m) d) per batch element plus a few doubles per block).
//  * x rows: columns x (j != i: the xx sum, and their gradient) then columns y (the xy sum and
//    gradient). y rows: columns y (the yy sum and gradient), then columns x only when y needs
//    its gradient. Each row's gradient is owned by its thread: no atomics. (Symmetry is not
//    used: the xx/yy pairs are evaluated twice, which keeps every gradient thread-private.)
//  * Sums: float partials over one tile (<= 256 columns), double across tiles; per block a
//    fixed-order tree reduction writes 3 doubles; a second kernel adds the blocks in order.
//    So the result is deterministic (no float atomics) and bitwise reproducible.
//  * Per pair: imq::eval (common/mmd_imq_math.h), the same maths as the CPU kernel.
// This is the default. ER_FAST_MMD_CUDA_KERNEL=tiled selects mmd_imq_tiled.cu instead (symmetric,
// register-tiled; not yet run on a GPU): docs/cuda_mmd.md.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/mmd_imq_math.h"
#include "common/mmd_imq_checks.h"
#include "cuda/mmd_imq_tiled.h"

namespace er_fast {
namespace {

constexpr int kTPB = 256;  // threads (rows) per block

struct RowsArgs {
  int n, m, d, tj;   // tj: columns per shared-memory tile
  int nbx, nby;      // row blocks of x and of y
  int64_t b0;        // first batch element of this launch
  bool grad_x, grad_y;
  MmdWeights w;
};

// A thread's row: the point a (registers when DMAX > 0), its gradient accumulators, and for the
// generic path (DMAX == 0, any d) the row in global memory and a thread-private double scratch row.
template <typename T, int DMAX>
struct RowState {
  static constexpr int kR = DMAX > 0 ? DMAX : 1;
  T a[kR];
  double g[kR];
  const T* arow;
  double* gs;
};

template <typename T, int DMAX>
__device__ __forceinline__ void row_init(RowState<T, DMAX>& st, const T* arow, bool active, bool need_grad,
                                         double* gs, int d) {
  st.arow = arow;
  st.gs = nullptr;
  if (DMAX > 0) {
#pragma unroll
    for (int k = 0; k < RowState<T, DMAX>::kR; ++k) {
      st.a[k] = (active && k < d) ? arow[k] : T(0);
      st.g[k] = 0;
    }
  } else if (need_grad && active) {
    st.gs = gs;
    for (int k = 0; k < d; ++k) gs[k] = 0;
  }
}

// Columns [j0, j0 + tj) into shared memory (DMAX > 0); the generic path reads them in place.
template <typename T, int DMAX>
__device__ __forceinline__ const T* tile_load(T* tile, const T* cols, int j0, int tj, int d) {
  if (DMAX == 0) return cols + int64_t(j0) * d;  // every thread reads the same column: cached
  __syncthreads();  // the previous tile is no longer read
  for (int e = threadIdx.x; e < tj * d; e += kTPB) tile[e] = cols[int64_t(j0) * d + e];
  __syncthreads();
  return tile;
}

// The row against the tile's tj columns, skipping column `skip` (the row itself, or -1). Returns
// the float kernel sum over the tile; with kGrad the gradient G (a - b) is added to the row's
// accumulators, weighted by wp (the term's weight), float within the tile and double across tiles.
template <typename T, int DMAX, bool kGrad>
__device__ __forceinline__ T tile_pairs(RowState<T, DMAX>& st, const T* bt, int tj, int skip, int d,
                                        const imq::Consts<T>& kc, double wp) {
  constexpr int kR = RowState<T, DMAX>::kR;
  T ks = 0;
  T gp[kR];
#pragma unroll
  for (int k = 0; k < kR; ++k) gp[k] = 0;
  for (int jj = 0; jj < tj; ++jj) {
    if (jj == skip) continue;
    const T* bj = bt + jj * d;
    T D = 0;
    if (DMAX > 0) {
#pragma unroll
      for (int k = 0; k < kR; ++k)
        if (k < d) {
          const T df = st.a[k] - bj[k];  // differences, never |a|^2 + |b|^2 - 2ab
          D += df * df;
        }
    } else {
      for (int k = 0; k < d; ++k) {
        const T df = st.arow[k] - bj[k];
        D += df * df;
      }
    }
    T K, G = 0;
    imq::eval<T, kGrad>(D, kc, K, G);
    ks += K;
    if (kGrad) {
      if (DMAX > 0) {
#pragma unroll
        for (int k = 0; k < kR; ++k)
          if (k < d) gp[k] += G * (st.a[k] - bj[k]);
      } else {
        for (int k = 0; k < d; ++k) st.gs[k] += wp * double(G * (st.arow[k] - bj[k]));
      }
    }
  }
  if (kGrad && DMAX > 0) {
#pragma unroll
    for (int k = 0; k < kR; ++k) st.g[k] += wp * double(gp[k]);
  }
  return ks;
}

template <typename T, int DMAX>
__device__ __forceinline__ void row_store_grad(const RowState<T, DMAX>& st, T* g, int d) {
  if (DMAX > 0) {
#pragma unroll
    for (int k = 0; k < RowState<T, DMAX>::kR; ++k)
      if (k < d) g[k] = static_cast<T>(st.g[k]);
  } else {
    for (int k = 0; k < d; ++k) g[k] = static_cast<T>(st.gs[k]);
  }
}

// Fixed-order tree reduction of the block's three sums (sxx, syy, sxy) into out[0..3).
__device__ __forceinline__ void block_reduce3(double sxx, double syy, double sxy, double* out) {
  __shared__ double red[3][kTPB];
  red[0][threadIdx.x] = sxx;
  red[1][threadIdx.x] = syy;
  red[2][threadIdx.x] = sxy;
  __syncthreads();
  for (int h = kTPB / 2; h > 0; h >>= 1) {
    if (threadIdx.x < h)
      for (int c = 0; c < 3; ++c) red[c][threadIdx.x] += red[c][threadIdx.x + h];
    __syncthreads();
  }
  if (threadIdx.x < 3) out[threadIdx.x] = red[threadIdx.x][0];
}

// One thread per row of x (blocks [0, nbx)) or of y (blocks [nbx, nbx + nby)) of batch element
// b0 + blockIdx.y. DMAX > 0: d <= DMAX, the row in registers, columns through shared memory.
template <typename T, int DMAX>
__global__ void __launch_bounds__(kTPB)
    mmd_rows_kernel(const T* __restrict__ x, const T* __restrict__ y, const imq::Consts<T> kc, const RowsArgs p,
                    T* __restrict__ gx, T* __restrict__ gy, double* __restrict__ gscr, double* __restrict__ partial) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* tile = reinterpret_cast<T*>(smem_raw);
  const int d = p.d;
  const int64_t b = p.b0 + blockIdx.y;
  const bool xrow = blockIdx.x < p.nbx;
  const int r = (xrow ? blockIdx.x : blockIdx.x - p.nbx) * kTPB + threadIdx.x;
  const bool active = r < (xrow ? p.n : p.m);
  const T* X = x + b * p.n * d;
  const T* Y = y + b * p.m * d;
  const bool need_grad = xrow ? p.grad_x : p.grad_y;
  double* gs = gscr == nullptr ? nullptr : gscr + ((b - p.b0) * (int64_t(p.n) + p.m) + (xrow ? 0 : p.n) + r) * d;
  RowState<T, DMAX> st;
  row_init(st, (xrow ? X : Y) + int64_t(active ? r : 0) * d, active, need_grad, gs, d);

  double s_self = 0, s_cross = 0;
  for (int pass = 0; pass < 2; ++pass) {
    // pass 0: the row's own set (skip j == r); pass 1: the other set.
    if (pass == 1 && !xrow && !p.grad_y) break;  // y rows need the cross pass only for gradients
    const bool own = pass == 0;
    const T* cols = own == xrow ? X : Y;
    const int ncols = own == xrow ? p.n : p.m;
    const double wp = own ? (xrow ? p.w.xx : p.w.yy) : p.w.xy;
    for (int j0 = 0; j0 < ncols; j0 += p.tj) {
      const int tj = min(p.tj, ncols - j0);
      const T* bt = tile_load<T, DMAX>(tile, cols, j0, tj, d);
      if (!active) continue;
      const int skip = own ? r - j0 : -1;
      const T ks = need_grad ? tile_pairs<T, DMAX, true>(st, bt, tj, skip, d, kc, wp)
                             : tile_pairs<T, DMAX, false>(st, bt, tj, skip, d, kc, wp);
      (own ? s_self : s_cross) += double(ks);
    }
  }
  if (active && need_grad) row_store_grad(st, (xrow ? gx + b * p.n * d : gy + b * p.m * d) + int64_t(r) * d, d);
  // (sxx, syy, sxy) as full ordered sums over j != i; the finalize kernel halves xx and yy.
  const int nb = p.nbx + p.nby;
  block_reduce3(xrow ? s_self : 0.0, xrow ? 0.0 : s_self, xrow ? s_cross : 0.0,
                partial + (int64_t(blockIdx.y) * nb + blockIdx.x) * 3);
}

// One thread per batch element: add the blocks' partials in order and form MMD².
template <typename T>
__global__ void mmd_finalize_kernel(const double* __restrict__ partial, int nb, int64_t nbatch, int64_t b0, int n,
                                    int m, int S, bool unbiased, T* __restrict__ out) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= nbatch) return;
  double s[3] = {0, 0, 0};
  for (int blk = 0; blk < nb; ++blk)
    for (int c = 0; c < 3; ++c) s[c] += partial[(i * nb + blk) * 3 + c];
  // the kernel sums count every xx / yy pair twice; mmd_combine takes sums over i < j
  out[b0 + i] = static_cast<T>(mmd_combine(0.5 * s[0], 0.5 * s[1], s[2], n, m, S, unbiased));
}

template <typename T, int DMAX>
void launch_rows(dim3 grid, size_t smem, cudaStream_t stream, const T* x, const T* y, const imq::Consts<T>& kc,
                 const RowsArgs& p, T* gx, T* gy, double* gscr, double* partial) {
  mmd_rows_kernel<T, DMAX><<<grid, kTPB, smem, stream>>>(x, y, kc, p, gx, gy, gscr, partial);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename T>
void mmd_cuda_impl(const at::Tensor& x, const at::Tensor& y, const MmdShape& sh, double c,
                   const std::vector<double>& scales, bool unbiased, bool grad_x, bool grad_y, at::Tensor& out,
                   at::Tensor& gx, at::Tensor& gy) {
  const int64_t B = sh.B;
  const int n = int(sh.n), m = int(sh.m), d = int(sh.d);
  const imq::Consts<T> kc = imq::make_consts<T>(c, scales);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  int dmax = 0;
  for (int cand : {1, 2, 4, 8, 16, 32})
    if (d <= cand) {
      dmax = cand;
      break;
    }
  RowsArgs p;
  p.n = n, p.m = m, p.d = d;
  p.nbx = (n + kTPB - 1) / kTPB;
  p.nby = (m + kTPB - 1) / kTPB;
  p.grad_x = grad_x, p.grad_y = grad_y;
  p.w = mmd_weights(n, m, unbiased);
  // Column tile: up to 256 columns in at most 40 KiB of dynamic shared memory (plus the 6 KiB
  // reduction buffer: under the 48 KiB available without an opt-in).
  p.tj = dmax > 0 ? std::max(1, std::min(kTPB, int((40 * 1024) / (d * sizeof(T))))) : 0;
  if (dmax == 0) p.tj = 256;  // generic path: columns read from global memory in runs of 256
  const size_t smem = dmax > 0 ? size_t(p.tj) * d * sizeof(T) : 0;
  const int nb = p.nbx + p.nby;
  const int64_t chunk = std::min<int64_t>(B, 65535);  // grid.y limit
  auto dopt = x.options().dtype(at::kDouble);
  at::Tensor partial = at::empty({chunk * nb * 3}, dopt);
  at::Tensor gscr = dmax == 0 && (grad_x || grad_y) ? at::empty({chunk * (int64_t(n) + m) * d}, dopt)
                                                    : at::empty({0}, dopt);
  for (int64_t b0 = 0; b0 < B; b0 += chunk) {
    const int64_t nbatch = std::min(chunk, B - b0);
    p.b0 = b0;
    dim3 grid(nb, unsigned(nbatch));
    const T* xp = x.data_ptr<T>();
    const T* yp = y.data_ptr<T>();
    T* gxp = grad_x ? gx.data_ptr<T>() : nullptr;
    T* gyp = grad_y ? gy.data_ptr<T>() : nullptr;
    double* pp = partial.data_ptr<double>();
    double* gs = gscr.numel() ? gscr.data_ptr<double>() : nullptr;
    switch (dmax) {
      case 1: launch_rows<T, 1>(grid, smem, stream, xp, yp, kc, p, gxp, gyp, gs, pp); break;
      case 2: launch_rows<T, 2>(grid, smem, stream, xp, yp, kc, p, gxp, gyp, gs, pp); break;
      case 4: launch_rows<T, 4>(grid, smem, stream, xp, yp, kc, p, gxp, gyp, gs, pp); break;
      case 8: launch_rows<T, 8>(grid, smem, stream, xp, yp, kc, p, gxp, gyp, gs, pp); break;
      case 16: launch_rows<T, 16>(grid, smem, stream, xp, yp, kc, p, gxp, gyp, gs, pp); break;
      case 32: launch_rows<T, 32>(grid, smem, stream, xp, yp, kc, p, gxp, gyp, gs, pp); break;
      default: launch_rows<T, 0>(grid, smem, stream, xp, yp, kc, p, gxp, gyp, gs, pp); break;
    }
    const int fthreads = 128;
    mmd_finalize_kernel<T><<<unsigned((nbatch + fthreads - 1) / fthreads), fthreads, 0, stream>>>(
        pp, nb, nbatch, b0, n, m, int(scales.size()), unbiased, out.data_ptr<T>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

// ER_FAST_MMD_CUDA_KERNEL, read at every call: "rows" (default; this file's kernel) or "tiled"
// (mmd_imq_tiled.cu: not yet run on a GPU, so never the default; see docs/cuda_mmd.md).
bool use_tiled_kernel() {
  const char* env = std::getenv("ER_FAST_MMD_CUDA_KERNEL");
  const std::string sel = env == nullptr ? "" : env;
  ER_FAST_CHECK(sel.empty() || sel == "rows" || sel == "tiled", "mmd_imq",
                "ER_FAST_MMD_CUDA_KERNEL must be 'rows' or 'tiled', got '", sel, "'");
  return sel == "tiled";
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> mmd_imq_cuda(const at::Tensor& x_in, const at::Tensor& y_in, double c,
                                                            at::ArrayRef<double> scales_ref, bool unbiased,
                                                            bool grad_x, bool grad_y) {
  const std::vector<double> scales(scales_ref.begin(), scales_ref.end());
  const MmdShape sh = mmd_check(x_in, y_in, c, scales, unbiased, at::kCUDA);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous(), y = y_in.contiguous();
  at::Tensor out = at::empty(sh.batch, x.options());
  at::Tensor gx = grad_x ? at::empty(x.sizes(), x.options()) : at::empty({0}, x.options());
  at::Tensor gy = grad_y ? at::empty(y.sizes(), y.options()) : at::empty({0}, y.options());
  const bool tiled = use_tiled_kernel();
  if (sh.B == 0) return {out, gx, gy};
  // Outside the tiled kernels' range of d the rows kernel runs even when tiled is asked for.
  if (tiled && mmd_imq_tiled_cuda(x, y, sh, c, scales, unbiased, grad_x, grad_y, out, gx, gy))
    return {out, gx, gy};
  if (x.scalar_type() == at::kFloat)
    mmd_cuda_impl<float>(x, y, sh, c, scales, unbiased, grad_x, grad_y, out, gx, gy);
  else
    mmd_cuda_impl<double>(x, y, sh, c, scales, unbiased, grad_x, grad_y, out, gx, gy);
  return {out, gx, gy};
}

}  // namespace
}  // namespace er_fast

TORCH_LIBRARY_IMPL(er_fast, CUDA, m) { m.impl("mmd_imq", &er_fast::mmd_imq_cuda); }
