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
//
// adam_steps_ makes a whole step (every tensor of every parameter group) in one call, with the
// scalars computed here as torch.optim.adam computes them in Python (step_t += 1, then
// 1 - beta ** step, lr / that, its root as ** 0.5: the same libm pow and IEEE double arithmetic):
// the Python loop over the tensors, a step tensor's increment and .item() each, cost 90 of a step's
// 206 us on one thread of a 2-core AMD EPYC Zen 3, against 115 for the updates themselves.
#include <ATen/core/Tensor.h>  // not ATen/ATen.h: every operator's header, a third of the build
#include <ATen/ops/empty_like.h>
#include <ATen/ops/sqrt.h>
#include <torch/library.h>

#include <cmath>
#include <vector>

namespace {

// whether the update reaches t: a contiguous float32 CPU tensor (strided) of the parameter's shape
bool takes(const at::Tensor& t, const at::Tensor& param) {
  return t.defined() && t.layout() == at::kStrided && t.device().is_cpu() && t.scalar_type() == at::kFloat &&
         t.is_contiguous() && t.sizes() == param.sizes();
}

// torch's step count: a float32 CPU tensor of one element (torch.optim's default, not capturable)
bool takes_step(const at::Tensor& t) {
  return t.defined() && t.layout() == at::kStrided && t.device().is_cpu() && t.scalar_type() == at::kFloat &&
         t.numel() == 1;
}

void adam_step_(const at::Tensor& param, const at::Tensor& grad, const at::Tensor& exp_avg,
                const at::Tensor& exp_avg_sq, double lerp_weight, double beta2, double one_minus_beta2,
                double bias_correction2_sqrt, double eps, double neg_step_size) {
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

// One step of Adam for every tensor i: torch.optim.adam._single_tensor_adam's scalars (capturable
// off, lr and betas numbers) and update. Nothing is changed, and false returned, unless every
// tensor is one the update reaches (the caller then lets torch make the step).
bool adam_steps_(at::TensorList params, at::TensorList grads, at::TensorList exp_avgs, at::TensorList exp_avg_sqs,
                 at::TensorList steps, at::ArrayRef<double> lrs, at::ArrayRef<double> beta1s,
                 at::ArrayRef<double> beta2s, at::ArrayRef<double> epss) {
  const size_t count = params.size();
  TORCH_CHECK(grads.size() == count && exp_avgs.size() == count && exp_avg_sqs.size() == count &&
                  steps.size() == count && lrs.size() == count && beta1s.size() == count &&
                  beta2s.size() == count && epss.size() == count,
              "adam_steps_: expected as many gradients, moments, steps and scalars as parameters (", count, ")");
  for (size_t i = 0; i < count; ++i) {
    const at::Tensor& param = params[i];
    if (!(takes(param, param) && takes(grads[i], param) && takes(exp_avgs[i], param) &&
          takes(exp_avg_sqs[i], param) && takes_step(steps[i]))) {
      return false;
    }
  }
  for (size_t i = 0; i < count; ++i) {
    // step_t += 1 (a float32 addition), then step = step_t.item()
    float* step_t = steps[i].data_ptr<float>();
    *step_t = *step_t + 1.0f;
    const double step = static_cast<double>(*step_t);
    const double beta1 = beta1s[i];
    const double beta2 = beta2s[i];
    // Python's float ** float is C's pow: the same function here, not sqrt for ** 0.5
    const double bias_correction1 = 1 - std::pow(beta1, step);
    const double bias_correction2 = 1 - std::pow(beta2, step);
    const double step_size = lrs[i] / bias_correction1;
    adam_step_(params[i], grads[i], exp_avgs[i], exp_avg_sqs[i], 1 - beta1, beta2, 1 - beta2,
               std::pow(bias_correction2, 0.5), epss[i], -step_size);
  }
  return true;
}

}  // namespace

#define MEMRISTOR_MAT_LIBRARY(name, m) TORCH_LIBRARY_FRAGMENT(name, m)
MEMRISTOR_MAT_LIBRARY(TORCH_EXTENSION_NAME, m) {
  m.def("adam_steps_(Tensor(a!)[] params, Tensor[] grads, Tensor(b!)[] exp_avgs, Tensor(c!)[] exp_avg_sqs, "
        "Tensor(d!)[] steps, float[] lrs, float[] beta1s, float[] beta2s, float[] epss) -> bool",
        &adam_steps_);
}
