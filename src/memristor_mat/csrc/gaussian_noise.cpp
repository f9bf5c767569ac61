// The study's weight noise (SPEC §1) applied to a model's tensors in one operator call: W + sigma *
// R(W) * z for each, the numbers of memristor_mat/noise/gaussian.py's torch expression, the gradient
// with respect to W the identity (straight-through). That module decides where it runs and checks it
// against torch first.
//
// torch's expression is, per tensor, five operator calls on 0-dim tensors (aminmax, neg, maximum,
// two products), addcmul and its autograd node; addcmul's kernel computes W + (1 * z) * s with the
// last product and sum fused by torch's build: fma(z, s, W). For the MLP's two tensors that took
// 102-108 us inside a MAT training step (one thread of a 2-core AMD EPYC Zen 4, a step of 0.8 ms),
// 53 in a loop that keeps the code and data in cache. Here, per float32 tensor: one pass for the
// extremes, s rounded as torch rounds it, one pass of std::fma (the file is built without
// contraction, so the fused multiply-add is written out); one call and one autograd node for all
// the tensors: 79-80 us inside the step, 34 in the loop.
//
// The extremes of a tensor without NaN are the same whatever the order they are found in, and so is
// max(-min, max) unless it is zero: a tensor whose reference is zero (all weights +-0: which zero
// aminmax returns depends on its order) or NaN is given to torch's own expression, as are tensors the
// passes do not take.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>  // not ATen/ATen.h: every operator's header, a third of the build
#include <ATen/ops/abs.h>
#include <ATen/ops/addcmul.h>
#include <ATen/ops/aminmax.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/max.h>
#include <ATen/ops/maximum.h>
#include <ATen/ops/mul.h>
#include <ATen/ops/neg.h>
#include <ATen/ops/sub.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

namespace {

enum class Reference { TwoAbsmax, Absmax, Range, Max };

Reference parse_reference(c10::string_view name) {
  if (name == "2absmax") return Reference::TwoAbsmax;
  if (name == "absmax") return Reference::Absmax;
  if (name == "range") return Reference::Range;
  if (name == "max") return Reference::Max;
  TORCH_CHECK(false, "gaussian_weight_noise: unknown noise reference '", std::string(name),
              "'; expected one of 2absmax, absmax, max, range");
  return Reference::TwoAbsmax;  // not reached
}

// R(W) from the tensor's extremes, each rounding torch's (2 * x and -x are exact)
float reference_of(Reference reference, float low, float high) {
  switch (reference) {
    case Reference::TwoAbsmax: return 2.0f * std::max(-low, high);
    case Reference::Absmax: return std::max(-low, high);
    case Reference::Range: return high - low;
    case Reference::Max: return std::abs(high);
  }
  return NAN;
}

// torch's expression for R(W), as memristor_mat/noise/gaussian.py writes it (a constant: no gradient
// flows through it), for where the order of the reduction decides the result (a zero's sign), where
// NaN is in the tensor, and for the tensors the fast path does not take
at::Tensor torch_reference(Reference reference, const at::Tensor& tensor) {
  const at::Tensor weight = tensor.detach();
  if (reference == Reference::Max) return at::abs(at::max(weight));
  auto [low, high] = at::aminmax(weight);
  switch (reference) {
    case Reference::TwoAbsmax: return at::mul(at::maximum(at::neg(low), high), 2);
    case Reference::Absmax: return at::maximum(at::neg(low), high);
    default: return at::sub(high, low);
  }
}

// A vector register of the build's instruction set: 16 floats with AVX-512, 8 with AVX2, 4 otherwise
// (SSE2, NEON). Wider than the registers, GCC 12 lowers the comparisons and selections below lane by
// lane: 16 lanes on an AVX2 build took 343 us for the MLP's 100,352 weights, 8 lanes 12 us (AMD EPYC
// Zen 3), and the whole call 4.5x torch's expression. Selections are written as masks (a conditional
// on vectors is not C++ everywhere). The extremes do not depend on the order they are found in.
#if defined(__AVX512F__)
constexpr int64_t kLanes = 16;
#elif defined(__AVX__)
constexpr int64_t kLanes = 8;
#else
constexpr int64_t kLanes = 4;
#endif
typedef float Floats __attribute__((vector_size(4 * kLanes)));
typedef int32_t Masks __attribute__((vector_size(4 * kLanes)));
// torch's grain for splitting an elementwise kernel between threads (at::internal::GRAIN_SIZE, in
// ATen/TensorIterator.h, whose include would lengthen the build)
constexpr int64_t kGrain = 32768;

Floats select(Masks mask, Floats yes, Floats no) {
  return reinterpret_cast<Floats>((reinterpret_cast<Masks>(yes) & mask) | (reinterpret_cast<Masks>(no) & ~mask));
}

// The smallest and largest element of w[0..n), and whether one is NaN.
void extremes(const float* w, int64_t n, float& low, float& high, bool& nan) {
  low = high = w[0];
  nan = false;
  int64_t i = 0;
  if (n >= 2 * kLanes) {
    Floats low0, high0, low1, high1;
    std::memcpy(&low0, w, sizeof(Floats));
    low1 = high0 = high1 = low0;
    Masks bad = {};
    // two chains of each: the dependence of one comparison on the last would set the pace otherwise
    for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
      Floats a, b;
      std::memcpy(&a, w + i, sizeof(Floats));
      std::memcpy(&b, w + i + kLanes, sizeof(Floats));
      low0 = select(a < low0, a, low0);
      high0 = select(a > high0, a, high0);
      low1 = select(b < low1, b, low1);
      high1 = select(b > high1, b, high1);
      bad |= (a != a) | (b != b);
    }
    low0 = select(low1 < low0, low1, low0);
    high0 = select(high1 > high0, high1, high0);
    for (int64_t k = 0; k < kLanes; ++k) {
      low = std::min(low, low0[k]);
      high = std::max(high, high0[k]);
      nan = nan || bad[k] != 0;
    }
  }
  for (; i < n; ++i) {
    low = std::min(low, w[i]);
    high = std::max(high, w[i]);
    nan = nan || std::isnan(w[i]);
  }
}

// whether the fast path takes a weight and its normals (*draws, *weight.shape); torch's expression
// makes the others (other dtypes, strides or shapes, and empty tensors: torch's own result or error)
bool takes(const at::Tensor& weight, const at::Tensor& normals) {
  const int64_t lead = normals.dim() - weight.dim();
  return weight.scalar_type() == at::kFloat && normals.scalar_type() == at::kFloat && weight.numel() > 0 &&
         weight.is_contiguous() && normals.is_contiguous() && !weight.is_sparse() && !normals.is_sparse() &&
         lead >= 0 && normals.sizes().slice(lead) == weight.sizes();
}

// torch's expression (memristor_mat/noise/gaussian.py torch_noisy)
at::Tensor torch_noisy(const at::Tensor& weight, const at::Tensor& normals, double sigma, Reference reference) {
  return at::addcmul(weight, normals, at::mul(torch_reference(reference, weight), sigma));
}

// W + sigma * R(W) * z for a weight of shape S and normals (*draws, *S)
at::Tensor noisy_weight(const at::Tensor& weight, const at::Tensor& normals, double sigma, Reference reference) {
  if (!takes(weight, normals)) return torch_noisy(weight, normals, sigma, reference);
  const float* w = weight.const_data_ptr<float>();
  const int64_t n = weight.numel();
  float low, high;
  bool nan;
  extremes(w, n, low, high, nan);
  const float range = reference_of(reference, low, high);
  if (nan || range == 0.0f) return torch_noisy(weight, normals, sigma, reference);
  // sigma * R(W): torch multiplies a float32 0-dim tensor by a Python float in float32
  const float s = static_cast<float>(sigma) * range;
  at::Tensor out = at::empty(normals.sizes(), weight.options());
  const float* z = normals.const_data_ptr<float>();
  float* o = out.data_ptr<float>();
  // split between threads as torch's elementwise kernels split (its grain); each element alone
  at::parallel_for(0, out.numel(), kGrain, [&](int64_t first, int64_t last) {
    for (int64_t i = first; i < last;) {
      const int64_t offset = i % n;
      const int64_t stop = std::min(last, i + (n - offset));  // to the end of this draw's copy of W
      const float* wi = w + offset - i;
      for (; i < stop; ++i) o[i] = std::fma(z[i], s, wi[i]);
    }
  });
  return out;
}

// the standard normals of each weight: normals (*draws, normals_per_weight, *S), the first of each
std::vector<at::Tensor> first_normals(at::TensorList weights, at::TensorList normals) {
  TORCH_CHECK(weights.size() == normals.size(), "gaussian_weight_noise: ", weights.size(), " weights but ",
              normals.size(), " tensors of normals");
  std::vector<at::Tensor> selected;
  selected.reserve(normals.size());
  for (size_t i = 0; i < normals.size(); ++i) {
    const int64_t axis = normals[i].dim() - weights[i].dim() - 1;
    TORCH_CHECK(axis >= 0, "gaussian_weight_noise: normals of shape ", normals[i].sizes(), " for a weight of shape ",
                weights[i].sizes(), "; expected (*draws, normals per weight, *weight shape)");
    selected.push_back(normals[i].select(axis, 0));
  }
  return selected;
}

// the operator's CPU kernel: each weight with its normals (*draws, normals_per_weight, *S)
std::vector<at::Tensor> gaussian_weight_noise(at::TensorList weights, at::TensorList normals, double sigma,
                                              c10::string_view reference_name) {
  const Reference reference = parse_reference(reference_name);
  const std::vector<at::Tensor> standard = first_normals(weights, normals);
  std::vector<at::Tensor> noisy;
  noisy.reserve(weights.size());
  for (size_t i = 0; i < weights.size(); ++i) noisy.push_back(noisy_weight(weights[i], standard[i], sigma, reference));
  return noisy;
}

// the gradient with respect to each weight is the identity, summed over the draws where there are any
class GaussianWeightNoise : public torch::autograd::Function<GaussianWeightNoise> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* context, at::TensorList weights,
                                                at::TensorList normals, double sigma, c10::string_view reference) {
    std::vector<int64_t> dims;
    for (const at::Tensor& weight : weights) dims.push_back(weight.dim());
    context->saved_data["dims"] = dims;
    // an output the loss does not use gives its weight no gradient (None), as torch's addcmul node
    // does, not a gradient of zeros
    context->set_materialize_grads(false);
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return gaussian_weight_noise(weights, normals, sigma, reference);  // the CPU kernel: the only one
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* context,
                                                 torch::autograd::variable_list grads) {
    const std::vector<int64_t> dims = context->saved_data["dims"].toIntVector();
    // one gradient per input: the weights', then none for the normals, sigma and the reference
    torch::autograd::variable_list result(2 * dims.size() + 2);
    for (size_t i = 0; i < dims.size(); ++i) {
      const at::Tensor& grad = grads[i];
      result[i] = grad.defined() && grad.dim() > dims[i] ? grad.sum_to_size(grad.sizes().slice(grad.dim() - dims[i]))
                                                         : grad;
    }
    return result;
  }
};

std::vector<at::Tensor> gaussian_weight_noise_autograd(at::TensorList weights, at::TensorList normals, double sigma,
                                                       c10::string_view reference) {
  for (const at::Tensor& z : normals) {
    if (z.requires_grad()) {  // a gradient for the normals too: torch's expression, recorded by autograd
      const Reference parsed = parse_reference(reference);
      const std::vector<at::Tensor> standard = first_normals(weights, normals);
      std::vector<at::Tensor> noisy;
      for (size_t i = 0; i < weights.size(); ++i) noisy.push_back(torch_noisy(weights[i], standard[i], sigma, parsed));
      return noisy;
    }
  }
  return GaussianWeightNoise::apply(weights, normals, sigma, reference);
}

}  // namespace

#define MEMRISTOR_MAT_LIBRARY(name, m) TORCH_LIBRARY_FRAGMENT(name, m)
MEMRISTOR_MAT_LIBRARY(TORCH_EXTENSION_NAME, m) {
  m.def("gaussian_weight_noise(Tensor[] weights, Tensor[] normals, float sigma, str reference) -> Tensor[]");
  m.impl("gaussian_weight_noise", torch::dispatch(c10::DispatchKey::CPU, TORCH_FN(gaussian_weight_noise)));
  m.impl("gaussian_weight_noise",
         torch::dispatch(c10::DispatchKey::Autograd, TORCH_FN(gaussian_weight_noise_autograd)));
}
