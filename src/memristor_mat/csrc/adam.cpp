// torch.optim.Adam's default update of one float32 CPU tensor (_single_tensor_adam: no amsgrad,
// no weight decay, not maximising), the same numbers in two passes over the tensor and torch's
// square root where torch makes seven passes (memristor_mat/optim.py decides where it runs and
// checks it against torch first).
//
// torch's update, each line a pass of its own over the tensor (w = 1 - beta1, s = 1 - beta2, the
// scalars rounded to float32 as torch's kernels round them):
//   m = m.lerp(g, w)                  fma(w, g - m, m), or fma(w - 1, g - m, g) where |w| >= 0.5
//   v = v * beta2                     rounded, then
//   v = v + s * g * g                 fma(s * g, g, v): torch's build contracts the last product
//   r = sqrt(v)                       MKL's vector math (VML), which differs from the correctly
//                                     rounded root on 0.6 % (Intel Xeon) to 14 % (AMD EPYC Zen 4)
//                                     of inputs: the same call is made here
//   d = r / sqrt(1 - beta2^t) + eps   two roundings
//   p = p + (-step_size * m) / d      three roundings
// On the MLP's first layer (100,352 weights) that is 200-230 us a step of which the root is about
// 45 to 90 (one thread, a 2-core AMD EPYC Zen 4), a fifth of a step of the paper's MNIST recipe.
// Here the moments are one pass, the root torch's own call, the rest one pass (93 us); the file is
// built without contraction, so each rounding above is written out (std::fma where torch's build
// fuses).
#include <ATen/core/Tensor.h>  // not ATen/ATen.h: every operator's header, a third of the build
#include <ATen/ops/empty_like.h>
#include <ATen/ops/sqrt.h>
#include <torch/library.h>

#include <cmath>

namespace {

void check_operand(const at::Tensor& t, const at::Tensor& param, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous() && !t.is_sparse(),
              "adam_step_: ", name, " must be a contiguous float32 CPU tensor, got ", t.scalar_type(), " on ",
              t.device());
  TORCH_CHECK(t.sizes() == param.sizes(), "adam_step_: ", name, " has shape ", t.sizes(), ", the parameter ",
              param.sizes());
}

void adam_step_(at::Tensor param, const at::Tensor& grad, at::Tensor exp_avg, at::Tensor exp_avg_sq,
                double lerp_weight, double beta2, double one_minus_beta2, double bias_correction2_sqrt,
                double eps, double neg_step_size) {
  check_operand(param, param, "the parameter");
  check_operand(grad, param, "the gradient");
  check_operand(exp_avg, param, "exp_avg");
  check_operand(exp_avg_sq, param, "exp_avg_sq");
  const int64_t n = param.numel();
  const float* g = grad.const_data_ptr<float>();
  float* m = exp_avg.data_ptr<float>();
  float* v = exp_avg_sq.data_ptr<float>();
  const float w = static_cast<float>(lerp_weight);
  const bool small = std::abs(w) < 0.5f;  // torch's is_lerp_weight_small
  const float coefficient = small ? w : w - 1.0f;
  const float b2 = static_cast<float>(beta2);
  const float s = static_cast<float>(one_minus_beta2);
  // the second moments whose root is taken, zeros replaced by 1: MKL's root sends exact zeros down a
  // slow path (the weights of pixels that are 0 in every image seen so far, a fifth of the MLP's
  // first layer: 91 against 45 us on the Zen 4), and its root of every other element does not
  // depend on its neighbours (checked on 5e7 elements); a zero's root is put back below (+0 or -0
  // alike: either way the denominator is eps)
  at::Tensor radicands = at::empty_like(exp_avg_sq);
  float* q = radicands.data_ptr<float>();
  // one thread: on the 2-vCPU VMs measured, these passes over the MLP's first layer took 133 us on
  // two threads against 99 on one (torch's own mul_ slows alike, 8.1 against 6.7 us), and at 4M
  // elements two threads gained nothing; torch's root below uses the threads it is given
  for (int64_t i = 0; i < n; ++i) {
    m[i] = small ? std::fma(w, g[i] - m[i], m[i]) : std::fma(coefficient, g[i] - m[i], g[i]);
    const float updated = std::fma(s * g[i], g[i], v[i] * b2);
    v[i] = updated;
    q[i] = updated == 0.0f ? 1.0f : updated;
  }
  at::sqrt_(radicands);  // torch's own root: MKL's vector math where torch uses it
  float* p = param.data_ptr<float>();
  const float divisor = static_cast<float>(bias_correction2_sqrt);
  const float e = static_cast<float>(eps);
  const float step = static_cast<float>(neg_step_size);
  for (int64_t i = 0; i < n; ++i) {
    const float root = v[i] == 0.0f ? 0.0f : q[i];
    const float denominator = root / divisor + e;
    p[i] = p[i] + step * m[i] / denominator;
  }
}

}  // namespace

#define MEMRISTOR_MAT_LIBRARY(name, m) TORCH_LIBRARY_FRAGMENT(name, m)
MEMRISTOR_MAT_LIBRARY(TORCH_EXTENSION_NAME, m) {
  m.def("adam_step_(Tensor(a!) param, Tensor grad, Tensor(b!) exp_avg, Tensor(c!) exp_avg_sq, float lerp_weight, "
        "float beta2, float one_minus_beta2, float bias_correction2_sqrt, float eps, float neg_step_size) -> ()",
        &adam_step_);
}
