// CPU kernels of er_fast::beta_rsample and er_fast::beta_rsample_grad.
//
// The per-element maths (common/beta_math.h) has data-dependent loop counts (rejection trials,
// continued-fraction terms). To vectorize it anyway, elements are processed in blocks of kW lanes
// that run the same step in lockstep, branch-free, until every lane is done; a lane that has
// finished keeps its state (selects), so each element's result is independent of its neighbours
// and of the thread count. Chunks of blocks are handed to threads dynamically (parallel_chunks).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <limits>

#include "common/beta_math.h"
#include "common/beta_checks.h"
#include "common/cpu_dispatch.h"

// FP selects in the lane loops (Lentz's guards, frozen lanes) are if-converted into blends only
// when GCC may assume FP operations do not trap; without this only the AVX-512 clone (which has
// masked operations) vectorizes. Values are unchanged: FP exceptions are masked anyway.
#pragma GCC optimize("no-trapping-math")

namespace er_fast {
namespace {

using namespace beta;
constexpr int kW = 16;  // lanes per block: two AVX-512 registers of doubles (two independent chains per op hide latency)

// Each lane loop must be vectorized as a loop (not fully unrolled and then only partly packed).
#define ER_FAST_LANES _Pragma("omp simd simdlen(16)")

// Largest value below 1 and smallest normal value of the output dtype: the open-interval clamp.
template <typename T>
constexpr double below_one() { return 1.0 - std::numeric_limits<T>::epsilon() / 2; }
template <typename T>
constexpr double tiny() { return static_cast<double>(std::numeric_limits<T>::min()); }

// Gradient of kW lanes at x (already in (0,1) or on the edges), all in double.
ER_FAST_INLINE void grad_lanes(const double* x, const double* a, const double* b, double* da, double* db, double tol) {
  double P[kW], Q[kW], Y[kW], LY[kW], L1Y[kW], XY[kW];
  double SYM[kW], EDGE[kW], BAD[kW];
  int64_t ACT[kW];
  // The continued-fraction state, one array per field (structure of arrays for the vectorizer).
  double Ap[kW], A_[kW], Bp[kW], dApp[kW], dApq[kW], dAp[kW], dAq[kW], dBpp[kW], dBpq[kW], dBp[kW], dBq[kW];
  double H[kW], dHp[kW], dHq[kW];
  ER_FAST_LANES
  for (int l = 0; l < kW; ++l) {
    GradSetup g;
    grad_setup(x[l], a[l], b[l], g);
    P[l] = g.p; Q[l] = g.q; Y[l] = g.y; LY[l] = g.ly; L1Y[l] = g.l1y; XY[l] = g.xy1;
    SYM[l] = g.sym; EDGE[l] = g.edge; BAD[l] = g.bad; ACT[l] = 1;
    const CF s = cf_init(g.p, g.q, g.y);
    Ap[l] = s.Ap; A_[l] = s.A; Bp[l] = s.Bp; dApp[l] = s.dApp; dApq[l] = s.dApq; dAp[l] = s.dAp; dAq[l] = s.dAq;
    dBpp[l] = s.dBpp; dBpq[l] = s.dBpq; dBp[l] = s.dBp; dBq[l] = s.dBq; H[l] = s.h; dHp[l] = s.dhp; dHq[l] = s.dhq;
  }
  for (int m = 1; m <= kMaxCfIter; ++m) {
    int64_t any = 0;
    const double md = static_cast<double>(m);
    ER_FAST_LANES
    for (int l = 0; l < kW; ++l) {
      CF s{Ap[l], A_[l], Bp[l], 1.0, dApp[l], dApq[l], dAp[l], dAq[l], dBpp[l], dBpq[l], dBp[l], dBq[l],
           H[l], dHp[l], dHq[l]};
      const bool conv = cf_iter(s, md, P[l], Q[l], Y[l], tol);
      const bool act = ACT[l] != 0;  // finished lanes keep their state
      Ap[l] = act ? s.Ap : Ap[l]; A_[l] = act ? s.A : A_[l]; Bp[l] = act ? s.Bp : Bp[l];
      dApp[l] = act ? s.dApp : dApp[l]; dApq[l] = act ? s.dApq : dApq[l];
      dAp[l] = act ? s.dAp : dAp[l]; dAq[l] = act ? s.dAq : dAq[l];
      dBpp[l] = act ? s.dBpp : dBpp[l]; dBpq[l] = act ? s.dBpq : dBpq[l];
      dBp[l] = act ? s.dBp : dBp[l]; dBq[l] = act ? s.dBq : dBq[l];
      H[l] = act ? s.h : H[l]; dHp[l] = act ? s.dhp : dHp[l]; dHq[l] = act ? s.dhq : dHq[l];
      ACT[l] = (act & !conv) ? 1 : 0;
      any |= ACT[l];
    }
    if (!any) break;
  }
  ER_FAST_LANES
  for (int l = 0; l < kW; ++l) {
    GradSetup g;
    g.p = P[l]; g.q = Q[l]; g.y = Y[l]; g.ly = LY[l]; g.l1y = L1Y[l]; g.xy1 = XY[l];
    g.sym = SYM[l]; g.edge = EDGE[l]; g.bad = BAD[l];
    grad_finish(g, H[l], dHp[l], dHq[l], da[l], db[l]);
  }
}

// Samples of kW lanes (double x, unclamped). key[l] and idx_lo[l] give each lane's stream.
ER_FAST_INLINE void sample_lanes(const double* a, const double* b, const PhiloxKey* key, const uint32_t* idx,
                                 double* x) {
  double Gd[2][kW], Gc[2][kW], Glogd[2][kW], Ginv[2][kW], LG[2][kW], BT[2][kW], Gboost[2][kW];
  ER_FAST_LANES
  for (int l = 0; l < kW; ++l) {
    const GammaParams ga = gamma_params(a[l]), gb = gamma_params(b[l]);
    Gd[0][l] = ga.d; Gc[0][l] = ga.c; Glogd[0][l] = ga.log_d; Ginv[0][l] = ga.inv_shape; Gboost[0][l] = ga.boost;
    Gd[1][l] = gb.d; Gc[1][l] = gb.c; Glogd[1][l] = gb.log_d; Ginv[1][l] = gb.inv_shape; Gboost[1][l] = gb.boost;
    double ua, ub;
    boost_uniforms(key[l], idx[l], ua, ub);
    BT[0][l] = boost_term(ga, ua);
    BT[1][l] = boost_term(gb, ub);
  }
  for (int g = 0; g < 2; ++g) {
    int64_t ACC[kW];
    ER_FAST_LANES
    for (int l = 0; l < kW; ++l) { ACC[l] = 0; LG[g][l] = Glogd[g][l]; }
    for (int t = 0; t < kMaxTrials; ++t) {
      int64_t all = 1;
      ER_FAST_LANES
      for (int l = 0; l < kW; ++l) {
        GammaParams p;
        p.d = Gd[g][l]; p.c = Gc[g][l]; p.log_d = Glogd[g][l]; p.inv_shape = Ginv[g][l]; p.boost = Gboost[g][l];
        double u1, u2, u3, lg;
        trial_uniforms(key[l], idx[l], t, g, u1, u2, u3);
        const bool ok = gamma_trial(p, u1, u2, u3, lg);
        const bool take = ok & (ACC[l] == 0);
        LG[g][l] = take ? lg : LG[g][l];
        ACC[l] = ((ACC[l] != 0) | ok) ? 1 : 0;
        all &= ACC[l];
      }
      if (all) break;
    }
  }
  ER_FAST_LANES
  for (int l = 0; l < kW; ++l) {
    const double v = beta_from_logs(LG[0][l] + BT[0][l], LG[1][l] + BT[1][l]);
    x[l] = valid_params(a[l], b[l]) ? v : NAN;
  }
}

// Elements [begin, end) of the flat output. Element i belongs to slice i / slice_numel and uses
// that slice's key row and the counter i % slice_numel.
template <typename T>
ER_FAST_INLINE void sample_range(const T* A, const T* B, const int64_t* keys, int64_t nkeys, int64_t slice_numel,
                                 T* X, T* DA, T* DB, int64_t begin, int64_t end) {
  for (int64_t i0 = begin; i0 < end; i0 += kW) {
    const int n = static_cast<int>(end - i0 < kW ? end - i0 : kW);
    double a[kW], b[kW], x[kW];
    PhiloxKey key[kW];
    uint32_t idx[kW];
    ER_FAST_LANES
    for (int l = 0; l < kW; ++l) {
      const int64_t i = i0 + (l < n ? l : 0);
      a[l] = l < n ? static_cast<double>(A[i]) : 1.0;
      b[l] = l < n ? static_cast<double>(B[i]) : 1.0;
      const int64_t s = nkeys == 1 ? 0 : i / slice_numel;
      const int64_t local = nkeys == 1 ? i : i - s * slice_numel;
      key[l] = make_philox_key(keys[2 * s], keys[2 * s + 1], local);
      idx[l] = static_cast<uint32_t>(local);
    }
    sample_lanes(a, b, key, idx, x);
    ER_FAST_LANES
    for (int l = 0; l < kW; ++l) {
      // Round to the output dtype, then clamp into the open interval (0, 1) of that dtype.
      double v = static_cast<double>(static_cast<T>(x[l]));
      v = v < tiny<T>() ? tiny<T>() : (v > below_one<T>() ? below_one<T>() : v);
      x[l] = v;
    }
    for (int l = 0; l < n; ++l) X[i0 + l] = static_cast<T>(x[l]);
    if (DA != nullptr) {
      double da[kW], db[kW];
      grad_lanes(x, a, b, da, db, cf_tol<T>());
      for (int l = 0; l < n; ++l) {
        DA[i0 + l] = static_cast<T>(da[l]);
        DB[i0 + l] = static_cast<T>(db[l]);
      }
    }
  }
}

template <typename T>
ER_FAST_INLINE void grad_range(const T* X, const T* A, const T* B, T* DA, T* DB, int64_t begin, int64_t end) {
  for (int64_t i0 = begin; i0 < end; i0 += kW) {
    const int n = static_cast<int>(end - i0 < kW ? end - i0 : kW);
    double x[kW], a[kW], b[kW], da[kW], db[kW];
    ER_FAST_LANES
    for (int l = 0; l < kW; ++l) {
      const int64_t i = i0 + (l < n ? l : 0);
      x[l] = static_cast<double>(X[i]);
      a[l] = static_cast<double>(A[i]);
      b[l] = static_cast<double>(B[i]);
    }
    grad_lanes(x, a, b, da, db, cf_tol<T>());
    for (int l = 0; l < n; ++l) {
      DA[i0 + l] = static_cast<T>(da[l]);
      DB[i0 + l] = static_cast<T>(db[l]);
    }
  }
}

// The hot entries, one per dtype, cloned per instruction set.
ER_FAST_CPU_MULTIVERSION(void, sample_f32, (const float* A, const float* B, const int64_t* K, int64_t nk, int64_t sn, float* X, float* DA, float* DB, int64_t b, int64_t e), (A, B, K, nk, sn, X, DA, DB, b, e), { sample_range<float>(A, B, K, nk, sn, X, DA, DB, b, e); })
ER_FAST_CPU_MULTIVERSION(void, sample_f64, (const double* A, const double* B, const int64_t* K, int64_t nk, int64_t sn, double* X, double* DA, double* DB, int64_t b, int64_t e), (A, B, K, nk, sn, X, DA, DB, b, e), { sample_range<double>(A, B, K, nk, sn, X, DA, DB, b, e); })
ER_FAST_CPU_MULTIVERSION(void, grad_f32, (const float* X, const float* A, const float* B, float* DA, float* DB, int64_t b, int64_t e), (X, A, B, DA, DB, b, e), { grad_range<float>(X, A, B, DA, DB, b, e); })
ER_FAST_CPU_MULTIVERSION(void, grad_f64, (const double* X, const double* A, const double* B, double* DA, double* DB, int64_t b, int64_t e), (X, A, B, DA, DB, b, e), { grad_range<double>(X, A, B, DA, DB, b, e); })

// Threads pull chunks of kChunk elements from a shared counter (dynamic scheduling): with a
// static split, one descheduled thread on a busy machine holds up the whole call. Results do not
// depend on the split (each element's result depends only on its own inputs and stream).
constexpr int64_t kChunk = 256 * kW;

template <typename F>
void parallel_chunks(int64_t n, const F& fn) {
  const int64_t nchunks = (n + kChunk - 1) / kChunk;
  std::atomic<int64_t> next{0};
  const int64_t nt = std::min<int64_t>(at::get_num_threads(), nchunks);
  at::parallel_for(0, nt, 1, [&](int64_t, int64_t) {
    for (int64_t c = next.fetch_add(1); c < nchunks; c = next.fetch_add(1))
      fn(c * kChunk, std::min(n, (c + 1) * kChunk));
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> beta_rsample_cpu(const at::Tensor& alpha, const at::Tensor& beta,
                                                                const at::Tensor& key, bool with_grad) {
  check_beta_params("beta_rsample", alpha, beta, at::kCPU);
  const int64_t nk = check_beta_key("beta_rsample", key, alpha);
  const at::Tensor A = alpha.contiguous(), B = beta.contiguous(), K = key.contiguous();
  at::Tensor X = at::empty(A.sizes(), A.options());
  at::Tensor DA = with_grad ? at::empty(A.sizes(), A.options()) : at::empty({0}, A.options());
  at::Tensor DB = with_grad ? at::empty(A.sizes(), A.options()) : at::empty({0}, A.options());
  const int64_t n = A.numel();
  if (n == 0) return {X, DA, DB};
  const int64_t sn = nk == 1 ? n : n / nk;
  const int64_t* kp = K.data_ptr<int64_t>();
  if (A.scalar_type() == at::kFloat) {
    const float *a = A.data_ptr<float>(), *b = B.data_ptr<float>();
    float *x = X.data_ptr<float>(), *da = with_grad ? DA.data_ptr<float>() : nullptr,
          *db = with_grad ? DB.data_ptr<float>() : nullptr;
    parallel_chunks(n, [&](int64_t s, int64_t e) { sample_f32(a, b, kp, nk, sn, x, da, db, s, e); });
  } else {
    const double *a = A.data_ptr<double>(), *b = B.data_ptr<double>();
    double *x = X.data_ptr<double>(), *da = with_grad ? DA.data_ptr<double>() : nullptr,
           *db = with_grad ? DB.data_ptr<double>() : nullptr;
    parallel_chunks(n, [&](int64_t s, int64_t e) { sample_f64(a, b, kp, nk, sn, x, da, db, s, e); });
  }
  return {X, DA, DB};
}

std::tuple<at::Tensor, at::Tensor> beta_rsample_grad_cpu(const at::Tensor& x, const at::Tensor& alpha,
                                                         const at::Tensor& beta) {
  check_beta_params("beta_rsample_grad", alpha, beta, at::kCPU);
  check_beta_points("beta_rsample_grad", x, alpha);
  const at::Tensor X = x.contiguous(), A = alpha.contiguous(), B = beta.contiguous();
  at::Tensor DA = at::empty(X.sizes(), X.options()), DB = at::empty(X.sizes(), X.options());
  const int64_t n = X.numel();
  if (n == 0) return {DA, DB};
  if (X.scalar_type() == at::kFloat) {
    const float *xp = X.data_ptr<float>(), *a = A.data_ptr<float>(), *b = B.data_ptr<float>();
    float *da = DA.data_ptr<float>(), *db = DB.data_ptr<float>();
    parallel_chunks(n, [&](int64_t s, int64_t e) { grad_f32(xp, a, b, da, db, s, e); });
  } else {
    const double *xp = X.data_ptr<double>(), *a = A.data_ptr<double>(), *b = B.data_ptr<double>();
    double *da = DA.data_ptr<double>(), *db = DB.data_ptr<double>();
    parallel_chunks(n, [&](int64_t s, int64_t e) { grad_f64(xp, a, b, da, db, s, e); });
  }
  return {DA, DB};
}

}  // namespace

TORCH_LIBRARY_IMPL(er_fast, CPU, m) {
  m.impl("beta_rsample", &beta_rsample_cpu);
  m.impl("beta_rsample_grad", &beta_rsample_grad_cpu);
}

}  // namespace er_fast
