// Compute core of the CPU mmd_imq kernel (no ATen: also compiled by the standalone
// microbenchmark). See csrc/cpu/mmd_imq.cpp for the design notes.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

// GCC vector types are only passed between always-inlined functions of one clone.
#pragma GCC diagnostic ignored "-Wpsabi"

#include "common/cpu_dispatch.h"
#include "common/mmd_imq_math.h"

namespace er_fast {
namespace mmd_cpu {

using imq::Consts;

constexpr int64_t IB = 32;      // rows between flushes of the float column-gradient buffer
constexpr int64_t kMaxJB = 64;  // the widest column block (buffers are padded to a multiple of it)

// GCC vector types of VB bytes. Each instruction-set copy uses its register width — 64 (one zmm,
// AVX-512), 32 (one ymm, AVX2), 16 (one xmm, baseline) — so a block's vectors (distances, kernel
// values, gradient weights: 3 × 4 vectors) fit its register file: 512-bit vectors lowered to 2 ymm
// or 4 xmm spilled, and ran the AVX2 copy 13× slower than AVX-512 (measured).
template <typename T, int VB>
struct Simd {
  static constexpr int W = VB / int(sizeof(T));
  // Columns per block: 64 with zmm (4 float / 8 double vectors), else 4 vectors.
  static constexpr int64_t JB = VB == 64 ? 64 : 4 * W;
  typedef T V __attribute__((vector_size(VB)));
  typedef T VU __attribute__((vector_size(VB), aligned(sizeof(T))));
};

template <typename T, int VB>
ER_FAST_INLINE typename Simd<T, VB>::V vload(const T* p) {
  return *reinterpret_cast<const typename Simd<T, VB>::VU*>(p);
}
template <typename T, int VB>
ER_FAST_INLINE void vstore(T* p, typename Simd<T, VB>::V v) {
  *reinterpret_cast<typename Simd<T, VB>::VU*>(p) = v;
}
template <typename T, int VB>
ER_FAST_INLINE double vsum_double(typename Simd<T, VB>::V v) {
  double s = 0;
  for (int l = 0; l < Simd<T, VB>::W; ++l) s += double(v[l]);
  return s;
}

inline int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

// One "term": rows A (AoS, row stride d) against columns B (SoA, (d, ldb), zero-padded).
template <typename T>
struct Term {
  const T* A;
  const T* BT;
  int64_t ldb, ncols, d;
  bool tri;         // A and B are the same set: columns j > i only
  T* cacc;          // float column partials, SoA (d, ldb), kept zero between flushes
  double* grow;     // double row gradients, SoA (d, ldgr)
  int64_t ldgr;
  double* gcol;     // double column gradients, SoA (d, ldgc)
  int64_t ldgc;
  double w;         // gradient weight of this term
};

// Row `a` against the JB columns j0..j0+JB-1. `mask` (null: all count) points at JB lane
// weights 0/1. sK: the row's kernel-sum lanes; racc: its gradient lanes (d vectors).
// kFast: the caller has proven every distance here is below kc.d_max (rational form is safe).
template <typename T, int VB, bool kRow, bool kCol, bool kFast>
ER_FAST_INLINE void row_block(const T* __restrict a, const T* __restrict BT, int64_t ldb, int64_t j0, int64_t d,
                              const Consts<T>& kc, const T* __restrict mask, typename Simd<T, VB>::V& sK,
                              T* __restrict racc, T* __restrict cacc) {
  using V = typename Simd<T, VB>::V;
  constexpr int64_t JB = Simd<T, VB>::JB;
  constexpr bool kGrad = kRow || kCol;
  constexpr int W = Simd<T, VB>::W;
  constexpr int NV = JB / W;
  V D[NV], K[NV], G[NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) D[v] = V{};
  for (int64_t k = 0; k < d; ++k) {
    const T ak = a[k];
    const T* __restrict b = BT + k * ldb + j0;
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const V df = ak - vload<T, VB>(b + v * W);  // differences, never |a|^2 + |b|^2 - 2ab
      D[v] += df * df;
    }
  }
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) {
    if (kFast)
      imq::eval_rational<T, kGrad>(D[v], kc, K[v], G[v]);
    else
      imq::eval_direct<T, kGrad>(D[v], kc, K[v], G[v]);
  }
  if (mask) {  // values are finite here (padding columns are zeros), so 0 * K is 0
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const V mv = vload<T, VB>(mask + v * W);
      K[v] *= mv;
      if (kGrad) G[v] *= mv;
    }
  }
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) sK += K[v];
  if (kGrad) {
    for (int64_t k = 0; k < d; ++k) {
      const T ak = a[k];
      const T* __restrict b = BT + k * ldb + j0;
      T* __restrict ca = cacc + k * ldb + j0;
      V r = kRow ? vload<T, VB>(racc + k * W) : V{};
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) {
        const V u = G[v] * (ak - vload<T, VB>(b + v * W));
        if (kRow) r += u;
        if (kCol) vstore<T, VB>(ca + v * W, vload<T, VB>(ca + v * W) - u);
      }
      if (kRow) vstore<T, VB>(racc + k * W, r);
    }
  }
}

// Row `a` against the blocks j0 = jstart, jstart+JB, ... < jend; columns outside [jlo, ncols)
// are masked out.
template <typename T, int VB, bool kRow, bool kCol, bool kFast>
ER_FAST_INLINE void row_span(const T* a, const Term<T>& tm, const Consts<T>& kc, int64_t jstart, int64_t jend,
                             int64_t jlo, const T* ramp, typename Simd<T, VB>::V& sK, T* racc, T* mbuf) {
  using V = typename Simd<T, VB>::V;
  constexpr int64_t JB = Simd<T, VB>::JB;
  constexpr int W = Simd<T, VB>::W;
  for (int64_t j0 = jstart; j0 < jend; j0 += JB) {
    const T* mask = nullptr;
    if (j0 < jlo || j0 + JB > tm.ncols) {
      // ramp = [0]*JB + [1]*JB: ramp[JB - s + l] = (l >= s), so the lane weight is
      // (l >= jlo - j0) * !(l >= ncols - j0).
      const int64_t s = std::min<int64_t>(std::max<int64_t>(jlo - j0, 0), JB);
      const int64_t e = std::min<int64_t>(std::max<int64_t>(tm.ncols - j0, 0), JB);
      for (int v = 0; v < JB / W; ++v)
        vstore<T, VB>(mbuf + v * W, vload<T, VB>(ramp + JB - s + v * W) * (T(1) - vload<T, VB>(ramp + JB - e + v * W)));
      mask = mbuf;
    }
    row_block<T, VB, kRow, kCol, kFast>(a, tm.BT, tm.ldb, j0, tm.d, kc, mask, sK, racc, tm.cacc);
  }
  (void)sizeof(V);
}

// Rows [r0, r1) of A against their columns; returns the sum of K over those pairs (double).
template <typename T, int VB, bool kRow, bool kCol>
ER_FAST_INLINE double run_term(const Term<T>& tm, const Consts<T>& kc, int64_t r0, int64_t r1, T* racc) {
  using V = typename Simd<T, VB>::V;
  constexpr int64_t JB = Simd<T, VB>::JB;
  constexpr int W = Simd<T, VB>::W;
  const int64_t d = tm.d, ncols = tm.ncols;
  // Column super-block: keeps d*JSB values of B (and of cacc) in L1 across the IB rows.
  const int64_t JSB = std::min<int64_t>(1024, std::max<int64_t>(JB, (4096 / d) / JB * JB));
  alignas(64) T ramp[2 * JB], mbuf[JB];
  for (int l = 0; l < 2 * JB; ++l) ramp[l] = l < JB ? T(0) : T(1);
  // Bounding box of each super-block's columns (padding zeros included): a row whose
  // farthest possible distance to the box is below d_max may use the rational form there.
  const int64_t nsb = (ncols + JSB - 1) / JSB;
  std::vector<T> box(kc.rational ? nsb * d * 2 : 0);
  if (kc.rational) {
    for (int64_t sb = 0; sb < nsb; ++sb) {
      const int64_t c0 = sb * JSB, c1 = std::min(round_up(std::min(c0 + JSB, ncols), JB), tm.ldb);
      for (int64_t k = 0; k < d; ++k) {
        const T* b = tm.BT + k * tm.ldb;
        T lo = b[c0], hi = b[c0];
        for (int64_t j = c0; j < c1; ++j) lo = std::min(lo, b[j]), hi = std::max(hi, b[j]);
        box[(sb * d + k) * 2] = lo;
        box[(sb * d + k) * 2 + 1] = hi;
      }
    }
  }
  double ksum = 0;
  for (int64_t I0 = r0; I0 < r1; I0 += IB) {
    const int64_t I1 = std::min(I0 + IB, r1);
    const int64_t jfirst = tm.tri ? (I0 + 1) / JB * JB : 0;
    for (int64_t JS0 = jfirst / JSB * JSB; JS0 < ncols; JS0 += JSB) {
      const int64_t JS1 = std::min(JS0 + JSB, ncols);
      const T* bx = kc.rational ? box.data() + (JS0 / JSB) * d * 2 : nullptr;
      for (int64_t i = I0; i < I1; ++i) {
        const int64_t jlo = tm.tri ? i + 1 : 0;
        const int64_t jstart = std::max(JS0, jlo / JB * JB);
        if (jstart >= JS1) continue;
        const T* a = tm.A + i * d;
        bool fast = false;
        if (kc.rational) {
          double far = 0;
          for (int64_t k = 0; k < d; ++k) {
            const double e = std::max(double(a[k]) - bx[2 * k], double(bx[2 * k + 1]) - a[k]);
            far += e * e;
          }
          fast = far <= double(kc.d_max);  // false for NaN: the direct form then propagates it
        }
        V sK = V{};
        if (kRow) std::fill(racc, racc + d * W, T(0));
        if (fast)
          row_span<T, VB, kRow, kCol, true>(a, tm, kc, jstart, JS1, jlo, ramp, sK, racc, mbuf);
        else
          row_span<T, VB, kRow, kCol, false>(a, tm, kc, jstart, JS1, jlo, ramp, sK, racc, mbuf);
        ksum += vsum_double<T, VB>(sK);
        if (kRow)
          for (int64_t k = 0; k < d; ++k) tm.grow[k * tm.ldgr + i] += tm.w * vsum_double<T, VB>(vload<T, VB>(racc + k * W));
      }
    }
    if (kCol) {  // flush the float column partials of these IB rows into double
      for (int64_t k = 0; k < d; ++k) {
        T* __restrict ca = tm.cacc + k * tm.ldb;
        double* __restrict gc = tm.gcol + k * tm.ldgc;
        for (int64_t j = jfirst; j < ncols; ++j) {
          gc[j] += tm.w * double(ca[j]);
          ca[j] = 0;
        }
      }
    }
  }
  return ksum;
}

template <typename T, int VB>
ER_FAST_INLINE double dispatch_term(bool row, bool col, const Term<T>& tm, const Consts<T>& kc, int64_t r0,
                                    int64_t r1, T* racc) {
  if (r0 >= r1) return 0;
  if (row && col) return run_term<T, VB, true, true>(tm, kc, r0, r1, racc);
  if (row) return run_term<T, VB, true, false>(tm, kc, r0, r1, racc);
  if (col) return run_term<T, VB, false, true>(tm, kc, r0, r1, racc);
  return run_term<T, VB, false, false>(tm, kc, r0, r1, racc);
}

// Everything one work unit needs: the batch element's data and the unit's own buffers.
template <typename T>
struct Unit {
  const T* x;        // (n, d) AoS
  const T* y;        // (m, d) AoS
  const T* xT;       // (d, npad) SoA, zero-padded
  const T* yT;       // (d, mpad)
  int64_t n, m, d, npad, mpad;
  bool gx, gy;
  MmdWeights w;
  int64_t xr0, xr1, yr0, yr1;  // rows of x (xx + xy terms) and of y (yy term) of this unit
  T* cacc_x;         // (d, npad) zeros
  T* cacc_y;         // (d, mpad) zeros
  T* racc;           // d * W (vector lanes, W of the widest vector)
  double* gxd;       // (d, n) zeros, when gx
  double* gyd;       // (d, m) zeros, when gy
  double sxx, syy, sxy;
};

template <typename T, int VB>
ER_FAST_INLINE void run_unit_impl(Unit<T>& u, const Consts<T>& kc) {
  Term<T> xx{u.x, u.xT, u.npad, u.n, u.d, true, u.cacc_x, u.gxd, u.n, u.gxd, u.n, u.w.xx};
  Term<T> xy{u.x, u.yT, u.mpad, u.m, u.d, false, u.cacc_y, u.gxd, u.n, u.gyd, u.m, u.w.xy};
  Term<T> yy{u.y, u.yT, u.mpad, u.m, u.d, true, u.cacc_y, u.gyd, u.m, u.gyd, u.m, u.w.yy};
  u.sxx = dispatch_term<T, VB>(u.gx, u.gx, xx, kc, u.xr0, u.xr1, u.racc);
  u.sxy = dispatch_term<T, VB>(u.gx, u.gy, xy, kc, u.xr0, u.xr1, u.racc);
  u.syy = dispatch_term<T, VB>(u.gy, u.gy, yy, kc, u.yr0, u.yr1, u.racc);
}


}  // namespace mmd_cpu
}  // namespace er_fast
