// torch.randn's float32 numbers on the CPU, bit for bit, about 4x faster (memristor_mat/normals.py
// decides where it runs and checks it against torch first).
//
// torch fills a contiguous float32 tensor of n >= 16 elements in two passes
// (ATen/native/cpu/DistributionTemplates.h, normal_fill): n uniforms, each the low 24 bits of the
// next output of the generator's Mersenne Twister times 2^-24, one call after another; then the
// Box-Muller transform on each block of 16 (NormalFill16); where 16 does not divide n, 16 more
// uniforms overwrite the last 16 elements and are transformed in turn. On a 2-core AMD EPYC Zen 4
// the first pass takes 240 of the 340 us of a draw of 100,352 normals. Here the twister's state is
// advanced and tempered in blocks that the compiler vectorises (the recurrence of Matsumoto &
// Nishimura, "Mersenne Twister", ACM TOMACS 8(1), 1998: element i of the new state needs elements
// i + 1 and i + 397 of the old one, or i - 227 of the new one, never a neighbour computed in the
// same block), 21 us; the second pass is torch's own NormalFill16, compiled from torch's header.
//
// Its AVX2 specialisation is what torch's CPU kernels dispatch to on x86 machines with AVX2 (also
// those with AVX-512), and torch builds it with fused multiply-adds where the compiler contracts
// them: this file turns contraction back on (the library's other files are built without it) so
// that the same code compiles to the same arithmetic. Where a build still rounds differently, the
// check in normals.py finds it and torch's kernel runs.
#if defined(__AVX2__) && defined(__FMA__)
#define CPU_CAPABILITY_AVX2
#endif
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif
#include <ATen/native/cpu/DistributionTemplates.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Tensor.h>  // not ATen/ATen.h: every operator's header, a third of the build
#include <torch/library.h>
#include <torch/version.h>  // torch's version: the header's Box-Muller pass changed form in 2.13

#include <algorithm>
#include <mutex>
#include <optional>

namespace {

constexpr int kStateSize = 624;  // at::mt19937's MERSENNE_STATE_N and _M
constexpr int kShift = 397;

// w ^ twist(u, v) of at::mt19937: the upper bit of u, the lower 31 of v, shifted, and the
// twister's matrix where v is odd
inline uint32_t twisted(uint32_t u, uint32_t v, uint32_t w) {
  const uint32_t mixed = (u & 0x80000000u) | (v & 0x7fffffffu);
  return w ^ (mixed >> 1) ^ ((0u - (v & 1u)) & 0x9908b0dfu);
}

// at::mt19937's next_state(), in three loops without a dependence inside a vector
void next_state(uint32_t* s) {
  for (int i = 0; i < kStateSize - kShift; ++i) s[i] = twisted(s[i], s[i + 1], s[i + kShift]);
  for (int i = kStateSize - kShift; i < kStateSize - 1; ++i) {
    s[i] = twisted(s[i], s[i + 1], s[i + kShift - kStateSize]);
  }
  s[kStateSize - 1] = twisted(s[kStateSize - 1], s[0], s[kShift - 1]);
}

// the tempered output of state word y as at::uniform_real_distribution<float>(0, 1) makes it
inline float uniform(uint32_t y) {
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return static_cast<float>(y & 0xffffffu) * (1.0f / 16777216.0f);
}

// n uniforms from the twister, as n calls of at::mt19937::operator() give them (which decrements
// left_, twists when it reaches 0, then reads state_[next_++])
void fill_uniforms(at::mt19937_data_pod& twister, float* out, int64_t n) {
  uint32_t* state = twister.state_.data();
  while (n > 0) {
    if (twister.left_ <= 1) {
      next_state(state);
      twister.left_ = kStateSize + 1;  // the call that twists consumes one
      twister.next_ = 0;
    }
    const int64_t take = std::min<int64_t>(n, twister.left_ - 1);
    const uint32_t* words = state + twister.next_;
    for (int64_t i = 0; i < take; ++i) out[i] = uniform(words[i]);
    twister.next_ += static_cast<uint32_t>(take);
    twister.left_ -= static_cast<int>(take);
    out += take;
    n -= take;
  }
}

// torch's Box-Muller pass on 16 uniforms in place (mean 0, standard deviation 1), as its normal_fill
// calls it: from 2.13 the functor NormalFill16; before, the functions normal_fill_16_AVX2 (on AVX2
// builds) and normal_fill_16 (2.11 and 2.12 checked; the GPU machines' image has 2.11)
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 13)
struct BoxMuller16 {
  at::native::templates::cpu::NormalFill16<float> fill{0.0f, 1.0f};
  void operator()(float* data) { fill(data); }
};
#else
struct BoxMuller16 {
  void operator()(float* data) const {
#ifdef CPU_CAPABILITY_AVX2
    const __m256 two_pi = _mm256_set1_ps(2.0f * c10::pi<double>), one = _mm256_set1_ps(1.0f),
                 minus_two = _mm256_set1_ps(-2.0f), mean = _mm256_set1_ps(0.0f), std = _mm256_set1_ps(1.0f);
    at::native::templates::cpu::normal_fill_16_AVX2(data, &two_pi, &one, &minus_two, &mean, &std);
#else
    at::native::templates::cpu::normal_fill_16<float>(data, 0.0f, 1.0f);
#endif
  }
};
#endif

// out.normal_(0, 1, generator) for a contiguous float32 CPU tensor of at least 16 elements
void standard_normal_(at::Tensor out, std::optional<at::Generator> generator) {
  TORCH_CHECK(out.device().is_cpu() && out.scalar_type() == at::kFloat && out.is_contiguous() && out.numel() >= 16,
              "standard_normal_ fills contiguous float32 CPU tensors of at least 16 elements");
  auto* source = at::get_generator_or_default<at::CPUGeneratorImpl>(generator, at::detail::getDefaultCPUGenerator());
  std::lock_guard<std::mutex> lock(source->mutex_);
  at::mt19937 engine = source->engine();
  at::mt19937_data_pod twister = engine.data();
  float* data = out.data_ptr<float>();
  const int64_t size = out.numel();
  BoxMuller16 box_muller;
  fill_uniforms(twister, data, size);
  for (int64_t i = 0; i + 16 <= size; i += 16) box_muller(data + i);
  if (size % 16 != 0) {  // torch's tail: 16 new uniforms over the last 16 elements
    fill_uniforms(twister, data + size - 16, 16);
    box_muller(data + size - 16);
  }
  engine.set_data(twister);
  source->set_engine(engine);
}

}  // namespace

#define MEMRISTOR_MAT_LIBRARY(name, m) TORCH_LIBRARY_FRAGMENT(name, m)
MEMRISTOR_MAT_LIBRARY(TORCH_EXTENSION_NAME, m) {
  m.def("standard_normal_(Tensor(a!) out, Generator? generator) -> ()", &standard_normal_);
}
