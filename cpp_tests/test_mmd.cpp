// C++ test of er_fast::mmd_imq through the dispatcher (as a libtorch user calls it), against a
// naive double loop. Returns non-zero on any mismatch.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cmath>
#include <cstdio>
#include <tuple>
#include <vector>

using Op = std::tuple<at::Tensor, at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, double,
                                                          c10::ArrayRef<double>, bool, bool, bool);

struct Naive {
  double mmd;
  std::vector<double> gx, gy;  // (n, d), (m, d)
};

// MMD² and its gradients by the definition, in double: k(a,b) = sum_s C_s/(C_s + |a-b|²).
static Naive naive(const std::vector<double>& x, const std::vector<double>& y, int n, int m, int d, double c,
                   const std::vector<double>& scales, bool unbiased) {
  auto dist = [&](const double* a, const double* b) {
    double s = 0;
    for (int k = 0; k < d; ++k) s += (a[k] - b[k]) * (a[k] - b[k]);
    return s;
  };
  auto kern = [&](double D, double& dk) {  // value and dk/dD
    double v = 0;
    dk = 0;
    for (double s : scales) {
      const double C = c * s;
      v += C / (C + D);
      dk -= C / ((C + D) * (C + D));
    }
    return v;
  };
  const double wxx = unbiased ? 1.0 / (double(n) * (n - 1)) : 1.0 / (double(n) * n);
  const double wyy = unbiased ? 1.0 / (double(m) * (m - 1)) : 1.0 / (double(m) * m);
  const double wxy = 2.0 / (double(n) * m);
  Naive r{0, std::vector<double>(n * d, 0.0), std::vector<double>(m * d, 0.0)};
  double dk;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      if (unbiased && i == j) continue;
      r.mmd += wxx * kern(dist(&x[i * d], &x[j * d]), dk);
      for (int k = 0; k < d; ++k) r.gx[i * d + k] += wxx * 2 * dk * 2 * (x[i * d + k] - x[j * d + k]);
    }
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < m; ++j) {
      if (unbiased && i == j) continue;
      r.mmd += wyy * kern(dist(&y[i * d], &y[j * d]), dk);
      for (int k = 0; k < d; ++k) r.gy[i * d + k] += wyy * 2 * dk * 2 * (y[i * d + k] - y[j * d + k]);
    }
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < m; ++j) {
      r.mmd -= wxy * kern(dist(&x[i * d], &y[j * d]), dk);
      for (int k = 0; k < d; ++k) {
        r.gx[i * d + k] -= wxy * dk * 2 * (x[i * d + k] - y[j * d + k]);
        r.gy[j * d + k] -= wxy * dk * 2 * (y[j * d + k] - x[i * d + k]);
      }
    }
  return r;
}

static int check(const c10::TypedOperatorHandle<Op>& op, at::ScalarType dtype, int n, int m, int d, double c,
                 const std::vector<double>& scales, bool unbiased) {
  const auto opt = at::TensorOptions().dtype(at::kDouble);
  const at::Tensor x64 = at::randn({n, d}, opt), y64 = at::rand({m, d}, opt) * 2;
  const at::Tensor x = x64.to(dtype), y = y64.to(dtype);
  const at::Tensor xd = x.to(at::kDouble).contiguous(), yd = y.to(at::kDouble).contiguous();
  const std::vector<double> xv(xd.data_ptr<double>(), xd.data_ptr<double>() + n * d);
  const std::vector<double> yv(yd.data_ptr<double>(), yd.data_ptr<double>() + m * d);
  const Naive ref = naive(xv, yv, n, m, d, c, scales, unbiased);
  auto [v, gx, gy] = op.call(x, y, c, scales, unbiased, true, true);
  const double tol = dtype == at::kDouble ? 1e-12 : 1e-5;
  int bad = 0;
  const double err = std::abs(v.item<double>() - ref.mmd);
  if (!(err <= tol * scales.size())) {
    std::printf("FAIL value n=%d m=%d d=%d: %.17g vs %.17g\n", n, m, d, v.item<double>(), ref.mmd);
    ++bad;
  }
  double gmax = 0, gerr = 0;
  const at::Tensor gxd = gx.to(at::kDouble).contiguous(), gyd = gy.to(at::kDouble).contiguous();
  for (int i = 0; i < n * d; ++i) {
    gmax = std::max(gmax, std::abs(ref.gx[i]));
    gerr = std::max(gerr, std::abs(gxd.data_ptr<double>()[i] - ref.gx[i]));
  }
  for (int i = 0; i < m * d; ++i) {
    gmax = std::max(gmax, std::abs(ref.gy[i]));
    gerr = std::max(gerr, std::abs(gyd.data_ptr<double>()[i] - ref.gy[i]));
  }
  if (!(gerr <= 10 * tol * gmax)) {
    std::printf("FAIL gradient n=%d m=%d d=%d: max error %.3g (max |g| %.3g)\n", n, m, d, gerr, gmax);
    ++bad;
  }
  std::printf("%s %s n=%d m=%d d=%d unbiased=%d: |dmmd|=%.2e, max|dg|=%.2e\n", bad ? "FAIL" : "ok  ",
              c10::toString(dtype), n, m, d, int(unbiased), err, gerr);
  return bad;
}

int main() {
  at::manual_seed(0);
  const auto op = c10::Dispatcher::singleton().findSchemaOrThrow("er_fast::mmd_imq", "").typed<Op>();
  const std::vector<double> s7{0.1, 0.2, 0.5, 1, 2, 5, 10};
  int bad = 0;
  for (auto dtype : {at::kDouble, at::kFloat}) {
    bad += check(op, dtype, 2, 3, 1, 2.0, s7, true);
    bad += check(op, dtype, 70, 45, 3, 6.0, s7, true);
    bad += check(op, dtype, 130, 66, 8, 16.0, s7, false);
    bad += check(op, dtype, 33, 40, 2, 0.5, {0.5, 1.0, 3.0}, true);
  }
  // A clear error for bad input, not a crash.
  bool threw = false;
  try {
    op.call(at::randn({4, 3}), at::randn({4, 2}), 1.0, s7, true, false, false);
  } catch (const c10::Error&) {
    threw = true;
  }
  if (!threw) {
    std::printf("FAIL: mismatched d did not raise\n");
    ++bad;
  }
  std::printf("%s\n", bad ? "FAILED" : "all passed");
  return bad ? 1 : 0;
}
