// QAT's quantisation of a float32 tensor in one pass (memristor_mat/quantization.py, quantize):
// each element replaced by levels[i], i the number of boundaries strictly below it, which is the
// index torch.bucketize(w, boundaries) finds for finite ascending boundaries (a weight on a
// boundary takes the lower level). The Python path makes the same comparisons and gathers the
// same elements with one torch call per boundary, an index tensor and index_select: at the MLP's
// 100,352 weights and 4 levels that was most of the quantisation's 0.3-0.4 ms a QAT step (issue
// #12). Comparisons and copies round nothing, so the numbers are the Python path's, bit for bit,
// however this file is compiled.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>  // not ATen/ATen.h: every operator's header, a third of the build
#include <ATen/ops/empty_like.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>

namespace {

// elements counted at once: their counts stay in the L1 cache while every boundary is compared
constexpr int64_t kBlock = 256;
// torch's grain for a cheap element-wise pass: one thread below it
constexpr int64_t kGrain = 32768;

bool float_vector(const at::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.layout() == at::kStrided && t.dim() == 1 &&
         t.is_contiguous();
}

at::Tensor quantize_to_levels(const at::Tensor& weight, const at::Tensor& levels, const at::Tensor& boundaries) {
  TORCH_CHECK(weight.device().is_cpu() && weight.scalar_type() == at::kFloat && weight.layout() == at::kStrided &&
                  weight.is_contiguous(),
              "quantize_to_levels: expected a contiguous float32 CPU tensor, got ", weight.scalar_type(), " on ",
              weight.device());
  TORCH_CHECK(float_vector(levels) && float_vector(boundaries) && levels.numel() == boundaries.numel() + 1,
              "quantize_to_levels: expected n float32 levels and n - 1 boundaries, got ", levels.sizes(), " and ",
              boundaries.sizes());
  at::Tensor out = at::empty_like(weight, at::MemoryFormat::Contiguous);
  const float* w = weight.data_ptr<float>();
  const float* b = boundaries.data_ptr<float>();
  const float* l = levels.data_ptr<float>();
  float* o = out.data_ptr<float>();
  const int64_t count = boundaries.numel();
  at::parallel_for(0, weight.numel(), kGrain, [&](int64_t begin, int64_t end) {
    int32_t below[kBlock];
    for (int64_t start = begin; start < end; start += kBlock) {
      const int64_t size = std::min(kBlock, end - start);
      const float* x = w + start;
      std::fill(below, below + size, 0);
      for (int64_t k = 0; k < count; ++k) {
        const float boundary = b[k];
        for (int64_t i = 0; i < size; ++i) below[i] += x[i] > boundary;  // false for NaN, as torch.gt
      }
      for (int64_t i = 0; i < size; ++i) o[start + i] = l[below[i]];
    }
  });
  return out;
}

}  // namespace

#define MEMRISTOR_MAT_LIBRARY(name, m) TORCH_LIBRARY_FRAGMENT(name, m)
MEMRISTOR_MAT_LIBRARY(TORCH_EXTENSION_NAME, m) {
  m.def("quantize_to_levels(Tensor weight, Tensor levels, Tensor boundaries) -> Tensor", &quantize_to_levels);
}
