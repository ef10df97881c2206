// CUDA kernels of er_fast::adam_ (maths and operation order in common/adam_math.h, so each
// element gets the CPU kernel's bits).
//
// Two launches per dtype batch, both on the current stream and never read on the host (the whole
// step can be captured in a CUDA graph): a one-thread prologue increments the step count and
// writes the float64 step scalars (lr / (1 - beta1^t), sqrt(1 - beta2^t)) to a small device
// buffer, then one multi-tensor kernel updates up to kMaxTensors tensors: block b takes chunk b
// of kChunk elements of the batch, its tensor found in the chunk table passed by value.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>

#include "common/adam_checks.h"
#include "common/adam_math.h"

namespace er_fast {
namespace {

constexpr int kThreads = 256;
constexpr int kPerThread = 4;
constexpr int64_t kChunk = kThreads * kPerThread;
constexpr int kMaxTensors = 24;  // 24 * 48 bytes + the chunk table: well within 4 KB of kernel parameters

template <typename T>
struct Batch {
  T* p[kMaxTensors];
  const T* g[kMaxTensors];
  T* m[kMaxTensors];
  T* v[kMaxTensors];
  int64_t n[kMaxTensors];
  int64_t first_chunk[kMaxTensors + 1];  // prefix sums of the tensors' chunk counts
  int count;
};

// step <- step + 1 = t; scalars = (lr / (1 - beta1^t), sqrt(1 - beta2^t)). A step that is not a
// whole number in [0, 2^53) ([0, 2^24) for a float32 step: t must be exact in S) cannot be
// reported without a sync: the parameters then become NaN.
template <typename S>
__global__ void adam_prologue(S* step, double* scalars, double lr, double beta1, double beta2) {
  const double s0 = static_cast<double>(*step);
  const double limit = sizeof(S) == 4 ? 0x1p24 : 0x1p53;
  const bool ok = s0 >= 0.0 && s0 < limit && s0 == floor(s0);
  const int64_t t = ok ? static_cast<int64_t>(s0) + 1 : 1;
  *step = static_cast<S>(t);
  double a, s;
  adam::step_scalars(t, lr, beta1, beta2, a, s);
  scalars[0] = ok ? a : __longlong_as_double(0x7ff8000000000000ll);
  scalars[1] = s;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) adam_kernel(Batch<T> batch, const double* __restrict__ scalars,
                                                        double beta1, double beta2, double eps) {
  const int64_t chunk = blockIdx.x;
  int i = 0;
  while (batch.first_chunk[i + 1] <= chunk) ++i;
  const adam::Coeffs<T> c = adam::coeffs<T>(scalars[0], scalars[1], beta1, beta2, eps);
  T* __restrict__ p = batch.p[i];
  const T* __restrict__ g = batch.g[i];
  T* __restrict__ m = batch.m[i];
  T* __restrict__ v = batch.v[i];
  const int64_t begin = (chunk - batch.first_chunk[i]) * kChunk;
  const int64_t end = min(batch.n[i], begin + kChunk);
#pragma unroll
  for (int k = 0; k < kPerThread; ++k) {
    const int64_t j = begin + k * kThreads + threadIdx.x;
    if (j < end) {
      T pj = p[j], mj = m[j], vj = v[j];
      adam::update(pj, g[j], mj, vj, c);
      p[j] = pj;
      m[j] = mj;
      v[j] = vj;
    }
  }
}

template <typename T>
void launch_batches(const std::vector<int64_t>& idx, at::TensorList params, at::TensorList grads,
                    at::TensorList exp_avgs, at::TensorList exp_avg_sqs, const double* scalars, double beta1,
                    double beta2, double eps, cudaStream_t cs) {
  for (size_t b = 0; b < idx.size(); b += kMaxTensors) {
    Batch<T> batch{};
    batch.count = static_cast<int>(std::min<size_t>(kMaxTensors, idx.size() - b));
    batch.first_chunk[0] = 0;
    for (int k = 0; k < batch.count; ++k) {
      const int64_t i = idx[b + k];
      batch.p[k] = params[i].data_ptr<T>();
      batch.g[k] = grads[i].const_data_ptr<T>();
      batch.m[k] = exp_avgs[i].data_ptr<T>();
      batch.v[k] = exp_avg_sqs[i].data_ptr<T>();
      batch.n[k] = params[i].numel();
      batch.first_chunk[k + 1] = batch.first_chunk[k] + (batch.n[k] + kChunk - 1) / kChunk;
    }
    // Unused slots: an empty range past the end, so the chunk search always stops.
    for (int k = batch.count; k < kMaxTensors; ++k) batch.first_chunk[k + 1] = batch.first_chunk[batch.count];
    const int64_t chunks = batch.first_chunk[batch.count];
    if (chunks == 0) continue;
    TORCH_CHECK(chunks < (int64_t{1} << 31), "er_fast.adam_: too many elements in one launch");
    adam_kernel<T><<<static_cast<unsigned>(chunks), kThreads, 0, cs>>>(batch, scalars, beta1, beta2, eps);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

void adam_cuda(at::TensorList params, at::TensorList grads, at::TensorList exp_avgs, at::TensorList exp_avg_sqs,
               const at::Tensor& step, double lr, double beta1, double beta2, double eps) {
  check_adam_args(params, grads, exp_avgs, exp_avg_sqs, step, lr, beta1, beta2, eps, at::kCUDA);
  const c10::cuda::CUDAGuard guard(step.device());
  const auto cs = c10::cuda::getCurrentCUDAStream();
  at::Tensor scalars = at::empty({2}, step.options().dtype(at::kDouble));
  double* sp = scalars.data_ptr<double>();
  switch (step.scalar_type()) {
    case at::kLong:
      adam_prologue<int64_t><<<1, 1, 0, cs>>>(step.data_ptr<int64_t>(), sp, lr, beta1, beta2);
      break;
    case at::kFloat:
      adam_prologue<float><<<1, 1, 0, cs>>>(step.data_ptr<float>(), sp, lr, beta1, beta2);
      break;
    default:
      adam_prologue<double><<<1, 1, 0, cs>>>(step.data_ptr<double>(), sp, lr, beta1, beta2);
      break;
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  std::vector<int64_t> f32, f64;
  for (size_t i = 0; i < params.size(); ++i)
    (params[i].scalar_type() == at::kFloat ? f32 : f64).push_back(static_cast<int64_t>(i));
  launch_batches<float>(f32, params, grads, exp_avgs, exp_avg_sqs, sp, beta1, beta2, eps, cs);
  launch_batches<double>(f64, params, grads, exp_avgs, exp_avg_sqs, sp, beta1, beta2, eps, cs);
}

}  // namespace

TORCH_LIBRARY_IMPL(er_fast, CUDA, m) { m.impl("adam_", &adam_cuda); }

}  // namespace er_fast
