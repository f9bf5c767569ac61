// The sums behind the standard deviation of a float32 tensor (memristor_mat/statistics.py, which
// turns them into torch.std's float32 value where that value is decided, and says why that holds).
// torch's CPU kernel runs Welford's update one element after another, with a division per element
// (93-110 us for the 100,352 weights of the MLP's first layer, a tenth of a training step); these
// sums are one vectorised pass in double precision over the same data (about 20 us).
#include <ATen/Parallel.h>
#include <ATen/TensorIterator.h>  // at::internal::GRAIN_SIZE
#include <ATen/core/Tensor.h>  // not ATen/ATen.h: every operator's header, a third of the build
#include <torch/library.h>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstring>
#include <tuple>
#include <utility>
#include <vector>

namespace {

// four floats widened to four doubles (GCC's and Clang's vector extensions: AVX's vcvtps2pd where
// the build has it, scalar code elsewhere)
typedef float Floats4 __attribute__((vector_size(16)));
typedef double Doubles4 __attribute__((vector_size(32)));
constexpr int64_t kVectors = 4;  // independent accumulators: 16 doubles, enough to hide the adds' latency
constexpr int64_t kBlock = 4 * kVectors;
constexpr int64_t kShiftFrom = 64;  // elements whose mean is the shift

inline Doubles4 widen(const float* p) {
#if defined(__AVX__)
  return reinterpret_cast<Doubles4>(_mm256_cvtps_pd(_mm_loadu_ps(p)));  // GCC's vector types are AVX's
#else
  Floats4 f;
  std::memcpy(&f, p, sizeof f);  // unaligned load
  return __builtin_convertvector(f, Doubles4);
#endif
}

// T = sum(x - c) and Q = sum((x - c)^2) over data[begin, end), each difference and square rounded
// to double, the sums in 16 interleaved partial sums.
std::pair<double, double> sums_from(const float* data, int64_t begin, int64_t end, double c) {
  const Doubles4 shift = {c, c, c, c};
  Doubles4 t[kVectors] = {};
  Doubles4 q[kVectors] = {};
  int64_t i = begin;
  for (; i + kBlock <= end; i += kBlock) {
    for (int64_t j = 0; j < kVectors; ++j) {
      const Doubles4 d = widen(data + i + 4 * j) - shift;
      t[j] += d;
      q[j] += d * d;  // built with -ffp-contract=off: rounded product, then sum (the bound's model)
    }
  }
  double total = 0.0;
  double squares = 0.0;
  for (; i < end; ++i) {
    const double d = static_cast<double>(data[i]) - c;
    total += d;
    squares += d * d;
  }
  for (int64_t j = 0; j < kVectors; ++j) {
    for (int k = 0; k < 4; ++k) {
      total += t[j][k];
      squares += q[j][k];
    }
  }
  return {total, squares};
}

// (c, T, Q) for x: c the mean of its first 64 elements (the shift), T = sum(x - c), Q = sum((x - c)^2).
// On several threads each sums the part of x that torch's elementwise kernels give it (at::parallel_for
// with torch's grain, as TensorIterator splits a contiguous tensor), so the clamp that follows finds
// its part in its core's cache; the parts' sums are then added, an order the bound allows.
std::tuple<double, double, double> shifted_sums(const at::Tensor& x) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat && x.is_contiguous(),
              "shifted_sums: expected a contiguous float32 CPU tensor, got ", x.scalar_type(), " on ", x.device());
  const int64_t n = x.numel();
  TORCH_CHECK(n > 0, "shifted_sums: the tensor is empty");
  const float* data = x.const_data_ptr<float>();
  const int64_t head = std::min(n, kShiftFrom);
  double c = 0.0;
  for (int64_t i = 0; i < head; ++i) c += static_cast<double>(data[i]);
  c /= static_cast<double>(head);

  std::vector<std::pair<double, double>> parts(at::get_num_threads(), {0.0, 0.0});
  at::parallel_for(0, n, at::internal::GRAIN_SIZE, [&](int64_t begin, int64_t end) {
    const auto part = sums_from(data, begin, end, c);
    auto& into = parts[at::get_thread_num()];
    into.first += part.first;
    into.second += part.second;
  });
  double total = 0.0;
  double squares = 0.0;
  for (const auto& part : parts) {
    total += part.first;
    squares += part.second;
  }
  return {c, total, squares};
}

}  // namespace

#define MEMRISTOR_MAT_LIBRARY(name, m) TORCH_LIBRARY_FRAGMENT(name, m)
MEMRISTOR_MAT_LIBRARY(TORCH_EXTENSION_NAME, m) {
  m.def("shifted_sums", &shifted_sums);
}
