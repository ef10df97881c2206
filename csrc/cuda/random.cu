// CUDA kernels of er_fast::philox_uniform and er_fast::philox_normal: grid-stride over the
// Philox blocks of all S slices, one Philox call per thread-iteration writing its 4 (float32) or
// 2 (float64) outputs. The maths is common/random_math.h, so the values equal the CPU kernel's
// bit for bit. The counter is read from device memory (no host sync, CUDA-graph friendly); an
// invalid counter (outside [0, 2^48)) makes the whole output NaN, a negative seed its slice.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "common/random_checks.h"
#include "common/random_math.h"

namespace er_fast {
namespace {

constexpr int kThreads = 256;

template <typename T>
struct Vec;  // one block's outputs as one aligned store
template <>
struct Vec<float> {
  using type = float4;
};
template <>
struct Vec<double> {
  using type = double2;
};

// aligned: n is a multiple of the block width E, so every block's E outputs are one aligned vector.
template <typename T, bool kNormal, bool kAligned>
__global__ void philox_kernel(const int64_t* __restrict__ seeds, const int64_t* __restrict__ counter, int64_t stream,
                              int64_t n, int64_t nb, int64_t total, T* __restrict__ out) {
  constexpr int E = rng::kPerBlock<T>;
  const int64_t c = *counter;
  const bool c_ok = rng::valid_counter(c);
  for (int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; b < total;
       b += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t s = b / nb, j = b - s * nb;
    const int64_t seed = seeds[s];
    uint32_t w0, w1, w2, w3;
    rng::block(rng::make_stream(seed, stream, c), static_cast<uint64_t>(j), w0, w1, w2, w3);
    T v[E];
    if constexpr (kNormal)
      rng::normals(w0, w1, w2, w3, v);
    else
      rng::uniforms(w0, w1, w2, w3, v);
    if (!(c_ok && rng::valid_seed(seed))) {
#pragma unroll
      for (int k = 0; k < E; ++k) v[k] = std::numeric_limits<T>::quiet_NaN();
    }
    T* o = out + s * n + j * E;
    if constexpr (kAligned) {
      typename Vec<T>::type x;
      if constexpr (E == 4) {
        x.x = v[0]; x.y = v[1]; x.z = v[2]; x.w = v[3];
      } else {
        x.x = v[0]; x.y = v[1];
      }
      *reinterpret_cast<typename Vec<T>::type*>(o) = x;
    } else {
      const int64_t m = std::min<int64_t>(E, n - j * E);
#pragma unroll
      for (int k = 0; k < E; ++k)
        if (k < m) o[k] = v[k];
    }
  }
}

template <typename T, bool kNormal>
void launch(const at::Tensor& seeds, const at::Tensor& counter, int64_t stream, int64_t S, int64_t n, at::Tensor& out) {
  constexpr int E = rng::kPerBlock<T>;
  const int64_t nb = (n + E - 1) / E, total = S * nb;
  const int grid = static_cast<int>(std::min<int64_t>((total + kThreads - 1) / kThreads, int64_t{1} << 20));
  const auto cs = c10::cuda::getCurrentCUDAStream();
  const int64_t *sp = seeds.data_ptr<int64_t>(), *cp = counter.data_ptr<int64_t>();
  if (n % E == 0)
    philox_kernel<T, kNormal, true><<<grid, kThreads, 0, cs>>>(sp, cp, stream, n, nb, total, out.data_ptr<T>());
  else
    philox_kernel<T, kNormal, false><<<grid, kThreads, 0, cs>>>(sp, cp, stream, n, nb, total, out.data_ptr<T>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <bool kNormal>
at::Tensor philox_cuda(const char* op, const at::Tensor& seeds, const at::Tensor& counter, int64_t stream,
                       at::IntArrayRef size, at::ScalarType dtype) {
  check_random_args(op, seeds, counter, stream, size, dtype, at::kCUDA);
  const c10::cuda::CUDAGuard guard(seeds.device());
  const at::Tensor sd = seeds.contiguous();
  const int64_t S = sd.size(0);
  std::vector<int64_t> shape{S};
  shape.insert(shape.end(), size.begin(), size.end());
  at::Tensor out = at::empty(shape, seeds.options().dtype(dtype));
  if (out.numel() == 0) return out;
  const int64_t n = out.numel() / S;
  if (dtype == at::kFloat)
    launch<float, kNormal>(sd, counter, stream, S, n, out);
  else
    launch<double, kNormal>(sd, counter, stream, S, n, out);
  return out;
}

at::Tensor philox_uniform_cuda(const at::Tensor& seeds, const at::Tensor& counter, int64_t stream,
                               at::IntArrayRef size, at::ScalarType dtype) {
  return philox_cuda<false>("philox_uniform", seeds, counter, stream, size, dtype);
}

at::Tensor philox_normal_cuda(const at::Tensor& seeds, const at::Tensor& counter, int64_t stream,
                              at::IntArrayRef size, at::ScalarType dtype) {
  return philox_cuda<true>("philox_normal", seeds, counter, stream, size, dtype);
}

}  // namespace

TORCH_LIBRARY_IMPL(er_fast, CUDA, m) {
  m.impl("philox_uniform", &philox_uniform_cuda);
  m.impl("philox_normal", &philox_normal_cuda);
}

}  // namespace er_fast
