// The sums behind the standard deviation of a float32 tensor (memristor_mat/statistics.py, which
// turns them into torch.std's float32 value where that value is decided, and says why that holds).
// torch's CPU kernel runs Welford's update one element after another, with a division per element
// (93-110 us for the 100,352 weights of the MLP's first layer, a tenth of a training step); these
// sums are one vectorised pass in double precision over the same data (about 20 us).
// float32_std_from_sums decides torch's value from them (the bounds are statistics.py's); clip_to_std_
// makes training.clip_weights' whole clipping of a tensor in one call (the sums, the decision, the
// float32 bound and torch's clamp_), 50 us of Python a step less on a 2-core AMD EPYC Zen 3.
#include <ATen/Parallel.h>
#include <ATen/TensorIterator.h>  // at::internal::GRAIN_SIZE
#include <ATen/core/Tensor.h>  // not ATen/ATen.h: every operator's header, a third of the build
#include <ATen/ops/clamp.h>
#include <ATen/ops/std.h>
#include <torch/library.h>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <optional>
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

constexpr double kUnitRoundoff = 0x1p-53;

// statistics.float32_std_from_sums: torch.std's float32 value (correction 1) for n elements whose
// shifted sums are (shift, total, squares), or nothing where the bounds do not decide it. Each line
// is Python's expression, evaluated in the same order (the file is built without contraction).
std::optional<double> float32_std_from_sums(int64_t n, double shift, double total, double squares,
                                            double welford_constant) {
  if (n < 2 || !std::isfinite(shift) || !std::isfinite(total) || !std::isfinite(squares)) return std::nullopt;
  const double u = kUnitRoundoff;
  const double count = static_cast<double>(n);
  const double estimate = squares - total * total / count;
  const double ours = static_cast<double>(4 * n + 16) * u * squares * 1.01;
  const double low = estimate - ours;
  const double high = estimate + ours;
  if (!(low > 0)) return std::nullopt;
  const double mean = std::abs(shift) + std::abs(total) / count;
  const double kappa = std::sqrt(1.0 + count * mean * mean / low) * 1.01;
  const double welford = welford_constant * count * kappa * u;
  if (!(welford < 1)) return std::nullopt;  // a mean so large against the spread that the bound is none
  const double others = static_cast<double>(n - 1);
  const double lowest = std::sqrt(low * (1 - welford) / others * (1 - u)) * (1 - u) * (1 - 8 * u);
  const double highest = std::sqrt(high * (1 + welford) / others * (1 + u)) * (1 + u) * (1 + 8 * u);
  const float rounded = static_cast<float>(lowest);
  if (rounded != static_cast<float>(highest)) return std::nullopt;
  return static_cast<double>(rounded);
}

// statistics.float32_std for a contiguous float32 CPU tensor: from the sums where they decide it
// (at least min_elements elements), else torch's own std
double float32_std(const at::Tensor& x, double welford_constant, int64_t min_elements) {
  if (x.numel() >= min_elements) {
    const auto [shift, total, squares] = shifted_sums(x);
    if (const auto decided = float32_std_from_sums(x.numel(), shift, total, squares, welford_constant)) {
      return *decided;
    }
  }
  return at::std(x).item<double>();
}

// training.clip_weights for float32 CPU tensors: each tensor of more than one element clamped to
// +-float32(k_std) * float32(its std), the product rounded to float32 (torch's k_std * w.std() on a
// float32 tensor); the tensors of other types or layouts are the caller's
void clip_to_std_(at::TensorList weights, double k_std, double welford_constant, int64_t min_elements) {
  for (const at::Tensor& w : weights) {
    TORCH_CHECK(w.device().is_cpu() && w.scalar_type() == at::kFloat && w.is_contiguous() && w.layout() == at::kStrided,
                "clip_to_std_: expected contiguous float32 CPU tensors, got ", w.scalar_type(), " on ", w.device());
  }
  for (const at::Tensor& w : weights) {
    if (w.numel() <= 1) continue;
    const float std = static_cast<float>(float32_std(w, welford_constant, min_elements));
    const float bound = static_cast<float>(k_std) * std;
    at::Tensor clamped = w;  // a handle to the same tensor: clamp_ takes a mutable reference
    at::clamp_(clamped, -static_cast<double>(bound), static_cast<double>(bound));
  }
}

}  // namespace

#define MEMRISTOR_MAT_LIBRARY(name, m) TORCH_LIBRARY_FRAGMENT(name, m)
MEMRISTOR_MAT_LIBRARY(TORCH_EXTENSION_NAME, m) {
  m.def("shifted_sums", &shifted_sums);
  m.def("float32_std_from_sums(int n, float shift, float total, float squares, float welford_constant) -> float?",
        &float32_std_from_sums);
  m.def("clip_to_std_(Tensor(a!)[] weights, float k_std, float welford_constant, int min_elements) -> ()",
        &clip_to_std_);
}
