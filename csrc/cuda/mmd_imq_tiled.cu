// Tiled CUDA kernels of er_fast::mmd_imq, selected by ER_FAST_MMD_CUDA_KERNEL=tiled (the default is
// the rows kernel of mmd_imq.cu). Designed from the roofline in docs/cuda_mmd.md; NOT YET RUN ON A
// GPU, hence behind the switch.
//
// General path. Z = [X; Y] of one batch element is cut into panels of P points (X and Y panels
// apart; the last of each may be partial). A work item is a panel pair I <= J, so every unordered
// pair of distinct points lies in exactly one item; one block computes one item:
//  * every warp loads the same row sub-block (32 R rows: R per lane, in registers) and takes the
//    item's column sub-tiles w, w + W, ... of 32 columns. Lane l starts on column l and, after each
//    of 32 steps, hands (column, its gradient accumulator) to lane l - 1: every lane meets every
//    column, and a column's gradient visits all 32 lanes and comes home. Both gradients of each
//    pair, no atomics, no shared memory in the loop (2 d shuffles per R pairs).
//  * row gradients: float per lane over 128 columns, then double per warp in shared memory, added
//    over the warps in fixed order and stored once per item (the row partial).
//  * column gradients: float over the 128 rows of a rotation, then added into the item's column
//    partial by the one lane that owns that column for the whole item (fixed order).
//  * diagonal items (I == J) run all ordered pairs i != j with row gradients only (the pair's other
//    half is row j of the same item) and count their kernel sum half.
//  * the pair maths: the rational form with the hardware reciprocal when the whole warp's step is
//    within its overflow bound (one vote per step), else per pair (imq::eval).
// A second kernel adds each point's partials in fixed item order (weight per term) and forms MMD²
// from the items' double kernel sums: deterministic, bitwise reproducible.
//
// Small path (n, m <= 256): one block per batch element, one launch, no scratch memory. Each
// thread takes a point and every cs-th column of Z (all ordered pairs, no symmetry), the block
// adds the column splits and the kernel sums in fixed order and writes MMD² itself.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "common/mmd_imq_math.h"
#include "cuda/mmd_imq_tiled.h"

namespace er_fast {
namespace {

constexpr unsigned kFull = 0xffffffffu;
constexpr int kDegFast = 7;        // fast rational form for S <= 7 (the default 7 scales)
constexpr int kTiledThreads = 256;  // general path: 8 warps
constexpr int kFlush = 4;           // row gradients: float over kFlush sub-tiles (128 columns), then double
constexpr int kSmallThreads = 512;  // small path: at most 512 (point, column split) threads
constexpr int kSmallMax = 256;      // small path for n, m <= kSmallMax
// Dynamic shared memory usable without the opt-in: 48 KiB less the static block_sum buffer.
constexpr size_t kSmemNoOptIn = 47 * 1024;
constexpr int64_t kPartialBudget = int64_t(256) << 20;  // bytes of partials per batch element

// Rows per lane: as many as 128 registers hold without spilling in the rotation loop (2 R DM
// values of T per lane plus the column; checked with ptxas -v). float d <= 16, double d <= 8.
template <typename T, int DM>
constexpr int rows_per_lane() {
  return sizeof(T) * DM <= 32 ? 4 : 2;
}
template <typename T>
constexpr int max_dm() {
  return sizeof(T) == 4 ? 16 : 8;
}

__device__ __forceinline__ int lane_id() { return threadIdx.x & 31; }
__device__ __forceinline__ float fmad(float a, float b, float c) { return __fmaf_rn(a, b, c); }
__device__ __forceinline__ double fmad(double a, double b, double c) { return __fma_rn(a, b, c); }

// 1/q for the rational form. float: the MUFU reciprocal, max error 1 ulp (PTX ISA, rcp.approx.f32);
// .ftz is harmless because q is in [Q(0), 1e30] with Q(0) >= 1e-15 there (make_consts).
// double: the IEEE division.
struct RcpFast {
  __device__ __forceinline__ float operator()(float q) const {
    float r;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(q));
    return r;
  }
  __device__ __forceinline__ double operator()(double q) const { return 1.0 / q; }
};

// One pair: the fast rational form where it applies, else imq::eval (the rows kernel's maths). The
// value of a pair depends on its distance only, never on the other pairs evaluated with it.
template <typename T, bool kGrad>
__device__ __forceinline__ void eval_pair(T D, const imq::Consts<T>& kc, bool fast_ok, T& K, T& G) {
  if (fast_ok && D <= kc.d_max)
    imq::eval_rational_deg<kDegFast, T, kGrad>(D, kc, K, G, RcpFast{});
  else
    imq::eval<T, kGrad>(D, kc, K, G);
}

// R pairs of a lane; when the whole warp is in range, one branch-free unrolled block.
template <typename T, int R, bool kGrad>
__device__ __forceinline__ void eval_pairs(const T (&D)[R], const imq::Consts<T>& kc, bool fast_ok, T (&K)[R],
                                           T (&G)[R]) {
  bool in = fast_ok;
#pragma unroll
  for (int r = 0; r < R; ++r) in &= D[r] <= kc.d_max;  // false for NaN: the direct form propagates it
  if (__all_sync(kFull, in)) {
#pragma unroll
    for (int r = 0; r < R; ++r) imq::eval_rational_deg<kDegFast, T, kGrad>(D[r], kc, K[r], G[r], RcpFast{});
  } else {
#pragma unroll
    for (int r = 0; r < R; ++r) eval_pair<T, kGrad>(D[r], kc, fast_ok, K[r], G[r]);
  }
}

// ------------------------------------------------------------------------------------ general path
struct Plan {
  int n, m, d;
  int P;      // points per panel (a multiple of 128)
  int px;     // X panels; Y panels follow
  int pn;     // all panels
  int items;  // pn (pn + 1) / 2 panel pairs I <= J
  bool gx, gy;
};

__host__ __device__ inline int item_index(int I, int J, int pn) { return I * pn - I * (I - 1) / 2 + (J - I); }

// Inverse of item_index: row I starts at s(I) = I pn - I (I - 1) / 2; the root of s(I) = t, then
// exact integer corrections.
__device__ __forceinline__ void item_panels(int t, int pn, int& I, int& J) {
  const double b = 2.0 * pn + 1.0;
  int i = max(0, min(pn - 1, int((b - sqrt(b * b - 8.0 * t)) * 0.5)));
  while (i > 0 && item_index(i, i, pn) > t) --i;
  while (i + 1 < pn && item_index(i + 1, i + 1, pn) <= t) ++i;
  I = i;
  J = i + (t - item_index(i, i, pn));
}

template <typename T>
struct Panel {
  const T* base;  // first point
  int count;      // points in the panel (1..P)
  bool is_x;
};

template <typename T>
__device__ __forceinline__ Panel<T> panel(const Plan& pl, const T* X, const T* Y, int K) {
  if (K < pl.px) return {X + int64_t(K) * pl.P * pl.d, min(pl.P, pl.n - K * pl.P), true};
  const int k = K - pl.px;
  return {Y + int64_t(k) * pl.P * pl.d, min(pl.P, pl.m - k * pl.P), false};
}

// A lane's rows (R of them, 32 apart) and their float gradient accumulators.
template <typename T, int DM, int R>
struct Rows {
  T a[R][DM];
  T g[R][DM];
};

// The column a lane holds during a rotation and that column's float gradient accumulator.
template <typename T, int DM>
struct Col {
  T b[DM];
  T g[DM];
};

// Which pairs of a masked sub-tile count: rows and columns inside their panels, and i != j on the
// diagonal. Only edge and diagonal sub-tiles pay for it.
struct TileMask {
  int row;   // panel index of the lane's row r = 0 (row r is row + 32 r)
  int rows;  // points in the row panel
  int col0;  // panel index of the sub-tile's first column
  int cols;  // points in the column panel
  bool diag;
};

// The lane's R rows against the 32 columns of a rotation. Returns the float kernel sum.
template <typename T, int DM, int R, bool kRow, bool kCol, bool kMask>
__device__ __forceinline__ T rotation(Rows<T, DM, R>& rw, Col<T, DM>& cl, const imq::Consts<T>& kc, bool fast_ok,
                                      const TileMask& mk) {
  constexpr bool kGrad = kRow || kCol;
  const int lane = lane_id();
  const int src = (lane + 1) & 31;
  T ks = 0;
#pragma unroll 1
  for (int s = 0; s < 32; ++s) {
    T D[R], K[R], G[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      T acc = 0;
#pragma unroll
      for (int k = 0; k < DM; ++k) {
        const T df = rw.a[r][k] - cl.b[k];  // differences, never |a|^2 + |b|^2 - 2ab
        acc = fmad(df, df, acc);
      }
      D[r] = acc;
      G[r] = 0;
    }
    eval_pairs<T, R, kGrad>(D, kc, fast_ok, K, G);
    if (kMask) {
      const int j = mk.col0 + ((lane + s) & 31);
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const int i = mk.row + 32 * r;
        const bool ok = j < mk.cols && i < mk.rows && !(mk.diag && i == j);
        K[r] = ok ? K[r] : T(0);  // selects, not products: a NaN of a padding pair stays out
        G[r] = ok ? G[r] : T(0);
      }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) ks += K[r];
    if (kGrad) {
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int k = 0; k < DM; ++k) {
          const T df = rw.a[r][k] - cl.b[k];
          if (kRow) rw.g[r][k] = fmad(G[r], df, rw.g[r][k]);
          if (kCol) cl.g[k] = fmad(-G[r], df, cl.g[k]);
        }
    }
#pragma unroll
    for (int k = 0; k < DM; ++k) {
      cl.b[k] = __shfl_sync(kFull, cl.b[k], src);
      if (kCol) cl.g[k] = __shfl_sync(kFull, cl.g[k], src);
    }
  }
  return ks;
}

// Float row gradients into this warp's double accumulators ([R DM][32 lanes] in shared memory).
template <typename T, int DM, int R>
__device__ __forceinline__ void flush_rows(Rows<T, DM, R>& rw, double* acc) {
  const int lane = lane_id();
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int k = 0; k < DM; ++k) {
      acc[(r * DM + k) * 32 + lane] += double(rw.g[r][k]);
      rw.g[r][k] = 0;
    }
}

template <typename T, int DM, int R>
__device__ __forceinline__ void load_rows(Rows<T, DM, R>& rw, const Panel<T>& p, int r0, int d) {
  const int lane = lane_id();
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int i = r0 + 32 * r + lane;
#pragma unroll
    for (int k = 0; k < DM; ++k) {
      rw.a[r][k] = (i < p.count && k < d) ? p.base[int64_t(i) * d + k] : T(0);  // zero padding
      rw.g[r][k] = 0;
    }
  }
}

template <typename T, int DM>
__device__ __forceinline__ void load_col(Col<T, DM>& cl, const Panel<T>& p, int j, int d) {
#pragma unroll
  for (int k = 0; k < DM; ++k) {
    cl.b[k] = (j < p.count && k < d) ? p.base[int64_t(j) * d + k] : T(0);
    cl.g[k] = 0;
  }
}

// Sum over the block's warps, in warp order, of the per-warp double accumulators of one row
// sub-block; stored as the item's row partial of those rows.
template <typename T, int DM, int R>
__device__ __forceinline__ void store_row_partial(const double* acc_all, const Panel<T>& rp, int r0, int d,
                                                  T* rowpart) {
  const int W = blockDim.x >> 5;
  for (int e = threadIdx.x; e < R * DM * 32; e += blockDim.x) {
    double s = 0;
    for (int w = 0; w < W; ++w) s += acc_all[w * R * DM * 32 + e];
    const int r = e / (DM * 32), k = (e / 32) % DM, i = r0 + 32 * r + (e & 31);
    if (k < d && i < rp.count) rowpart[int64_t(i) * d + k] = static_cast<T>(s);
  }
}

// One item: rows of panel rp against columns of panel cp. Returns this thread's double kernel sum.
template <typename T, int DM, bool kRow, bool kCol>
__device__ __forceinline__ double run_item(const Panel<T>& rp, const Panel<T>& cp, bool diag, int d, const imq::Consts<T>& kc,
                           bool fast_ok, T* rowpart, T* colpart, double* smem) {
  constexpr int R = rows_per_lane<T, DM>();
  constexpr int kRB = 32 * R;  // rows per sub-block
  const int W = blockDim.x >> 5, warp = threadIdx.x >> 5, lane = lane_id();
  const int nsub = (cp.count + 31) / 32;
  double* acc = smem + warp * (R * DM * 32);
  double ksum = 0;
  for (int r0 = 0; r0 < rp.count; r0 += kRB) {
    Rows<T, DM, R> rw;
    load_rows(rw, rp, r0, d);
    if (kRow)
      for (int e = 0; e < R * DM; ++e) acc[e * 32 + lane] = 0;
    const bool rows_full = r0 + kRB <= rp.count;
    int since_flush = 0;
    for (int g = warp; g < nsub; g += W) {
      const int c0 = 32 * g;
      Col<T, DM> cl;
      load_col(cl, cp, c0 + lane, d);
      const bool masked = !rows_full || c0 + 32 > cp.count || (diag && c0 >= r0 && c0 < r0 + kRB);
      const TileMask mk{r0 + lane, rp.count, c0, cp.count, diag};
      const T ks = masked ? rotation<T, DM, R, kRow, kCol, true>(rw, cl, kc, fast_ok, mk)
                          : rotation<T, DM, R, kRow, kCol, false>(rw, cl, kc, fast_ok, mk);
      ksum += double(ks);
      if (kCol) {  // back home: lane l holds column c0 + l; this lane owns it for the whole item
        const int j = c0 + lane;
        if (j < cp.count) {
          T* dst = colpart + int64_t(j) * d;
#pragma unroll
          for (int k = 0; k < DM; ++k)
            if (k < d) dst[k] = r0 == 0 ? cl.g[k] : dst[k] + cl.g[k];
        }
      }
      if (kRow && ++since_flush == kFlush) {
        flush_rows(rw, acc);
        since_flush = 0;
      }
    }
    if (kRow) {
      flush_rows(rw, acc);
      __syncthreads();
      store_row_partial<T, DM, R>(smem, rp, r0, d, rowpart);
      __syncthreads();  // before the next sub-block clears the accumulators
    }
  }
  return ksum;
}

// Fixed-order block sum of one double per thread (result valid in thread 0).
__device__ __forceinline__ double block_sum(double v) {
  __shared__ double part[32];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  const int warp = threadIdx.x >> 5;
  if (lane_id() == 0) part[warp] = v;
  __syncthreads();
  double s = 0;
  if (threadIdx.x == 0)
    for (int w = 0; w < int(blockDim.x >> 5); ++w) s += part[w];
  __syncthreads();
  return s;
}

// One block per item (blockIdx.x) of batch element b0 + blockIdx.y.
template <typename T, int DM>
__global__ void __launch_bounds__(kTiledThreads, 2)
    mmd_tiled_kernel(const T* __restrict__ x, const T* __restrict__ y, const imq::Consts<T> kc, const Plan pl,
                     int64_t b0, T* __restrict__ rowpart, T* __restrict__ colpart, double* __restrict__ kpart) {
  extern __shared__ __align__(16) double smem_acc[];
  const int64_t bl = blockIdx.y, b = b0 + bl;
  int I, J;
  item_panels(blockIdx.x, pl.pn, I, J);
  const T* X = x + b * pl.n * pl.d;
  const T* Y = y + b * pl.m * pl.d;
  const Panel<T> rp = panel(pl, X, Y, I), cp = panel(pl, X, Y, J);
  const bool diag = I == J;
  const bool want_r = rp.is_x ? pl.gx : pl.gy;
  const bool want_c = !diag && (cp.is_x ? pl.gx : pl.gy);
  const bool fast_ok = kc.rational && kc.S <= kDegFast;
  const int64_t slot = bl * pl.items + blockIdx.x;
  const int64_t stride = int64_t(pl.P) * pl.d;
  T* rpart = rowpart == nullptr ? nullptr : rowpart + slot * stride;
  T* cpart = colpart == nullptr ? nullptr : colpart + slot * stride;
  double ks;
  if (want_c)  // (an item wanting column gradients only also computes its rows': y-only gradients)
    ks = run_item<T, DM, true, true>(rp, cp, diag, pl.d, kc, fast_ok, rpart, cpart, smem_acc);
  else if (want_r)
    ks = run_item<T, DM, true, false>(rp, cp, diag, pl.d, kc, fast_ok, rpart, cpart, smem_acc);
  else
    ks = run_item<T, DM, false, false>(rp, cp, diag, pl.d, kc, fast_ok, rpart, cpart, smem_acc);
  ks = block_sum(ks);
  if (threadIdx.x == 0) kpart[slot] = ks;
}

__device__ __forceinline__ double term_weight(const Plan& pl, const MmdWeights& w, int I, int J) {
  return J < pl.px ? w.xx : I >= pl.px ? w.yy : w.xy;
}

// Thread e < nb: MMD² of batch element b0 + e. Thread e < nb * (gradient values per element): one
// gradient value, its partials added in fixed item order.
template <typename T>
__global__ void mmd_tiled_finalize(const T* __restrict__ rowpart, const T* __restrict__ colpart,
                                   const double* __restrict__ kpart, const Plan pl, int64_t b0, int64_t nb,
                                   const MmdWeights w, int S, bool unbiased, T* __restrict__ out, T* __restrict__ gx,
                                   T* __restrict__ gy) {
  const int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (e < nb) {
    double sxx = 0, syy = 0, sxy = 0;
    const double* kp = kpart + e * pl.items;
    for (int I = 0; I < pl.pn; ++I)
      for (int J = I; J < pl.pn; ++J) {
        const double v = kp[item_index(I, J, pl.pn)] * (I == J ? 0.5 : 1.0);  // diagonal: ordered pairs
        (J < pl.px ? sxx : I >= pl.px ? syy : sxy) += v;
      }
    out[b0 + e] = static_cast<T>(mmd_combine(sxx, syy, sxy, pl.n, pl.m, S, unbiased));
  }
  const int64_t nxv = pl.gx ? int64_t(pl.n) * pl.d : 0, nyv = pl.gy ? int64_t(pl.m) * pl.d : 0;
  if (nxv + nyv == 0 || e >= nb * (nxv + nyv)) return;
  const int64_t bl = e / (nxv + nyv);
  int64_t v = e % (nxv + nyv);
  const bool is_x = v < nxv;
  if (!is_x) v -= nxv;
  const int p = int(v / pl.d), k = int(v % pl.d);
  const int K = (is_x ? 0 : pl.px) + p / pl.P;
  const int64_t off = int64_t(p % pl.P) * pl.d + k, stride = int64_t(pl.P) * pl.d;
  const int64_t base = bl * pl.items;
  double acc = 0;
  for (int I = 0; I < K; ++I)  // as the column panel of (I, K)
    acc += term_weight(pl, w, I, K) * double(colpart[(base + item_index(I, K, pl.pn)) * stride + off]);
  for (int J = K; J < pl.pn; ++J)  // as the row panel of (K, J)
    acc += term_weight(pl, w, K, J) * double(rowpart[(base + item_index(K, J, pl.pn)) * stride + off]);
  if (is_x)
    gx[(b0 + bl) * pl.n * pl.d + v] = static_cast<T>(acc);
  else
    gy[(b0 + bl) * pl.m * pl.d + v] = static_cast<T>(acc);
}

// -------------------------------------------------------------------------------------- small path
struct SmallArgs {
  int n, m, d;
  int cs;  // column splits: thread t takes point t % N and columns j = t / N (mod cs)
  bool gx, gy;
  MmdWeights w;
  bool unbiased;
};

// Point a against columns j0, j0 + cs, ... < j1 of z (skipping j == skip). Returns the float kernel
// sum; the weighted gradient is added to g in double.
template <typename T, int DM, bool kGrad>
__device__ __forceinline__ T small_pass(const T (&a)[DM], const T* z, int j0, int j1, int cs, int skip,
                                        const imq::Consts<T>& kc, bool fast_ok, double wgt, double (&g)[DM]) {
  T ks = 0;
  T gp[DM];
#pragma unroll
  for (int k = 0; k < DM; ++k) gp[k] = 0;
  for (int j = j0; j < j1; j += cs) {
    if (j == skip) continue;
    const T* bj = z + j * DM;
    T D = 0;
#pragma unroll
    for (int k = 0; k < DM; ++k) {
      const T df = a[k] - bj[k];
      D = fmad(df, df, D);
    }
    T K, G = 0;
    eval_pair<T, kGrad>(D, kc, fast_ok, K, G);
    ks += K;
    if (kGrad) {
#pragma unroll
      for (int k = 0; k < DM; ++k) gp[k] = fmad(G, a[k] - bj[k], gp[k]);
    }
  }
  if (kGrad) {
#pragma unroll
    for (int k = 0; k < DM; ++k) g[k] += wgt * double(gp[k]);
  }
  return ks;
}

template <typename T, int DM>
__device__ __forceinline__ T small_pass_any(bool grad, const T (&a)[DM], const T* z, int j0, int j1, int cs, int skip,
                                            const imq::Consts<T>& kc, bool fast_ok, double wgt, double (&g)[DM]) {
  return grad ? small_pass<T, DM, true>(a, z, j0, j1, cs, skip, kc, fast_ok, wgt, g)
              : small_pass<T, DM, false>(a, z, j0, j1, cs, skip, kc, fast_ok, wgt, g);
}

__host__ __device__ inline size_t small_z_bytes(int N, int DM, size_t tsize) {
  return (size_t(N) * DM * tsize + 15) / 16 * 16;
}

// One block per batch element blockIdx.x: Z staged in shared memory (zero-padded to DM), then
// [cs][N][DM] doubles for the column splits' gradients when cs > 1.
template <typename T, int DM>
__global__ void __launch_bounds__(kSmallThreads)
    mmd_small_kernel(const T* __restrict__ x, const T* __restrict__ y, const imq::Consts<T> kc, const SmallArgs a,
                     T* __restrict__ out, T* __restrict__ gx, T* __restrict__ gy) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int n = a.n, m = a.m, d = a.d, N = n + m, cs = a.cs;
  T* z = reinterpret_cast<T*>(smem_raw);
  double* gsplit = reinterpret_cast<double*>(smem_raw + small_z_bytes(N, DM, sizeof(T)));
  const int64_t b = blockIdx.x;
  const T* X = x + b * n * d;
  const T* Y = y + b * m * d;
  for (int e = threadIdx.x; e < N * DM; e += blockDim.x) {
    const int p = e / DM, k = e % DM;
    z[e] = k >= d ? T(0) : p < n ? X[int64_t(p) * d + k] : Y[int64_t(p - n) * d + k];
  }
  __syncthreads();
  const bool active = int(threadIdx.x) < cs * N;
  const int c = active ? threadIdx.x / N : 0, p = active ? threadIdx.x % N : 0;
  const bool xrow = p < n;
  const bool need = active && (xrow ? a.gx : a.gy);
  const bool fast_ok = kc.rational && kc.S <= kDegFast;
  T ar[DM];
#pragma unroll
  for (int k = 0; k < DM; ++k) ar[k] = z[p * DM + k];
  double g[DM];
#pragma unroll
  for (int k = 0; k < DM; ++k) g[k] = 0;
  double s_own = 0, s_cross = 0;
  if (active) {
    const int own0 = xrow ? 0 : n, own1 = xrow ? n : N, oth0 = xrow ? n : 0, oth1 = xrow ? N : n;
    s_own = small_pass_any<T, DM>(need, ar, z, own0 + c, own1, cs, p, kc, fast_ok, xrow ? a.w.xx : a.w.yy, g);
    if (xrow || need)  // y points need the cross pass only for their gradients
      s_cross = small_pass_any<T, DM>(need, ar, z, oth0 + c, oth1, cs, -1, kc, fast_ok, a.w.xy, g);
  }
  // Kernel sums (each pair i != j counted from both ends within X and Y; x-y pairs from x only).
  const double sxx = block_sum(active && xrow ? s_own : 0.0);
  const double syy = block_sum(active && !xrow ? s_own : 0.0);
  const double sxy = block_sum(active && xrow ? s_cross : 0.0);
  if (threadIdx.x == 0) out[b] = static_cast<T>(mmd_combine(0.5 * sxx, 0.5 * syy, sxy, n, m, kc.S, a.unbiased));
  if (!(a.gx || a.gy)) return;
  if (cs == 1) {
    if (need) {
      T* dst = xrow ? gx + (b * n + p) * d : gy + (b * m + p - n) * d;
#pragma unroll
      for (int k = 0; k < DM; ++k)
        if (k < d) dst[k] = static_cast<T>(g[k]);
    }
    return;
  }
  if (need) {
#pragma unroll
    for (int k = 0; k < DM; ++k) gsplit[(c * N + p) * DM + k] = g[k];
  }
  __syncthreads();
  for (int e = threadIdx.x; e < N * d; e += blockDim.x) {
    const int q = e / d, k = e % d;
    if (!(q < n ? a.gx : a.gy)) continue;
    double s = 0;
    for (int cc = 0; cc < cs; ++cc) s += gsplit[(cc * N + q) * DM + k];
    if (q < n)
      gx[(b * n + q) * d + k] = static_cast<T>(s);
    else
      gy[(b * m + q - n) * d + k] = static_cast<T>(s);
  }
}

// -------------------------------------------------------------------------------------------- host
int dm_bucket(int d) {
  for (int c : {1, 2, 4, 8, 16})
    if (d <= c) return c;
  return 0;
}

// f(std::integral_constant<int, DM>) for the register bucket DM of d (a power of two <= max_dm<T>()).
template <typename T, typename F>
void with_dm(int dm, F&& f) {
  switch (dm) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    case 8: f(std::integral_constant<int, 8>{}); break;
    default:
      if constexpr (max_dm<T>() >= 16) f(std::integral_constant<int, 16>{});
      break;
  }
}

// Column splits and shared memory of the small path (no opt-in); cs == 0 when it does not apply.
struct SmallCfg {
  int cs = 0;
  size_t smem = 0;
};
SmallCfg small_config(int64_t B, int n, int m, int dm, size_t tsize, bool grads) {
  SmallCfg cfg;
  if (n > kSmallMax || m > kSmallMax || dm == 0 || B > 0x7fffffff) return cfg;  // one block per element
  const int N = n + m;
  for (int cs = 8; cs >= 1; cs /= 2) {
    if (cs * N > kSmallThreads) continue;
    const size_t smem = small_z_bytes(N, dm, tsize) + (grads && cs > 1 ? size_t(cs) * N * dm * sizeof(double) : 0);
    if (smem <= kSmemNoOptIn) return {cs, smem};
  }
  return cfg;
}

// Block shape of the general path for panel size P: warps (<= 8, one per 32 columns) and the
// dynamic shared memory (the warps' double row accumulators).
template <typename T, int DM>
int tiled_warps(int P) {
  return std::min(kTiledThreads / 32, P / 32);
}
template <typename T, int DM>
size_t tiled_smem(int P, bool grads) {
  return grads ? size_t(tiled_warps<T, DM>(P)) * rows_per_lane<T, DM>() * DM * 32 * sizeof(double) : 0;
}

// Panel size P (128 * 2^k): minimises the modelled time ceil(blocks / resident blocks) * (P^2 / warps
// + 2 P) (a block's work over its warps, times the waves), so that small batches still fill every SM and
// the last wave is not mostly empty; ties go to the larger P (fewer partials, fewer diagonal items).
// Partials of one batch element (2 items P d values, (pn + 1) per point) must stay within
// kPartialBudget, else the smallest P that fits is taken (B = 1, n = m = 65536, d = 8: P = 4096,
// 138 MB).
template <typename T, int DM>
int choose_panel(int64_t B, int n, int m, int d, bool grads) {
  int dev = 0;
  C10_CUDA_CHECK(cudaGetDevice(&dev));
  const int sms = at::cuda::getDeviceProperties(dev)->multiProcessorCount;
  int per_sm[kTiledThreads / 32 + 1] = {};  // resident blocks per SM, by warps per block (0: not asked yet)
  double best_cost = 0;
  int best = 128;
  bool found = false;
  for (int64_t P = 128; P <= (int64_t(1) << 30); P *= 2) {
    const int warps = tiled_warps<T, DM>(int(P));
    if (per_sm[warps] == 0) {
      const size_t smem = tiled_smem<T, DM>(int(P), grads);
      if (smem > kSmemNoOptIn)
        C10_CUDA_CHECK(cudaFuncSetAttribute(mmd_tiled_kernel<T, DM>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            int(smem)));
      C10_CUDA_CHECK(
          cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm[warps], mmd_tiled_kernel<T, DM>, 32 * warps, smem));
      per_sm[warps] = std::max(per_sm[warps], 1);
    }
    const int64_t pn = (n + P - 1) / P + (m + P - 1) / P;
    const int64_t blocks = B * (pn * (pn + 1) / 2);
    const int64_t slots = int64_t(per_sm[warps]) * sms;
    // + 2 P: per-item costs (row loads, flushes, syncs, partial stores; ~500 instructions per warp
    // and row sub-block, in pair-equivalents: an estimate to tune on a GPU).
    const double cost = double((blocks + slots - 1) / slots) * (double(P) * double(P) / warps + 2.0 * double(P));
    const bool fits = !grads || 2 * (pn * (pn + 1) / 2) * P * d * int64_t(sizeof(T)) <= kPartialBudget;
    if (fits && (!found || cost <= best_cost)) best_cost = cost, best = int(P), found = true;
    if (!found) best = int(P);  // nothing fits yet: the largest P so far (fewest partials)
    if (P >= std::max(n, m)) break;
  }
  return best;
}

template <typename T, int DM>
void launch_small(const T* x, const T* y, const imq::Consts<T>& kc, const SmallArgs& a, const SmallCfg& cfg,
                  int64_t B, cudaStream_t stream, T* out, T* gx, T* gy) {
  const int threads = std::min(kSmallThreads, (cfg.cs * (a.n + a.m) + 31) / 32 * 32);
  mmd_small_kernel<T, DM><<<unsigned(B), threads, cfg.smem, stream>>>(x, y, kc, a, out, gx, gy);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename T, int DM>
void launch_tiled(dim3 grid, int threads, size_t smem, cudaStream_t stream, const T* x, const T* y,
                  const imq::Consts<T>& kc, const Plan& pl, int64_t b0, T* rowpart, T* colpart, double* kpart) {
  if (smem > kSmemNoOptIn)
    C10_CUDA_CHECK(cudaFuncSetAttribute(mmd_tiled_kernel<T, DM>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        int(smem)));
  mmd_tiled_kernel<T, DM><<<grid, threads, smem, stream>>>(x, y, kc, pl, b0, rowpart, colpart, kpart);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename T>
void tiled_impl(const at::Tensor& x, const at::Tensor& y, const MmdShape& sh, double c,
                const std::vector<double>& scales, bool unbiased, bool grad_x, bool grad_y, int dm, at::Tensor& out,
                at::Tensor& gx, at::Tensor& gy) {
  const int64_t B = sh.B;
  const int n = int(sh.n), m = int(sh.m), d = int(sh.d);
  const imq::Consts<T> kc = imq::make_consts<T>(c, scales);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const T* xp = x.data_ptr<T>();
  const T* yp = y.data_ptr<T>();
  T* op = out.data_ptr<T>();
  T* gxp = grad_x ? gx.data_ptr<T>() : nullptr;
  T* gyp = grad_y ? gy.data_ptr<T>() : nullptr;

  const SmallCfg scfg = small_config(B, n, m, dm, sizeof(T), grad_x || grad_y);
  if (scfg.cs > 0) {
    const SmallArgs a{n, m, d, scfg.cs, grad_x, grad_y, mmd_weights(n, m, unbiased), unbiased};
    with_dm<T>(dm, [&](auto c) {
      launch_small<T, decltype(c)::value>(xp, yp, kc, a, scfg, B, stream, op, gxp, gyp);
    });
    return;
  }

  const bool grads = grad_x || grad_y;
  Plan pl;
  pl.n = n, pl.m = m, pl.d = d;
  with_dm<T>(dm, [&](auto c) { pl.P = choose_panel<T, decltype(c)::value>(B, n, m, d, grads); });
  pl.px = (n + pl.P - 1) / pl.P;
  pl.pn = pl.px + (m + pl.P - 1) / pl.P;
  pl.items = pl.pn * (pl.pn + 1) / 2;
  pl.gx = grad_x, pl.gy = grad_y;
  // Batch chunks: grid.y <= 65535 and at most 2 kPartialBudget of partials per launch.
  const int64_t part_per_b = grads ? 2 * int64_t(pl.items) * pl.P * d * int64_t(sizeof(T)) : 0;
  const int64_t chunk =
      std::max<int64_t>(1, std::min<int64_t>({B, 65535, part_per_b ? 2 * kPartialBudget / part_per_b : B}));
  auto opts = x.options();
  const int64_t pelems = grads ? chunk * pl.items * int64_t(pl.P) * d : 0;
  at::Tensor rowpart = at::empty({pelems}, opts), colpart = at::empty({pelems}, opts);
  at::Tensor kpart = at::empty({chunk * pl.items}, opts.dtype(at::kDouble));
  int threads = 0;
  size_t smem = 0;
  with_dm<T>(dm, [&](auto c) {
    threads = 32 * tiled_warps<T, decltype(c)::value>(pl.P);
    smem = tiled_smem<T, decltype(c)::value>(pl.P, grads);
  });
  const MmdWeights w = mmd_weights(n, m, unbiased);
  for (int64_t b0 = 0; b0 < B; b0 += chunk) {
    const int64_t nb = std::min(chunk, B - b0);
    const dim3 grid(unsigned(pl.items), unsigned(nb));
    T* rp = grads ? rowpart.data_ptr<T>() : nullptr;
    T* cp = grads ? colpart.data_ptr<T>() : nullptr;
    double* kp = kpart.data_ptr<double>();
    with_dm<T>(dm, [&](auto c) {
      launch_tiled<T, decltype(c)::value>(grid, threads, smem, stream, xp, yp, kc, pl, b0, rp, cp, kp);
    });
    const int64_t per = (grad_x ? int64_t(n) * d : 0) + (grad_y ? int64_t(m) * d : 0);
    const int64_t total = std::max(nb, nb * per);
    const int fthreads = 256;
    mmd_tiled_finalize<T><<<unsigned((total + fthreads - 1) / fthreads), fthreads, 0, stream>>>(
        rp, cp, kp, pl, b0, nb, w, int(scales.size()), unbiased, op, gxp, gyp);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

}  // namespace

bool mmd_imq_tiled_cuda(const at::Tensor& x, const at::Tensor& y, const MmdShape& sh, double c,
                        const std::vector<double>& scales, bool unbiased, bool grad_x, bool grad_y, at::Tensor& out,
                        at::Tensor& gx, at::Tensor& gy) {
  const int dm = dm_bucket(int(sh.d));
  const bool f32 = x.scalar_type() == at::kFloat;
  if (dm == 0 || dm > (f32 ? max_dm<float>() : max_dm<double>())) return false;
  if (f32)
    tiled_impl<float>(x, y, sh, c, scales, unbiased, grad_x, grad_y, dm, out, gx, gy);
  else
    tiled_impl<double>(x, y, sh, c, scales, unbiased, grad_x, grad_y, dm, out, gx, gy);
  return true;
}

}  // namespace er_fast
